/**
 * DMA memory and region access on this host without VFIO: memfd_create, SharedMemory (bulk copies,
 * bounds, read-only, unmap), mapFd (the MemoryMapping accessors over an fd at an offset, as for a VFIO
 * region) and the fd register accessors (exact-width pread/pwrite at 64-bit offsets).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readSync, writeSync } from 'node:fs';
import { native } from '../../src/native/binding.js';

const memfdMappings = (): number => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('/memfd:xpci-test')).length;

describe('native memfd and SharedMemory', () => {
  test('a memfd is sized; its mapping reads and writes in bulk; the fd sees the bytes', () => {
    const fd = native().memfdCreate('xpci-test', 8192);
    try {
      const memory = native().mapSharedMemory(fd, 0n, 8192, true);
      assert.equal(memory.length, 8192);
      assert.deepEqual([...memory.read(0, 4)], [0, 0, 0, 0]);
      memory.write(4090, Buffer.from([1, 2, 3, 4, 5, 6]));
      assert.deepEqual([...memory.read(4088, 10)], [0, 0, 1, 2, 3, 4, 5, 6, 0, 0]);
      const fromFd = Buffer.alloc(6);
      readSync(fd, fromFd, 0, 6, 4090);
      assert.deepEqual([...fromFd], [1, 2, 3, 4, 5, 6]);
      writeSync(fd, Buffer.from([0xaa]), 0, 1, 8191);
      assert.equal(memory.read(8191, 1)[0], 0xaa, 'MAP_SHARED: writes through the fd are visible');
      const second = native().mapSharedMemory(fd, 4096, 4096, false);
      assert.equal(second.read(4095, 1)[0], 0xaa, 'an offset mapping sees the same pages');
      assert.throws(() => second.write(0, Buffer.from([1])), { code: 'EBADF' });
      second.unmap();
      memory.unmap();
    } finally {
      native().closeFd(fd);
    }
  });

  test('bounds, types and unmap are checked before any copy', () => {
    const fd = native().memfdCreate('xpci-test', 4096);
    const before = memfdMappings();
    const memory = native().mapSharedMemory(fd, 0, 4096, true);
    native().closeFd(fd);
    assert.equal(memfdMappings(), before + 1, 'the mapping outlives the fd');
    assert.throws(() => memory.read(4095, 2), { code: 'ERANGE' });
    assert.throws(() => memory.write(4000, Buffer.alloc(97)), { code: 'ERANGE' });
    assert.throws(() => memory.write(0, 'text' as unknown as Uint8Array), { code: 'EINVAL' });
    assert.throws(() => memory.read(-1, 1), { code: 'ERANGE' });
    memory.write(4000, Buffer.alloc(96, 1));
    memory.unmap();
    memory.unmap();
    assert.equal(memory.mapped, false);
    assert.throws(() => memory.read(0, 1), { code: 'EBADF' });
    assert.equal(memfdMappings(), before);
  });

  test('mapping errors: zero length, a bad fd', () => {
    assert.throws(() => native().mapSharedMemory(0, 0, 0, true), { code: 'EINVAL' });
    const fd = native().eventfdCreate();
    native().closeFd(fd);
    assert.throws(() => native().mapSharedMemory(fd, 0, 4096, true), { code: 'EBADF', syscall: 'mmap' });
    assert.throws(() => native().memfdCreate('', 10), { code: 'EINVAL' });
  });
});

describe('native mapFd and fd registers', () => {
  test('mapFd maps a page-aligned window of an fd with the exact-width accessors', () => {
    const fd = native().memfdCreate('xpci-test', 3 * 4096);
    try {
      const window = native().mapFd(fd, 4096n, 4096, true, 'region 1');
      window.write(8, 4, 0xa1b2c3d4);
      window.write64(16, 0x1122334455667788n);
      assert.equal(native().fdReadRegister(fd, 4096n + 8n, 4), 0xa1b2c3d4n);
      assert.equal(native().fdReadRegister(fd, 4096 + 16, 8), 0x1122334455667788n);
      assert.equal(native().fdReadRegister(fd, 4096 + 17, 1), 0x77n);
      native().fdWriteRegister(fd, 4096n + 32n, 2, 0xbeefn);
      assert.equal(window.read(32, 2), 0xbeef);
      assert.throws(() => window.read(4096, 1), { code: 'ERANGE', path: 'region 1' });
      window.unmap();
      assert.throws(() => native().mapFd(fd, 100n, 4096, true, 'region x'), { code: 'EINVAL', syscall: 'mmap' });
    } finally {
      native().closeFd(fd);
    }
  });

  test('fd registers check width, value and transfer length', () => {
    const fd = native().memfdCreate('xpci-test', 16);
    try {
      assert.throws(() => native().fdReadRegister(fd, 0, 3 as 4), { code: 'EINVAL' });
      assert.throws(() => native().fdWriteRegister(fd, 0, 2, 0x10000n), { code: 'ERANGE' });
      assert.throws(() => native().fdReadRegister(fd, 12, 8), { code: 'ESHORT', bytesRead: 4 });
      assert.throws(() => native().fdReadRegister(fd, 1n << 64n, 1), { code: 'ERANGE' });
    } finally {
      native().closeFd(fd);
    }
  });
});
