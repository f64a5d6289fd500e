/**
 * The VFIO back end's parts that run without VFIO (never loaded on this host; the whole flow runs in
 * the QEMU guest, test/vm/vfio-host.test.ts): BAR regions over an fd with sparse-mmap areas (a
 * memfd stands in for the device fd), the refusals of vfioMethod before any VFIO file is touched,
 * and the clean-up when the kernel refuses an ioctl (eventfds closed, DMA memory unmapped).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native, type VfioRegionInfo } from '../../src/native/binding.js';
import { parseAddress } from '../../src/pci/address.js';
import type { BarInfo } from '../../src/pci/device-info.js';
import { readDevice } from '../../src/host/sysfs/discovery.js';
import { allocateDmaMemory } from '../../src/host/dma-memory.js';
import { VfioBarRegion } from '../../src/host/vfio/vfio-bar-region.js';
import { vfioMethod } from '../../src/host/vfio/vfio-device.js';
import { VfioDma } from '../../src/host/vfio/vfio-dma.js';
import { VfioInterrupts } from '../../src/host/vfio/vfio-interrupts.js';
import { buildConfigImage, createFixtureTree } from '../support/fixture-sysfs.js';

const links = (): string[] => readdirSync('/proc/self/fd').flatMap((fd) => {
  try { return [readlinkSync(`/proc/self/fd/${fd}`)]; } catch { return []; }
});
const eventfds = (): number => links().filter((l) => l === 'anon_inode:[eventfd]').length;
const mappingsOf = (name: string): string[] => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes(`/memfd:${name}`));

const c = () => native().vfioConstants;
const memBar = (size: number): BarInfo => ({ index: 2, start: 0xfe000000, size, kind: 'mem', is64: false, prefetchable: false, flags: 0x40200 });

describe('VfioBarRegion over a device fd', () => {
  const REGION_OFFSET = 0x10000n;

  test('sparse areas are mapped on first use; the hole between them goes through pread/pwrite', () => {
    const fd = native().memfdCreate('xpci-region', 0x20000);
    const region: VfioRegionInfo = {
      index: 2, flags: c().REGION_INFO_FLAG_READ | c().REGION_INFO_FLAG_WRITE | c().REGION_INFO_FLAG_MMAP,
      size: 0x4000n, offset: REGION_OFFSET, sparseMmap: [{ offset: 0n, size: 0x1000n }, { offset: 0x2000n, size: 0x2000n }],
    };
    const bar = new VfioBarRegion(memBar(0x4000), fd, region, 'test');
    try {
      assert.deepEqual(mappingsOf('xpci-region'), [], 'nothing mapped before use');
      bar.write(0x10, 4, 0xa1b2c3d4n);
      assert.equal(native().fdReadRegister(fd, REGION_OFFSET + 0x10n, 4), 0xa1b2c3d4n, 'landed at the region offset');
      assert.equal(mappingsOf('xpci-region').length, 1, 'the first area is mapped');
      bar.write(0x1008, 8, 0x1122334455667788n);
      assert.equal(bar.read(0x1008, 8), 0x1122334455667788n);
      assert.equal(native().fdReadRegister(fd, REGION_OFFSET + 0x1008n, 8), 0x1122334455667788n);
      assert.equal(mappingsOf('xpci-region').length, 1, 'the hole (an MSI-X table, say) is never mapped');
      assert.equal(bar.read(0x3ffc, 4), 0n);
      bar.write(0x2ffe, 2, 0xbeefn);
      assert.equal(native().fdReadRegister(fd, REGION_OFFSET + 0x2ffen, 2), 0xbeefn);
      assert.equal(mappingsOf('xpci-region').length, 2);
      assert.deepEqual(bar.mappable(), { fd, offset: REGION_OFFSET, size: 0x4000 });
      bar.close();
      assert.deepEqual(mappingsOf('xpci-region'), []);
      bar.close();
    } finally {
      native().closeFd(fd);
    }
  });

  test('a region without mmap, and an I/O BAR, are reached through the fd only', () => {
    const fd = native().memfdCreate('xpci-region', 0x20000);
    try {
      const rw = c().REGION_INFO_FLAG_READ | c().REGION_INFO_FLAG_WRITE;
      const plain = new VfioBarRegion(memBar(0x1000), fd, { index: 2, flags: rw, size: 0x1000n, offset: REGION_OFFSET, sparseMmap: null }, 'test');
      plain.write(0x20, 4, 0x55aa55aan);
      assert.equal(plain.read(0x20, 4), 0x55aa55aan);
      assert.equal(plain.mappable(), null);
      const io = new VfioBarRegion({ ...memBar(0x40), kind: 'io' }, fd,
        { index: 2, flags: rw | c().REGION_INFO_FLAG_MMAP, size: 0x40n, offset: REGION_OFFSET, sparseMmap: null }, 'test');
      io.write(0x4, 2, 0x1234n);
      assert.equal(io.read(0x4, 2), 0x1234n);
      assert.equal(io.mappable(), null);
      assert.deepEqual(mappingsOf('xpci-region'), []);
    } finally {
      native().closeFd(fd);
    }
  });
});

describe('vfioMethod refusals', () => {
  const EDU = '0000:00:10.0';
  const fixture = (driver: string | null, iommuGroup?: number) => createFixtureTree([{
    address: EDU, config: buildConfigImage({ vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00, bars: [{ index: 0, kind: 'mem', size: 0x100000, start: 0xfea00000 }] }),
    bars: [{ index: 0, kind: 'mem', size: 0x100000, start: 0xfea00000 }], driver, ...(iommuGroup === undefined ? {} : { iommuGroup }),
  }]);

  test('a device not on vfio-pci, or without an IOMMU group, is refused before anything is opened', () => {
    const before = links().length;
    for (const [driver, group, message] of [['pci-stub', 3, /bound to pci-stub, not vfio-pci/], [null, 3, /bound to no driver/], ['vfio-pci', undefined, /has no IOMMU group/]] as const) {
      const tree = fixture(driver, group);
      try {
        const method = vfioMethod({ sysfsRoot: tree.root, vfioDir: '/nonexistent' });
        assert.throws(() => method.open(readDevice(tree.root, parseAddress(EDU)), { writable: true }), message);
      } finally {
        tree.cleanup();
      }
    }
    assert.equal(links().length, before);
  });

  test("a device in vfio's no-IOMMU group is refused without --unsafe-noiommu, naming the flag, before anything is opened", () => {
    const tree = fixture('vfio-pci', 0);
    writeFileSync(join(tree.root, 'kernel', 'iommu_groups', '0', 'name'), 'vfio-noiommu\n');
    const vfioDir = mkdtempSync(join(tmpdir(), 'xpci-no-vfio-'));
    const before = links().length;
    try {
      const info = readDevice(tree.root, parseAddress(EDU));
      assert.throws(() => vfioMethod({ sysfsRoot: tree.root, vfioDir }).open(info, { writable: true }),
        /^Error: 0000:00:10\.0 is held by vfio-pci in VFIO's no-IOMMU mode \(IOMMU group 0 is 'vfio-noiommu'\): no IOMMU confines its DMA, so it is exported only with --unsafe-noiommu/);
      assert.equal(links().length, before);
      // With the flag the refusal is gone: the open goes on to VFIO (missing here).
      assert.throws(() => vfioMethod({ sysfsRoot: tree.root, vfioDir, unsafeNoiommu: true }).open(info, { writable: true }), { code: 'ENOENT' });
      assert.equal(links().length, before);
    } finally {
      tree.cleanup();
      rmSync(vfioDir, { recursive: true, force: true });
    }
  });

  test('a missing VFIO container device fails cleanly, leaving no fd open', () => {
    const tree = fixture('vfio-pci', 3);
    const vfioDir = mkdtempSync(join(tmpdir(), 'xpci-no-vfio-'));
    const before = links().length;
    try {
      const method = vfioMethod({ sysfsRoot: tree.root, vfioDir });
      assert.throws(() => method.open(readDevice(tree.root, parseAddress(EDU)), { writable: true }), { code: 'ENOENT' });
      assert.equal(links().length, before);
    } finally {
      tree.cleanup();
      rmSync(vfioDir, { recursive: true, force: true });
    }
  });
});

describe('VFIO clean-up when the kernel refuses', () => {
  test('interrupts: vectors are checked against the device; a refused SET_IRQS closes the eventfds it made', () => {
    const notVfio = native().memfdCreate('xpci-not-vfio', 4096);
    try {
      const irqs = new VfioInterrupts(notVfio, { intx: 1, msix: 5 });
      const noop = () => undefined;
      assert.throws(() => irqs.enable('msi', 1, noop), /msi vectors 0\.\.0 do not exist \(the device has 0\)/);
      assert.throws(() => irqs.enable('msix', 6, noop), /the device has 5/);
      assert.throws(() => irqs.mask('intx', 1, false), /do not exist/);
      assert.throws(() => irqs.attachEventFds('msix', 4, [1, 2]), /do not exist/);
      const before = eventfds();
      assert.throws(() => irqs.enable('msix', 5, noop), { code: 'ENOTTY', syscall: 'ioctl' });
      assert.equal(eventfds(), before, 'no eventfd left behind');
      assert.deepEqual(irqs.routed(), []);
      irqs.disableAll();
    } finally {
      native().closeFd(notVfio);
    }
  });

  test('DMA: a refused MAP_DMA leaves the memory unmapped; unknown unmaps and no-access maps are refused', () => {
    const notContainer = native().eventfdCreate();
    const memory = allocateDmaMemory(8192);
    try {
      const dma = new VfioDma(notContainer);
      const mapped = mappingsOf('xpci-dma').length;
      assert.throws(() => dma.map(0x100000n, 8192, { fd: memory.fd, offset: 0n }, { read: true, write: true }), { code: 'ENOTTY', syscall: 'ioctl' });
      assert.equal(mappingsOf('xpci-dma').length, mapped, 'the pinned view was unmapped again');
      assert.throws(() => dma.map(0x100000n, 4096, { fd: memory.fd, offset: 0n }, { read: false, write: false }), /read or write access/);
      assert.throws(() => dma.unmap(0x100000n, 8192), /no DMA mapping of 8192 bytes at IOVA 0x100000/);
      assert.deepEqual(dma.list(), []);
      dma.unmapAll();
    } finally {
      memory.close();
      native().closeFd(notContainer);
    }
  });

  test('DMA memory: zeroed, read and written through its view, fd and mapping gone after close', () => {
    const before = links().length;
    const memory = allocateDmaMemory(4096);
    assert.equal(memory.size, 4096);
    assert.match(readlinkSync(`/proc/self/fd/${memory.fd}`), /^\/memfd:xpci-dma/);
    assert.deepEqual([...memory.read(0, 4)], [0, 0, 0, 0]);
    memory.write(4092, Buffer.from([1, 2, 3, 4]));
    assert.deepEqual([...memory.read(4090, 6)], [0, 0, 1, 2, 3, 4]);
    memory.close();
    memory.close();
    assert.equal(links().length, before);
    assert.deepEqual(mappingsOf('xpci-dma'), []);
  });
});
