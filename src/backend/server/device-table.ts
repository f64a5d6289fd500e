/**
 * The one mapping table of an export: host function ↔ frontend address. It is the single source of
 * both what the handshake publishes and how requests are looked up (Xen's VF-placement bug came
 * from two tables that disagreed). Placement follows pciback:
 * - vPCI: one root 0000:00 with 32 slots; a new function joins the virtual slot of an exported
 *   sibling from the same physical slot, else takes the first free slot; functions keep their
 *   number (exporting only 06:01.2 gives 00:00.2). Freed slots are reused; others never move.
 *   An SR-IOV VF at function 0 gets a slot of its own and nothing joins it (pciback since Linux
 *   5.13): a VF is no multi-function device, and a scan that stops at function 0 would hide its
 *   slot-mates.
 * - passthrough: addresses unchanged; roots are the exported devices' domain:bus, deduplicated.
 */
import { formatAddress, formatBus, packAddress, sameSlot, type PciAddress } from '../../pci/address.js';
import type { ExportMode } from '../../protocol/ring/messages.js';

export const VPCI_SLOTS = 32;
export const VPCI_ROOT = formatBus(0, 0);

export interface TableEntry<T> {
  readonly host: PciAddress;
  readonly guest: PciAddress;
  readonly device: T;
  /** an SR-IOV virtual function */
  readonly virtualFunction: boolean;
}

export interface PlacementFacts {
  virtualFunction?: boolean;
}

/** A slot headed by a VF at function 0 belongs to that VF alone. */
const headsOwnSlot = (host: PciAddress, virtualFunction: boolean): boolean => virtualFunction && host.function === 0;

/** Why a function cannot be placed; the reconciler turns it into a refusal of that device only. */
export class PlacementError extends Error {
  override readonly name = 'PlacementError';
}

export class DeviceTable<T> {
  private readonly byHost = new Map<number, TableEntry<T>>();
  /** Lookup index over the same entries, keyed by the packed frontend address. */
  private readonly byGuest = new Map<number, TableEntry<T>>();

  constructor(readonly mode: ExportMode) {}

  get size(): number {
    return this.byHost.size;
  }

  /** Where `host` would be placed now, without inserting it. Throws PlacementError. */
  place(host: PciAddress, facts: PlacementFacts = {}): PciAddress {
    if (this.byHost.has(packAddress(host))) throw new PlacementError(`${formatAddress(host)} is already exported`);
    if (this.mode === 'passthrough') return host;
    const entries = [...this.byHost.values()];
    const ownSlot = headsOwnSlot(host, facts.virtualFunction ?? false);
    const reserved = new Set(entries.filter((e) => headsOwnSlot(e.host, e.virtualFunction)).map((e) => e.guest.device));
    const sibling = ownSlot ? undefined : entries.find((entry) => sameSlot(entry.host, host) && !reserved.has(entry.guest.device));
    if (sibling) return { domain: 0, bus: 0, device: sibling.guest.device, function: host.function };
    const used = new Set([...this.byHost.values()].map((entry) => entry.guest.device));
    for (let slot = 0; slot < VPCI_SLOTS; slot++) {
      if (!used.has(slot)) return { domain: 0, bus: 0, device: slot, function: host.function };
    }
    throw new PlacementError(`the virtual PCI bus is full (all ${VPCI_SLOTS} slots in use); ${formatAddress(host)} not exported`);
  }

  /** Record a device at the address `place` chose (the caller opened it for that address). */
  insert(host: PciAddress, guest: PciAddress, device: T, facts: PlacementFacts = {}): TableEntry<T> {
    const expected = this.place(host, facts);
    if (packAddress(expected) !== packAddress(guest)) {
      throw new PlacementError(`${formatAddress(host)} must be placed at ${formatAddress(expected)}, not ${formatAddress(guest)}`);
    }
    const entry: TableEntry<T> = { host, guest, device, virtualFunction: facts.virtualFunction ?? false };
    this.byHost.set(packAddress(host), entry);
    this.byGuest.set(packAddress(guest), entry);
    return entry;
  }

  remove(host: PciAddress): TableEntry<T> | undefined {
    const entry = this.byHost.get(packAddress(host));
    if (!entry) return undefined;
    this.byHost.delete(packAddress(host));
    this.byGuest.delete(packAddress(entry.guest));
    return entry;
  }

  byHostAddress(host: PciAddress): TableEntry<T> | undefined {
    return this.byHost.get(packAddress(host));
  }

  byGuestAddress(guest: PciAddress): TableEntry<T> | undefined {
    return this.byGuest.get(packAddress(guest));
  }

  /** The request path: one Map lookup by the wire form of the frontend's address. */
  lookup(packedGuest: number): T | undefined {
    return this.byGuest.get(packedGuest)?.device;
  }

  /** Entries in frontend address order: what the handshake publishes. */
  entries(): TableEntry<T>[] {
    return [...this.byGuest.entries()].sort((a, b) => a[0] - b[0]).map(([, entry]) => entry);
  }

  /** Root buses the frontend scans: 0000:00 in vPCI mode (even when empty), else each device's bus. */
  roots(): string[] {
    if (this.mode === 'vpci') return [VPCI_ROOT];
    const buses = new Set(this.entries().map((entry) => formatBus(entry.host.domain, entry.host.bus)));
    return [...buses].sort();
  }
}
