/**
 * MSI-X as the frontend sees it: the capability's Message Control (enable, function mask) and the
 * table and PBA, emulated over the BAR that holds them. Table entries (address, data, vector
 * control) are the frontend's own and never reach the hardware, whose table the host kernel
 * programs. The pages holding the table and the PBA belong to the emulation as a whole, as
 * vfio-pci keeps them from userspace: BAR ops there never touch the hardware, and an op in those
 * pages outside the table and the PBA is refused.
 *
 * Enabling MSI-X routes every table entry (the router's vector count is the table size); masking
 * (an entry's mask bit, or the function mask) is done by the router in software.
 */
import { ErrorCode, XpciError } from '../../protocol/ring/messages.js';
import type { InterruptRouter } from './interrupt-router.js';
import type { EmulatedConfigRange } from './msi-capability.js';

export const MSIX_FLAGS_QSIZE = 0x07ff;
export const MSIX_FLAGS_MASKALL = 0x4000;
export const MSIX_FLAGS_ENABLE = 0x8000;
const MSIX_ENTRY_SIZE = 16;
const MSIX_ENTRY_VECTOR_CTRL = 12;
const MSIX_ENTRY_CTRL_MASKBIT = 1;
const MSIX_CAP_LENGTH = 12;
const PAGE = 4096n;

export interface MsixLayout {
  /** offset of the capability in config space */
  capability: number;
  tableSize: number;
  tableBar: number;
  tableOffset: bigint;
  pbaBar: number;
  pbaOffset: bigint;
}

/** Where the capability says the table and PBA are (Table Offset/BIR, PBA Offset/BIR). */
export function msixLayout(snapshot: Uint8Array, offset: number): MsixLayout {
  const u32 = (at: number): number => (snapshot[at] | (snapshot[at + 1] << 8) | (snapshot[at + 2] << 16) | (snapshot[at + 3] << 24)) >>> 0;
  const control = snapshot[offset + 2] | (snapshot[offset + 3] << 8);
  const table = u32(offset + 4);
  const pba = u32(offset + 8);
  return {
    capability: offset,
    tableSize: (control & MSIX_FLAGS_QSIZE) + 1,
    tableBar: table & 7, tableOffset: BigInt((table & ~7) >>> 0),
    pbaBar: pba & 7, pbaOffset: BigInt((pba & ~7) >>> 0),
  };
}

interface Span {
  bar: number;
  start: bigint;
  end: bigint;
}

export class VirtualMsix implements EmulatedConfigRange {
  readonly start: number;
  readonly end: number;
  private readonly header: Uint8Array;
  private readonly hardwareControl: number;
  private control: number;
  /** dwords per entry: address low, address high, data, vector control */
  private readonly table: Uint32Array;
  private readonly tableSpan: Span;
  private readonly pbaSpan: Span;
  private readonly pages: Span[];

  constructor(snapshot: Uint8Array, readonly layout: MsixLayout, private readonly router: InterruptRouter) {
    this.start = layout.capability;
    this.end = layout.capability + MSIX_CAP_LENGTH;
    this.header = snapshot.slice(this.start, this.end);
    this.hardwareControl = this.header[2] | (this.header[3] << 8);
    this.control = 0;
    this.table = new Uint32Array(layout.tableSize * 4);
    this.tableSpan = { bar: layout.tableBar, start: layout.tableOffset, end: layout.tableOffset + BigInt(layout.tableSize * MSIX_ENTRY_SIZE) };
    this.pbaSpan = { bar: layout.pbaBar, start: layout.pbaOffset, end: layout.pbaOffset + BigInt(8 * Math.ceil(layout.tableSize / 64)) };
    const pageOf = (span: Span): Span => ({ bar: span.bar, start: span.start & ~(PAGE - 1n), end: (span.end + PAGE - 1n) & ~(PAGE - 1n) });
    this.pages = [pageOf(this.tableSpan), pageOf(this.pbaSpan)];
    this.reset();
  }

  get vectors(): number {
    return this.layout.tableSize;
  }

  get enabled(): boolean {
    return (this.control & MSIX_FLAGS_ENABLE) !== 0;
  }

  reset(): void {
    this.control = this.hardwareControl & MSIX_FLAGS_QSIZE;
    this.table.fill(0);
    for (let v = 0; v < this.layout.tableSize; v++) this.table[4 * v + 3] = MSIX_ENTRY_CTRL_MASKBIT;
  }

  // ---------------------------------------------------------------- the capability in config space

  private capabilityByte(at: number): number {
    if (at === 2) return this.control & 0xff;
    if (at === 3) return this.control >> 8;
    return this.header[at];
  }

  read(offset: number, size: 1 | 2 | 4): number {
    let value = 0;
    for (let i = 0; i < size; i++) value |= this.capabilityByte(offset - this.start + i) << (8 * i);
    return value >>> 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    let control = this.control;
    for (let i = 0; i < size; i++) {
      const at = offset - this.start + i;
      const byte = (value >>> (8 * i)) & 0xff;
      if (at === 2 || at === 3) {
        const shift = 8 * (at - 2);
        const writable = ((MSIX_FLAGS_ENABLE | MSIX_FLAGS_MASKALL) >> shift) & 0xff;
        if (((byte ^ (this.control >> shift)) & ~writable & 0xff) !== 0) {
          throw new XpciError(ErrorCode.AccessDenied, 'MSI-X Message Control: only MSI-X Enable and Function Mask are writable; nothing written');
        }
        control = (control & ~(0xff << shift)) | (byte << shift);
      } else if (byte !== this.capabilityByte(at)) {
        throw new XpciError(ErrorCode.AccessDenied, `MSI-X capability byte ${at} (table/PBA location) is read-only; nothing written`);
      }
    }
    const was = this.control;
    this.control = control;
    try {
      if (this.enabled && !(was & MSIX_FLAGS_ENABLE)) {
        this.router.enable('msix', this.vectors, this.effectiveMasks());
      } else if (!this.enabled && (was & MSIX_FLAGS_ENABLE)) {
        this.router.disable('msix');
      } else if (this.enabled && ((was ^ control) & MSIX_FLAGS_MASKALL)) {
        this.applyMasks();
      }
    } catch (error) {
      this.control &= ~MSIX_FLAGS_ENABLE;
      throw error;
    }
  }

  private entryMasked(vector: number): boolean {
    return (this.control & MSIX_FLAGS_MASKALL) !== 0 || (this.table[4 * vector + 3] & MSIX_ENTRY_CTRL_MASKBIT) !== 0;
  }

  private effectiveMasks(): boolean[] {
    return Array.from({ length: this.vectors }, (_, v) => this.entryMasked(v));
  }

  private applyMasks(): void {
    for (let v = 0; v < this.vectors; v++) this.router.setMasked('msix', v, this.entryMasked(v));
  }

  // ---------------------------------------------------------------- table and PBA in the BAR

  /** True when a BAR op at [offset, offset+size) of `bar` belongs to the emulation. */
  claims(bar: number, offset: bigint, size: number): boolean {
    const end = offset + BigInt(size);
    return this.pages.some((page) => page.bar === bar && offset < page.end && end > page.start);
  }

  private check(bar: number, offset: bigint, size: number, write: boolean): 'table' | 'pba' {
    const end = offset + BigInt(size);
    const inside = (span: Span): boolean => span.bar === bar && offset >= span.start && end <= span.end;
    const where = inside(this.tableSpan) ? 'table' : inside(this.pbaSpan) ? 'pba' : null;
    if (where === null) {
      throw new XpciError(ErrorCode.AccessDenied,
        `BAR${bar} 0x${offset.toString(16)}+${size}: the pages holding the MSI-X table and PBA are emulated; only the table (${this.vectors} entries of 16 bytes) and the PBA are accessible`);
    }
    if (size !== 4 && size !== 8) throw new XpciError(ErrorCode.InvalidSize, `MSI-X ${where} accesses are 4 or 8 bytes, not ${size}`);
    if (write && where === 'pba') throw new XpciError(ErrorCode.AccessDenied, 'the MSI-X PBA is read-only');
    return where;
  }

  barRead(bar: number, offset: bigint, size: number): bigint {
    const where = this.check(bar, offset, size, false);
    let value = 0n;
    for (let i = 0; i < size / 4; i++) {
      const at = offset + BigInt(4 * i);
      value |= BigInt(where === 'table' ? this.table[Number(at - this.tableSpan.start) / 4] : this.pbaDword(Number(at - this.pbaSpan.start) / 4)) << BigInt(32 * i);
    }
    return value;
  }

  private pbaDword(index: number): number {
    let bits = 0;
    for (let b = 0; b < 32; b++) {
      const vector = 32 * index + b;
      if (vector < this.vectors && this.router.isPending('msix', vector)) bits |= 1 << b;
    }
    return bits >>> 0;
  }

  barWrite(bar: number, offset: bigint, size: number, value: bigint): void {
    this.check(bar, offset, size, true);
    const touched = new Set<number>();
    for (let i = 0; i < size / 4; i++) {
      const dword = Number(offset + BigInt(4 * i) - this.tableSpan.start) / 4;
      let v = Number((value >> BigInt(32 * i)) & 0xffffffffn);
      // Vector Control: only the mask bit is defined; the rest reads 0.
      if (dword % 4 === MSIX_ENTRY_VECTOR_CTRL / 4) v &= MSIX_ENTRY_CTRL_MASKBIT;
      this.table[dword] = v >>> 0;
      touched.add(Math.floor(dword / 4));
    }
    if (!this.enabled) return;
    for (const vector of touched) this.router.setMasked('msix', vector, this.entryMasked(vector));
  }
}
