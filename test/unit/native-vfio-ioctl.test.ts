/**
 * The VFIO ioctl entry points without VFIO (never loaded on this host): each one reaches the kernel
 * and reports the kernel's answer for a non-VFIO fd (ENOTTY) as a NativeError naming the request;
 * argument checks come first; the constants are linux/vfio.h's.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { native } from '../../src/native/binding.js';

describe('native VFIO ioctls on a non-VFIO fd', () => {
  test('each request reaches the kernel and names itself in the error', () => {
    const fd = native().eventfdCreate();
    const memfd = native().memfdCreate('xpci-vfio-test', 4096);
    const memory = native().mapSharedMemory(memfd, 0, 4096, true);
    try {
      const calls: [string, () => unknown][] = [
        ['VFIO_GET_API_VERSION', () => native().vfioGetApiVersion(fd)],
        ['VFIO_CHECK_EXTENSION', () => native().vfioCheckExtension(fd, 1)],
        ['VFIO_SET_IOMMU', () => native().vfioSetIommu(fd, 1)],
        ['VFIO_GROUP_GET_STATUS', () => native().vfioGroupGetStatus(fd)],
        ['VFIO_GROUP_SET_CONTAINER', () => native().vfioGroupSetContainer(fd, fd)],
        ['VFIO_GROUP_UNSET_CONTAINER', () => native().vfioGroupUnsetContainer(fd)],
        ['VFIO_GROUP_GET_DEVICE_FD', () => native().vfioGroupGetDeviceFd(fd, '0000:00:03.0')],
        ['VFIO_DEVICE_GET_INFO', () => native().vfioDeviceGetInfo(fd)],
        ['VFIO_DEVICE_GET_REGION_INFO', () => native().vfioDeviceGetRegionInfo(fd, 0)],
        ['VFIO_DEVICE_GET_IRQ_INFO', () => native().vfioDeviceGetIrqInfo(fd, 0)],
        ['VFIO_DEVICE_SET_IRQS', () => native().vfioDeviceSetIrqs(fd, 0, 0, 0, 1, Buffer.alloc(4))],
        ['VFIO_DEVICE_RESET', () => native().vfioDeviceReset(fd)],
        ['VFIO_IOMMU_MAP_DMA', () => native().vfioIommuMapDma(fd, memory, 0, 4096, 0x10000n, 3)],
        ['VFIO_IOMMU_UNMAP_DMA', () => native().vfioIommuUnmapDma(fd, 0x10000n, 4096)],
      ];
      for (const [name, call] of calls) {
        assert.throws(call, (error: Error & { code?: string; syscall?: string }) =>
          error.code === 'ENOTTY' && error.syscall === 'ioctl' && error.message.includes(name), name);
      }
    } finally {
      memory.unmap();
      native().closeFd(memfd);
      native().closeFd(fd);
    }
  });

  test('arguments are checked before the ioctl', () => {
    const fd = native().eventfdCreate();
    const memfd = native().memfdCreate('xpci-vfio-test', 4096);
    const memory = native().mapSharedMemory(memfd, 0, 4096, true);
    try {
      assert.throws(() => native().vfioIommuMapDma(fd, {} as never, 0, 4096, 0n, 3), { code: 'EINVAL' });
      assert.throws(() => native().vfioIommuMapDma(fd, memory, 4096, 1, 0n, 3), { code: 'ERANGE' }, 'past the memory');
      memory.unmap();
      assert.throws(() => native().vfioIommuMapDma(fd, memory, 0, 4096, 0n, 3), { code: 'EBADF' }, 'unmapped memory');
      assert.throws(() => native().vfioDeviceSetIrqs(fd, 0, 0, 0, 1, [3] as unknown as Uint8Array), { code: 'EINVAL' });
      assert.throws(() => native().vfioGroupGetDeviceFd(fd, 'a\0b'), { code: 'EINVAL' });
      assert.throws(() => native().vfioIommuUnmapDma(fd, -1n, 4096), { code: 'ERANGE' });
    } finally {
      native().closeFd(memfd);
      native().closeFd(fd);
    }
  });

  test('constants are the kernel ABI values', () => {
    const c = native().vfioConstants;
    assert.deepEqual(
      [c.API_VERSION, c.TYPE1_IOMMU, c.TYPE1v2_IOMMU, c.NOIOMMU_IOMMU, c.PCI_CONFIG_REGION_INDEX, c.PCI_ROM_REGION_INDEX],
      [0, 1, 3, 8, 7, 6]);
    assert.deepEqual([c.PCI_INTX_IRQ_INDEX, c.PCI_MSI_IRQ_INDEX, c.PCI_MSIX_IRQ_INDEX], [0, 1, 2]);
    assert.deepEqual([c.IRQ_SET_DATA_NONE, c.IRQ_SET_DATA_BOOL, c.IRQ_SET_DATA_EVENTFD], [1, 2, 4]);
    assert.deepEqual([c.IRQ_SET_ACTION_MASK, c.IRQ_SET_ACTION_UNMASK, c.IRQ_SET_ACTION_TRIGGER], [8, 16, 32]);
  });
});
