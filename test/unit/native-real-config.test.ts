// Reads (never writes) this machine's PCI config space through the addon.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../../src/native/binding.js';

const DEVICES = '/sys/bus/pci/devices';
const devices = existsSync(DEVICES) ? readdirSync(DEVICES).sort() : [];

const attribute = (device: string, name: string): number =>
  Number.parseInt(readFileSync(join(DEVICES, device, name), 'utf8'), 16);
const skip = devices.length === 0 && `no PCI devices under ${DEVICES}`;

test('read-only config reads of every local PCI device match its sysfs attributes', { skip }, () => {
  for (const device of devices) {
    const file = native().openRegisterFile(join(DEVICES, device, 'config'), false);
    try {
      assert.equal(file.writable, false);
      assert.equal(file.read(0, 2), attribute(device, 'vendor'), `${device} vendor`);
      assert.equal(file.read(2, 2), attribute(device, 'device'), `${device} device`);
      assert.equal(file.read(8, 4) >>> 8, attribute(device, 'class'), `${device} class`);
      const size = file.size();
      assert.ok(size === 256 || size === 4096, `${device} config size ${size}`);
      const block = file.readBlock(0, size);
      assert.equal(block.length, size, `${device}: root reads the whole config space`);
      assert.equal(block.readUInt32LE(0), file.read(0, 4), `${device}: block and dword reads agree`);
    } finally {
      file.close();
    }
  }
});
