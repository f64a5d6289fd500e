/**
 * A full virtual bus: 32 slots of 8 functions each, every function with BARs. Its Hello reply is the
 * largest frame the protocol carries, so this proves MAX_FRAME covers the worst legal export, and
 * that every function of it is addressable through the ring.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../../src/frontend/client.js';
import { parseAddress } from '../../src/pci/address.js';
import { encodeJsonReply } from '../../src/protocol/ring/codec.js';
import { MAX_FRAME, MessageType } from '../../src/protocol/ring/messages.js';
import { buildConfigImage, createFixtureTree, type FixtureBar } from '../support/fixture-sysfs.js';
import { startExport } from '../support/xpci-process.js';

const SLOTS = 32;
const FUNCTIONS = 8;

test('a full virtual bus (256 functions) fits one Hello reply, and every function answers', async (t) => {
  const bars: FixtureBar[] = [
    { index: 0, kind: 'mem', start: 0xfe000000, size: 0x20000 },
    { index: 1, kind: 'io', start: 0xc000, size: 0x40 },
    { index: 2, kind: 'mem', start: 0x800000000, size: 0x100000, is64: true, prefetchable: true },
  ];
  const addresses: string[] = [];
  const specs = [];
  for (let slot = 0; slot < SLOTS; slot++) {
    for (let fn = 0; fn < FUNCTIONS; fn++) {
      const address = `0000:07:${slot.toString(16).padStart(2, '0')}.${fn}`;
      addresses.push(address);
      // Distinct device ids so a mix-up between functions would show.
      const config = buildConfigImage({ vendor: 0x8086, device: 0x1000 + slot * FUNCTIONS + fn, classCode: 0x020000, headerType: 0x80, bars });
      specs.push({ address, config, bars });
    }
  }
  const tree = createFixtureTree(specs);
  const state = mkdtempSync(join(tmpdir(), 'xpci-full-bus-'));
  t.after(() => {
    tree.cleanup();
    rmSync(state, { recursive: true, force: true });
  });
  const backend = await startExport(['--sysfs-root', tree.root, '--state-dir', state, '--socket', join(state, 'ring.sock'), '--no-reset-on-export', '--no-reset-on-release', ...addresses]);
  t.after(async () => { await backend.stop(); });
  assert.equal(backend.devices.length, SLOTS * FUNCTIONS);

  const client = await connect(backend.socket);
  t.after(() => client.close());
  const devices = client.devices();
  assert.equal(devices.length, SLOTS * FUNCTIONS);
  const helloBytes = encodeJsonReply(MessageType.Hello, 1, { devices }).length;
  assert.ok(helloBytes > 64 * 1024 && helloBytes <= MAX_FRAME, `Hello reply of ${helloBytes} bytes must need more than the old 64 KiB and fit MAX_FRAME`);

  const ids = await Promise.all(devices.map((d) => client.configRead(parseAddress(d.address), 2, 2)));
  const expected = [...Array(SLOTS * FUNCTIONS).keys()].map((i) => 0x1000 + i);
  assert.deepEqual(ids, expected);
});
