import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAddress } from '../../src/pci/address.js';
import { readDevice } from '../../src/host/sysfs/discovery.js';
import { buildConfigImage, createFixtureTree, type FixtureBar } from '../support/fixture-sysfs.js';
import { snapshotDevice } from '../../src/backend/snapshot.js';
import { native } from '../../src/native/binding.js';

const EDU = '0000:00:04.0';
const bars: FixtureBar[] = [
  { index: 0, kind: 'mem', size: 0x100000, start: 0xfea00000 },
  { index: 2, kind: 'mem', size: 0x4000, start: 0x800000000, is64: true, prefetchable: true },
  { index: 4, kind: 'io', size: 0x20, start: 0xc000 },
];
const eduConfig = buildConfigImage({
  vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00, revision: 0x10, subsystemVendor: 0x1af4, subsystemDevice: 0x1100,
  interruptPin: 1, bars, capabilities: [{ id: 0x05, body: new Array(12).fill(0) }], extendedCapabilities: [{ id: 0x1 }],
});

function addonBuilt(): boolean {
  try {
    native();
    return true;
  } catch {
    return false;
  }
}

function scratch(): { out: string; done(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'xpci-snap-'));
  return { out: join(dir, 'snap'), done: () => rmSync(dir, { recursive: true, force: true }) };
}

function fill(path: string, offset: number, bytes: number[]): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.from(bytes), 0, bytes.length, offset);
  closeSync(fd);
}

const ATTRIBUTES = ['config', 'resource', 'vendor', 'device', 'class', 'revision', 'subsystem_vendor', 'subsystem_device'];

describe('xpci snapshot', () => {
  test('round trip: config, resource and attributes equal the source; BAR files sized and zero; no driver link', () => {
    const tree = createFixtureTree([{ address: EDU, config: eduConfig, bars, rom: { start: 0xfeb00000, size: 0x10000 }, driver: 'edu', iommuGroup: 3, reset: true }]);
    const s = scratch();
    try {
      fill(join(tree.deviceDir(EDU), 'resource0'), 0, [0xde, 0xad]);
      const result = snapshotDevice({ sysfsRoot: tree.root, address: parseAddress('00:04.0'), outDir: s.out });
      const snap = join(s.out, 'bus', 'pci', 'devices', EDU);
      assert.equal(result.deviceDir, join(s.out, 'devices', 'pci0000:00', EDU));
      assert.ok(lstatSync(snap).isSymbolicLink());
      for (const name of ATTRIBUTES) {
        assert.deepEqual(readFileSync(join(snap, name)), readFileSync(join(tree.deviceDir(EDU), name)), name);
      }
      assert.deepEqual([result.configBytes, result.configSize], [4096, 4096]);
      for (const bar of bars) {
        const file = join(snap, `resource${bar.index}`);
        assert.equal(statSync(file).size, bar.size);
        assert.ok(readFileSync(file).every((b) => b === 0), `resource${bar.index} zero-filled`);
      }
      assert.equal(statSync(join(snap, 'rom')).size, 0x10000);
      assert.deepEqual(result.bars.map((b) => [b.index, b.kind, b.size, b.captured]), [[0, 'mem', 0x100000, false], [2, 'mem', 0x4000, false], [4, 'io', 0x20, false]]);
      for (const absent of ['driver', 'iommu_group', 'reset']) assert.equal(existsSync(join(snap, absent)), false, absent);

      const [before, after] = [readDevice(tree.root, parseAddress(EDU)), readDevice(s.out, parseAddress(EDU))];
      const identity = ({ vendor, device, subsystemVendor, subsystemDevice, classCode, revision, configSize, bars: b, rom }: typeof before) =>
        ({ vendor, device, subsystemVendor, subsystemDevice, classCode, revision, configSize, b, rom });
      assert.deepEqual(identity(after), identity(before));
      assert.equal(after.driver, null);
      assert.equal(after.iommuGroup, null);
      assert.equal(after.hasReset, false);
    } finally {
      s.done();
      tree.cleanup();
    }
  });

  test('--with-bars copies memory and I/O BAR contents', { skip: !addonBuilt() && 'native addon not built' }, () => {
    const tree = createFixtureTree([{ address: EDU, config: eduConfig, bars, driver: null }]);
    const s = scratch();
    try {
      fill(join(tree.deviceDir(EDU), 'resource0'), 0, [0x00, 0x00, 0xed, 0x01]);
      fill(join(tree.deviceDir(EDU), 'resource0'), 0x80000, [1, 2, 3, 4, 5, 6, 7, 8]);
      fill(join(tree.deviceDir(EDU), 'resource2'), 0x3ffc, [0xff, 0xee, 0xdd, 0xcc]);
      fill(join(tree.deviceDir(EDU), 'resource4'), 0x10, [0x5a, 0xa5]);
      const result = snapshotDevice({ sysfsRoot: tree.root, address: parseAddress(EDU), outDir: s.out, withBars: true });
      assert.ok(result.bars.every((b) => b.captured));
      for (const bar of bars) {
        const name = `resource${bar.index}`;
        assert.deepEqual(readFileSync(join(s.out, 'bus', 'pci', 'devices', EDU, name)), readFileSync(join(tree.deviceDir(EDU), name)), name);
      }
    } finally {
      s.done();
      tree.cleanup();
    }
  });

  test('--with-bars works on a device seized onto pci-stub, which claims no BAR regions', { skip: !addonBuilt() && 'native addon not built' }, () => {
    const tree = createFixtureTree([{ address: EDU, config: eduConfig, bars, driver: 'pci-stub' }]);
    const s = scratch();
    try {
      fill(join(tree.deviceDir(EDU), 'resource0'), 0, [0x00, 0x00, 0xed, 0x01]);
      const result = snapshotDevice({ sysfsRoot: tree.root, address: parseAddress(EDU), outDir: s.out, withBars: true });
      assert.ok(result.bars.every((b) => b.captured));
      assert.deepEqual(readFileSync(join(s.out, 'bus', 'pci', 'devices', EDU, 'resource0')), readFileSync(join(tree.deviceDir(EDU), 'resource0')));
    } finally {
      s.done();
      tree.cleanup();
    }
  });

  test('--with-bars is refused for a device a driver owns; an existing snapshot is not overwritten; absent device', () => {
    const tree = createFixtureTree([{ address: EDU, config: eduConfig, bars, driver: 'edu' }]);
    const s = scratch();
    try {
      assert.throws(() => snapshotDevice({ sysfsRoot: tree.root, address: parseAddress(EDU), outDir: s.out, withBars: true }),
        /0000:00:04\.0 is bound to driver edu: its BARs belong to that driver, so --with-bars is refused/);
      assert.equal(existsSync(s.out), false);
      snapshotDevice({ sysfsRoot: tree.root, address: parseAddress(EDU), outDir: s.out });
      assert.throws(() => snapshotDevice({ sysfsRoot: tree.root, address: parseAddress(EDU), outDir: s.out }), /already exists/);
      assert.throws(() => snapshotDevice({ sysfsRoot: tree.root, address: parseAddress('00:05.0'), outDir: s.out }), /no PCI device 0000:00:05\.0 under /);
    } finally {
      s.done();
      tree.cleanup();
    }
  });

  const REAL = '0000:00:03.0';
  test(`this machine's ${REAL}, read-only (no --with-bars)`, { skip: !existsSync(`/sys/bus/pci/devices/${REAL}`) && `no ${REAL} here` }, () => {
    const s = scratch();
    try {
      const result = snapshotDevice({ sysfsRoot: '/sys', address: parseAddress(REAL), outDir: s.out });
      const snap = join(s.out, 'bus', 'pci', 'devices', REAL);
      const host = readFileSync(`/sys/bus/pci/devices/${REAL}/config`);
      const copy = readFileSync(join(snap, 'config'));
      assert.ok(copy.length >= 64);
      assert.deepEqual(copy.subarray(0, 64), host.subarray(0, 64));
      assert.deepEqual(copy, host.subarray(0, copy.length));
      for (const name of ['resource', 'vendor', 'device', 'class']) {
        assert.equal(readFileSync(join(snap, name), 'utf8'), readFileSync(`/sys/bus/pci/devices/${REAL}/${name}`, 'utf8'), name);
      }
      for (const bar of result.bars) assert.equal(statSync(join(snap, `resource${bar.index}`)).size, bar.size);
      assert.equal(existsSync(join(snap, 'driver')), false);
    } finally {
      s.done();
    }
  });
});
