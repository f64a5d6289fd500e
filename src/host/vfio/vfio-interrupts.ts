/**
 * Interrupts through VFIO_DEVICE_SET_IRQS: each vector is routed to an eventfd; eventfds this process
 * owns are watched on the event loop and their counters (coalesced interrupts included) reported.
 * vfio-pci runs one interrupt mode at a time (INTx, MSI or MSI-X), so routing one kind first tears
 * down the others. INTx arrives auto-masked; unmasking is the caller's explicit step.
 */
import { native, type FdPoller, type VfioConstants } from '../../native/binding.js';
import type { HostInterrupts, InterruptKind } from '../device-access.js';

const IRQ_INDEX: Record<InterruptKind, keyof VfioConstants> = {
  intx: 'PCI_INTX_IRQ_INDEX',
  msi: 'PCI_MSI_IRQ_INDEX',
  msix: 'PCI_MSIX_IRQ_INDEX',
};

export const irqIndex = (kind: InterruptKind): number => native().vfioConstants[IRQ_INDEX[kind]];

/** The kernel reads one __s32 per vector after struct vfio_irq_set. */
function eventFdArray(fds: readonly number[]): Buffer {
  const data = Buffer.alloc(4 * fds.length);
  fds.forEach((fd, i) => data.writeInt32LE(fd, 4 * i));
  return data;
}

interface Route {
  /** eventfds created here (closed on teardown) */
  owned: number[];
  pollers: FdPoller[];
}

export class VfioInterrupts implements HostInterrupts {
  private readonly routes = new Map<InterruptKind, Route>();

  /** `vectors`: what VFIO_DEVICE_GET_IRQ_INFO reported per kind */
  constructor(private readonly deviceFd: number, private readonly vectors: Partial<Record<InterruptKind, number>>) {}

  enable(kind: InterruptKind, count: number, onInterrupt: (kind: InterruptKind, vector: number, count: number) => void): void {
    this.checkRange(kind, 0, count);
    this.disableAll();
    const route: Route = { owned: [], pollers: [] };
    try {
      for (let i = 0; i < count; i++) route.owned.push(native().eventfdCreate());
      this.trigger(kind, 0, route.owned);
    } catch (error) {
      for (const fd of route.owned) native().closeFd(fd);
      throw error;
    }
    this.routes.set(kind, route);
    route.owned.forEach((fd, vector) => {
      route.pollers.push(native().watchFd(fd, () => {
        const counter = native().eventfdRead(fd);
        if (counter !== null) onInterrupt(kind, vector, Number(counter));
      }));
    });
  }

  attachEventFds(kind: InterruptKind, start: number, fds: readonly number[]): void {
    this.checkRange(kind, start, fds.length);
    for (const other of this.routes.keys()) if (other !== kind) this.disable(other);
    this.trigger(kind, start, fds);
    if (!this.routes.has(kind)) this.routes.set(kind, { owned: [], pollers: [] });
  }

  mask(kind: InterruptKind, vector: number, masked: boolean): void {
    this.checkRange(kind, vector, 1);
    const c = native().vfioConstants;
    const action = masked ? c.IRQ_SET_ACTION_MASK : c.IRQ_SET_ACTION_UNMASK;
    native().vfioDeviceSetIrqs(this.deviceFd, c.IRQ_SET_DATA_NONE | action, irqIndex(kind), vector, 1);
  }

  disable(kind: InterruptKind): void {
    const route = this.routes.get(kind);
    if (route === undefined) return;
    this.routes.delete(kind);
    const c = native().vfioConstants;
    try {
      // count 0 with DATA_NONE: tear the whole index down
      native().vfioDeviceSetIrqs(this.deviceFd, c.IRQ_SET_DATA_NONE | c.IRQ_SET_ACTION_TRIGGER, irqIndex(kind), 0, 0);
    } finally {
      for (const poller of route.pollers) poller.close();
      for (const fd of route.owned) native().closeFd(fd);
    }
  }

  disableAll(): void {
    for (const kind of [...this.routes.keys()]) this.disable(kind);
  }

  /** kinds with vectors routed now (for tests and the close check) */
  routed(): InterruptKind[] {
    return [...this.routes.keys()];
  }

  private trigger(kind: InterruptKind, start: number, fds: readonly number[]): void {
    const c = native().vfioConstants;
    native().vfioDeviceSetIrqs(this.deviceFd, c.IRQ_SET_DATA_EVENTFD | c.IRQ_SET_ACTION_TRIGGER, irqIndex(kind), start, fds.length, eventFdArray(fds));
  }

  private checkRange(kind: InterruptKind, start: number, count: number): void {
    const available = this.vectors[kind] ?? 0;
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 1 || start + count > available) {
      throw new Error(`${kind} vectors ${start}..${start + count - 1} do not exist (the device has ${available})`);
    }
  }
}
