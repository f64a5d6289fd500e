/**
 * The claim on a device is per device, not per state directory: two writable exports of one
 * fixture device with different --state-dir, the second refused naming the first's pid; the
 * claim goes with its holder, even one killed with SIGKILL.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfigImage, createFixtureTree } from '../support/fixture-sysfs.js';
import { runXpci, startExport } from '../support/xpci-process.js';
import { connect } from '../../src/frontend/index.js';
import { parseAddress } from '../../src/pci/address.js';

const BDF = '0000:00:05.0';

describe('per-device claim', () => {
  test('a second writable export of one device with another --state-dir is refused, naming the holder', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xpci-claim-'));
    try {
      const tree = createFixtureTree([{ address: BDF, config: buildConfigImage({ vendor: 0x8086, device: 0x100e, classCode: 0x020000 }) }], join(dir, 'sysfs'));
      const args = (name: string): string[] => ['--sysfs-root', tree.root, '--state-dir', join(dir, `state-${name}`), '--socket', join(dir, `run-${name}`, 'xpci.sock')];
      const first = await startExport([...args('a'), BDF]);
      try {
        const second = await runXpci(['export', ...args('b'), BDF]);
        assert.equal(second.status, 1, second.stderr);
        assert.match(second.stderr, new RegExp(`${BDF} is already in use by pid ${first.process.pid} \\(.*export`));
      } finally {
        first.process.kill('SIGKILL');
        await first.stop();
      }
      const after = await startExport([...args('b'), BDF]);
      assert.equal(after.devices[0].host, BDF, 'the claim died with its holder');
      assert.equal(await after.stop(), 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('after SIGKILL the next export puts back the registers the killed backend left changed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xpci-claim-'));
    try {
      const tree = createFixtureTree([{ address: BDF, config: buildConfigImage({ vendor: 0x8086, device: 0x100e, classCode: 0x020000, command: 0x0002, cacheLineSize: 0x10 }) }], join(dir, 'sysfs'));
      const original = tree.configBytes(BDF);
      const args = ['--sysfs-root', tree.root, '--state-dir', join(dir, 'state'), '--socket', join(dir, 'run', 'xpci.sock')];
      const first = await startExport([...args, BDF]);
      const client = await connect(first.socket);
      await client.configWrite(parseAddress('00:00.0'), 0x0c, 1, 0x20); // cache line size
      await client.configWrite(parseAddress('00:00.0'), 0x04, 2, 0x0003); // I/O decode on: set in the hardware too
      await client.close();
      first.process.kill('SIGKILL');
      await first.stop();
      assert.notDeepEqual(tree.configBytes(BDF), original, 'SIGKILL restored nothing');
      const second = await startExport([...args, BDF]);
      assert.deepEqual(tree.configBytes(BDF), original, 'the next export repaired the registers before serving');
      assert.equal(await second.stop(), 0);
      assert.match(second.stderr(), /restored registers a backend that died left changed: command 0x3 → 0x2, cache line size 0x20 → 0x10/);
      assert.deepEqual(tree.configBytes(BDF), original);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
