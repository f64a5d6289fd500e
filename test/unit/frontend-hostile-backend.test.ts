/**
 * The frontend against a hostile backend: every Hello reply field is validated before the frontend
 * uses it (a huge configSize must not allocate, a bad one must not print an internal message), and
 * error text a backend sends is cut at the protocol's limit with control characters escaped.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '../../src/frontend/index.js';
import { parseAddress } from '../../src/pci/address.js';
import { encodeJsonReply } from '../../src/protocol/ring/codec.js';
import { MAX_ERROR_MESSAGE } from '../../src/protocol/ring/limits.js';
import { encodeFrame } from '../../src/protocol/ring/frame.js';
import { ErrorCode, FrameFlags, MessageType, XpciError, type HelloReply } from '../../src/protocol/ring/messages.js';
import { printablePeerText } from '../../src/protocol/ring/peer-text.js';
import { buildConfigImage } from '../support/fixture-sysfs.js';
import { MiniBackend } from '../support/mini-backend.js';

const config = (): Uint8Array => buildConfigImage({ vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00, revision: 0x10, command: 0x0003 });

/** A backend whose Hello reply is `mutate`d from a valid one. */
async function withHello(mutate: (reply: HelloReply) => void, body: (path: string) => Promise<void>): Promise<void> {
  const backend = await MiniBackend.start({
    devices: [{ address: '00:00.0', config: config() }],
    handle: (request, reply) => {
      if (request.type !== MessageType.Hello) return reply;
      const good = JSON.parse(reply.subarray(16).toString('utf8')) as HelloReply;
      mutate(good);
      return encodeJsonReply(MessageType.Hello, request.id, good);
    },
  });
  try {
    await body(backend.path);
  } finally {
    await backend.close();
  }
}

async function refusedMalformed(path: string, pattern: RegExp): Promise<void> {
  const error = await connect(path, { helloTimeoutsMs: [2000] }).then(
    (client) => { void client.close(); return assert.fail('the Hello reply was accepted'); },
    (e: unknown) => e,
  );
  assert.ok(error instanceof XpciError, `expected an XpciError, got ${String(error)}`);
  assert.equal(ErrorCode[error.code], 'Malformed', error.message);
  assert.match(error.message, pattern);
}

describe('Hello reply validation', () => {
  const cases: [string, (reply: HelloReply) => void, RegExp][] = [
    ['configSize 2^30', (r) => { r.devices[0].configSize = 2 ** 30; }, /configSize 1073741824.*256 or 4096/],
    ['configSize 1e15', (r) => { r.devices[0].configSize = 1e15; }, /configSize .*256 or 4096/],
    ['configSize 4098', (r) => { r.devices[0].configSize = 4098; }, /configSize 4098.*256 or 4096/],
    ['ring depth beyond the protocol', (r) => { r.ringDepth = 1e9; }, /ring depth 1000000000/],
    ['maxFrame beyond the protocol', (r) => { r.maxFrame = 2 ** 40; }, /maxFrame/],
    ['vendor beyond 16 bits', (r) => { r.devices[0].vendor = 0x1ffff; }, /vendor/],
    ['a huge device list', (r) => { r.devices = Array.from({ length: 1100 }, () => r.devices[0]); }, /1100 devices/],
    ['too many BARs', (r) => { r.devices[0].bars = Array.from({ length: 7 }, (_, i) => ({ index: i % 6, kind: 'mem', is64: false, prefetchable: false, size: 4096 })); }, /bars/],
    ['a BAR of negative size', (r) => { r.devices[0].bars = [{ index: 0, kind: 'mem', is64: false, prefetchable: false, size: -1 }]; }, /BAR 0.*size/],
    ['a long server string', (r) => { r.server = 'x'.repeat(100_000); }, /server/],
    ['a long address string', (r) => { r.devices[0].address = '0'.repeat(100_000); }, /address/],
    ['a non-boolean readOnly', (r) => { (r.devices[0] as unknown as Record<string, unknown>).readOnly = 'yes'; }, /readOnly/],
  ];
  for (const [name, mutate, pattern] of cases) {
    test(`${name} is refused as Malformed, naming the field`, async () => {
      await withHello(mutate, (path) => refusedMalformed(path, pattern));
    });
  }

  test('a valid reply with a 4096-byte config space is accepted', async () => {
    await withHello((r) => { r.devices[0].configSize = 4096; }, async (path) => {
      const client = await connect(path);
      assert.equal(client.devices()[0].configSize, 4096);
      assert.deepEqual(client.devices()[0].address, '0000:00:00.0');
      await client.close();
    });
  });
});

describe('error text from a backend', () => {
  test('is cut at the protocol limit and has its control characters escaped', async () => {
    const hostile = '\x1b[2J\x1b]0;pwned\x07line1\nline2\r\u202e' + 'A'.repeat(4 * MAX_ERROR_MESSAGE);
    const backend = await MiniBackend.start({
      devices: [{ address: '00:00.0', config: config() }],
      handle: (request, reply) => {
        if (request.type !== MessageType.ConfigRead) return reply;
        // Built by hand: a hostile backend does not go through encodeErrorReply's truncation.
        const payload = Buffer.concat([Buffer.from([ErrorCode.AccessDenied, 0, 0, 0, 0, 0, 0, 0]), Buffer.from(hostile, 'utf8')]);
        return encodeFrame(MessageType.ConfigRead, FrameFlags.Reply | FrameFlags.Error, request.id, payload);
      },
    });
    try {
      const client = await connect(backend.path);
      const error = await client.configRead(parseAddress('00:00.0'), 0, 4).then(() => assert.fail('read succeeded'), (e: unknown) => e as XpciError);
      await client.close();
      assert.equal(error.code, ErrorCode.AccessDenied);
      assert.doesNotMatch(error.message, /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/);
      assert.ok(error.message.startsWith('\\x1b[2J\\x1b]0;pwned\\x07line1\\nline2\\r\\u202e'), error.message.slice(0, 60));
      assert.ok(Buffer.byteLength(error.message.replace(/\\(x..|u....|[nrt])/g, '_')) <= MAX_ERROR_MESSAGE);
    } finally {
      await backend.close();
    }
  });

  test('printablePeerText leaves ordinary text alone and keeps multi-byte characters whole', () => {
    assert.equal(printablePeerText('BAR 0: décodage off (µs)', MAX_ERROR_MESSAGE), 'BAR 0: décodage off (µs)');
    assert.equal(printablePeerText('é'.repeat(MAX_ERROR_MESSAGE), MAX_ERROR_MESSAGE), 'é'.repeat(MAX_ERROR_MESSAGE / 2));
    assert.equal(printablePeerText('tab\there', MAX_ERROR_MESSAGE), 'tab\\there');
  });
});
