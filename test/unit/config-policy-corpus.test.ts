/**
 * The policy over real devices' config spaces (pciutils' test dumps, test/fixtures/pciutils-dumps): real and broken
 * capability chains, PCIe extended space (bridges are never exported). For each device: reads equal the dump outside
 * emulated bits; all-ones and all-zeros dword writes over the header, the capabilities and the
 * first extended capabilities change only permitted bits or nothing; release restores the dump.
 * Fixture files are plain files: a 0 written to a write-1-to-clear bit shows there as 1 → 0 although
 * hardware would keep the 1, so those bits may only ever go from 1 to 0 (never receive a 1).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { formatAddress, unpackAddress } from '../../src/pci/address.js';
import { readDevice } from '../../src/host/sysfs/discovery.js';
import { parseLspciDump } from '../../src/pci/lspci-dump.js';
import { ErrorCode, XpciError } from '../../src/protocol/ring/messages.js';
import { openExportedDevice } from '../../src/backend/exported-device.js';
import { layoutConfigSpace } from '../../src/backend/config-policy/layout.js';
import { createFixtureTree } from '../support/fixture-sysfs.js';
import { PCIUTILS_DUMPS, pciutilsDumpFiles } from '../support/repository.js';

test('the policy holds on every device of the pciutils dump corpus', () => {
  const images: Uint8Array[] = [];
  for (const name of pciutilsDumpFiles()) {
    for (const dumped of parseLspciDump(readFileSync(join(PCIUTILS_DUMPS, name), 'utf8'), name)) {
      if (dumped.config.length < 64) continue; // partial dumps
      if (dumped.config[0x0b] === 0x06 || (dumped.config[0x0e] & 0x7f) !== 0) continue; // bridges are never exported
      const image = new Uint8Array(dumped.config.length > 256 ? 4096 : 256);
      image.set(dumped.config.subarray(0, image.length));
      images.push(image);
    }
  }
  assert.ok(images.length >= 40, `${images.length} devices`);
  const addresses = images.map((_, i) => formatAddress(unpackAddress(0x10000 + i)));
  // ~170 devices: build the tree in tmpfs when there is one (file creation dominates otherwise)
  const scratch = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/xpci-corpus-') : undefined;
  const tree = createFixtureTree(images.map((config, i) => ({ address: addresses[i], config })), scratch);
  try {
    images.forEach((image, i) => {
      const address = addresses[i];
      const info = readDevice(tree.root, unpackAddress(0x10000 + i));
      const fd = openSync(join(tree.deviceDir(address), 'config'), 'r');
      const fileBytes = (): Buffer => {
        const buffer = Buffer.alloc(image.length);
        readSync(fd, buffer, 0, buffer.length, 0);
        return buffer;
      };
      const device = openExportedDevice({ sysfsRoot: tree.root, info, guest: unpackAddress(8), mode: 'vpci', readOnly: false, permissive: false });
      const layout = layoutConfigSpace(image.length, image);
      const m = layout.masks;
      const emulatedAt = (b: number): number => {
        const field = layout.fieldOf[b];
        return field >= 0 && layout.fields[field].rule.bar !== undefined ? 0xff : m.emulate[b] | m.decode[b] | m.hide[b];
      };
      try {
        for (let offset = 0; offset < image.length; offset += 4) {
          const value = device.configRead(offset, 4);
          for (let j = 0; j < 4; j++) {
            const keep = ~emulatedAt(offset + j) & 0xff;
            assert.equal((value >>> (8 * j)) & keep, image[offset + j] & keep, `${address} read 0x${(offset + j).toString(16)}`);
          }
        }
        const span = Math.min(image.length, 0x200);
        for (let offset = 0; offset < span; offset += 4) {
          for (const value of [0xffffffff, 0]) {
            const before = fileBytes();
            try {
              device.configWrite(offset, 4, value);
            } catch (error) {
              assert.ok(error instanceof XpciError && error.code === ErrorCode.AccessDenied, String(error));
              assert.ok(fileBytes().equals(before), `${address}: refused write at 0x${offset.toString(16)} changed the file`);
              continue;
            }
            const after = fileBytes();
            if (after.equals(before)) continue;
            for (let b = 0; b < image.length; b++) {
              const changed = before[b] ^ after[b];
              const zeroSent = m.rw1c[b] & before[b];
              assert.equal(changed & ~m.pass[b] & ~m.decode[b] & ~zeroSent, 0, `${address}: write at 0x${offset.toString(16)} changed 0x${b.toString(16)}`);
              assert.equal(changed & m.decode[b] & before[b], 0, `${address}: decode went off in hardware`);
            }
          }
        }
        device.release();
        const restored = fileBytes();
        for (let b = 0; b < image.length; b++) {
          assert.equal(restored[b] & ~m.rw1c[b], image[b] & ~m.rw1c[b], `${address}: release restored 0x${b.toString(16)}`);
        }
      } finally {
        device.release();
        closeSync(fd);
      }
    });
  } finally {
    tree.cleanup();
  }
});
