/**
 * Memory behind a DMA window: a memfd (an fd the IOMMU mapping and a vfio-user peer can both use)
 * mapped here so the backend can fill and read it. It lives until the window closes.
 */
import { native, type SharedMemory } from '../native/binding.js';

/** The backend's DmaMemory (backend/dma/dma-windows.ts) over a memfd. */
export class MemfdMemory {
  private closed = false;

  constructor(readonly fd: number, readonly size: number, private readonly view: SharedMemory) {}

  read(offset: number, length: number): Buffer {
    return this.view.read(offset, length);
  }

  write(offset: number, data: Uint8Array): void {
    this.view.write(offset, data);
  }

  /** unmap and close the fd; idempotent */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.view.unmap();
    } finally {
      native().closeFd(this.fd);
    }
  }
}

/** `size` bytes of zeroed memory with an fd. */
export function allocateDmaMemory(size: number): MemfdMemory {
  const fd = native().memfdCreate('xpci-dma', size);
  try {
    return new MemfdMemory(fd, size, native().mapSharedMemory(fd, 0, size, true));
  } catch (error) {
    native().closeFd(fd);
    throw error;
  }
}
