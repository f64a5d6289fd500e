/**
 * A test double of the host's interrupts, DMA and reset (HostInterrupts, HostDma, HostDevice.reset)
 * for unit tests of the backend's policy on this machine, which has no VFIO: it records every call,
 * keeps the routes and mappings it was given, and lets a test fire a vector as the kernel would
 * (INTx masked by the "kernel" when it fires, as vfio-pci does). DMA memory is plain Buffers with
 * made-up fds; the allocator counts what is live so tests can see leaks.
 */
import type { HostDeviceFeatures, HostDma, HostInterrupts, InterruptKind } from '../../src/host/device-access.js';
import type { DmaMemory, DmaMemoryAllocator } from '../../src/backend/dma/dma-windows.js';
import type { DeviceServicesHost } from '../../src/backend/device-services.js';

type Callback = (kind: InterruptKind, vector: number, count: number) => void;

export class FakeInterrupts implements HostInterrupts {
  readonly calls: string[] = [];
  private readonly routes = new Map<InterruptKind, { count: number; callback: Callback }>();
  intxMasked = false;

  enable(kind: InterruptKind, count: number, onInterrupt: Callback): void {
    this.calls.push(`enable ${kind} ${count}`);
    if (this.routes.size > 0 && !this.routes.has(kind)) throw new Error(`EINVAL: ${[...this.routes.keys()].join()} is still enabled`);
    this.routes.set(kind, { count, callback: onInterrupt });
    if (kind === 'intx') this.intxMasked = false;
  }

  attachEventFds(kind: InterruptKind, start: number, fds: readonly number[]): void {
    this.calls.push(`attach ${kind} ${start} ${fds.length}`);
  }

  mask(kind: InterruptKind, vector: number, masked: boolean): void {
    this.calls.push(`${masked ? 'mask' : 'unmask'} ${kind} ${vector}`);
    if (kind === 'intx') this.intxMasked = masked;
  }

  disable(kind: InterruptKind): void {
    this.calls.push(`disable ${kind}`);
    this.routes.delete(kind);
  }

  disableAll(): void {
    this.calls.push('disableAll');
    this.routes.clear();
  }

  routed(): InterruptKind[] {
    return [...this.routes.keys()];
  }

  /** What the kernel does when the device raises `vector`: false when nothing is routed or INTx is masked. */
  fire(kind: InterruptKind, vector: number, count = 1): boolean {
    const route = this.routes.get(kind);
    if (!route || vector >= route.count) return false;
    if (kind === 'intx') {
      if (this.intxMasked) return false;
      this.intxMasked = true;
    }
    route.callback(kind, vector, count);
    return true;
  }
}

export class FakeDma implements HostDma {
  readonly mappings = new Map<bigint, { size: number; fd: number }>();
  readonly calls: string[] = [];
  /** The next map() fails with this message (an IOMMU refusing a range). */
  failNextMap: string | undefined;

  map(iova: bigint, size: number, memory: { fd: number; offset: bigint }): void {
    this.calls.push(`map 0x${iova.toString(16)} ${size}`);
    if (this.failNextMap) {
      const message = this.failNextMap;
      this.failNextMap = undefined;
      throw new Error(message);
    }
    for (const [at, m] of this.mappings) {
      if (iova < at + BigInt(m.size) && at < iova + BigInt(size)) throw new Error('EEXIST: overlapping IOVA mapping');
    }
    this.mappings.set(iova, { size, fd: memory.fd });
  }

  unmap(iova: bigint, size: number): void {
    this.calls.push(`unmap 0x${iova.toString(16)} ${size}`);
    const mapping = this.mappings.get(iova);
    if (!mapping || mapping.size !== size) throw new Error(`ENOENT: no mapping of ${size} bytes at 0x${iova.toString(16)}`);
    this.mappings.delete(iova);
  }

  unmapAll(): void {
    this.calls.push('unmapAll');
    this.mappings.clear();
  }
}

/** Buffer-backed DMA memory; `live` holds what was allocated and not closed. */
export function fakeDmaMemory(): { allocate: DmaMemoryAllocator; live: Set<DmaMemory> } {
  const live = new Set<DmaMemory>();
  let nextFd = 1000;
  const allocate: DmaMemoryAllocator = (size) => {
    const bytes = Buffer.alloc(size);
    const memory: DmaMemory = {
      fd: nextFd++,
      size,
      read: (offset, length) => Buffer.from(bytes.subarray(offset, offset + length)),
      write: (offset, data) => { bytes.set(data, offset); },
      close: () => { live.delete(memory); },
    };
    live.add(memory);
    return memory;
  };
  return { allocate, live };
}

export interface FakeHost extends DeviceServicesHost {
  interrupts: FakeInterrupts;
  dma: FakeDma;
  resets: number;
}

export function fakeHost(features: Partial<HostDeviceFeatures> = {}): FakeHost {
  const host: FakeHost = {
    features: { interrupts: { intx: 1, msi: 4, msix: 5 }, dma: true, reset: true, ...features },
    interrupts: new FakeInterrupts(),
    dma: new FakeDma(),
    resets: 0,
    reset: () => { host.resets++; },
  };
  return host;
}
