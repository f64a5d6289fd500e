/**
 * DMA windows of one exported device: memory the backend allocates (a memfd), maps into the
 * device's IOMMU address space through HostDma, and lets the frontend fill and read through the
 * ring. The IOMMU makes the windows the only memory the device can reach.
 *
 * Every window counts against the export's DmaBudget (memory and window count) before anything is
 * allocated, and a failure at any step undoes the steps before it: a refused request leaves no
 * memory, fd or mapping behind.
 */
import type { HostDma } from '../../host/device-access.js';
import { DMA_PAGE_SIZE, ErrorCode, XpciError } from '../../protocol/ring/messages.js';
import { MAX_DMA_TRANSFER } from '../../protocol/ring/device-ops-codec.js';
import { hex0x } from '../../pci/hex.js';

/** Memory behind one window: an fd the IOMMU mapping refers to, and the backend's own view of it. */
export interface DmaMemory {
  readonly fd: number;
  readonly size: number;
  read(offset: number, length: number): Buffer;
  write(offset: number, data: Uint8Array): void;
  close(): void;
}

export type DmaMemoryAllocator = (size: number) => DmaMemory;

/** Default per-export DMA memory (`xpci export --dma-limit`). */
export const DEFAULT_DMA_LIMIT = 64 * 1024 * 1024;
/** Windows per export: each holds an fd and an IOMMU mapping. */
export const MAX_DMA_WINDOWS = 256;
/** Where chosen IOVAs start: IOVA 0 stays unmapped so a device's null pointer faults. */
export const DMA_IOVA_BASE = 0x10_0000n;
/** The IOVA space a window may occupy (48 bits: what VT-d and AMD-Vi page tables cover). */
export const DMA_IOVA_LIMIT = 1n << 48n;

/** DMA memory and windows shared by every device of one export. */
export class DmaBudget {
  private bytes = 0;
  private windows = 0;

  constructor(readonly limit: number = DEFAULT_DMA_LIMIT, readonly maxWindows: number = MAX_DMA_WINDOWS) {}

  get used(): number {
    return this.bytes;
  }

  reserve(size: number): void {
    if (this.windows >= this.maxWindows) {
      throw new XpciError(ErrorCode.LimitExceeded, `the export already has ${this.windows} DMA windows, the most it allows`);
    }
    if (this.bytes + size > this.limit) {
      throw new XpciError(ErrorCode.LimitExceeded,
        `a DMA window of ${size} bytes would exceed the export's DMA limit of ${this.limit} bytes (${this.bytes} in use; xpci export --dma-limit)`);
    }
    this.bytes += size;
    this.windows++;
  }

  release(size: number): void {
    this.bytes -= size;
    this.windows--;
  }
}

interface Window {
  iova: bigint;
  size: number;
  memory: DmaMemory;
}

const PAGE = BigInt(DMA_PAGE_SIZE);

export class DmaWindows {
  /** by IOVA, kept sorted by IOVA for the allocator */
  private windows: Window[] = [];

  constructor(private readonly host: HostDma, private readonly allocate: DmaMemoryAllocator, private readonly budget: DmaBudget) {}

  get count(): number {
    return this.windows.length;
  }

  /** Map a zero-filled window of `size` bytes at `iova` (or an IOVA chosen here); returns the IOVA. */
  map(size: bigint, iova?: bigint): bigint {
    if (size === 0n || size % PAGE !== 0n) throw new XpciError(ErrorCode.InvalidSize, `DMA window size ${size} is not a non-zero multiple of ${DMA_PAGE_SIZE}`);
    if (size > BigInt(this.budget.limit)) {
      throw new XpciError(ErrorCode.LimitExceeded, `a DMA window of ${size} bytes exceeds the export's DMA limit of ${this.budget.limit} bytes`);
    }
    if (iova !== undefined) {
      if (iova % PAGE !== 0n) throw new XpciError(ErrorCode.Misaligned, `DMA window IOVA ${hex0x(iova)} is not a multiple of ${DMA_PAGE_SIZE}`);
      if (iova + size > DMA_IOVA_LIMIT) throw new XpciError(ErrorCode.InvalidOffset, `DMA window ${hex0x(iova)}+${hex0x(size)} ends past the IOVA space (${hex0x(DMA_IOVA_LIMIT)})`);
      const clash = this.windows.find((w) => iova < w.iova + BigInt(w.size) && w.iova < iova + size);
      if (clash) throw new XpciError(ErrorCode.InvalidOffset, `DMA window ${hex0x(iova)}+${hex0x(size)} overlaps the window at ${hex0x(clash.iova)}`);
    }
    const bytes = Number(size);
    const at = iova ?? this.chooseIova(size);
    this.budget.reserve(bytes);
    let memory: DmaMemory | undefined;
    try {
      memory = this.allocate(bytes);
      this.host.map(at, bytes, { fd: memory.fd, offset: 0n }, { read: true, write: true });
    } catch (error) {
      memory?.close();
      this.budget.release(bytes);
      throw error;
    }
    this.windows.push({ iova: at, size: bytes, memory });
    this.windows.sort((a, b) => (a.iova < b.iova ? -1 : a.iova > b.iova ? 1 : 0));
    return at;
  }

  /** First fit above DMA_IOVA_BASE. */
  private chooseIova(size: bigint): bigint {
    let candidate = DMA_IOVA_BASE;
    for (const w of this.windows) {
      const end = w.iova + BigInt(w.size);
      if (end <= candidate) continue;
      if (w.iova >= candidate + size) break;
      candidate = end;
    }
    if (candidate + size > DMA_IOVA_LIMIT) throw new XpciError(ErrorCode.LimitExceeded, 'no free IOVA range for the DMA window');
    return candidate;
  }

  private window(iova: bigint): Window {
    const window = this.windows.find((w) => w.iova === iova);
    if (!window) throw new XpciError(ErrorCode.InvalidOffset, `no DMA window starts at IOVA ${hex0x(iova)}`);
    return window;
  }

  unmap(iova: bigint): void {
    const window = this.window(iova);
    this.windows = this.windows.filter((w) => w !== window);
    this.release(window);
  }

  private checkTransfer(window: Window, offset: bigint, length: number): number {
    if (!Number.isInteger(length) || length < 1 || length > MAX_DMA_TRANSFER) {
      throw new XpciError(ErrorCode.InvalidSize, `DMA transfer of ${length} bytes: must be 1..${MAX_DMA_TRANSFER}`);
    }
    if (offset + BigInt(length) > BigInt(window.size)) {
      throw new XpciError(ErrorCode.InvalidOffset, `DMA transfer ${hex0x(offset)}+${length} ends past the window of ${window.size} bytes at ${hex0x(window.iova)}`);
    }
    return Number(offset);
  }

  read(iova: bigint, offset: bigint, length: number): Buffer {
    const window = this.window(iova);
    return window.memory.read(this.checkTransfer(window, offset, length), length);
  }

  write(iova: bigint, offset: bigint, data: Uint8Array): void {
    const window = this.window(iova);
    window.memory.write(this.checkTransfer(window, offset, data.length), data);
  }

  /** Unmap and free every window (frontend gone, detach, release, shutdown). Collects failures, frees everything. */
  unmapAll(): void {
    const windows = this.windows;
    this.windows = [];
    const failures: string[] = [];
    for (const window of windows) {
      try {
        this.release(window);
      } catch (error) {
        failures.push(`${hex0x(window.iova)}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    if (failures.length > 0) throw new XpciError(ErrorCode.OperationFailed, `unmapping DMA windows failed: ${failures.join('; ')}`);
  }

  /** IOMMU mapping first, then the memory: the device must never reach freed memory. */
  private release(window: Window): void {
    try {
      this.host.unmap(window.iova, window.size);
    } finally {
      window.memory.close();
      this.budget.release(window.size);
    }
  }
}
