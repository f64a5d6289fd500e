import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAddress } from '../../src/pci/address.js';
import { buildConfigImage, createFixtureTree } from '../support/fixture-sysfs.js';
import { SimulatedKernel } from '../support/simulated-kernel.js';
import { resetDevice } from '../../src/backend/lifecycle/reset.js';
import { fileSysfsWriter } from '../../src/backend/lifecycle/sysfs-writer.js';

const config = buildConfigImage({ vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00 });

describe('resetDevice', () => {
  test('writes 1 to the reset file, and names the methods when the kernel lists them', () => {
    const tree = createFixtureTree([{ address: '0000:00:04.0', config, reset: true }]);
    try {
      const kernel = new SimulatedKernel(tree.root);
      const address = parseAddress('00:04.0');
      assert.deepEqual(resetDevice(tree.root, { address }, kernel), { performed: true, message: '0000:00:04.0: reset' });
      assert.deepEqual(kernel.writes, [{ path: 'bus/pci/devices/0000:00:04.0/reset', value: '1' }]);
      writeFileSync(join(tree.deviceDir('0000:00:04.0'), 'reset_method'), 'flr bus\n');
      assert.equal(resetDevice(tree.root, { address }).message, '0000:00:04.0: reset (methods: flr bus)');
      assert.equal(readFileSync(join(tree.deviceDir('0000:00:04.0'), 'reset'), 'utf8'), '1');
    } finally {
      tree.cleanup();
    }
  });

  test('a device without a reset file is reported, not pretended reset', () => {
    const tree = createFixtureTree([{ address: '0000:00:05.0', config }]);
    try {
      const kernel = new SimulatedKernel(tree.root);
      const result = resetDevice(tree.root, { address: parseAddress('00:05.0') }, kernel);
      assert.equal(result.performed, false);
      assert.match(result.message, /^0000:00:05\.0: not reset: the device has no sysfs reset file/);
      assert.deepEqual(kernel.writes, []);
    } finally {
      tree.cleanup();
    }
  });

  test('a failing write is an error that names the file and errno', () => {
    // A directory in place of the attribute makes the real writer fail with EISDIR.
    const tree = createFixtureTree([{ address: '0000:00:06.0', config }]);
    try {
      const path = join(tree.deviceDir('0000:00:06.0'), 'reset');
      mkdirSync(path);
      assert.throws(() => resetDevice(tree.root, { address: parseAddress('00:06.0') }, fileSysfsWriter),
        /writing "1" to .*0000:00:06\.0\/reset failed: EISDIR/);
    } finally {
      tree.cleanup();
    }
  });
});
