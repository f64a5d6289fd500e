/**
 * `xpci assignable-add/-remove/-list`: take devices from their host drivers and park them on
 * vfio-pci or pci-stub, and give them back exactly as they were (xen-pciback.md §2.5, libxl's
 * pci-assignable-*). Every step is idempotent, so re-running a command after a crash finishes it.
 *
 * Seize: record the current driver (atomically, first), driver_override = vfio-pci or pci-stub,
 * unbind, probe, verify. Hand back: clear driver_override, unbind from pci-stub, probe, verify the original driver
 * took it, forget the record; before that, registers a killed export left changed are written back
 * from its register record (register-record.ts). Each device is handled under its export claim
 * (device-claim.ts), so a device that a live backend exports is never pulled away from it, and a
 * lock left by a killed backend is cleared.
 */
import { formatAddress, parseAddress, sameAddress, type PciAddress } from '../../pci/address.js';
import type { PciDeviceInfo } from '../../pci/device-info.js';
import { listDevices } from '../../host/sysfs/discovery.js';
import { DEFAULT_SYSFS_ROOT, pciDevicesDir } from '../../host/sysfs/paths.js';
import { LifecycleError } from './errors.js';
import { ensureStateDir } from './state-dir.js';
import { claimDevice } from './device-claim.js';
import { hasRegisterRecord, repairFromRecord } from './register-record.js';
import { forgetRecord, listRecords, readRecord, writeRecord } from './assignable-store.js';
import { findSeparationProblems } from './separation.js';
import { fileSysfsWriter, type SysfsWriter } from './sysfs-writer.js';
import {
  HOLDING_DRIVERS, STUB_DRIVER, XPCI_DRIVERS, currentDriver, defaultXpciDriver, driverOverridePath, driverUnbindPath,
  driversProbePath, ensureXpciDriver, modprobe, noIommuModeRefusal, type ModuleLoader, type XpciDriver, VFIO_DRIVER,
} from './driver-binding.js';

export interface AssignableOptions {
  sysfsRoot: string;
  stateDir: string;
  writer?: SysfsWriter;
  loadModule?: ModuleLoader;
  /** assignable-add: the driver to park devices on; default vfio-pci where a device has an IOMMU group, else pci-stub */
  driver?: XpciDriver;
}

const isXpciDriver = (driver: string | null): driver is XpciDriver => XPCI_DRIVERS.includes(driver as XpciDriver);

export type AssignableAction = 'seized' | 'already-held' | 'released' | 'not-held' | 'failed' | 'not-attempted';

export interface AssignableOutcome {
  bdf: string;
  action: AssignableAction;
  originalDriver: string | null;
  /** driver bound after the operation */
  driver: string | null;
  /** idempotence notes, stale locks cleared, or the error of a failed device */
  notes: string[];
}

/** What remains when some device failed: its outcome and those not attempted are in `outcomes`. */
export class AssignableError extends LifecycleError {
  constructor(message: string, readonly outcomes: AssignableOutcome[]) {
    super(message);
  }
}

function lookUp(sysfsRoot: string, addresses: readonly PciAddress[]): { all: PciDeviceInfo[]; requested: PciDeviceInfo[] } {
  const all = listDevices(sysfsRoot);
  const missing = addresses.filter((a) => !all.some((d) => sameAddress(d.address, a)));
  if (missing.length > 0) {
    throw new LifecycleError(`no PCI device ${missing.map(formatAddress).join(', ')} under ${pciDevicesDir(sysfsRoot)}`);
  }
  const requested = addresses.map((a) => all.find((d) => sameAddress(d.address, a)) as PciDeviceInfo);
  return { all, requested };
}

function unique(addresses: readonly PciAddress[]): PciAddress[] {
  return addresses.filter((a, i) => addresses.findIndex((b) => sameAddress(a, b)) === i);
}

/** Slot by slot; within a slot the higher functions first, so function 0 changes hands last (libxl). */
function functionZeroLast(a: PciDeviceInfo, b: PciDeviceInfo): number {
  const slot = (d: PciDeviceInfo): number => (d.address.domain * 0x10000 + d.address.bus * 0x100 + d.address.device);
  return slot(a) - slot(b) || b.address.function - a.address.function;
}

/**
 * Run `step` on each device in order under its lock; stop at the first failure and mark the rest
 * not attempted, so a half-seized multi-function slot is visible in the result. `noop` recognises,
 * by reading only, a device already in the wanted state: it needs no lock, so adding a held device
 * that a backend is exporting is still the no-op it should be.
 */
function runEach(devices: PciDeviceInfo[], options: AssignableOptions, verb: string,
  noop: (device: PciDeviceInfo) => AssignableOutcome | null,
  step: (device: PciDeviceInfo) => AssignableOutcome): AssignableOutcome[] {
  const outcomes: AssignableOutcome[] = [];
  let failure: string | null = null;
  for (const device of devices) {
    if (failure !== null) {
      outcomes.push({ bdf: device.bdf, action: 'not-attempted', originalDriver: null, driver: device.driver, notes: [] });
      continue;
    }
    try {
      const unchanged = noop(device);
      if (unchanged) {
        outcomes.push(unchanged);
        continue;
      }
      const lock = claimDevice(options.sysfsRoot, options.stateDir, device.address, false);
      try {
        const outcome = step(device);
        if (lock.staleNote) outcome.notes.push(lock.staleNote);
        outcomes.push(outcome);
      } finally {
        lock.release();
      }
    } catch (error) {
      const message = (error as Error).message;
      failure = message.startsWith(device.bdf) ? message : `${device.bdf}: ${message}`;
      outcomes.push({ bdf: device.bdf, action: 'failed', originalDriver: null, driver: currentDriver(options.sysfsRoot, device.address), notes: [failure] });
    }
  }
  if (failure !== null) throw new AssignableError(`${verb} failed: ${failure}`, outcomes);
  return outcomes;
}

/** Seize `addresses` for xpci. Refuses (touching nothing) when separation would be unsafe. */
export function assignableAdd(addresses: readonly PciAddress[], options: AssignableOptions): AssignableOutcome[] {
  const { sysfsRoot, stateDir } = options;
  const writer = options.writer ?? fileSysfsWriter;
  const { all, requested } = lookUp(sysfsRoot, unique(addresses));
  const problems = findSeparationProblems(all, requested);
  if (problems.length > 0) throw new LifecycleError(`refused: ${problems.join('; ')}`);
  ensureStateDir(stateDir);
  const target = (device: PciDeviceInfo): XpciDriver => options.driver ?? defaultXpciDriver(device);
  for (const driver of new Set(requested.filter((d) => d.driver !== target(d)).map(target))) {
    ensureXpciDriver(sysfsRoot, driver, options.loadModule ?? hostModuleLoader(sysfsRoot));
  }
  const withoutIommu = (device: PciDeviceInfo): boolean => device.iommuGroup === null && target(device) === VFIO_DRIVER;
  const noIommu = requested.filter(withoutIommu);
  const refusal = noIommu.length > 0 ? noIommuModeRefusal(sysfsRoot) : null;
  if (refusal !== null) {
    throw new LifecycleError(`refused: ${noIommu.map((d) => d.bdf).join(', ')} ${noIommu.length === 1 ? 'has' : 'have'} no IOMMU group: `
      + `${VFIO_DRIVER} takes such a device only in VFIO's no-IOMMU mode, ${refusal}; hold it on ${STUB_DRIVER} instead `
      + `(--driver ${STUB_DRIVER}: config space and BARs, no interrupts)`);
  }

  const alreadyHeld = (device: PciDeviceInfo): AssignableOutcome | null => {
    const record = readRecord(stateDir, device.bdf);
    const driver = currentDriver(sysfsRoot, device.address);
    if (driver !== target(device) || !record) return null;
    return { bdf: device.bdf, action: 'already-held', originalDriver: record.originalDriver, driver, notes: [`already held on ${driver}; nothing to do`] };
  };
  return runEach(requested.sort(functionZeroLast), options, 'assignable-add', alreadyHeld, (device) => {
    const { address, bdf } = device;
    const wanted = target(device);
    const record = readRecord(stateDir, bdf);
    const driver = currentDriver(sysfsRoot, address);
    const notes: string[] = [];
    // A host driver bound now is what the device must go back to; otherwise keep what an earlier,
    // interrupted assignable-add recorded.
    const inHostUse = driver !== null && !HOLDING_DRIVERS.includes(driver);
    const originalDriver = inHostUse ? driver : record?.originalDriver ?? null;
    if (driver === wanted) notes.push(`was already on ${wanted} without an xpci record: original driver unknown`);
    else if (isXpciDriver(driver) && record) notes.push(`moved from ${driver} to ${wanted}`);
    else if (driver !== null && !inHostUse) notes.push(`taken from ${driver}, which is not a host driver: it is not recorded as the original driver`);
    if (record && !inHostUse && !isXpciDriver(driver)) notes.push('finishing an earlier interrupted assignable-add');
    if (withoutIommu(device)) notes.push(`no IOMMU: held in VFIO's no-IOMMU mode, exported only with xpci export --unsafe-noiommu (interrupts, never DMA)`);
    writeRecord(stateDir, { bdf, originalDriver, sysfsRoot, since: record?.since ?? new Date().toISOString() });

    try {
      writer.write(driverOverridePath(sysfsRoot, address), wanted);
      if (driver !== wanted) {
        if (driver !== null) writer.write(driverUnbindPath(sysfsRoot, address), bdf);
        writer.write(driversProbePath(sysfsRoot), bdf);
      }
    } catch (error) {
      throw new LifecycleError(`${(error as Error).message}; ${rollBack(device, driver, record !== null, writer, stateDir, sysfsRoot)}`);
    }
    const now = currentDriver(sysfsRoot, address);
    if (now !== wanted) {
      throw new LifecycleError(`not bound to ${wanted} after probing (driver now: ${now ?? 'none'}); ${rollBack(device, driver, record !== null, writer, stateDir, sysfsRoot)}`);
    }
    return { bdf, action: 'seized', originalDriver, driver: now, notes };
  });
}

/**
 * modprobe only ever runs for the host's own /sys: a fixture tree has no kernel behind it, so a
 * missing pci-stub there is reported instead of loading a module into the machine running the tests.
 */
function hostModuleLoader(sysfsRoot: string): ModuleLoader {
  if (sysfsRoot === DEFAULT_SYSFS_ROOT) return modprobe;
  return (module) => {
    throw new LifecycleError(`${module} is not in the sysfs tree ${sysfsRoot} (no bus/pci/drivers/${module}); modprobe is only run for ${DEFAULT_SYSFS_ROOT}`);
  };
}

/**
 * After a failed seize: clear driver_override and, if the device lost its driver, re-probe so the
 * original one takes it back. The record written by this attempt is forgotten once the device is
 * where it started (a failed add leaves nothing behind); otherwise, or when an earlier interrupted
 * add wrote it, it is kept, since it is the only memory of the original driver.
 * Returns what happened, for the error message.
 */
function rollBack(device: PciDeviceInfo, before: string | null, earlierRecord: boolean, writer: SysfsWriter, stateDir: string, sysfsRoot: string): string {
  const { address, bdf } = device;
  try {
    writer.write(driverOverridePath(sysfsRoot, address), '\n');
    const now = currentDriver(sysfsRoot, address);
    if (now === null && before !== null) writer.write(driversProbePath(sysfsRoot), bdf);
  } catch {
    // the state is checked below whatever happened here
  }
  const now = currentDriver(sysfsRoot, address);
  if (now === before && !earlierRecord) {
    forgetRecord(stateDir, bdf);
    return `rolled back: still on ${now ?? 'no driver'}, no record kept`;
  }
  return `could not roll back (driver now: ${now ?? 'none'}, was ${before ?? 'none'}): its original driver stays recorded for assignable-remove`;
}

/** Give `addresses` back to their original drivers and forget them. */
export function assignableRemove(addresses: readonly PciAddress[], options: AssignableOptions): AssignableOutcome[] {
  const { sysfsRoot, stateDir } = options;
  const writer = options.writer ?? fileSysfsWriter;
  const { requested } = lookUp(sysfsRoot, unique(addresses));
  ensureStateDir(stateDir);

  const held = (device: PciDeviceInfo, driver: string | null): boolean => isXpciDriver(driver) || readRecord(stateDir, device.bdf) !== null;
  const notHeld = (device: PciDeviceInfo): AssignableOutcome | null => {
    const driver = currentDriver(sysfsRoot, device.address);
    if (held(device, driver) || hasRegisterRecord(stateDir, device.address)) return null;
    return { bdf: device.bdf, action: 'not-held', originalDriver: null, driver, notes: [`not held by xpci (driver: ${driver ?? 'none'}); nothing to do`] };
  };
  return runEach(requested.sort(functionZeroLast).reverse(), options, 'assignable-remove', notHeld, (device) => {
    const { address, bdf } = device;
    const record = readRecord(stateDir, bdf);
    const driver = currentDriver(sysfsRoot, address);
    const notes: string[] = [];
    // Before any host driver sees the device again: what a killed export left changed.
    const repaired = repairFromRecord(sysfsRoot, stateDir, address);
    if (repaired !== null) notes.push(`restored registers a backend that died left changed: ${repaired}`);
    if (!held(device, driver)) {
      return { bdf, action: 'not-held', originalDriver: null, driver, notes: [...notes, `not held by xpci (driver: ${driver ?? 'none'}); only its register record was left to act on`] };
    }
    const expected = record?.originalDriver ?? null;
    writer.write(driverOverridePath(sysfsRoot, address), '\n');
    if (driver !== null && !HOLDING_DRIVERS.includes(driver)) {
      // Someone already gave it back to a host driver: only the record is left to forget.
      forgetRecord(stateDir, bdf);
      return { bdf, action: 'released', originalDriver: expected, driver, notes: [`already back on host driver ${driver} (recorded original: ${expected ?? 'none'}); record forgotten`] };
    }
    if (isXpciDriver(driver)) writer.write(driverUnbindPath(sysfsRoot, address), bdf);
    if (isXpciDriver(driver) || driver === null) writer.write(driversProbePath(sysfsRoot), bdf);
    const now = currentDriver(sysfsRoot, address);
    if (expected !== null && now !== expected) {
      throw new LifecycleError(`re-probe left it with ${now === null ? 'no driver' : `driver ${now}`}, not its original driver ${expected}: is the ${expected} module loaded? (modprobe ${expected}, then run assignable-remove again; the record is kept)`);
    }
    if (expected === null) notes.push(`original driver unknown or none; now ${now === null ? 'unbound' : `bound to ${now}`}`);
    forgetRecord(stateDir, bdf);
    return { bdf, action: 'released', originalDriver: expected, driver: now, notes };
  });
}

export interface AssignableListing {
  bdf: string;
  originalDriver: string | null;
  /** driver bound now; vfio-pci or pci-stub while held */
  driver: string | null;
  since: string;
  sysfsRoot: string;
}

/** The devices xpci holds, from the state directory, with the driver each is bound to now. */
export function assignableList(stateDir: string, sysfsRoot: string): AssignableListing[] {
  return listRecords(stateDir).map((r) => ({
    bdf: r.bdf,
    originalDriver: r.originalDriver,
    driver: currentDriver(sysfsRoot, parseAddress(r.bdf)),
    since: r.since,
    sysfsRoot: r.sysfsRoot,
  }));
}
