/**
 * The session state machine on its own (no socket): handshake rules, batching, limits, faults.
 * The devices here are in-memory endpoints; device policy is tested with the real ExportedDevice.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseAddress, type PciAddress } from '../../src/pci/address.js';
import { FrameReader, encodeFrame, type Frame } from '../../src/protocol/ring/frame.js';
import { decodeConfigReadReply, decodeJsonPayload, encodeRequest, errorFromReply, isErrorReply } from '../../src/protocol/ring/codec.js';
import {
  ErrorCode, FrameFlags, MAX_FRAME, MAX_RING_DEPTH, MIN_RING_DEPTH, MessageType, XpciError,
  type DeviceDescriptor, type HelloReply, type Request,
} from '../../src/protocol/ring/messages.js';
import { DeviceTable } from '../../src/backend/server/device-table.js';
import type { DeviceEndpoint } from '../../src/backend/server/dispatcher.js';
import { FrontendSession, type SessionContext } from '../../src/backend/server/frontend-session.js';
import { MAX_GARBAGE } from '../../src/protocol/ring/limits.js';
import { RequestTrace } from '../../src/protocol/ring/request-trace.js';

class MemoryDevice implements DeviceEndpoint {
  readonly config = Buffer.alloc(256);
  constructor(readonly address: string, vendor: number) {
    this.config.writeUInt16LE(vendor, 0);
  }
  descriptor(): DeviceDescriptor {
    return { address: this.address, vendor: this.config.readUInt16LE(0), device: 0, classCode: 0, revision: 0, headerType: 0, configSize: 256, readOnly: false, permissive: false, bars: [] };
  }
  configRead(offset: number, size: number): number {
    if (offset + size > 256) throw new XpciError(ErrorCode.InvalidOffset, `offset ${offset} beyond 256`);
    return size === 1 ? this.config[offset] : size === 2 ? this.config.readUInt16LE(offset) : this.config.readUInt32LE(offset);
  }
  configWrite(offset: number, size: number, value: number): void {
    if (offset === 0) throw new TypeError('simulated bug');
    this.config.writeUIntLE(value, offset, size);
  }
  barRead(): bigint { throw new XpciError(ErrorCode.AccessDenied, 'no BARs'); }
  barWrite(): void { throw new XpciError(ErrorCode.AccessDenied, 'no BARs'); }
}

function setup(): { session: FrontendSession; bugs: unknown[]; device: MemoryDevice; context: SessionContext } {
  const table = new DeviceTable<DeviceEndpoint>('vpci');
  const device = new MemoryDevice('0000:00:00.0', 0x8086);
  table.insert(parseAddress('06:01.0'), table.place(parseAddress('06:01.0')), device);
  const bugs: unknown[] = [];
  const context: SessionContext = { mode: 'vpci', table, requestLog: RequestTrace.forBackend(false), reportBug: (e) => bugs.push(e) };
  return { session: new FrontendSession(context), bugs, device, context };
}

function framesOf(reply: Buffer | null): Frame[] {
  if (!reply) return [];
  const items = new FrameReader().push(reply);
  assert.ok(items.every((i) => i.frame), 'the backend only sends well-formed frames');
  return items.map((i) => i.frame!);
}

const guest0: PciAddress = parseAddress('00:00.0');
const hello = (id: number, ringDepth = 64, versions = [1]): Buffer => encodeRequest({ type: MessageType.Hello, id, hello: { versions, ringDepth } });
const read = (id: number, offset = 0, size = 2, address = guest0): Buffer => encodeRequest({ type: MessageType.ConfigRead, id, address, offset, size });
const errorCode = (frame: Frame): ErrorCode | null => (isErrorReply(frame) ? errorFromReply(frame).code : null);

describe('handshake', () => {
  test('Hello must come first: other requests get HelloRequired', () => {
    const { session } = setup();
    const [reply] = framesOf(session.receive(read(7)).reply);
    assert.equal(reply.id, 7);
    assert.equal(reply.type, MessageType.ConfigRead);
    assert.equal(errorCode(reply), ErrorCode.HelloRequired);
    assert.equal(session.ready, false);
  });

  test('the highest common version is chosen and the reply publishes roots and devices', () => {
    const { session } = setup();
    const [reply] = framesOf(session.receive(hello(1, 64, [3, 1, 2])).reply);
    assert.equal(errorCode(reply), null);
    const body = decodeJsonPayload<HelloReply>(reply, 'hello');
    assert.equal(body.version, 1);
    assert.equal(body.mode, 'vpci');
    assert.deepEqual(body.roots, ['0000:00']);
    assert.deepEqual(body.devices.map((d) => d.address), ['0000:00:00.0']);
    assert.equal(body.ringDepth, 64);
  });

  test('no common version: VersionMismatch, and the session stays closed to requests', () => {
    const { session } = setup();
    const [reply] = framesOf(session.receive(hello(1, 64, [2, 3])).reply);
    assert.equal(errorCode(reply), ErrorCode.VersionMismatch);
    assert.match(errorFromReply(reply).message, /frontend speaks 2, 3/);
    assert.equal(errorCode(framesOf(session.receive(read(2)).reply)[0]), ErrorCode.HelloRequired);
  });

  for (const [asked, granted] of [[1, MIN_RING_DEPTH], [31, MIN_RING_DEPTH], [100, 100], [5000, MAX_RING_DEPTH]]) {
    test(`ring depth ${asked} is clamped to ${granted}`, () => {
      const { session } = setup();
      const body = decodeJsonPayload<HelloReply>(framesOf(session.receive(hello(1, asked)).reply)[0], 'hello');
      assert.equal(body.ringDepth, granted);
    });
  }

  test('a new Hello on a live stream resets the session (new ring depth, served again)', () => {
    const { session } = setup();
    session.receive(hello(1, 64));
    const frames = framesOf(session.receive(Buffer.concat([hello(2, 40), read(3)])).reply);
    assert.equal(decodeJsonPayload<HelloReply>(frames[0], 'hello').ringDepth, 40);
    assert.equal(decodeConfigReadReply(frames[1]), 0x8086);
    assert.equal(session.ringDepth, 40);
  });

  test('a new Hello on an established session tells the backend the previous frontend is gone; the first does not', () => {
    const { session, context } = setup();
    let restarts = 0;
    context.sessionRestarted = () => { restarts++; };
    session.receive(hello(1, 64));
    assert.equal(restarts, 0);
    session.receive(hello(2, 64));
    assert.equal(restarts, 1);
  });
});

describe('batching and limits', () => {
  test('64 requests in one chunk: 64 replies in one buffer, in order', () => {
    const { session } = setup();
    session.receive(hello(1, 64));
    const chunk = Buffer.concat(Array.from({ length: 64 }, (_, i) => read(100 + i)));
    const frames = framesOf(session.receive(chunk).reply);
    assert.deepEqual(frames.map((f) => f.id), Array.from({ length: 64 }, (_, i) => 100 + i));
    assert.ok(frames.every((f) => decodeConfigReadReply(f) === 0x8086));
  });

  test('requests beyond the ring depth within one batch get LimitExceeded', () => {
    const { session } = setup();
    session.receive(hello(1, 32));
    const frames = framesOf(session.receive(Buffer.concat(Array.from({ length: 35 }, (_, i) => read(i + 1)))).reply);
    assert.equal(frames.length, 35);
    assert.ok(frames.slice(0, 32).every((f) => errorCode(f) === null));
    assert.deepEqual(frames.slice(32).map(errorCode), [ErrorCode.LimitExceeded, ErrorCode.LimitExceeded, ErrorCode.LimitExceeded]);
    // The next batch is served again.
    assert.equal(errorCode(framesOf(session.receive(read(99)).reply)[0]), null);
  });

  test('a frame split across chunks is answered when complete', () => {
    const { session } = setup();
    session.receive(hello(1));
    const bytes = read(5, 2, 2);
    assert.equal(session.receive(bytes.subarray(0, 7)).reply, null);
    assert.equal(session.pendingBytes, 7);
    const [reply] = framesOf(session.receive(bytes.subarray(7)).reply);
    assert.equal(reply.id, 5);
    assert.equal(session.pendingBytes, 0);
  });

  test('a discarded partial frame does not poison the next request', () => {
    const { session } = setup();
    session.receive(hello(1));
    session.receive(read(5).subarray(0, 20));
    assert.equal(session.discardPartial(), 20);
    const [reply] = framesOf(session.receive(read(6)).reply);
    assert.equal(reply.id, 6);
    assert.equal(decodeConfigReadReply(reply), 0x8086);
  });
});

describe('errors', () => {
  test('device errors become error replies echoing type and id', () => {
    const { session } = setup();
    session.receive(hello(1));
    const frames = framesOf(session.receive(Buffer.concat([read(1, 0x100, 4), read(2, 0, 2, parseAddress('00:01.0'))])).reply);
    assert.equal(errorCode(frames[0]), ErrorCode.InvalidOffset);
    assert.equal(errorCode(frames[1]), ErrorCode.DeviceNotFound);
    assert.match(errorFromReply(frames[1]).message, /0000:00:01\.0/);
    assert.equal(frames[1].id, 2);
    assert.equal(frames[1].flags, FrameFlags.Reply | FrameFlags.Error);
  });

  test('a bug in a device is answered OperationFailed, reported, and the session keeps serving', () => {
    const { session, bugs } = setup();
    session.receive(hello(1));
    const write = encodeRequest({ type: MessageType.ConfigWrite, id: 4, address: guest0, offset: 0, size: 2, value: 1 });
    const frames = framesOf(session.receive(Buffer.concat([write, read(5)])).reply);
    assert.equal(errorCode(frames[0]), ErrorCode.OperationFailed);
    assert.doesNotMatch(errorFromReply(frames[0]).message, /simulated bug/, 'bug details stay on the host');
    assert.match(String(bugs[0]), /simulated bug/);
    assert.equal(decodeConfigReadReply(frames[1]), 0x8086);
  });

  test('a Hello reply that cannot be built is answered OperationFailed and reported; the stream lives on', () => {
    const { session, bugs, device } = setup();
    const original = device.descriptor.bind(device);
    // A reply larger than MAX_FRAME cannot be encoded.
    device.descriptor = () => ({ ...original(), hostAddress: 'x'.repeat(MAX_FRAME) });
    const [reply] = framesOf(session.receive(hello(1)).reply);
    assert.equal(errorCode(reply), ErrorCode.OperationFailed);
    assert.equal(bugs.length, 1);
    device.descriptor = original;
    assert.equal(errorCode(framesOf(session.receive(hello(2)).reply)[0]), null);
  });

  test('undecodable frames get Malformed / NotImplemented with their own id', () => {
    const { session } = setup();
    session.receive(hello(1));
    const shortRead = encodeFrame(MessageType.ConfigRead, 0, 11, Buffer.alloc(3));
    const unknown = encodeFrame(0x55, 0, 12);
    const frames = framesOf(session.receive(Buffer.concat([shortRead, unknown, read(13)])).reply);
    assert.deepEqual(frames.map((f) => [f.id, errorCode(f)]), [[11, ErrorCode.Malformed], [12, ErrorCode.NotImplemented], [13, null]]);
  });

  test('garbage: at most one Malformed frame (type 0, id 0) per chunk, then valid requests are served', () => {
    const { session } = setup();
    session.receive(hello(1));
    const garbage = Buffer.alloc(300, 0xa5);
    const frames = framesOf(session.receive(Buffer.concat([garbage, read(1), garbage, read(2), garbage])).reply);
    const malformed = frames.filter((f) => f.id === 0);
    assert.equal(malformed.length, 1);
    assert.equal(malformed[0].type, 0);
    assert.equal(errorCode(malformed[0]), ErrorCode.Malformed);
    assert.deepEqual(frames.filter((f) => f.id !== 0).map((f) => decodeConfigReadReply(f)), [0x8086, 0x8086]);
  });

  test(`more than ${MAX_GARBAGE} bytes of garbage without a valid frame closes the stream`, () => {
    const { session } = setup();
    session.receive(hello(1));
    const chunk = Buffer.alloc(256 * 1024, 0x11);
    let closeReason: string | null = null;
    for (let i = 0; i < 5 && !closeReason; i++) closeReason = session.receive(chunk).closeReason;
    assert.match(closeReason ?? '', /garbage/);
  });

  test('Ping echoes its payload; ListDevices lists the table', () => {
    const { session } = setup();
    session.receive(hello(1));
    const ping = encodeRequest({ type: MessageType.Ping, id: 8, payload: Buffer.from('abc') } as Request);
    const list = encodeRequest({ type: MessageType.ListDevices, id: 9 });
    const frames = framesOf(session.receive(Buffer.concat([ping, list])).reply);
    assert.equal(frames[0].payload.toString(), 'abc');
    const body = decodeJsonPayload<{ devices: DeviceDescriptor[]; roots: string[] }>(frames[1], 'list');
    assert.deepEqual(body.roots, ['0000:00']);
    assert.equal(body.devices[0].vendor, 0x8086);
  });
});
