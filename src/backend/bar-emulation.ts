/**
 * The BAR and expansion-ROM registers as the frontend sees them. They are emulated as a whole and
 * the hardware registers are never written, so the frontend can never move a BAR:
 * - a read returns the address (passthrough: the host's, from the kernel's `resource` table; vPCI:
 *   a stable virtual one, see vpciAddresses) with the BAR's type bits;
 * - a sizing write (all address bits set) latches that register: the next reads return the size
 *   mask with the type bits, as real hardware does (64-bit BARs: each dword latches on its own, so
 *   Linux's lower-then-upper sizing sequence works);
 * - writing back the address the frontend reads clears the latch (the "restore" step of sizing);
 * - any other value is refused (AccessDenied), never silently dropped;
 * - except with `guestAssigned` (vfio-user: a guest kernel assigns BAR addresses itself, as on
 *   pciback's virtual BARs): any address is accepted and read back, masked to the BAR's size as
 *   hardware does. Only the emulated register changes; the host BAR still never moves.
 * The ROM's enable bit is the frontend's own (emulated): ROM contents are not served.
 */
import { debugLog } from '../diagnostics/debug-log.js';
import { devfn, type PciAddress } from '../pci/address.js';
import type { BarInfo } from '../pci/device-info.js';
import { PCI_BASE_ADDRESS_0, PCI_ROM_ADDRESS, PCI_ROM_ADDRESS_ENABLE, PCI_ROM_ADDRESS_MASK } from '../pci/config-header.js';
import type { ExportMode } from '../protocol/ring/messages.js';

const log = debugLog('xpci:policy');

const ROM_INDEX = 6;
/** A type-0 header has six BAR registers at 0x10-0x24. */
const BAR_COUNT = 6;
const U32 = 0xffffffffn;
const U64 = (1n << 64n) - 1n;

type SlotKind = 'lower' | 'upper' | 'absent' | 'rom';

interface Slot {
  readonly offset: number;
  readonly kind: SlotKind;
  readonly name: string;
  /** Address bits of this dword (the rest are type/flag bits). */
  readonly addressMask: number;
  /** What the frontend reads: address dword and size-mask dword, type bits included. */
  addressValue: number;
  readonly sizeValue: number;
  latched: boolean;
}

export interface BarEmulationOptions {
  mode: ExportMode;
  guest: PciAddress;
  bars: readonly BarInfo[];
  rom: BarInfo | null;
  /** ROM enable bit of the hardware register at export time: the frontend's initial view. */
  romEnabled: boolean;
  /** accept any address written (vfio-user guests assign BARs); default: only sizing and restore */
  guestAssigned?: boolean;
}

const nextPowerOfTwo = (size: bigint): bigint => {
  let p = 1n;
  while (p < size) p <<= 1n;
  return p;
};

/** Low bits of a BAR register (PCI_BASE_ADDRESS_*), from the kernel's view of the BAR. */
function barTypeBits(bar: BarInfo): number {
  if (bar.kind === 'io') return 0x1;
  return (bar.is64 ? 0x4 : 0) | (bar.prefetchable ? 0x8 : 0);
}

/**
 * vPCI addresses: a function of the frontend address (devfn) and the device's own BARs only, so
 * they survive reconnects and the hot-plug of other devices and reveal nothing of the host's
 * layout. Every function owns a fixed window per kind; its BARs are packed largest first, which
 * keeps each naturally aligned:
 *   32-bit memory and ROM: 8 MiB at 0x80000000 + devfn * 8 MiB   (2 GiB below 4 GiB)
 *   64-bit memory:        64 GiB at 1 TiB + devfn * 64 GiB
 *   I/O:                    64 B at 0xc000 + devfn * 64           (the top 16 KiB of port space)
 * A BAR too large for what is left of its window is placed at an aligned address of the same
 * region derived from devfn; it may then overlap another function's window. The addresses are
 * identifiers: BAR access goes by index and offset, never by address.
 */
export const VPCI_WINDOWS = {
  mem32: { base: 0x8000_0000n, span: 0x8000_0000n, stride: 0x80_0000n },
  mem64: { base: 1n << 40n, span: 1n << 44n, stride: 1n << 36n },
  io: { base: 0xc000n, span: 0x4000n, stride: 0x40n },
} as const;

type WindowName = keyof typeof VPCI_WINDOWS;

const windowOf = (bar: BarInfo): WindowName => (bar.kind === 'io' ? 'io' : bar.is64 ? 'mem64' : 'mem32');

export function vpciAddresses(guest: PciAddress, bars: readonly BarInfo[], rom: BarInfo | null): Map<number, bigint> {
  const fn = BigInt(devfn(guest));
  const addresses = new Map<number, bigint>();
  const all = rom === null ? [...bars] : [...bars, { ...rom, kind: 'mem' as const, is64: false, index: ROM_INDEX }];
  for (const name of Object.keys(VPCI_WINDOWS) as WindowName[]) {
    const { base, span, stride } = VPCI_WINDOWS[name];
    const members = all.filter((b) => windowOf(b) === name)
      .map((b) => ({ index: b.index, size: nextPowerOfTwo(BigInt(b.size)) }))
      .sort((a, b) => (a.size === b.size ? a.index - b.index : a.size > b.size ? -1 : 1));
    let cursor = base + fn * stride;
    const end = cursor + stride;
    for (const { index, size } of members) {
      if (cursor + size <= end) {
        addresses.set(index, cursor);
        cursor += size;
      } else {
        const spot = base + ((fn * size) % span);
        const aligned = ((spot + size - 1n) / size) * size;
        log('vPCI: BAR %d (%d bytes) of devfn 0x%s does not fit its %s window; placed at 0x%s', index, size, fn.toString(16), name, aligned.toString(16));
        addresses.set(index, aligned);
      }
    }
  }
  return addresses;
}

export class BarEmulation {
  private readonly slots = new Map<number, Slot>();
  private romEnable: number;
  private readonly guestAssigned: boolean;
  private readonly initialRomEnable: number;

  constructor(options: BarEmulationOptions) {
    this.guestAssigned = options.guestAssigned ?? false;
    const { mode, guest, bars, rom } = options;
    const virtual = mode === 'vpci' ? vpciAddresses(guest, bars, rom) : null;
    const addressOf = (bar: BarInfo, index: number): bigint => virtual?.get(index) ?? BigInt(bar.start);
    const add = (slot: Omit<Slot, 'latched'>): void => { this.slots.set(slot.offset, { ...slot, latched: false }); };

    for (let index = 0; index < BAR_COUNT; index++) {
      const offset = PCI_BASE_ADDRESS_0 + 4 * index;
      if (this.slots.has(offset)) continue; // upper half of a 64-bit BAR, added below
      const info = bars.find((b) => b.index === index);
      if (info === undefined) {
        // Not implemented (or not assigned by the kernel): hardwired zero, sizing reads 0.
        add({ offset, kind: 'absent', name: `BAR${index}`, addressMask: 0xfffffff0, addressValue: 0, sizeValue: 0 });
        continue;
      }
      const address = addressOf(info, index);
      const typeBits = barTypeBits(info);
      const addressMask = info.kind === 'io' ? 0xfffffffc : 0xfffffff0;
      const sizeMask = ~(nextPowerOfTwo(BigInt(info.size)) - 1n) & (info.is64 ? U64 : U32);
      const low = (value: bigint): number => ((Number(value & U32) & addressMask) | typeBits) >>> 0;
      add({ offset, kind: 'lower', name: `BAR${index}`, addressMask, addressValue: low(address), sizeValue: low(sizeMask) });
      if (info.is64 && index + 1 < BAR_COUNT) {
        add({
          offset: offset + 4, kind: 'upper', name: `BAR${index + 1} (upper half of 64-bit BAR${index})`, addressMask: 0xffffffff,
          addressValue: Number((address >> 32n) & U32), sizeValue: Number((sizeMask >> 32n) & U32),
        });
      }
    }

    if (rom === null) {
      add({ offset: PCI_ROM_ADDRESS, kind: 'absent', name: 'Expansion ROM', addressMask: PCI_ROM_ADDRESS_MASK, addressValue: 0, sizeValue: 0 });
      this.romEnable = 0;
    } else {
      const address = addressOf(rom, ROM_INDEX);
      const sizeMask = ~(nextPowerOfTwo(BigInt(rom.size)) - 1n) & U32;
      add({
        offset: PCI_ROM_ADDRESS, kind: 'rom', name: 'Expansion ROM', addressMask: PCI_ROM_ADDRESS_MASK,
        addressValue: (Number(address & U32) & PCI_ROM_ADDRESS_MASK) >>> 0, sizeValue: (Number(sizeMask) & PCI_ROM_ADDRESS_MASK) >>> 0,
      });
      this.romEnable = options.romEnabled ? PCI_ROM_ADDRESS_ENABLE : 0;
    }
    this.initialRomEnable = this.romEnable;
  }

  /** Back to the export-time view (after a device reset): no sizing latch, the ROM enable as found. */
  resetView(): void {
    for (const slot of this.slots.values()) slot.latched = false;
    this.romEnable = this.initialRomEnable;
  }

  /** Offsets of the dword registers this emulation owns. */
  offsets(): number[] {
    return [...this.slots.keys()];
  }

  private slot(offset: number): Slot {
    const slot = this.slots.get(offset);
    if (slot === undefined) throw new RangeError(`no BAR register at 0x${offset.toString(16)}`);
    return slot;
  }

  /** The dword the frontend reads at a BAR/ROM register. */
  read(offset: number): number {
    const slot = this.slot(offset);
    const value = slot.latched ? slot.sizeValue : slot.addressValue;
    return slot.kind === 'rom' ? (value | this.romEnable) >>> 0 : value;
  }

  /** null when `value` (the whole dword after merging the written bytes) may be written, else why not. */
  check(offset: number, value: number): string | null {
    const slot = this.slot(offset);
    const address = (value & slot.addressMask) >>> 0;
    if (this.guestAssigned && slot.kind !== 'absent') return null;
    if (address === slot.addressMask >>> 0) return null; // sizing
    if (address === (slot.addressValue & slot.addressMask) >>> 0) return null; // restore
    return `${slot.name}: ${slot.kind === 'absent' ? 'not implemented (reads 0)' : 'the hardware BAR never moves'}; write all address bits set to size it, or write back the value read`;
  }

  /** Apply a write `check` allowed. Type, reserved and (absent ROM) enable bits are ignored, as hardware does. */
  write(offset: number, value: number): void {
    const slot = this.slot(offset);
    if (this.guestAssigned && slot.kind !== 'absent') {
      // As hardware: address bits below the size read as zero, so sizing needs no latch.
      slot.addressValue = ((value & slot.sizeValue & slot.addressMask) | (slot.addressValue & ~slot.addressMask)) >>> 0;
      slot.latched = false;
    } else {
      slot.latched = (value & slot.addressMask) >>> 0 === slot.addressMask >>> 0;
    }
    if (slot.kind === 'rom') this.romEnable = value & PCI_ROM_ADDRESS_ENABLE;
  }

  /** The name a register goes by in denial messages (e.g. the upper half of a 64-bit BAR). */
  name(offset: number): string {
    return this.slot(offset).name;
  }
}
