/**
 * What an exported device offers beyond config space and BARs: interrupts, DMA windows and reset,
 * as the host back end provides them (HostDevice.features). This composes the virtual MSI and
 * MSI-X state, the interrupt router, the DMA windows and the reset sequence, and answers the
 * whole-device requests. ExportedDevice routes the config bytes of the MSI/MSI-X capabilities and
 * the BAR pages of the MSI-X table here.
 *
 * Interrupts and DMA windows are the frontend's session resources: when the frontend that used
 * them goes away the windows are unmapped and freed, interrupts are torn down, and the device is
 * reset, so the next frontend finds it clean.
 */
import type { HostDevice, HostDeviceFeatures, HostInterrupts } from '../host/device-access.js';
import { findCapability } from '../pci/capabilities.js';
import type { PciAddress } from '../pci/address.js';
import { encodeEmptyReply } from '../protocol/ring/codec.js';
import {
  encodeDeviceResetEvent,
  encodeDmaMapReply,
  encodeDmaReadReply,
  encodeInterruptEvent,
  type DeviceOpRequest,
} from '../protocol/ring/device-ops-codec.js';
import { ErrorCode, MessageType, XpciError, type DeviceDescriptor, type InterruptRecord } from '../protocol/ring/messages.js';
import { DmaBudget, DmaWindows, type DmaMemoryAllocator } from './dma/dma-windows.js';
import { InterruptRouter } from './interrupts/interrupt-router.js';
import { VirtualMsiCapability, type EmulatedConfigRange } from './interrupts/msi-capability.js';
import { VirtualMsix, msixLayout } from './interrupts/msix-table.js';

const MSI_CAP_ID = 0x05;
const MSIX_CAP_ID = 0x11;

/** The parts of a HostDevice this needs. */
export type DeviceServicesHost = Pick<HostDevice, 'features' | 'interrupts' | 'dma' | 'reset'>;

export interface DeviceServicesOptions {
  host: DeviceServicesHost;
  /** config bytes at export time (capability layout) */
  snapshot: Uint8Array;
  /** the address the frontend uses, for events */
  guest: PciAddress;
  /** read-only exports offer nothing that changes the device */
  readOnly: boolean;
  budget: DmaBudget;
  allocate: DmaMemoryAllocator | undefined;
  /** put the frontend's view of config space back to export time (after a reset) */
  resetView: () => void;
}

/** Where events for the frontend go; the backend server sets it, and it drops them while no frontend is there. */
export type EventSink = (frame: Buffer) => void;

export class DeviceServices {
  readonly router: InterruptRouter;
  readonly msi: VirtualMsiCapability | undefined;
  readonly msix: VirtualMsix | undefined;
  private readonly windows: DmaWindows | undefined;
  private readonly features: HostDeviceFeatures;
  private sink: EventSink = () => undefined;
  /** The frontend enabled interrupts, mapped a window or received an interrupt since the last reset. */
  private used = false;

  constructor(private readonly options: DeviceServicesOptions) {
    const { host, snapshot, readOnly } = options;
    this.features = readOnly ? { interrupts: {}, dma: false, reset: false } : host.features;
    const offered = this.features.interrupts;
    this.router = new InterruptRouter(readOnly ? undefined : host.interrupts, offered, (record) => this.deliver(record));
    const msi = offered.msi ? findCapability(snapshot, 'standard', MSI_CAP_ID) : undefined;
    this.msi = msi ? new VirtualMsiCapability(snapshot, msi.offset, this.router) : undefined;
    const msix = offered.msix ? findCapability(snapshot, 'standard', MSIX_CAP_ID) : undefined;
    this.msix = msix ? new VirtualMsix(snapshot, msixLayout(snapshot, msix.offset), this.router) : undefined;
    this.windows = this.features.dma && host.dma && options.allocate ? new DmaWindows(host.dma, options.allocate, options.budget) : undefined;
    this.router.routeIntx();
  }

  /** The descriptor fields saying what the frontend may use. */
  describe(): Pick<DeviceDescriptor, 'interrupts' | 'dma' | 'reset'> {
    const interrupts: DeviceDescriptor['interrupts'] = {};
    if (this.router.offers('intx')) interrupts.intx = 1;
    if (this.msi) interrupts.msi = this.msi.capable;
    if (this.msix) interrupts.msix = Math.min(this.msix.vectors, this.router.offers('msix'));
    return { interrupts, dma: this.windows !== undefined, reset: this.canReset };
  }

  /** Bus mastering is the frontend's only when DMA can reach nothing but its windows. */
  get busMasterAllowed(): boolean {
    return this.windows !== undefined;
  }

  /**
   * INTx Disable lives in the frontend's view, applied by masking INTx in the kernel, wherever the
   * backend delivers INTx through VFIO or holds the device with an IOMMU: the hardware bit is vfio-pci's.
   */
  get intxDisableInView(): boolean {
    return this.busMasterAllowed || this.router.offers('intx') > 0;
  }

  private get canReset(): boolean {
    return this.features.reset && this.options.host.reset !== undefined;
  }

  /**
   * The host's interrupts for a client that routes the vectors to its own eventfds (vfio-user):
   * while the frontend has INTx disabled, INTx stays masked whatever the client unmasks.
   */
  clientInterrupts(host: HostInterrupts): HostInterrupts {
    const router = this.router;
    return {
      enable: (kind, count, onInterrupt) => host.enable(kind, count, onInterrupt),
      attachEventFds: (kind, start, fds) => {
        host.attachEventFds(kind, start, fds);
        // vfio-pci routes INTx unmasked: the frontend's INTx Disable masks it again.
        if (kind === 'intx' && router.intxDisabled) host.mask('intx', 0, true);
      },
      mask: (kind, vector, masked) => {
        if (kind === 'intx' && !masked && router.intxDisabled) return;
        host.mask(kind, vector, masked);
      },
      disable: (kind) => host.disable(kind),
      disableAll: () => host.disableAll(),
    };
  }

  setEventSink(sink: EventSink): void {
    this.sink = sink;
  }

  /** The emulated capability owning config byte `offset`, if any. */
  configRange(offset: number): EmulatedConfigRange | undefined {
    if (this.msi && offset >= this.msi.start && offset < this.msi.end) return this.msi;
    if (this.msix && offset >= this.msix.start && offset < this.msix.end) return this.msix;
    return undefined;
  }

  configWrite(range: EmulatedConfigRange, offset: number, size: 1 | 2 | 4, value: number): void {
    range.write(offset, size, value);
    if (this.router.messageInterruptsEnabled) this.used = true;
  }

  /** The MSI-X emulation when a BAR op falls in the pages of its table or PBA. */
  msixFor(bar: number, offset: bigint, size: number): VirtualMsix | undefined {
    return this.msix?.claims(bar, offset, size) ? this.msix : undefined;
  }

  serve(request: DeviceOpRequest): Buffer {
    switch (request.type) {
      case MessageType.InterruptUnmask:
        this.router.unmask(request.kind, request.vector);
        return encodeEmptyReply(request.type, request.id);
      case MessageType.DmaMap: {
        const iova = this.dma().map(request.size, request.iova);
        this.used = true;
        return encodeDmaMapReply(request.id, iova);
      }
      case MessageType.DmaUnmap:
        this.dma().unmap(request.iova);
        return encodeEmptyReply(request.type, request.id);
      case MessageType.DmaRead:
        return encodeDmaReadReply(request.id, this.dma().read(request.iova, request.offset, request.length));
      case MessageType.DmaWrite:
        this.dma().write(request.iova, request.offset, request.data);
        return encodeEmptyReply(request.type, request.id);
      case MessageType.ResetDevice:
        if (this.options.readOnly) throw new XpciError(ErrorCode.AccessDenied, 'read-only export: the device cannot be reset');
        if (!this.canReset) throw new XpciError(ErrorCode.NotImplemented, 'the device offers no reset');
        this.reset();
        return encodeEmptyReply(request.type, request.id);
    }
  }

  private dma(): DmaWindows {
    if (!this.windows) throw new XpciError(ErrorCode.NotImplemented, 'DMA windows are not offered for this device (no IOMMU-backed VFIO container)');
    return this.windows;
  }

  get windowCount(): number {
    return this.windows?.count ?? 0;
  }

  /**
   * Reset the function and put the frontend's view back: interrupts off (INTx routed again),
   * emulated MSI/MSI-X state cleared, emulated config registers as at export. DMA windows stay.
   */
  reset(): void {
    this.router.stop();
    try {
      this.options.host.reset!();
    } finally {
      this.msi?.reset();
      this.msix?.reset();
      this.options.resetView();
      this.router.routeIntx();
      this.used = this.windowCount > 0;
      this.sink(encodeDeviceResetEvent(this.options.guest));
    }
  }

  /**
   * The frontend went away: free its windows, stop its interrupts and, when it used any of them,
   * reset the device. Failures are collected; every step runs.
   */
  frontendGone(): string[] {
    if (!this.used) return [];
    const notes: string[] = [];
    const attempt = (what: string, step: () => void): void => {
      try {
        step();
      } catch (error) {
        notes.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
      }
    };
    attempt('unmapping DMA windows', () => this.windows?.unmapAll());
    attempt('disabling interrupts', () => this.router.stop());
    this.msi?.reset();
    this.msix?.reset();
    if (this.canReset) attempt('resetting', () => this.reset());
    else {
      this.options.resetView();
      attempt('routing INTx', () => this.router.routeIntx());
    }
    this.used = false;
    return notes;
  }

  /** The device leaves the export: nothing of the frontend's stays mapped or routed. */
  release(): void {
    const failures: string[] = [];
    try {
      this.windows?.unmapAll();
    } catch (error) {
      failures.push((error as Error).message);
    }
    try {
      this.router.stop();
    } catch (error) {
      failures.push(`disabling interrupts: ${(error as Error).message}`);
    }
    this.sink = () => undefined;
    if (failures.length > 0) throw new XpciError(ErrorCode.OperationFailed, failures.join('; '));
  }

  private deliver(record: InterruptRecord): void {
    this.used = true;
    this.sink(encodeInterruptEvent(this.options.guest, record));
  }
}
