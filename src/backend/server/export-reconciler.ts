/**
 * Hot-plug as a level-triggered reconciler (xen-pciback.md §5, lesson 8): the desired set (CLI or
 * config, then attach/detach) is compared with the exported set, and reconcile() opens what is
 * missing and releases what is no longer wanted. Other devices keep their virtual slots. A device
 * that cannot be exported is refused on its own, with a message naming it and the reason; it is
 * dropped from the desired set so the refusal is reported once, to whoever asked.
 *
 * Release order matters: the device restores what the frontend changed and drops its mappings,
 * then the optional reset, then the lock, so the next owner gets a clean device.
 */
import { debugLog } from '../../diagnostics/debug-log.js';
import { formatAddress, packAddress, type PciAddress } from '../../pci/address.js';
import type { PciDeviceInfo } from '../../pci/device-info.js';
import type { DenialRecord } from '../exported-device.js';
import { XPCI_DRIVERS } from '../lifecycle/driver-binding.js';
import { DeviceTable, type TableEntry } from './device-table.js';
import type { DeviceEndpoint } from './dispatcher.js';
import { hex } from '../../pci/hex.js';

const debug = debugLog('xpci:reconcile');

/** What the reconciler needs of an open device beyond serving requests. */
export interface ManagedDevice extends DeviceEndpoint {
  denials(): DenialRecord[];
  release(options: { restore: boolean }): void;
  /** Where the device's events (Interrupt, DeviceReset) go. */
  setEventSink?(sink: (frame: Buffer) => void): void;
  /** The frontend left: drop its DMA windows and interrupts; notes of failed steps. */
  frontendGone?(): string[];
}

export interface HeldLock {
  readonly staleNote: string | null;
  release(): void;
}

/** The host operations of an export, injected so the policy here is testable on its own. */
export interface ExportHost<D extends ManagedDevice> {
  readDevice(address: PciAddress): PciDeviceInfo;
  lock(bdf: string): HeldLock;
  /** Reset through sysfs `reset`; `message` says what was done or why no reset was possible. */
  reset(info: PciDeviceInfo): { performed: boolean; message: string };
  open(info: PciDeviceInfo, guest: PciAddress, permissive: boolean): D;
}

export interface ExportPolicy {
  readOnly: boolean;
  /** Reset through sysfs `reset` before handing a device out / after taking it back (never for --read-only). */
  resetOnExport: boolean;
  resetOnRelease: boolean;
}

export interface DesiredDevice {
  address: PciAddress;
  permissive: boolean;
}

export interface Refusal {
  bdf: string;
  reason: string;
}

export interface ReconcileOutcome<D> {
  /** In announcement order: per virtual slot, function 0 last. */
  added: TableEntry<D>[];
  removed: TableEntry<D>[];
  refused: Refusal[];
  /** Things worth telling the operator (stale locks cleared, no reset possible, failed release steps). */
  notes: string[];
}

interface Holding {
  info: PciDeviceInfo;
  lock: HeldLock;
  permissive: boolean;
}

/** Function 0 is how guests discover a slot, so it comes last (lesson 11); slots in address order. */
export function announcementOrder<D>(entries: TableEntry<D>[]): TableEntry<D>[] {
  const slotBase = (e: TableEntry<D>): number => packAddress(e.guest) - e.guest.function;
  const key = (e: TableEntry<D>): number => slotBase(e) + (7 - e.guest.function);
  return [...entries].sort((a, b) => key(a) - key(b));
}

export class ExportReconciler<D extends ManagedDevice> {
  readonly table: DeviceTable<D>;
  /** Desired devices in export order (which decides vPCI slots), keyed by packed host address. */
  private readonly desired = new Map<number, DesiredDevice>();
  private readonly holdings = new Map<number, Holding>();

  constructor(mode: DeviceTable<D>['mode'], private readonly policy: ExportPolicy, private readonly host: ExportHost<D>) {
    this.table = new DeviceTable<D>(mode);
  }

  /** Add to the desired set (idempotent; keeps the first position). */
  want(device: DesiredDevice): void {
    const key = packAddress(device.address);
    if (!this.desired.has(key)) this.desired.set(key, device);
  }

  /** Remove from the desired set; false if it was not wanted. */
  unwant(address: PciAddress): boolean {
    return this.desired.delete(packAddress(address));
  }

  isWanted(address: PciAddress): boolean {
    return this.desired.has(packAddress(address));
  }

  permissiveOf(host: PciAddress): boolean {
    return this.holdings.get(packAddress(host))?.permissive ?? false;
  }

  reconcile(): ReconcileOutcome<D> {
    const outcome: ReconcileOutcome<D> = { added: [], removed: [], refused: [], notes: [] };
    for (const entry of this.table.entries()) {
      if (this.desired.has(packAddress(entry.host))) continue;
      this.release(entry, outcome.notes);
      outcome.removed.push(entry);
    }
    for (const [key, want] of this.desired) {
      if (this.table.byHostAddress(want.address)) continue;
      try {
        outcome.added.push(this.exportOne(want, outcome.notes));
      } catch (error) {
        this.desired.delete(key);
        const bdf = formatAddress(want.address);
        const reason = error instanceof Error ? error.message : String(error);
        debug('refused %s: %s', bdf, reason);
        outcome.refused.push({ bdf, reason });
      }
    }
    outcome.added = announcementOrder(outcome.added);
    outcome.removed = announcementOrder(outcome.removed);
    return outcome;
  }

  /** Release every exported device (graceful end); the desired set is emptied. */
  releaseAll(): ReconcileOutcome<D> {
    this.desired.clear();
    return this.reconcile();
  }

  private exportOne(want: DesiredDevice, notes: string[]): TableEntry<D> {
    const bdf = formatAddress(want.address);
    const info = this.host.readDevice(want.address);
    if (info.isBridge) {
      throw new Error(`${bdf} is a bridge (class ${hex(info.classCode, 6)}): bridges are never exported, since whoever controls a bridge controls every device behind it`);
    }
    if (info.driver !== null && !(XPCI_DRIVERS as readonly string[]).includes(info.driver) && !this.policy.readOnly) {
      throw new Error(`${bdf} is in use by host driver '${info.driver}': run 'xpci assignable-add ${bdf}' to hand it to ${XPCI_DRIVERS.join(' or ')} first, or export it with --read-only`);
    }
    const facts = { virtualFunction: info.isVirtualFunction };
    const guest = this.table.place(want.address, facts);
    const lock = this.host.lock(bdf);
    if (lock.staleNote) notes.push(`${bdf}: ${lock.staleNote}`);
    let device: D;
    try {
      if (this.policy.resetOnExport && !this.policy.readOnly) {
        const reset = this.host.reset(info);
        if (reset.performed) debug('%s', reset.message);
        else notes.push(reset.message);
      }
      device = this.host.open(info, guest, want.permissive);
    } catch (error) {
      lock.release();
      throw error;
    }
    this.holdings.set(packAddress(want.address), { info, lock, permissive: want.permissive });
    debug('exported %s at %s', bdf, formatAddress(guest));
    return this.table.insert(want.address, guest, device, facts);
  }

  /** Never throws: every step is attempted, failures become notes (a device must not stay locked). */
  private release(entry: TableEntry<D>, notes: string[]): void {
    const key = packAddress(entry.host);
    const holding = this.holdings.get(key);
    const bdf = formatAddress(entry.host);
    this.table.remove(entry.host);
    this.holdings.delete(key);
    const attempt = (what: string, step: () => void): void => {
      try {
        step();
      } catch (error) {
        notes.push(`${bdf}: ${what} failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    };
    attempt('restoring registers', () => entry.device.release({ restore: true }));
    if (holding && this.policy.resetOnRelease && !this.policy.readOnly) {
      // A missing reset file was already reported at export.
      attempt('reset', () => debug('%s', this.host.reset(holding.info).message));
    }
    if (holding) attempt('dropping the lock', () => holding.lock.release());
    debug('released %s', bdf);
  }
}
