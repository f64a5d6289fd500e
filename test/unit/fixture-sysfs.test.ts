import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readlinkSync, realpathSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { buildConfigImage, createFixtureTree } from '../support/fixture-sysfs.js';

describe('buildConfigImage', () => {
  test('header fields, BAR registers and capability chains', () => {
    const image = buildConfigImage({
      vendor: 0x1af4, device: 0x1041, classCode: 0x020000, revision: 1, headerType: 0x80,
      subsystemVendor: 0x1af4, subsystemDevice: 0x0001, command: 0x0406, interruptPin: 1,
      bars: [
        { index: 0, kind: 'io', start: 0xc040, size: 0x20 },
        { index: 2, kind: 'mem', start: 0x40_0000_4000, size: 0x4000, is64: true, prefetchable: true },
      ],
      capabilities: [{ id: 0x11, body: [0x03, 0x00, 0x01, 0, 0, 0, 0x01, 0x08, 0, 0] }, { id: 0x09, body: [0x10] }],
      extendedCapabilities: [{ id: 0x0001, body: new Array(0x40).fill(0) }, { id: 0x0003, body: [1, 2, 3, 4, 5, 6, 7, 8] }],
    });
    const view = new DataView(image.buffer);
    assert.equal(image.length, 4096);
    assert.equal(view.getUint32(0, true), 0x10411af4);
    assert.equal(view.getUint16(4, true), 0x0406);
    assert.equal(view.getUint16(6, true) & 0x10, 0x10);
    assert.equal(view.getUint32(8, true), 0x02000001);
    assert.equal(image[0x0e], 0x80);
    assert.equal(view.getUint32(0x10, true), 0xc041);
    assert.equal(view.getUint32(0x18, true), 0x400c);
    assert.equal(view.getUint32(0x1c, true), 0x40);
    assert.equal(view.getUint32(0x2c, true), 0x00011af4);
    assert.equal(image[0x3d], 1);
    assert.equal(image[0x34], 0x40);
    assert.deepEqual([image[0x40], image[0x41]], [0x11, 0x4c]);
    assert.deepEqual([image[0x4c], image[0x4d]], [0x09, 0x00]);
    const first = view.getUint32(0x100, true);
    assert.equal(first & 0xffff, 1);
    assert.equal((first >>> 16) & 0xf, 1);
    assert.equal(first >>> 20, 0x144);
    assert.equal(view.getUint32(0x144, true) & 0xffff, 3);
    assert.equal(view.getUint32(0x144, true) >>> 20, 0);
  });

  test('defaults to 256 bytes and rejects impossible layouts', () => {
    assert.equal(buildConfigImage({ vendor: 1, device: 2, classCode: 0 }).length, 256);
    assert.throws(() => buildConfigImage({ vendor: 1, device: 2, classCode: 0, size: 256, extendedCapabilities: [{ id: 1 }] }), RangeError);
    assert.throws(() => buildConfigImage({ vendor: 1, device: 2, classCode: 0, bars: [{ index: 5, kind: 'mem', start: 0, size: 16, is64: true }] }), RangeError);
    assert.throws(() => buildConfigImage({ vendor: 1, device: 2, classCode: 0, bars: [{ index: 0, kind: 'mem', start: 0, size: 24 }] }), RangeError);
  });
});

describe('createFixtureTree', () => {
  test('writes attributes, resource table, BAR files and links like sysfs', (t) => {
    const config = buildConfigImage({ vendor: 0x8086, device: 0x100e, classCode: 0x020000, revision: 3, subsystemVendor: 0x8086, subsystemDevice: 0x001e });
    const tree = createFixtureTree([
      {
        address: '0000:00:03.0', config,
        bars: [{ index: 0, kind: 'mem', start: 0xfebc0000, size: 0x20000 }, { index: 1, kind: 'io', start: 0xc000, size: 0x40 }],
        rom: { start: 0xfeb80000, size: 0x40000 },
        driver: 'e1000', iommuGroup: 7, reset: true,
      },
      { address: '0000:00:04.0', config: buildConfigImage({ vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00 }) },
    ]);
    t.after(() => tree.cleanup());
    const dir = tree.deviceDir('0000:00:03.0');
    assert.equal(dir, join(tree.root, 'bus', 'pci', 'devices', '0000:00:03.0'));
    assert.deepEqual(Uint8Array.from(tree.configBytes('0000:00:03.0')), config);
    const attr = (name: string): string => readFileSync(join(dir, name), 'utf8');
    assert.equal(attr('vendor'), '0x8086\n');
    assert.equal(attr('device'), '0x100e\n');
    assert.equal(attr('class'), '0x020000\n');
    assert.equal(attr('revision'), '0x03\n');
    assert.equal(attr('subsystem_vendor'), '0x8086\n');
    assert.equal(attr('subsystem_device'), '0x001e\n');
    const lines = attr('resource').trimEnd().split('\n');
    assert.equal(lines.length, 7);
    assert.equal(lines[0], '0x00000000febc0000 0x00000000febdffff 0x0000000000040200');
    assert.equal(lines[1], '0x000000000000c000 0x000000000000c03f 0x0000000000040101');
    assert.equal(lines[2], '0x0000000000000000 0x0000000000000000 0x0000000000000000');
    assert.match(lines[6], /^0x00000000feb80000 0x00000000febbffff 0x/);
    assert.equal(statSync(join(dir, 'resource0')).size, 0x20000);
    assert.equal(statSync(join(dir, 'resource1')).size, 0x40);
    assert.equal(existsSync(join(dir, 'resource2')), false);
    assert.equal(statSync(join(dir, 'rom')).size, 0x40000);
    assert.equal(readlinkSync(join(dir, 'driver')), '../../../bus/pci/drivers/e1000');
    assert.equal(realpathSync(join(dir, 'driver')), realpathSync(join(tree.root, 'bus', 'pci', 'drivers', 'e1000')));
    assert.equal(realpathSync(join(dir, 'iommu_group')), realpathSync(join(tree.root, 'kernel', 'iommu_groups', '7')));
    assert.equal(existsSync(join(dir, 'reset')), true);
    const other = tree.deviceDir('0000:00:04.0');
    assert.equal(existsSync(join(other, 'driver')), false);
    assert.equal(existsSync(join(other, 'reset')), false);
    tree.cleanup();
    assert.equal(existsSync(tree.root), false);
  });

  test('bridges get the longer resource table; bad addresses are refused', (t) => {
    const tree = createFixtureTree([{ address: '0000:00:1e.0', config: buildConfigImage({ vendor: 0x8086, device: 0x244e, classCode: 0x060401, headerType: 1 }) }]);
    t.after(() => tree.cleanup());
    assert.equal(readFileSync(join(tree.deviceDir('0000:00:1e.0'), 'resource'), 'utf8').trimEnd().split('\n').length, 11);
    assert.throws(() => createFixtureTree([{ address: '00:1e.0', config: new Uint8Array(256) }], tree.root + '-x'), RangeError);
  });
});
