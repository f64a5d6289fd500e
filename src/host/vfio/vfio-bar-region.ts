/**
 * A BAR as a VFIO region of the device fd. The parts the kernel lets us mmap (the whole region, or
 * the sparse-mmap areas: an MSI-X table is usually left out) are mapped on first access and reached
 * with one volatile load/store; everything else (I/O BARs, the MSI-X table, regions without mmap)
 * with one pread/pwrite of exactly the width on the device fd, which vfio-pci turns into one access.
 */
import { native, type MemoryMapping, type VfioRegionInfo } from '../../native/binding.js';
import type { BarInfo } from '../../pci/device-info.js';
import type { AccessWidth, BarRegion } from '../device-access.js';

interface Area {
  start: number;
  size: number;
  mapping?: MemoryMapping;
}

export class VfioBarRegion implements BarRegion {
  private readonly areas: Area[];

  constructor(readonly bar: BarInfo, private readonly deviceFd: number, private readonly region: VfioRegionInfo, private readonly label: string) {
    const c = native().vfioConstants;
    const mappable = bar.kind === 'mem' && (region.flags & c.REGION_INFO_FLAG_MMAP) !== 0;
    const whole = [{ offset: 0n, size: region.size }];
    this.areas = mappable ? (region.sparseMmap ?? whole).filter((a) => a.size > 0n).map((a) => ({ start: Number(a.offset), size: Number(a.size) })) : [];
  }

  read(offset: number, width: AccessWidth): bigint {
    const area = this.mappedArea(offset, width);
    if (area === undefined) return native().fdReadRegister(this.deviceFd, this.region.offset + BigInt(offset), width);
    const mapping = area.mapping!;
    const at = offset - area.start;
    return width === 8 ? mapping.read64(at) : BigInt(mapping.read(at, width));
  }

  write(offset: number, width: AccessWidth, value: bigint): void {
    const area = this.mappedArea(offset, width);
    if (area === undefined) {
      native().fdWriteRegister(this.deviceFd, this.region.offset + BigInt(offset), width, value);
      return;
    }
    const mapping = area.mapping!;
    const at = offset - area.start;
    if (width === 8) mapping.write64(at, value);
    else mapping.write(at, width, Number(value));
  }

  mappable(): { fd: number; offset: bigint; size: number } | null {
    if (this.areas.length === 0) return null;
    return { fd: this.deviceFd, offset: this.region.offset, size: Number(this.region.size) };
  }

  /** Unmap every area; idempotent. */
  close(): void {
    for (const area of this.areas) {
      area.mapping?.unmap();
      area.mapping = undefined;
    }
  }

  private mappedArea(offset: number, width: number): Area | undefined {
    const area = this.areas.find((a) => offset >= a.start && offset + width <= a.start + a.size);
    if (area !== undefined) {
      area.mapping ??= native().mapFd(this.deviceFd, this.region.offset + BigInt(area.start), area.size, true, `${this.label} BAR ${this.bar.index}`);
    }
    return area;
  }
}
