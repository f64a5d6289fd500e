/**
 * Reading which driver owns a device and making sure the stub driver exists. Binding itself is a
 * sequence of sysfs writes done by assignable.ts through a SysfsWriter.
 */
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { PciAddress } from '../../pci/address.js';
import { deviceDir, pciDriversDir } from '../../host/sysfs/paths.js';
import { LifecycleError } from './errors.js';

/** A driver xpci parks seized devices on: it binds, claims nothing and keeps host drivers off. */
export const STUB_DRIVER = 'pci-stub';
/** The driver that also gives xpci the device's interrupts, DMA (through the IOMMU) and reset. */
export const VFIO_DRIVER = 'vfio-pci';
/** What `assignable-add --driver` accepts; a device on either is xpci's to export. */
export const XPCI_DRIVERS = [VFIO_DRIVER, STUB_DRIVER] as const;
export type XpciDriver = (typeof XPCI_DRIVERS)[number];

/** vfio-pci where the device has an IOMMU group (VFIO needs one), else pci-stub. */
export const defaultXpciDriver = (device: { iommuGroup: number | null }): XpciDriver => (device.iommuGroup !== null ? VFIO_DRIVER : STUB_DRIVER);

/** The vfio module's switch for its no-IOMMU mode; absent when the kernel lacks CONFIG_VFIO_NOIOMMU. */
export const noIommuModePath = (sysfsRoot: string): string => join(sysfsRoot, 'module', 'vfio', 'parameters', 'enable_unsafe_noiommu_mode');

/**
 * Why vfio-pci cannot take a device without an IOMMU group, or null when VFIO's no-IOMMU mode is on
 * (then vfio-pci binds it into a no-IOMMU group). The mode is the operator's to turn on: it is
 * host-wide and unsafe, so xpci never flips it.
 */
export function noIommuModeRefusal(sysfsRoot: string): string | null {
  const path = noIommuModePath(sysfsRoot);
  let value: string;
  try {
    value = readFileSync(path, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    return `which this kernel lacks (no ${path}: CONFIG_VFIO_NOIOMMU is not set)`;
  }
  if (value === 'Y' || value === '1') return null;
  return `which is off (${path} is ${value}; writing Y turns it on for the whole host: no isolation, such a device can DMA anywhere)`;
}

/**
 * Drivers that only hold a device for assignment: a device on one of them is not in host use, so it
 * does not make a sibling unsafe to separate.
 */
export const HOLDING_DRIVERS: readonly string[] = [...XPCI_DRIVERS, 'pciback', 'xen-pciback'];

/** Name of the bound driver from the `driver` link, or null when unbound. */
export function currentDriver(sysfsRoot: string, address: PciAddress): string | null {
  try {
    return basename(readlinkSync(join(deviceDir(sysfsRoot, address), 'driver')));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

export const driverOverridePath = (sysfsRoot: string, address: PciAddress): string => join(deviceDir(sysfsRoot, address), 'driver_override');
export const driverUnbindPath = (sysfsRoot: string, address: PciAddress): string => join(deviceDir(sysfsRoot, address), 'driver', 'unbind');
export const driversProbePath = (sysfsRoot: string): string => join(sysfsRoot, 'bus', 'pci', 'drivers_probe');

/** Loads a kernel module by name; injectable so fixture tests never run modprobe. */
export type ModuleLoader = (module: string) => void;

export const modprobe: ModuleLoader = (module) => {
  try {
    execFileSync('modprobe', [module], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const e = error as Error & { stderr?: Buffer };
    const detail = e.stderr?.toString().trim() || e.message.split('\n')[0];
    throw new LifecycleError(`modprobe ${module} failed: ${detail}`);
  }
};

const DRIVER_CONFIG: Record<XpciDriver, string> = { 'pci-stub': 'CONFIG_PCI_STUB', 'vfio-pci': 'CONFIG_VFIO_PCI' };

/** Make sure `<root>/bus/pci/drivers/<driver>` exists, loading the module if needed. */
export function ensureXpciDriver(sysfsRoot: string, driver: XpciDriver, loadModule: ModuleLoader = modprobe): void {
  const dir = join(pciDriversDir(sysfsRoot), driver);
  if (existsSync(dir)) return;
  loadModule(driver);
  if (!existsSync(dir)) {
    throw new LifecycleError(`${driver} is not available: ${dir} is still missing after loading the module (is ${DRIVER_CONFIG[driver]} enabled?)`);
  }
}
