/**
 * Frontend reads and writes inside a device's BARs. Only BARs the device really has, only inside
 * their size, only at the widths the BAR type supports; each access is then one exact-width access
 * through the host back end (host/device-access.ts), because MMIO and port registers react to the
 * access width. Policy (read-only export, decode as the frontend sees it) is decided by the caller
 * between validate() and the access.
 */
import type { BarInfo } from '../pci/device-info.js';
import type { HostDevice } from '../host/device-access.js';
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
  constructor(private readonly host: HostDevice) {}

  /** Checks on plain values, before any policy or hardware access. Throws XpciError. */
  validate(index: number, offset: bigint, size: number): BarTarget {
    const bar = this.host.info.bars.find((b) => b.index === index);
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
    return this.host.bar(target.bar.index).read(target.offset, target.size);
  }

  /** `value` must fit in `target.size` bytes. */
  write(target: BarTarget, value: bigint): void {
    this.host.bar(target.bar.index).write(target.offset, target.size, value);
  }
}
