/**
 * FrontendClient against a real Unix socket served by the in-test mini backend (test/support):
 * handshake, pipelining beyond the ring depth, batched and byte-wise replies, garbage, stale ids,
 * error replies, timeouts and events.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { constants as osConstants } from 'node:os';
import { connect, ConnectError, FrontendClient, openTransport, Transport } from '../../src/frontend/index.js';
import { readConfigBytes } from '../../src/pci/config-reader.js';
import { parseAddress } from '../../src/pci/address.js';
import { encodeConfigReadReply, encodeErrorReply, encodeJsonReply } from '../../src/protocol/ring/codec.js';
import { ErrorCode, MessageType, XpciError, type DeviceDescriptor } from '../../src/protocol/ring/messages.js';
import { buildConfigImage } from '../support/fixture-sysfs.js';
import { MiniBackend, type MiniBackendOptions } from '../support/mini-backend.js';

const NET = parseAddress('00:00.0');
const netConfig = (): Uint8Array => buildConfigImage({
  vendor: 0x1af4, device: 0x1041, classCode: 0x020000, revision: 1, command: 0x0107,
  capabilities: [{ id: 0x01, body: [0x03, 0x00, 0x08, 0x00, 0, 0] }],
});

/** Delegates to a real transport and records the size of every write the client makes. */
class RecordingTransport extends Transport {
  readonly writes: number[] = [];
  constructor(private readonly inner: Transport) {
    super();
    inner.on('data', (chunk) => this.emit('data', chunk));
    inner.on('close', (error) => this.emit('close', error));
  }
  get kind() { return this.inner.kind; }
  get path() { return this.inner.path; }
  write(data: Buffer): void {
    this.writes.push(data.length);
    this.inner.write(data);
  }
  close(): void {
    this.inner.close();
  }
}

async function withBackend(options: Partial<MiniBackendOptions>, body: (backend: MiniBackend) => Promise<void>): Promise<void> {
  const backend = await MiniBackend.start({
    devices: [{ address: '00:00.0', config: netConfig(), bars: [{ index: 0, data: Buffer.alloc(64) }] }],
    ...options,
  });
  try {
    await body(backend);
  } finally {
    await backend.close();
  }
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, errno?: number): Promise<XpciError> {
  const error = await promise.then(
    (value) => assert.fail(`expected ${ErrorCode[code]}, got the value ${String(value)}`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof XpciError, `expected an XpciError, got ${String(error)}`);
  assert.equal(ErrorCode[error.code], ErrorCode[code], error.message);
  if (errno !== undefined) assert.equal(error.errno, errno);
  return error;
}

describe('handshake', () => {
  test('negotiates version, ring depth, mode, roots and devices', async () => {
    await withBackend({ ringDepth: 48, mode: 'passthrough', roots: ['0000:00'] }, async (backend) => {
      const client = await connect(backend.path, { ringDepth: 100, client: 'frontend-test' });
      try {
        const hello = backend.received[0];
        assert.equal(hello.type, MessageType.Hello);
        assert.deepEqual(hello.type === MessageType.Hello && hello.hello, { versions: [1], ringDepth: 100, client: 'frontend-test' });
        assert.equal(client.version, 1);
        assert.equal(client.ringDepth, 48);
        assert.equal(client.mode, 'passthrough');
        assert.deepEqual(client.roots, ['0000:00']);
        assert.deepEqual(client.devices().map((d) => [d.address, d.vendor, d.device]), [['0000:00:00.0', 0x1af4, 0x1041]]);
        assert.equal(client.device(NET)?.configSize, 256);
      } finally {
        await client.close();
      }
    });
  });

  test('a swallowed Hello is sent again with a new id', async () => {
    let hellos = 0;
    await withBackend({ handle: (request, reply) => (request.type === MessageType.Hello && ++hellos === 1 ? null : reply) }, async (backend) => {
      const client = await connect(backend.path, { helloTimeoutsMs: [50, 50, 50] });
      try {
        const ids = backend.received.filter((r) => r.type === MessageType.Hello).map((r) => r.id);
        assert.equal(ids.length, 2);
        assert.notEqual(ids[0], ids[1]);
        assert.equal(await client.configRead(NET, 0, 2), 0x1af4);
      } finally {
        await client.close();
      }
    });
  });

  test('no Hello reply at all rejects with ETIMEDOUT after every attempt', async () => {
    await withBackend({ handle: (request, reply) => (request.type === MessageType.Hello ? null : reply) }, async (backend) => {
      await rejectsWith(connect(backend.path, { helloTimeoutsMs: [20, 20, 20] }), ErrorCode.OperationFailed, osConstants.errno.ETIMEDOUT);
      assert.equal(backend.received.filter((r) => r.type === MessageType.Hello).length, 3);
    });
  });

  test('a Busy refusal (id 0, then close) rejects connect with Busy', async () => {
    let server: MiniBackend | undefined;
    await withBackend({
      handle: () => {
        setTimeout(() => server?.dropConnection(), 5);
        return encodeErrorReply(0, 0, { code: ErrorCode.Busy, errno: 0, message: 'another frontend is connected' });
      },
    }, async (backend) => {
      server = backend;
      const error = await rejectsWith(connect(backend.path), ErrorCode.Busy);
      assert.match(error.message, /another frontend/);
    });
  });

  test('a missing socket is a ConnectError naming the path', async () => {
    const error = await connect('/nonexistent/xpci.sock').then(() => assert.fail('connected'), (e: unknown) => e);
    assert.ok(error instanceof ConnectError);
    assert.equal(error.code, 'ENOENT');
    assert.match(error.message, /\/nonexistent\/xpci\.sock: no such file/);
  });

  test('a regular file is refused as neither socket nor character device', async () => {
    const error = await connect(new URL(import.meta.url).pathname).then(() => assert.fail('connected'), (e: unknown) => e);
    assert.ok(error instanceof ConnectError);
    assert.match(error.message, /not a Unix socket or a character device/);
  });
});

describe('requests', () => {
  test('config reads and writes, BAR reads and writes, ping and list', async () => {
    await withBackend({}, async (backend) => {
      const client = await connect(backend.path);
      try {
        assert.equal(await client.configRead(NET, 0, 4), 0x10411af4);
        assert.equal(await client.configRead(NET, 4, 2), 0x0107);
        await client.configWrite(NET, 0x3c, 1, 0x0b);
        assert.equal(await client.configRead(NET, 0x3c, 1), 0x0b);
        await client.barWrite(NET, 0, 8, 8, 0x1122334455667788n);
        assert.equal(await client.barRead(NET, 0, 8, 8), 0x1122334455667788n);
        assert.equal(await client.barRead(NET, 0, 12, 4), 0x11223344n);
        assert.deepEqual(await client.ping(Buffer.from('hello')), Buffer.from('hello'));
        const list = await client.listDevices();
        assert.deepEqual(list.roots, ['0000:00']);
        assert.deepEqual(list.devices.map((d) => d.address), ['0000:00:00.0']);
      } finally {
        await client.close();
      }
    });
  });

  test('readBlock from a backend without ConfigReadBlock: single reads give the same bytes, unaligned ranges too', async () => {
    await withBackend({ configReadBlock: false }, async (backend) => {
      const client = await connect(backend.path);
      try {
        const device = client.remoteDevice(NET);
        const config = Buffer.from(netConfig());
        for (const [offset, length] of [[0, 64], [0x0d, 7], [0x3d, 1], [0x06, 2]]) {
          assert.deepEqual(Buffer.from(await device.readBlock(offset, length)), config.subarray(offset, offset + length), `${offset}+${length}`);
        }
        assert.ok(client.configReadBlockUnsupported);
        const sizes = backend.received.filter((r) => r.type === MessageType.ConfigRead).map((r) => ('size' in r ? r.size : 0));
        assert.deepEqual(sizes.slice(16), [1, 2, 4, 1, 2], 'the unaligned range in its natural pieces');
      } finally {
        await client.close();
      }
    });
  });

  test('a remote device is a ConfigReader: readConfigBytes gives the whole config space', async () => {
    await withBackend({}, async (backend) => {
      const client = await connect(backend.path);
      try {
        const device = client.remoteDevice(NET);
        assert.equal(device.configSize, 256);
        assert.deepEqual(await readConfigBytes(device, device.configSize), netConfig());
        await device.write(0x0c, 1, 0x10);
        assert.equal(await device.read(0x0c, 1), 0x10);
      } finally {
        await client.close();
      }
    });
  });

  test('error replies reject with the protocol code; a failed read yields no value', async () => {
    await withBackend({
      devices: [
        { address: '00:00.0', config: netConfig() },
        { address: '00:01.0', config: netConfig(), readOnly: true, bars: [{ index: 0, data: Buffer.alloc(16) }] },
      ],
      handle: (request, reply) => (request.type === MessageType.ConfigRead && request.offset === 0x40
        ? encodeErrorReply(request.type, request.id, { code: ErrorCode.OperationFailed, errno: 5, message: 'pread: EIO' })
        : reply),
    }, async (backend) => {
      const client = await connect(backend.path);
      const readOnly = parseAddress('00:01.0');
      try {
        await rejectsWith(client.configRead(parseAddress('00:07.0'), 0, 4), ErrorCode.DeviceNotFound);
        await rejectsWith(client.configRead(NET, 0x100, 4), ErrorCode.InvalidOffset);
        await rejectsWith(client.configRead(NET, 2, 4), ErrorCode.Misaligned);
        await rejectsWith(client.configRead(NET, 0, 3), ErrorCode.InvalidSize);
        await rejectsWith(client.configRead(NET, 0x40, 4), ErrorCode.OperationFailed, 5);
        await rejectsWith(client.configWrite(readOnly, 4, 2, 0), ErrorCode.AccessDenied);
        await rejectsWith(client.barRead(readOnly, 0, 0, 4), ErrorCode.AccessDenied);
        // What the wire cannot carry is refused locally, with the same error type.
        await rejectsWith(client.configRead(NET, 0x10000, 4), ErrorCode.InvalidOffset);
        await rejectsWith(client.configWrite(NET, 4, 2, -1), ErrorCode.Malformed);
        // The session is still good after errors.
        assert.equal(await client.configRead(NET, 2, 2), 0x1041);
      } finally {
        await client.close();
      }
    });
  });
});

describe('pipelining and batching', () => {
  test('more requests than the ring depth: at most ringDepth in flight, the rest queued locally', async () => {
    await withBackend({ ringDepth: 32 }, async (backend) => {
      const client = await connect(backend.path);
      try {
        const reads = Array.from({ length: 500 }, (_, i) => client.configRead(NET, (i % 64) * 4, 4));
        assert.equal(client.inFlightCount, 32);
        assert.equal(client.queuedCount, 500 - 32);
        const values = await Promise.all(reads);
        const image = Buffer.from(netConfig());
        values.forEach((value, i) => assert.equal(value, image.readUInt32LE((i % 64) * 4), `read ${i}`));
        assert.equal(backend.maxOutstanding, 32, 'the backend saw the ring filled, never overfilled');
        assert.equal(client.inFlightCount + client.queuedCount, 0);
      } finally {
        await client.close();
      }
    });
  });

  test('requests issued in one synchronous run travel in one write', async () => {
    await withBackend({ ringDepth: 64 }, async (backend) => {
      const transport = new RecordingTransport(await openTransport(backend.path));
      const client = await FrontendClient.open(transport);
      try {
        transport.writes.length = 0;
        const values = await Promise.all(Array.from({ length: 40 }, (_, i) => client.configRead(NET, i * 4, 4)));
        assert.deepEqual(transport.writes, [40 * 24], 'one write of 40 ConfigRead frames of 24 bytes');
        assert.equal(values[1], 0x00100107);
        // Beyond the ring depth: one write for the first 64, then the queue drains in batches too.
        transport.writes.length = 0;
        await Promise.all(Array.from({ length: 100 }, (_, i) => client.configRead(NET, (i % 64) * 4, 4)));
        assert.equal(transport.writes[0], 64 * 24);
        assert.equal(transport.writes.reduce((a, b) => a + b, 0), 100 * 24);
        assert.ok(transport.writes.length < 100, `${transport.writes.length} writes for 100 requests`);
      } finally {
        await client.close();
      }
    });
  });

  test('replies delivered one byte per write are reassembled', async () => {
    await withBackend({ chunking: 'bytewise' }, async (backend) => {
      const client = await connect(backend.path, { helloTimeoutsMs: [30000] });
      try {
        const [a, b] = await Promise.all([client.configRead(NET, 0, 4), client.barRead(NET, 0, 0, 8)]);
        assert.equal(a, 0x10411af4);
        assert.equal(b, 0n);
      } finally {
        await client.close();
      }
    });
  });

  test('garbage before a reply is skipped', async () => {
    const garbage = Buffer.from('this is not a frame \x00\x01\x02\xff XPC');
    await withBackend({
      handle: (request, reply) => (request.type === MessageType.ConfigRead ? [garbage, reply] : reply),
    }, async (backend) => {
      const client = await connect(backend.path);
      try {
        assert.equal(await client.configRead(NET, 0, 2), 0x1af4);
        assert.equal(await client.configRead(NET, 2, 2), 0x1041);
      } finally {
        await client.close();
      }
    });
  });

  test('replies for unknown ids (a predecessor\'s leftovers) are ignored', async () => {
    await withBackend({
      handle: (request, reply) => {
        if (request.type === MessageType.Hello) {
          // Stale replies ahead of the Hello reply: another id, even a Hello reply with other devices.
          const staleHello = encodeJsonReply(MessageType.Hello, (request.id + 1000) >>> 0, { version: 1, ringDepth: 32, mode: 'vpci', roots: [], devices: [] });
          return [encodeConfigReadReply((request.id + 7) >>> 0, 0xdeadbeef), staleHello, reply];
        }
        if (request.type === MessageType.ConfigRead) return [encodeConfigReadReply((request.id - 1) >>> 0, 0xdeadbeef), reply];
        return reply;
      },
    }, async (backend) => {
      const client = await connect(backend.path);
      try {
        assert.equal(client.devices().length, 1);
        assert.equal(await client.configRead(NET, 0, 4), 0x10411af4);
        assert.equal(await client.configRead(NET, 4, 2), 0x0107);
      } finally {
        await client.close();
      }
    });
  });

  test('a request without a reply times out with ETIMEDOUT; its late reply is ignored', async () => {
    let held: Buffer | undefined;
    await withBackend({
      handle: (request, reply) => {
        if (request.type === MessageType.ConfigRead && request.offset === 8) {
          held = reply;
          return null;
        }
        return reply;
      },
    }, async (backend) => {
      const client = await connect(backend.path, { requestTimeoutMs: 100 });
      try {
        const lost = client.configRead(NET, 8, 4);
        const answered = client.configRead(NET, 0, 4);
        assert.equal(await answered, 0x10411af4);
        await rejectsWith(lost, ErrorCode.OperationFailed, osConstants.errno.ETIMEDOUT);
        assert.ok(held);
        backend.writeRaw(held);
        assert.equal(await client.configRead(NET, 4, 2), 0x0107);
        assert.equal(client.inFlightCount, 0);
      } finally {
        await client.close();
      }
    });
  });
});

describe('events and teardown', () => {
  test('deviceAdded, deviceRemoved and shutdown are dispatched; the close rejects pending requests', async () => {
    await withBackend({ handle: (request, reply) => (request.type === MessageType.ConfigRead && request.offset === 0x10 ? null : reply) }, async (backend) => {
      const client = await connect(backend.path);
      const seen: string[] = [];
      client.on('deviceAdded', (d) => seen.push(`added ${d.address}`));
      client.on('deviceRemoved', (a) => seen.push(`removed ${a.device}.${a.function}`));
      client.on('shutdown', (reason) => seen.push(`shutdown ${reason}`));
      const added: DeviceDescriptor = { ...client.devices()[0], address: '0000:00:02.0' };
      backend.sendEvent(MessageType.DeviceAdded, added);
      await once(client, 'deviceAdded');
      assert.deepEqual(client.devices().map((d) => d.address), ['0000:00:00.0', '0000:00:02.0']);
      backend.sendEvent(MessageType.DeviceRemoved, parseAddress('00:00.0'));
      await once(client, 'deviceRemoved');
      assert.deepEqual(client.devices().map((d) => d.address), ['0000:00:02.0']);

      const pending = client.configRead(parseAddress('00:02.0'), 0x10, 4);
      const closed = once(client, 'close');
      backend.sendEvent(MessageType.Shutdown, { reason: 'SIGTERM' });
      backend.dropConnection();
      await closed;
      assert.deepEqual(seen, ['added 0000:00:02.0', 'removed 0.0', 'shutdown SIGTERM']);
      const error = await rejectsWith(pending, ErrorCode.OperationFailed, osConstants.errno.ECONNRESET);
      assert.match(error.message, /the backend shut down: SIGTERM/);
      assert.ok(client.isClosed);
      await rejectsWith(client.configRead(NET, 0, 4), ErrorCode.OperationFailed);
    });
  });

  test('--verbose-request lines name device, op, offset, size, value and error', async () => {
    await withBackend({ devices: [{ address: '00:00.0', config: netConfig(), readOnly: true }] }, async (backend) => {
      const lines: string[] = [];
      const client = await connect(backend.path, { logRequest: (line) => lines.push(line) });
      try {
        await client.configRead(NET, 4, 2);
        await client.configWrite(NET, 4, 2, 0x0007).catch(() => undefined);
        const ids = backend.received.slice(-2).map((r) => r.id);
        assert.deepEqual(lines, [
          `#${ids[0]} 0000:00:00.0 ConfigRead offset=0x4 size=2 -> 0x107`,
          `#${ids[1]} 0000:00:00.0 ConfigWrite offset=0x4 size=2 value=0x7 -> error AccessDenied: read-only export`,
        ]);
      } finally {
        await client.close();
      }
    });
  });

  test('a request larger than the frame limit the backend announced is refused before it is sent', async () => {
    await withBackend({}, async (backend) => {
      const client = await connect(backend.path);
      try {
        const limit = client.maxFrame;
        assert.ok(limit < 256 * 1024, `the stub backend announces a small limit (${limit})`);
        const before = backend.received.length;
        await rejectsWith(client.ping(Buffer.alloc(limit)), ErrorCode.LimitExceeded);
        assert.equal(backend.received.length, before, 'nothing was sent');
        assert.equal((await client.ping(Buffer.alloc(limit - 16, 7))).length, limit - 16, 'a frame of exactly the limit passes');
      } finally {
        await client.close();
      }
    });
  });

  test('close() is idempotent and FrontendClient.connect is the same as connect', async () => {
    await withBackend({}, async (backend) => {
      const client = await FrontendClient.connect(backend.path);
      await client.close();
      await client.close();
      assert.ok(client.isClosed);
    });
  });
});
