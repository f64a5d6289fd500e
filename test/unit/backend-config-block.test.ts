/**
 * ConfigReadBlock through the real backend: the bytes are what ConfigReads of the same range
 * return (the virtualized view: emulated BARs, interrupt line, status), for aligned and unaligned
 * ranges; a range past config space fails whole with InvalidOffset; a length the wire cannot carry
 * is refused before anything is sent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '../../src/frontend/index.js';
import { parseAddress } from '../../src/pci/address.js';
import { ErrorCode, XpciError } from '../../src/protocol/ring/messages.js';
import { MAX_CONFIG_BLOCK } from '../../src/protocol/ring/limits.js';
import { nic, plain, startBackend } from '../support/backend-harness.js';

const SPECS = [
  nic(0, { bars: [{ index: 0, kind: 'mem', size: 0x20000, start: 0xfe000000 }] }),
  plain('0000:00:07.0', 0x1234),
];

test('a block equals the single reads of its range, aligned or not; past the end it fails whole', async (t) => {
  const h = await startBackend(t, SPECS.map((s) => s.address), {}, SPECS);
  const client = await connect(h.socket, { client: 'config-block test' });
  t.after(() => client.close());
  for (const descriptor of client.devices()) {
    const address = parseAddress(descriptor.address);
    // The frontend changes an emulated register first: the block must show its view, not the file.
    await client.configWrite(address, 0x3c, 1, 0x5a);
    const singles = Buffer.alloc(256);
    for (let at = 0; at < 256; at += 4) singles.writeUInt32LE(await client.configRead(address, at, 4), at);
    assert.equal(singles[0x3c], 0x5a);
    assert.deepEqual(await client.configReadBlock(address, 0, 256), singles, `${descriptor.address}: whole header and device-specific space`);
    assert.deepEqual(await client.configReadBlock(address, 0x0d, 7), singles.subarray(0x0d, 0x14), 'unaligned start and end');
    assert.deepEqual(await client.configReadBlock(address, 0x3c, 1), singles.subarray(0x3c, 0x3d));
    await assert.rejects(client.configReadBlock(address, descriptor.configSize - 4, 8),
      (e: unknown) => e instanceof XpciError && e.code === ErrorCode.InvalidOffset);
  }
  const first = parseAddress(client.devices()[0].address);
  for (const length of [0, MAX_CONFIG_BLOCK + 1]) {
    await assert.rejects(client.configReadBlock(first, 0, length), (e: unknown) => e instanceof XpciError && e.code === ErrorCode.InvalidSize);
  }
  assert.equal(client.devices().length, 2, 'the session is still up');
});
