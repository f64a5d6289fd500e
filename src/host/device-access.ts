/**
 * One interface to a host PCI function, several back ends (pciutils' `pci_methods` idea):
 * `host/sysfs/` (config through sysfs `config`, BARs through `resourceN`; also fixture trees under
 * --sysfs-root) and `host/vfio/` (a vfio-pci device: config still through sysfs `config`, BARs through
 * VFIO regions, plus interrupts through eventfds, DMA through the IOMMU, and VFIO_DEVICE_RESET).
 *
 * The backend's policy (config virtualization, BAR rules, MSI/MSI-X emulation, DMA windows) sits
 * above this interface and never asks which back end it has: it asks what the device offers
 * (`features`). Every access here is one exact-width operation; nothing here decides what a
 * frontend may do.
 */
import type { BarInfo, PciDeviceInfo } from '../pci/device-info.js';

export type AccessWidth = 1 | 2 | 4 | 8;

/** The device's config space: the sysfs `config` file on every back end. */
export interface ConfigAccess {
  /** bytes the back end can reach (256 or 4096; less for a non-root reader) */
  size(): number;
  read(offset: number, width: 1 | 2 | 4): number;
  write(offset: number, width: 1 | 2 | 4, value: number): void;
  readBlock(offset: number, length: number): Buffer;
}

/** One BAR's registers: one load/store (memory) or one pread/pwrite (I/O) of exactly `width`. */
export interface BarRegion {
  readonly bar: BarInfo;
  read(offset: number, width: AccessWidth): bigint;
  write(offset: number, width: AccessWidth, value: bigint): void;
  /**
   * A file descriptor and offset that map this BAR (sysfs `resourceN` or the VFIO device fd at the
   * region offset), for handing to another process (vfio-user); null for I/O BARs.
   */
  mappable(): { fd: number; offset: bigint; size: number } | null;
}

export type InterruptKind = 'intx' | 'msi' | 'msix';

/** What a back end offers for a device; the Hello tells the frontend the same. */
export interface HostDeviceFeatures {
  /** vectors per kind the device really has (VFIO_DEVICE_GET_IRQ_INFO); empty without VFIO */
  interrupts: Partial<Record<InterruptKind, number>>;
  /** DMA through an IOMMU container (never in no-IOMMU mode) */
  dma: boolean;
  /** a reset the kernel can perform (VFIO_DEVICE_RESET, or sysfs `reset`) */
  reset: boolean;
}

/**
 * Interrupts through VFIO_DEVICE_SET_IRQS. The back end signals `onInterrupt` from the event loop
 * when an eventfd it owns fires (with the eventfd counter: coalesced interrupts stay visible), or
 * wires eventfds owned by another process (vfio-user's client) straight to the kernel.
 */
export interface HostInterrupts {
  /** Route vectors 0..count-1 of `kind` to eventfds this process owns and polls. */
  enable(kind: InterruptKind, count: number, onInterrupt: (kind: InterruptKind, vector: number, count: number) => void): void;
  /** Route vectors start.. of `kind` to the given eventfds (-1 leaves a vector unrouted). */
  attachEventFds(kind: InterruptKind, start: number, fds: readonly number[]): void;
  /** Mask or unmask one vector (INTx: vector 0; VFIO auto-masks INTx when it fires). */
  mask(kind: InterruptKind, vector: number, masked: boolean): void;
  /** Tear down every vector of `kind`, closing the eventfds this process created. */
  disable(kind: InterruptKind): void;
  disableAll(): void;
}

/** DMA mappings in the device's IOMMU address space (VFIO_IOMMU_MAP_DMA / UNMAP_DMA). */
export interface HostDma {
  /** Map `size` bytes of a memory fd (a memfd, or a vfio-user client's region) at `iova`. */
  map(iova: bigint, size: number, memory: { fd: number; offset: bigint }, access: { read: boolean; write: boolean }): void;
  unmap(iova: bigint, size: number): void;
  /** Unmap everything this process mapped. */
  unmapAll(): void;
}

/** One opened host function. Close releases every fd, mapping, vector and DMA mapping. */
export interface HostDevice {
  readonly method: 'sysfs' | 'vfio';
  readonly info: PciDeviceInfo;
  readonly features: HostDeviceFeatures;
  readonly config: ConfigAccess;
  /** BAR `index` (0-5), opened or mapped on first use; throws for a BAR the device lacks */
  bar(index: number): BarRegion;
  /** present when features.interrupts is not empty */
  readonly interrupts?: HostInterrupts;
  /** present when features.dma */
  readonly dma?: HostDma;
  /** present when features.reset */
  reset?(): void;
  close(): void;
}

export interface OpenOptions {
  /** config writes and BAR access allowed; false opens config O_RDONLY and maps nothing */
  writable: boolean;
}

/** A back end: how to open a device of the given sysfs root. */
export interface HostDeviceMethod {
  readonly name: HostDevice['method'];
  open(info: PciDeviceInfo, options: OpenOptions): HostDevice;
}
