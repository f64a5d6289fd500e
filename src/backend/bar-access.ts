/**
 * Frontend reads and writes inside a device's BARs. Only BARs the device really has, only inside
 * their size, only at the widths the BAR type supports; each access is one load/store (memory,
 * through an mmap of `resourceN`) or one pread/pwrite (I/O, on `resourceN`) of exactly that width,
 * because MMIO and port registers react to the access width. Files are opened on first use, not
 * at export: a frontend that never touches a BAR never maps it. Policy (read-only export, decode
 * as the frontend sees it) is decided by the caller between validate() and the access.
 */
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { native, type MemoryMapping, type RegisterFile } from '../native/binding.js';
import type { PciAddress } from '../pci/address.js';
import type { BarInfo } from '../pci/device-info.js';
import { resourcePath } from '../host/sysfs/paths.js';
import { ErrorCode, XpciError } from '../protocol/ring/messages.js';

export interface BarTarget {
  readonly bar: BarInfo;
  /** Byte offset inside the BAR, validated: offset + size <= bar.size. */
  readonly offset: number;
  readonly size: 1 | 2 | 4 | 8;
}

const MEMORY_SIZES: readonly number[] = [1, 2, 4, 8];
const IO_SIZES: readonly number[] = [1, 2, 4];

export class BarAccess {
  private readonly mappings = new Map<number, MemoryMapping>();
  private readonly ports = new Map<number, RegisterFile>();
  private readonly mappableFds = new Map<number, number>();

  constructor(private readonly sysfsRoot: string, private readonly address: PciAddress, private readonly bars: readonly BarInfo[]) {}

  /** Checks on plain values, before any policy or hardware access. Throws XpciError. */
  validate(index: number, offset: bigint, size: number): BarTarget {
    const bar = this.bars.find((b) => b.index === index);
    if (bar === undefined) throw new XpciError(ErrorCode.InvalidOffset, `BAR ${index} does not exist on this device`);
    const sizes = bar.kind === 'io' ? IO_SIZES : MEMORY_SIZES;
    if (!sizes.includes(size)) {
      throw new XpciError(ErrorCode.InvalidSize, `BAR ${index} (${bar.kind === 'io' ? 'I/O' : 'memory'}) accepts access sizes ${sizes.join(', ')}, not ${size}`);
    }
    if (typeof offset !== 'bigint' || offset < 0n) throw new XpciError(ErrorCode.InvalidOffset, `BAR ${index}: offset ${offset} is negative`);
    if (offset % BigInt(size) !== 0n) throw new XpciError(ErrorCode.Misaligned, `BAR ${index}: offset 0x${offset.toString(16)} is not a multiple of ${size}`);
    if (offset + BigInt(size) > BigInt(bar.size)) {
      throw new XpciError(ErrorCode.InvalidOffset, `BAR ${index}: ${size} bytes at 0x${offset.toString(16)} end past its size 0x${bar.size.toString(16)}`);
    }
    return { bar, offset: Number(offset), size: size as BarTarget['size'] };
  }

  read(target: BarTarget): bigint {
    const { bar, offset, size } = target;
    if (bar.kind === 'io') return BigInt(this.port(bar).read(offset, size as 1 | 2 | 4));
    const mapping = this.mapping(bar);
    return size === 8 ? mapping.read64(offset) : BigInt(mapping.read(offset, size));
  }

  /** `value` must fit in `target.size` bytes. */
  write(target: BarTarget, value: bigint): void {
    const { bar, offset, size } = target;
    if (bar.kind === 'io') {
      this.port(bar).write(offset, size as 1 | 2 | 4, Number(value));
      return;
    }
    const mapping = this.mapping(bar);
    if (size === 8) mapping.write64(offset, value);
    else mapping.write(offset, size, Number(value));
  }

  /** The BAR's resourceN opened read-write (once), for another process to mmap. */
  mappable(bar: BarInfo): { fd: number; offset: bigint; size: number } {
    let fd = this.mappableFds.get(bar.index);
    if (fd === undefined) {
      fd = openSync(resourcePath(this.sysfsRoot, this.address, bar.index), fsConstants.O_RDWR);
      this.mappableFds.set(bar.index, fd);
    }
    return { fd, offset: 0n, size: bar.size };
  }

  private mapping(bar: BarInfo): MemoryMapping {
    let mapping = this.mappings.get(bar.index);
    if (mapping === undefined) {
      mapping = native().mapResource(resourcePath(this.sysfsRoot, this.address, bar.index), true, bar.size);
      this.mappings.set(bar.index, mapping);
    }
    return mapping;
  }

  private port(bar: BarInfo): RegisterFile {
    let file = this.ports.get(bar.index);
    if (file === undefined) {
      file = native().openRegisterFile(resourcePath(this.sysfsRoot, this.address, bar.index), true);
      this.ports.set(bar.index, file);
    }
    return file;
  }

  /** Unmap and close everything; idempotent. */
  release(): void {
    for (const mapping of this.mappings.values()) mapping.unmap();
    for (const file of this.ports.values()) file.close();
    for (const fd of this.mappableFds.values()) closeSync(fd);
    this.mappableFds.clear();
    this.mappings.clear();
    this.ports.clear();
  }
}
