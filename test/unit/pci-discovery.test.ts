import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAddress } from '../../src/pci/address.js';
import {
  DeviceNotFoundError, listDevices, LocalConfigReader, readConfigSnapshot, readDevice, snapshotDevice, SysfsRootError,
} from '../../src/host/sysfs/discovery.js';
import { readConfigBytes } from '../../src/pci/config-reader.js';
import { walkExtendedCapabilities } from '../../src/pci/capabilities.js';
import { exitCodeFor } from '../../src/cli/errors.js';
import { buildConfigImage, createFixtureTree, type FixtureBar } from '../support/fixture-sysfs.js';

const nicBars: FixtureBar[] = [
  { index: 0, kind: 'mem', start: 0xfe000000, size: 0x20000 },
  { index: 2, kind: 'io', start: 0xc000, size: 0x20 },
  { index: 3, kind: 'mem', start: 0x7f_0000_0000, size: 0x4000, is64: true, prefetchable: true },
];
const nic = buildConfigImage({
  vendor: 0x8086, device: 0x10c9, classCode: 0x020000, revision: 1, headerType: 0x80,
  subsystemVendor: 0x8086, subsystemDevice: 0xa03c, bars: nicBars, rom: { start: 0xfe100000, size: 0x80000 },
  capabilities: [{ id: 0x01, body: [3, 0, 0, 0, 0, 0] }, { id: 0x10, body: [2, 0, 0, 0, 0, 0, 0, 0] }],
  extendedCapabilities: [{ id: 0x01, body: new Array(0x38).fill(0) }, { id: 0x03, body: [1, 2, 3, 4, 5, 6, 7, 8] }],
});
const tree = createFixtureTree([
  { address: '0000:06:01.1', config: buildConfigImage({ vendor: 0x8086, device: 0x10c9, classCode: 0x020000, revision: 1, headerType: 0x80 }) },
  { address: '0000:06:10.0', config: buildConfigImage({ vendor: 0x8086, device: 0x10ca, classCode: 0x020000 }), physfn: '0000:06:01.0' },
  { address: '0000:06:01.0', config: nic, bars: nicBars, rom: { start: 0xfe100000, size: 0x80000 }, driver: 'igb', iommuGroup: 12, reset: true },
  { address: '0000:00:1e.0', config: buildConfigImage({ vendor: 0x8086, device: 0x244e, classCode: 0x060401, headerType: 1, revision: 0x90 }) },
  { address: '0001:00:00.0', config: buildConfigImage({ vendor: 0x1b36, device: 0x0008, classCode: 0x060000 }) },
]);
after(() => tree.cleanup());
// sysfs also holds entries that are not devices; discovery must skip them.
symlinkSync('/nonexistent', join(tree.root, 'bus', 'pci', 'devices', 'not-a-device'));

describe('listDevices / readDevice on a fixture tree', () => {
  test('every device, sorted by address, non-devices skipped', () => {
    assert.deepEqual(listDevices(tree.root).map((d) => d.bdf), ['0000:00:1e.0', '0000:06:01.0', '0000:06:01.1', '0000:06:10.0', '0001:00:00.0']);
  });

  test('identity, header, driver, BARs (I/O, 64-bit prefetchable), ROM, config size, IOMMU group, reset', () => {
    const info = readDevice(tree.root, parseAddress('0000:06:01.0'));
    assert.deepEqual({ ...info, bars: undefined, rom: undefined }, {
      address: parseAddress('0000:06:01.0'), bdf: '0000:06:01.0', vendor: 0x8086, device: 0x10c9,
      subsystemVendor: 0x8086, subsystemDevice: 0xa03c, classCode: 0x020000, revision: 1, headerLayout: 0,
      multiFunction: true, isBridge: false, driver: 'igb', configSize: 4096, bars: undefined, rom: undefined,
      iommuGroup: 12, hasReset: true, isVirtualFunction: false, sysfsPath: tree.deviceDir('0000:06:01.0'),
    });
    assert.deepEqual(info.bars.map((b) => [b.index, b.kind, b.start, b.size, b.is64, b.prefetchable]), [
      [0, 'mem', 0xfe000000, 0x20000, false, false],
      [2, 'io', 0xc000, 0x20, false, false],
      [3, 'mem', 0x7f_0000_0000, 0x4000, true, true],
    ]);
    assert.deepEqual(info.rom && [info.rom.start, info.rom.size, info.rom.kind], [0xfe100000, 0x80000, 'mem']);
  });

  test('bridge, second function, non-zero domain', () => {
    const bridge = readDevice(tree.root, parseAddress('00:1e.0'));
    assert.equal(bridge.isBridge, true);
    assert.equal(bridge.headerLayout, 1);
    assert.equal(bridge.driver, null);
    assert.equal(bridge.configSize, 256);
    assert.equal(bridge.iommuGroup, null);
    assert.equal(bridge.hasReset, false);
    const fn1 = readDevice(tree.root, parseAddress('06:01.1'));
    assert.equal(fn1.multiFunction, true);
    assert.equal(fn1.isVirtualFunction, false);
    assert.equal(readDevice(tree.root, parseAddress('06:10.0')).isVirtualFunction, true, 'a physfn link marks an SR-IOV VF');
    assert.deepEqual(fn1.bars, []);
    assert.equal(readDevice(tree.root, parseAddress('0001:00:00.0')).isBridge, true);
  });

  test('the attribute files win over the config header; the header fills in when they are missing', () => {
    const dir = tree.deviceDir('0000:06:01.1');
    writeFileSync(join(dir, 'class'), '0x028000\n');
    assert.equal(readDevice(tree.root, parseAddress('06:01.1')).classCode, 0x028000);
    unlinkSync(join(dir, 'class'));
    unlinkSync(join(dir, 'vendor'));
    writeFileSync(join(dir, 'device'), 'garbage\n');
    const info = readDevice(tree.root, parseAddress('06:01.1'));
    assert.deepEqual([info.vendor, info.device, info.classCode], [0x8086, 0x10c9, 0x020000]);
  });

  test('absent device and missing root: clear runtime errors (exit status 1)', () => {
    assert.throws(() => readDevice(tree.root, parseAddress('0000:07:00.0')), (e: Error) =>
      e instanceof DeviceNotFoundError && /no PCI device 0000:07:00.0 under /.test(e.message) && exitCodeFor(e) === 1);
    const missing = join(tree.root, 'nope');
    assert.throws(() => listDevices(missing), (e: Error) => e instanceof SysfsRootError && e.message.includes(missing) && exitCodeFor(e) === 1);
    assert.throws(() => readDevice(missing, parseAddress('00:00.0')), SysfsRootError);
    assert.throws(() => readConfigSnapshot(tree.root, parseAddress('07:00.0'), 64), DeviceNotFoundError);
  });
});

describe('config access', () => {
  test('readConfigSnapshot returns at most the file size', () => {
    const address = parseAddress('06:01.0');
    assert.deepEqual(readConfigSnapshot(tree.root, address, 64), nic.slice(0, 64));
    assert.deepEqual(readConfigSnapshot(tree.root, address, 8192), nic);
    assert.equal(readConfigSnapshot(tree.root, parseAddress('00:1e.0'), 4096).length, 256);
  });

  test('LocalConfigReader serves readConfigBytes and the extended capability walk; bad accesses are refused', async () => {
    const reader = LocalConfigReader.open(tree.root, parseAddress('06:01.0'));
    try {
      assert.equal(reader.configSize, 4096);
      assert.equal(await reader.read(0, 4), 0x10c98086);
      assert.equal(await reader.read(0x0e, 1), 0x80);
      const bytes = await readConfigBytes(reader, 4096);
      assert.deepEqual(bytes, nic);
      assert.deepEqual(walkExtendedCapabilities(bytes).capabilities.map((c) => c.name), ['AER', 'DSN']);
      await assert.rejects(reader.read(2, 4), RangeError);
      await assert.rejects(reader.read(4096, 1), RangeError);
      await assert.rejects(reader.read(0, 3 as 4), RangeError);
    } finally {
      reader.close();
    }
    assert.throws(() => LocalConfigReader.open(tree.root, parseAddress('07:00.0')), DeviceNotFoundError);
  });

  test('snapshotDevice carries what lspci -v needs', () => {
    const info = readDevice(tree.root, parseAddress('06:01.0'));
    const device = snapshotDevice(tree.root, info, 256);
    assert.equal(device.config.length, 256);
    assert.equal(device.configSize, 4096);
    assert.equal(device.driver, 'igb');
    assert.equal(device.irq, undefined);
    assert.deepEqual(device.resources, { bars: info.bars, rom: info.rom });
  });
});

describe("this machine's sysfs (read-only)", { skip: existsSync('/sys/bus/pci/devices') ? false : 'no /sys/bus/pci' }, () => {
  test('every device is described consistently with its attribute files', () => {
    const devices = listDevices('/sys');
    assert.equal(devices.length, readdirSync('/sys/bus/pci/devices').length);
    for (const info of devices) {
      assert.match(info.bdf, /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/);
      assert.ok([256, 4096].includes(info.configSize), `${info.bdf} config size ${info.configSize}`);
      assert.equal(info.isBridge, info.classCode >>> 16 === 0x06);
      const header = readConfigSnapshot('/sys', info.address, 64);
      assert.equal(header[0] | (header[1] << 8), info.vendor, info.bdf);
    }
  });
});
