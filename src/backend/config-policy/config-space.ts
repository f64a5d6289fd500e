/**
 * Evaluates the rule table (rules.ts, laid out by layout.ts) for one exported device: config reads
 * are the hardware value with emulated bits overlaid; config writes are judged byte by byte against
 * the bit classes and either applied in full or refused in full. Requests arrive validated (size,
 * alignment, range) as plain numbers; nothing here re-reads the frontend's data.
 *
 * Hardware writes carry exactly the bytes of the written field that the request covers, at the
 * widest natural alignment, with write-1-to-clear bits zero unless a clear was granted: a
 * read-modify-write must never clear a host error bit by writing back the 1 it read.
 */
import type { ConfigAccess } from '../../host/device-access.js';
import { PCI_COMMAND } from '../../pci/config-header.js';
import { ErrorCode, XpciError } from '../../protocol/ring/messages.js';
import type { BarEmulation } from '../bar-emulation.js';
import type { DenialLog } from './denial-log.js';
import type { ConfigLayout } from './layout.js';
import { registerName } from './layout.js';
import { UNLISTED_RULE } from './rules.js';
import { hex0x } from '../../pci/hex.js';

export interface ConfigSpaceOptions {
  file: ConfigAccess;
  layout: ConfigLayout;
  bars: BarEmulation;
  permissive: boolean;
  /** Config bytes at export time: the initial value of every emulated bit. */
  snapshot: Uint8Array;
  denials: DenialLog;
}

interface Refusal {
  register: string;
  offset: number;
  size: number;
  bits: number;
  reason: string;
}


/** Split [start, end) into naturally aligned accesses of 4, 2 or 1 bytes. */
function alignedPieces(start: number, end: number): { offset: number; width: 1 | 2 | 4 }[] {
  const pieces: { offset: number; width: 1 | 2 | 4 }[] = [];
  for (let at = start; at < end;) {
    const width = at % 4 === 0 && at + 4 <= end ? 4 : at % 2 === 0 && at + 2 <= end ? 2 : 1;
    pieces.push({ offset: at, width });
    at += width;
  }
  return pieces;
}

const byteOf = (value: number, index: number): number => (value >>> (8 * index)) & 0xff;

export class VirtualConfigSpace {
  private readonly file: ConfigAccess;
  private readonly layout: ConfigLayout;
  private readonly bars: BarEmulation;
  private readonly denials: DenialLog;
  /** Emulated bits: the frontend's own values (BAR registers: what the emulation answers). */
  private readonly virtual: Uint8Array;
  /** Bits a read takes from `virtual` instead of the hardware. */
  private readonly virtualMask: Uint8Array;
  /** Bits a write may change in the virtual copy. */
  private readonly emulated: Uint8Array;
  /** Bits written to the hardware as the frontend wrote them. */
  private readonly writable: Uint8Array;
  /** Write-1-to-clear bits the frontend may clear (permissive only). */
  private readonly clearable: Uint8Array;
  /** Bits a write must leave at the value the frontend reads. */
  private readonly readOnly: Uint8Array;
  /** Hardware bytes before the first write through this export, for restore(). */
  private readonly saved = new Map<number, number>();
  /** The emulated bytes as export time set them, for resetView(). */
  private readonly initialVirtual: Uint8Array;

  constructor(options: ConfigSpaceOptions) {
    const { file, layout, bars, permissive, snapshot, denials } = options;
    this.file = file;
    this.layout = layout;
    this.bars = bars;
    this.denials = denials;
    const size = layout.size;
    const m = layout.masks;
    this.virtual = new Uint8Array(size);
    this.virtualMask = new Uint8Array(size);
    this.emulated = new Uint8Array(size);
    this.writable = new Uint8Array(size);
    this.clearable = new Uint8Array(size);
    this.readOnly = new Uint8Array(size);
    for (let b = 0; b < size; b++) {
      const hide = m.hide[b];
      const rw1c = m.rw1c[b] & ~hide;
      this.emulated[b] = (m.emulate[b] | m.decode[b]) & ~hide;
      this.virtualMask[b] = m.emulate[b] | m.decode[b] | hide;
      this.virtual[b] = b < snapshot.length ? snapshot[b] & this.emulated[b] : 0;
      this.writable[b] = (m.pass[b] | (permissive ? m.permissive[b] : 0)) & ~hide;
      this.clearable[b] = permissive ? rw1c : 0;
      this.readOnly[b] = (~(this.writable[b] | this.emulated[b] | rw1c | m.ignore[b]) | hide) & 0xff;
    }
    for (const offset of bars.offsets()) {
      this.virtualMask.fill(0xff, offset, offset + 4);
      this.syncBar(offset);
    }
    this.initialVirtual = Uint8Array.from(this.virtual);
  }

  /** The frontend's view back to export time (after a device reset): emulated bits and BAR registers. */
  resetView(): void {
    this.virtual.set(this.initialVirtual);
    this.bars.resetView();
    for (const offset of this.bars.offsets()) this.syncBar(offset);
  }

  private syncBar(offset: number): void {
    const value = this.bars.read(offset);
    for (let i = 0; i < 4; i++) this.virtual[offset + i] = byteOf(value, i);
  }

  /** Emulated BAR registers are the only rows that are not judged by masks. */
  private isBar(offset: number): boolean {
    const index = this.layout.fieldOf[offset];
    return index >= 0 && this.layout.fields[index].rule.bar !== undefined;
  }

  /** The value the frontend reads: hardware, with emulated and hidden bits overlaid. */
  read(offset: number, size: 1 | 2 | 4): number {
    let value = this.file.read(offset, size);
    for (let i = 0; i < size; i++) {
      const mask = this.virtualMask[offset + i];
      if (mask !== 0) {
        const shift = 8 * i;
        value = (value & ~(mask << shift)) | ((this.virtual[offset + i] & mask) << shift);
      }
    }
    return value >>> 0;
  }

  /** Decode bit (PCI_COMMAND_IO / _MEMORY) as the frontend set it. */
  decodeEnabled(bit: number): boolean {
    return (this.virtual[PCI_COMMAND] & bit) !== 0;
  }

  /** Decode bit as the hardware has it now (a reset behind the policy clears it). */
  hardwareDecodeEnabled(bit: number): boolean {
    return (this.file.read(PCI_COMMAND, 2) & bit) !== 0;
  }

  /** Apply the write in full, or throw AccessDenied and change nothing. `value` fits in `size` bytes. */
  write(offset: number, size: 1 | 2 | 4, value: number): void {
    const hardware = this.file.read(offset, size);
    const groups = this.groups(offset, size);
    const refusals: Refusal[] = [];
    const barValues = new Map<number, number>();

    for (const { start, end, field } of groups) {
      if (field !== -1 && this.isBar(start)) {
        const register = this.layout.fields[field].start;
        let merged = 0;
        for (let i = 0; i < 4; i++) {
          const b = register + i;
          merged |= (b >= offset && b < offset + size ? byteOf(value, b - offset) : this.virtual[b]) << (8 * i);
        }
        merged >>>= 0;
        const reason = this.bars.check(register, merged);
        if (reason !== null) refusals.push({ register: this.bars.name(register), offset: register, size: 4, bits: 0, reason });
        barValues.set(register, merged);
        continue;
      }
      // refused bits are reported relative to the field, or to the dword for unlisted and long rows
      const placed = field === -1 ? null : this.layout.fields[field];
      const base = placed === null || placed.size > 4 ? start & ~3 : placed.start;
      let bits = 0;
      for (let b = start; b < end; b++) {
        const n = byteOf(value, b - offset);
        const h = byteOf(hardware, b - offset);
        const visible = (h & ~this.virtualMask[b]) | (this.virtual[b] & this.virtualMask[b]);
        const rw1c = this.layout.masks.rw1c[b] & ~this.layout.masks.hide[b];
        const refused = ((n ^ visible) & this.readOnly[b]) | (this.readOnly[b] & this.layout.masks.strict[b]) | (n & rw1c & ~this.clearable[b]);
        bits |= refused << (8 * (b - base));
      }
      if (bits !== 0) {
        refusals.push({
          register: registerName(this.layout, start),
          offset: placed === null ? base : placed.start,
          size: placed === null ? 4 : placed.size,
          bits: bits >>> 0,
          reason: placed === null ? UNLISTED_RULE.refused : placed.rule.refused,
        });
      }
    }

    if (refusals.length > 0) {
      for (const r of refusals) this.denials.record(r.register, r.offset, r.size, r.reason);
      const details = refusals.map((r) => (r.bits !== 0 ? `${r.register} (bits ${hex0x(r.bits, 2 * Math.min(r.size, 4))}): ${r.reason}` : r.reason));
      throw new XpciError(ErrorCode.AccessDenied,
        `config write of ${hex0x(value, 2 * size)} at ${hex0x(offset, 2)} (${size} byte${size > 1 ? 's' : ''}) refused, nothing written: ${details.join('; ')}`);
    }

    for (const { start, end, field } of groups) {
      const barValue = field !== -1 ? barValues.get(this.layout.fields[field].start) : undefined;
      if (barValue !== undefined) {
        const register = this.layout.fields[field].start;
        this.bars.write(register, barValue);
        this.syncBar(register);
        continue;
      }
      this.applyBytes(start, end, offset, value, hardware);
    }
  }

  private applyBytes(start: number, end: number, offset: number, value: number, hardware: number): void {
    const m = this.layout.masks;
    const next: number[] = [];
    let touchesHardware = false;
    for (let b = start; b < end; b++) {
      const n = byteOf(value, b - offset);
      const h = byteOf(hardware, b - offset);
      const writable = this.writable[b];
      const clear = n & this.clearable[b];
      const decode = m.decode[b] & ~m.hide[b];
      const keep = ~(writable | m.rw1c[b] | decode) & 0xff;
      next.push((h & keep) | (n & writable) | clear | ((h | n) & decode));
      if (writable !== 0 || clear !== 0 || (n & decode & ~h) !== 0) touchesHardware = true;
      this.virtual[b] = (this.virtual[b] & ~this.emulated[b]) | (n & this.emulated[b]);
    }
    if (!touchesHardware) return;
    for (let b = start; b < end; b++) {
      if (!this.saved.has(b)) this.saved.set(b, byteOf(hardware, b - offset));
    }
    for (const piece of alignedPieces(start, end)) {
      let word = 0;
      for (let i = 0; i < piece.width; i++) word |= next[piece.offset - start + i] << (8 * i);
      this.file.write(piece.offset, piece.width, word >>> 0);
    }
  }

  /** Runs of consecutive request bytes owned by the same row (-1: unlisted). */
  private groups(offset: number, size: number): { start: number; end: number; field: number }[] {
    const groups: { start: number; end: number; field: number }[] = [];
    for (let b = offset; b < offset + size; b++) {
      const field = this.layout.fieldOf[b];
      const last = groups[groups.length - 1];
      if (last !== undefined && last.field === field && last.end === b) last.end = b + 1;
      else groups.push({ start: b, end: b + 1, field });
    }
    return groups;
  }

  /**
   * Put back every hardware byte this export changed, as it was at export time, command register
   * last (so the device stops decoding only once the rest is back). Write-1-to-clear bits are
   * written as 0: a cleared error bit cannot be re-set, and writing 1 would clear a new one.
   */
  restore(): void {
    const offsets = [...this.saved.keys()].sort((a, b) => a - b);
    const runs: { start: number; end: number }[] = [];
    for (const b of offsets) {
      const last = runs[runs.length - 1];
      if (last !== undefined && last.end === b && this.layout.fieldOf[b] === this.layout.fieldOf[last.start]) last.end = b + 1;
      else runs.push({ start: b, end: b + 1 });
    }
    const pieces = runs.flatMap((run) => alignedPieces(run.start, run.end));
    const isCommand = (p: { offset: number }): boolean => p.offset <= PCI_COMMAND + 1 && p.offset >= PCI_COMMAND;
    pieces.sort((a, b) => Number(isCommand(a)) - Number(isCommand(b)));
    for (const piece of pieces) {
      let target = 0;
      let rw1c = 0;
      for (let i = 0; i < piece.width; i++) {
        const b = piece.offset + i;
        rw1c |= this.layout.masks.rw1c[b] << (8 * i);
        target |= (this.saved.get(b)! & ~this.layout.masks.rw1c[b]) << (8 * i);
      }
      target >>>= 0;
      const current = this.file.read(piece.offset, piece.width);
      if (((current ^ target) & ~rw1c) !== 0) this.file.write(piece.offset, piece.width, target);
    }
    this.saved.clear();
  }

  /** Name of the register at `offset` (for refusals decided outside the table, e.g. read-only exports). */
  registerAt(offset: number): string {
    return this.isBar(offset & ~3) ? this.bars.name(offset & ~3) : registerName(this.layout, offset);
  }
}
