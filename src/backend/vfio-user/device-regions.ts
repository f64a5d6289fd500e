/**
 * The exported device as vfio-user regions and interrupt indices, all through the ExportedDevice
 * (so the same policy judges every access, whichever protocol asks):
 * - region 7, config: in-band, each access split into aligned 4/2/1-byte policy accesses;
 * - regions 0-5, BARs: memory BARs whose size is a whole number of pages are offered for mmap with
 *   the BAR's own fd (sysfs resourceN, or the VFIO region), minus the pages holding the MSI-X table
 *   and PBA (QEMU emulates those); every BAR is also served in-band (I/O BARs only in-band);
 * - region 6 (ROM) and 8 (VGA): size 0, not offered;
 * - interrupts: the counts the device's config space advertises (INTx pin, MSI and MSI-X capability).
 */
import { constants } from 'node:os';
import { findCapability } from '../../pci/capabilities.js';
import type { BarInfo } from '../../pci/device-info.js';
import { ErrorCode, XpciError } from '../../protocol/ring/messages.js';
import { IrqInfoFlags, LIMITS, PciIrq, PciRegion, RegionFlags, VfioUserError, type RegionInfo, type SparseArea } from '../../protocol/vfio-user/messages.js';
import type { ExportedDevice, MappableBar } from '../exported-device.js';

const errno = constants.errno;
const CAP_MSI = 0x05;
const CAP_MSIX = 0x11;
const PAGE = BigInt(LIMITS.pageSize);

/** An XpciError from the policy or the host, as the errno of a vfio-user error reply. */
export function errnoOf(error: unknown): VfioUserError {
  if (error instanceof VfioUserError) return error;
  if (error instanceof XpciError) {
    const code = error.code === ErrorCode.AccessDenied ? errno.EPERM
      : error.code === ErrorCode.InvalidOffset || error.code === ErrorCode.InvalidSize || error.code === ErrorCode.Misaligned ? errno.EINVAL
        : error.code === ErrorCode.DeviceNotFound ? errno.ENODEV
          : error.errno > 0 ? error.errno : errno.EIO;
    return new VfioUserError(code, error.message);
  }
  throw error;
}

interface MsixLayout { tableBar: number; table: [bigint, bigint]; pbaBar: number; pba: [bigint, bigint]; vectors: number }

export class DeviceRegions {
  private readonly configBytes: Buffer;
  private readonly msix: MsixLayout | null;
  readonly msiVectors: number;
  readonly intxPin: number;

  constructor(private readonly device: ExportedDevice) {
    // Capability positions and sizes, read once through the policy (they are read-only registers).
    const size = device.descriptor().configSize;
    this.configBytes = Buffer.alloc(size);
    for (let at = 0; at < size; at += 4) this.configBytes.writeUInt32LE(device.configRead(at, 4) >>> 0, at);
    this.intxPin = this.configBytes[0x3d];
    const msi = findCapability(this.configBytes, 'standard', CAP_MSI);
    this.msiVectors = msi ? 1 << ((this.configBytes.readUInt16LE(msi.offset + 2) >> 1) & 7) : 0;
    const msix = findCapability(this.configBytes, 'standard', CAP_MSIX);
    if (msix) {
      const vectors = (this.configBytes.readUInt16LE(msix.offset + 2) & 0x7ff) + 1;
      const table = this.configBytes.readUInt32LE(msix.offset + 4);
      const pba = this.configBytes.readUInt32LE(msix.offset + 8);
      const tableStart = BigInt(table & ~7);
      const pbaStart = BigInt(pba & ~7);
      this.msix = {
        vectors,
        tableBar: table & 7, table: [tableStart, tableStart + BigInt(vectors * 16)],
        pbaBar: pba & 7, pba: [pbaStart, pbaStart + BigInt(Math.ceil(vectors / 64) * 8)],
      };
    } else {
      this.msix = null;
    }
  }

  get configSize(): number {
    return this.configBytes.length;
  }

  /** Region info and, for an mmap-able BAR, the fd to pass with the reply. */
  regionInfo(index: number): { info: RegionInfo; fd: number | null } {
    if (index === PciRegion.config) {
      return { info: { index, flags: RegionFlags.read | RegionFlags.write, size: BigInt(this.configSize), offset: 0n }, fd: null };
    }
    const bar = this.bar(index);
    if (bar === undefined) return { info: { index, flags: 0, size: 0n, offset: 0n }, fd: null };
    const flags = RegionFlags.read | RegionFlags.write;
    const mapping = bar.kind === 'mem' && BigInt(bar.size) % PAGE === 0n ? this.device.barMapping(index) : null;
    if (mapping === null) return { info: { index, flags, size: BigInt(bar.size), offset: 0n }, fd: null };
    const holes = this.msixHoles(index);
    const info: RegionInfo = { index, flags: flags | RegionFlags.mmap, size: BigInt(bar.size), offset: mapping.offset };
    if (holes.length > 0) info.sparse = sparseAreas(BigInt(bar.size), holes);
    return { info, fd: mapping.fd };
  }

  irqInfo(index: number): { flags: number; count: number } {
    switch (index) {
      case PciIrq.intx:
        return { flags: IrqInfoFlags.eventfd | IrqInfoFlags.maskable | IrqInfoFlags.automasked, count: this.intxPin !== 0 ? 1 : 0 };
      case PciIrq.msi:
        return { flags: IrqInfoFlags.eventfd | IrqInfoFlags.noresize, count: this.msiVectors };
      case PciIrq.msix:
        return { flags: IrqInfoFlags.eventfd | IrqInfoFlags.noresize, count: this.msix?.vectors ?? 0 };
      default:
        return { flags: IrqInfoFlags.eventfd, count: 0 };
    }
  }

  read(region: number, offset: bigint, count: number): Buffer {
    const out = Buffer.alloc(count);
    this.split(region, offset, count, (at, width, position) => {
      if (region === PciRegion.config) {
        writeLE(out, position, width, BigInt(this.device.configRead(Number(at), width) >>> 0));
      } else {
        writeLE(out, position, width, this.device.barRead(region, at, width));
      }
    });
    return out;
  }

  write(region: number, offset: bigint, data: Buffer): void {
    this.split(region, offset, data.length, (at, width, position) => {
      const value = readLE(data, position, width);
      if (region === PciRegion.config) this.device.configWrite(Number(at), width, Number(value));
      else this.device.barWrite(region, at, width, value);
    });
  }

  private bar(index: number): BarInfo | undefined {
    return index <= PciRegion.bar5 ? this.device.info.bars.find((b) => b.index === index) : undefined;
  }

  /** Checks the range against the region, then visits it in naturally aligned accesses, widest first. */
  private split(region: number, offset: bigint, count: number, access: (at: bigint, width: 1 | 2 | 4 | 8, position: number) => void): void {
    let size: bigint;
    let widest: number;
    if (region === PciRegion.config) {
      size = BigInt(this.configSize);
      widest = 4;
    } else {
      const bar = this.bar(region);
      if (bar === undefined) throw new VfioUserError(errno.EINVAL, `region ${region} is not offered`);
      size = BigInt(bar.size);
      widest = bar.kind === 'io' ? 4 : 8;
    }
    if (offset + BigInt(count) > size) throw new VfioUserError(errno.EINVAL, `region ${region}: ${count} bytes at 0x${offset.toString(16)} end past its size 0x${size.toString(16)}`);
    let position = 0;
    while (position < count) {
      const at = offset + BigInt(position);
      let width = widest;
      while (width > 1 && (at % BigInt(width) !== 0n || position + width > count)) width >>= 1;
      access(at, width as 1 | 2 | 4 | 8, position);
      position += width;
    }
  }

  /** Page-rounded ranges of `bar` that must not be mapped: the MSI-X table and PBA. */
  private msixHoles(bar: number): [bigint, bigint][] {
    const msix = this.msix;
    if (msix === null) return [];
    const holes: [bigint, bigint][] = [];
    if (msix.tableBar === bar) holes.push(msix.table);
    if (msix.pbaBar === bar) holes.push(msix.pba);
    return holes.map(([start, end]) => [(start / PAGE) * PAGE, ((end + PAGE - 1n) / PAGE) * PAGE]);
  }
}

/** The mappable areas of a BAR of `size` bytes with `holes` (page-aligned) left out. */
export function sparseAreas(size: bigint, holes: [bigint, bigint][]): SparseArea[] {
  const sorted = [...holes].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const areas: SparseArea[] = [];
  let cursor = 0n;
  for (const [start, end] of sorted) {
    if (start > cursor) areas.push({ offset: cursor, size: start - cursor });
    if (end > cursor) cursor = end;
  }
  if (cursor < size) areas.push({ offset: cursor, size: size - cursor });
  return areas;
}

function writeLE(buffer: Buffer, at: number, width: number, value: bigint): void {
  for (let i = 0; i < width; i++) buffer[at + i] = Number((value >> BigInt(8 * i)) & 0xffn);
}

function readLE(buffer: Buffer, at: number, width: number): bigint {
  let value = 0n;
  for (let i = 0; i < width; i++) value |= BigInt(buffer[at + i]) << BigInt(8 * i);
  return value;
}

export type { MappableBar };
