/**
 * The MSI capability as the frontend sees it: Message Control, Address, Data and Mask Bits are the
 * frontend's own registers, kept here and never written to the hardware (the host kernel programs
 * the real ones when vfio-pci enables MSI). Enabling MSI, changing the vector count and masking
 * vectors become InterruptRouter calls. Pending Bits read what the router holds for masked vectors.
 *
 * Writes follow the config policy's rule: a write that would change a read-only bit is refused as
 * a whole and changes nothing.
 */
import { ErrorCode, XpciError } from '../../protocol/ring/messages.js';
import type { InterruptRouter } from './interrupt-router.js';

export const MSI_FLAGS_ENABLE = 0x0001;
const MSI_FLAGS_QMASK = 0x000e;
const MSI_FLAGS_QSIZE = 0x0070;
export const MSI_FLAGS_64BIT = 0x0080;
const MSI_FLAGS_MASKBIT = 0x0100;

/** Config bytes the frontend's view of a capability owns: [start, end), dword-aligned. */
export interface EmulatedConfigRange {
  readonly start: number;
  readonly end: number;
  read(offset: number, size: 1 | 2 | 4): number;
  write(offset: number, size: 1 | 2 | 4, value: number): void;
  /** Back to the state after a device reset: everything off, nothing programmed. */
  reset(): void;
}

interface Register {
  /** offset from the capability start */
  at: number;
  size: 2 | 4;
  name: string;
  writable: number;
}

export class VirtualMsiCapability implements EmulatedConfigRange {
  readonly start: number;
  readonly end: number;
  private readonly header: number;
  private readonly hardwareControl: number;
  private readonly registers: Register[];
  private readonly values = new Map<number, number>();
  private readonly pendingAt: number | null;
  private readonly maskAt: number | null;

  /** `snapshot`: config bytes at export time, `offset`: where the capability starts. */
  constructor(snapshot: Uint8Array, offset: number, private readonly router: InterruptRouter) {
    this.start = offset;
    this.header = snapshot[offset] | (snapshot[offset + 1] << 8);
    this.hardwareControl = snapshot[offset + 2] | (snapshot[offset + 3] << 8);
    const is64 = (this.hardwareControl & MSI_FLAGS_64BIT) !== 0;
    const masking = (this.hardwareControl & MSI_FLAGS_MASKBIT) !== 0;
    const dataAt = is64 ? 12 : 8;
    this.registers = [
      { at: 2, size: 2, name: 'MSI Message Control', writable: MSI_FLAGS_ENABLE | MSI_FLAGS_QSIZE },
      { at: 4, size: 4, name: 'MSI Message Address', writable: 0xfffffffc },
      ...(is64 ? [{ at: 8, size: 4 as const, name: 'MSI Message Upper Address', writable: 0xffffffff }] : []),
      { at: dataAt, size: 2, name: 'MSI Message Data', writable: 0xffff },
    ];
    this.maskAt = masking ? dataAt + 4 : null;
    this.pendingAt = masking ? dataAt + 8 : null;
    if (this.maskAt !== null) this.registers.push({ at: this.maskAt, size: 4, name: 'MSI Mask Bits', writable: 0xffffffff });
    const length = masking ? dataAt + 12 : dataAt + 2;
    this.end = offset + ((length + 3) & ~3);
    this.reset();
  }

  /** Vectors the device can have (Multiple Message Capable), capped by what the host offers. */
  get capable(): number {
    return Math.min(1 << ((this.hardwareControl & MSI_FLAGS_QMASK) >> 1), this.router.offers('msi'));
  }

  get enabled(): boolean {
    return (this.control & MSI_FLAGS_ENABLE) !== 0;
  }

  private get control(): number {
    return this.values.get(2)!;
  }

  /** Vectors enabled: Multiple Message Enable. */
  private get enabledVectors(): number {
    return 1 << ((this.control & MSI_FLAGS_QSIZE) >> 4);
  }

  reset(): void {
    for (const register of this.registers) this.values.set(register.at, 0);
    // Control: the hardware's read-only bits, enable and Multiple Message Enable clear.
    this.values.set(2, this.hardwareControl & ~(MSI_FLAGS_ENABLE | MSI_FLAGS_QSIZE));
  }

  /** The byte at `at` (offset from the capability start) of the frontend's view. */
  private byte(at: number): number {
    if (at < 2) return (this.header >> (8 * at)) & 0xff;
    if (this.pendingAt !== null && at >= this.pendingAt && at < this.pendingAt + 4) {
      let bits = 0;
      for (let v = 0; v < 32; v++) if (this.router.isPending('msi', v)) bits |= 1 << v;
      return (bits >>> (8 * (at - this.pendingAt))) & 0xff;
    }
    const register = this.registers.find((r) => at >= r.at && at < r.at + r.size);
    return register ? (this.values.get(register.at)! >>> (8 * (at - register.at))) & 0xff : 0;
  }

  read(offset: number, size: 1 | 2 | 4): number {
    let value = 0;
    for (let i = 0; i < size; i++) value |= this.byte(offset - this.start + i) << (8 * i);
    return value >>> 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    const next = new Map(this.values);
    const refused: string[] = [];
    for (let i = 0; i < size; i++) {
      const at = offset - this.start + i;
      const byte = (value >>> (8 * i)) & 0xff;
      const register = this.registers.find((r) => at >= r.at && at < r.at + r.size);
      if (register === undefined) {
        if (byte !== this.byte(at)) refused.push(`byte ${at} of the MSI capability is read-only`);
        continue;
      }
      const shift = 8 * (at - register.at);
      const writable = (register.writable >>> shift) & 0xff;
      const current = (next.get(register.at)! >>> shift) & 0xff;
      if (((byte ^ current) & ~writable) !== 0) refused.push(`${register.name}: read-only bits`);
      next.set(register.at, ((next.get(register.at)! & ~(writable << shift)) | ((byte & writable) << shift)) >>> 0);
    }
    const control = next.get(2)!;
    const requested = 1 << ((control & MSI_FLAGS_QSIZE) >> 4);
    if ((control & MSI_FLAGS_QSIZE) !== (this.control & MSI_FLAGS_QSIZE) && requested > this.capable) {
      refused.push(`MSI Message Control: ${requested} vectors enabled, the device offers ${this.capable}`);
    }
    if (refused.length > 0) {
      throw new XpciError(ErrorCode.AccessDenied, `MSI capability write of 0x${value.toString(16)} at 0x${offset.toString(16)} refused, nothing written: ${refused.join('; ')}`);
    }
    const wasEnabled = this.enabled;
    const wasVectors = this.enabledVectors;
    const wasMask = this.maskAt === null ? 0 : this.values.get(this.maskAt)!;
    for (const [at, v] of next) this.values.set(at, v);
    const mask = this.maskAt === null ? 0 : this.values.get(this.maskAt)!;
    const masks = (count: number): boolean[] => Array.from({ length: count }, (_, v) => ((mask >>> v) & 1) === 1);
    try {
      if (this.enabled && (!wasEnabled || this.enabledVectors !== wasVectors)) {
        this.router.enable('msi', this.enabledVectors, masks(this.enabledVectors));
      } else if (!this.enabled && wasEnabled) {
        this.router.disable('msi');
      } else if (this.enabled && mask !== wasMask) {
        for (let v = 0; v < this.enabledVectors; v++) {
          if (((mask ^ wasMask) >>> v) & 1) this.router.setMasked('msi', v, ((mask >>> v) & 1) === 1);
        }
      }
    } catch (error) {
      // The host refused the route: the frontend's view must not claim MSI is on.
      this.values.set(2, this.values.get(2)! & ~MSI_FLAGS_ENABLE);
      throw error;
    }
  }
}
