/**
 * DMA mappings in the container's IOMMU (VFIO_IOMMU_MAP_DMA / UNMAP_DMA). The memory behind a
 * mapping is an fd (a memfd, or a region another process sent); it is mapped here because the
 * kernel pins pages by this process's virtual address, and stays mapped until the IOVA range is
 * unmapped. Mappings are removed exactly as they were made.
 */
import { native, type SharedMemory } from '../../native/binding.js';
import type { HostDma } from '../device-access.js';

interface Mapping {
  iova: bigint;
  size: number;
  memory: SharedMemory;
}

export class VfioDma implements HostDma {
  private readonly mappings: Mapping[] = [];

  constructor(private readonly containerFd: number) {}

  map(iova: bigint, size: number, memory: { fd: number; offset: bigint }, access: { read: boolean; write: boolean }): void {
    const c = native().vfioConstants;
    const flags = (access.read ? c.DMA_MAP_FLAG_READ : 0) | (access.write ? c.DMA_MAP_FLAG_WRITE : 0);
    if (flags === 0) throw new Error('a DMA mapping needs read or write access');
    const shared = native().mapSharedMemory(memory.fd, memory.offset, size, access.write);
    try {
      native().vfioIommuMapDma(this.containerFd, shared, 0, size, iova, flags);
    } catch (error) {
      shared.unmap();
      throw error;
    }
    this.mappings.push({ iova, size, memory: shared });
  }

  unmap(iova: bigint, size: number): void {
    const at = this.mappings.findIndex((m) => m.iova === iova && m.size === size);
    if (at < 0) throw new Error(`no DMA mapping of ${size} bytes at IOVA 0x${iova.toString(16)}`);
    const [mapping] = this.mappings.splice(at, 1);
    try {
      native().vfioIommuUnmapDma(this.containerFd, mapping.iova, mapping.size);
    } finally {
      mapping.memory.unmap();
    }
  }

  unmapAll(): void {
    const failures: unknown[] = [];
    while (this.mappings.length > 0) {
      const { iova, size } = this.mappings[this.mappings.length - 1];
      try { this.unmap(iova, size); } catch (error) { failures.push(error); }
    }
    if (failures.length > 0) throw failures[0];
  }

  /** mapped ranges now (for tests and the close check) */
  list(): { iova: bigint; size: number }[] {
    return this.mappings.map(({ iova, size }) => ({ iova, size }));
  }
}
