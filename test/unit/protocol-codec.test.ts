/**
 * Codec: every request type round-trips with edge values; every malformed payload class is
 * refused with the documented error code; replies, error replies and events encode and decode.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { FrameReader, encodeFrame, type Frame } from '../../src/protocol/ring/frame.js';
import {
  decodeBarReadReply,
  decodeConfigReadReply,
  decodeDeviceRemoved,
  decodeErrorPayload,
  decodeJsonPayload,
  decodeRequest,
  encodeBarReadReply,
  encodeConfigReadReply,
  encodeEmptyReply,
  encodeErrorReply,
  encodeEvent,
  encodeJsonReply,
  encodePingReply,
  encodeRequest,
  errorFromReply,
  isErrorReply,
} from '../../src/protocol/ring/codec.js';
import {
  ErrorCode,
  FrameFlags,
  HEADER_SIZE,
  MAX_FRAME,
  MessageType,
  XpciError,
  errorCodeName,
  type DeviceDescriptor,
  type Request,
} from '../../src/protocol/ring/messages.js';
import { packAddress, type PciAddress } from '../../src/pci/address.js';
import { MAX_ERROR_MESSAGE } from '../../src/protocol/ring/limits.js';

const addr = (domain: number, bus: number, device: number, fn: number): PciAddress => ({ domain, bus, device, function: fn });

/** Encode, then cut the bytes back into a frame the way a receiver does. */
function reframe(bytes: Buffer): Frame {
  const items = new FrameReader().push(bytes);
  assert.equal(items.length, 1, 'exactly one item');
  assert.ok(items[0].frame, 'a frame, not a fault');
  return items[0].frame;
}

function rawFrame(type: number, payload: number[] | Buffer, flags = 0, id = 1): Frame {
  return { type, flags, id, payload: Buffer.from(payload) };
}

function assertXpci(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof XpciError, `expected XpciError, got ${String(e)}`);
    assert.equal(e.code, code, `expected ${errorCodeName(code)}, got ${errorCodeName(e.code)}: ${e.message}`);
    if (message) assert.match(e.message, message);
    return true;
  });
}

describe('requests round-trip with edge values', () => {
  const addresses = [addr(0, 0, 0, 0), addr(0xffff, 0xff, 0x1f, 7), addr(0x1234, 0x56, 0x0a, 5)];
  const cases: Request[] = [];
  for (const address of addresses) {
    for (const offset of [0, 1, 0x3c, 0xfff, 0xffff]) {
      for (const size of [0, 1, 2, 4, 255]) {
        cases.push({ type: MessageType.ConfigRead, id: 0, address, offset, size });
        for (const value of [0, 1, 0x7fffffff, 0x80000000, 0xffffffff]) {
          cases.push({ type: MessageType.ConfigWrite, id: 0xffffffff, address, offset, size, value });
        }
      }
    }
    for (const bar of [0, 5, 6, 255]) {
      for (const offset of [0n, 1n, 0xffff_ffffn, 0x1_0000_0000n, 0xffff_ffff_ffff_ffffn]) {
        for (const size of [1, 8, 0, 255]) {
          cases.push({ type: MessageType.BarRead, id: 12345, address, bar, offset, size });
          for (const value of [0n, 0x8000_0000_0000_0000n, 0xffff_ffff_ffff_ffffn]) {
            cases.push({ type: MessageType.BarWrite, id: 2 ** 31, address, bar, offset, size, value });
          }
        }
      }
    }
  }
  cases.push({ type: MessageType.ListDevices, id: 3 });
  cases.push({ type: MessageType.Ping, id: 4, payload: Buffer.alloc(0) });
  cases.push({ type: MessageType.Ping, id: 5, payload: Buffer.alloc(MAX_FRAME - HEADER_SIZE, 0x5a) });
  cases.push({ type: MessageType.Hello, id: 6, hello: { versions: [1], ringDepth: 64 } });
  cases.push({ type: MessageType.Hello, id: 7, hello: { versions: [65535, 1, 2], ringDepth: 65535, client: 'x'.repeat(256) } });
  cases.push({ type: MessageType.Hello, id: 8, hello: { versions: Array.from({ length: 64 }, (_, i) => i + 1), ringDepth: 1, client: '' } });

  test(`${cases.length} requests decode to exactly what was encoded`, () => {
    for (const request of cases) {
      const bytes = encodeRequest(request);
      const frame = reframe(bytes);
      assert.equal(frame.flags, FrameFlags.None);
      assert.deepEqual(decodeRequest(frame), request);
    }
  });

  test('fixed payload lengths: ConfigRead 8, ConfigWrite 12, BarRead 16, BarWrite 24, ListDevices 0', () => {
    const a = addr(0, 0, 1, 0);
    const len = (r: Request): number => encodeRequest(r).length - HEADER_SIZE;
    assert.equal(len({ type: MessageType.ConfigRead, id: 1, address: a, offset: 0, size: 4 }), 8);
    assert.equal(len({ type: MessageType.ConfigWrite, id: 1, address: a, offset: 0, size: 4, value: 0 }), 12);
    assert.equal(len({ type: MessageType.BarRead, id: 1, address: a, bar: 0, offset: 0n, size: 4 }), 16);
    assert.equal(len({ type: MessageType.BarWrite, id: 1, address: a, bar: 0, offset: 0n, size: 4, value: 0n }), 24);
    assert.equal(len({ type: MessageType.ListDevices, id: 1 }), 0);
  });

  test('field placement of a BarWrite matches the documented layout', () => {
    const bytes = encodeRequest({
      type: MessageType.BarWrite, id: 0x01020304, address: addr(0xabcd, 0xef, 0x1f, 7), bar: 5, size: 8,
      offset: 0x1122_3344_5566_7788n, value: 0x99aa_bbcc_ddee_ff00n,
    });
    assert.equal(bytes.toString('hex'),
      '58504349' + '28000000' + '0500' + '0000' + '04030201' +
      'ffefcdab' + '05' + '08' + '0000' + '8877665544332211' + '00ffeeddccbbaa99');
  });

  test('reserved bytes are ignored by the decoder', () => {
    const frame = rawFrame(MessageType.ConfigRead, [8, 0, 0, 0, 0x10, 0, 4, 0xff]);
    assert.deepEqual(decodeRequest(frame), { type: MessageType.ConfigRead, id: 1, address: addr(0, 0, 1, 0), offset: 0x10, size: 4 });
    const bar = rawFrame(MessageType.BarRead, [8, 0, 0, 0, 2, 4, 0xff, 0xff, 4, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(decodeRequest(bar), { type: MessageType.BarRead, id: 1, address: addr(0, 0, 1, 0), bar: 2, size: 4, offset: 4n });
  });

  test('decoded Ping payload is a private copy (XSA-155: no re-reads of the stream buffer)', () => {
    const frame = rawFrame(MessageType.Ping, [1, 2, 3]);
    const decoded = decodeRequest(frame);
    frame.payload[0] = 99;
    assert.equal(decoded.type, MessageType.Ping);
    assert.deepEqual([...(decoded as { payload: Buffer }).payload], [1, 2, 3]);
  });
});

describe('malformed requests', () => {
  test('non-zero request flags are Malformed, whatever the type', () => {
    for (const flags of [FrameFlags.Reply, FrameFlags.Error, FrameFlags.Event, FrameFlags.Reply | FrameFlags.Error, 0x8000]) {
      assertXpci(() => decodeRequest(rawFrame(MessageType.ConfigRead, Buffer.alloc(8), flags)), ErrorCode.Malformed, /request flags must be 0/);
      assertXpci(() => decodeRequest(rawFrame(0x999, [], flags)), ErrorCode.Malformed);
    }
  });

  test('unknown types are NotImplemented, including the event types sent as requests', () => {
    for (const type of [0, 15, 0x1f, MessageType.DeviceAdded, MessageType.DeviceRemoved, MessageType.Shutdown,
      MessageType.Interrupt, MessageType.DeviceReset, 0xffff]) {
      assertXpci(() => decodeRequest(rawFrame(type, [])), ErrorCode.NotImplemented, new RegExp(`unknown request type ${type}`));
    }
  });

  const fixed: [MessageType, number][] = [
    [MessageType.ConfigRead, 8], [MessageType.ConfigWrite, 12], [MessageType.BarRead, 16],
    [MessageType.BarWrite, 24], [MessageType.ListDevices, 0], [MessageType.InterruptUnmask, 8], [MessageType.DmaMap, 24],
    [MessageType.DmaUnmap, 16], [MessageType.DmaRead, 24], [MessageType.ResetDevice, 4], [MessageType.ConfigReadBlock, 8],
  ];
  for (const [type, length] of fixed) {
    test(`${MessageType[type]}: every payload length but ${length} is Malformed`, () => {
      for (const wrong of [0, 1, length - 1, length + 1, length + 8, 100].filter((n) => n >= 0 && n !== length)) {
        assertXpci(() => decodeRequest(rawFrame(type, Buffer.alloc(wrong))), ErrorCode.Malformed,
          new RegExp(`${MessageType[type]} payload must be ${length} bytes, got ${wrong}`));
      }
      assert.doesNotThrow(() => decodeRequest(rawFrame(type, Buffer.alloc(length))));
    });
  }

  const hello = (text: string | Buffer): Frame => rawFrame(MessageType.Hello, Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8'));
  const helloCases: [string, string | Buffer, RegExp][] = [
    ['empty payload', '', /not valid JSON/],
    ['invalid JSON', '{"versions":[1],', /not valid JSON/],
    ['binary garbage', Buffer.from([0xff, 0xfe, 0x00, 0x7b]), /not valid JSON/],
    ['a NUL terminator after the object', '{"versions":[1],"ringDepth":64}\0', /not valid JSON/],
    ['JSON null', 'null', /must be a JSON object/],
    ['a JSON array', '[1,64]', /must be a JSON object/],
    ['a JSON string', '"hello"', /must be a JSON object/],
    ['a JSON number', '1', /must be a JSON object/],
    ['versions missing', '{"ringDepth":64}', /versions/],
    ['versions empty', '{"versions":[],"ringDepth":64}', /versions/],
    ['versions not an array', '{"versions":1,"ringDepth":64}', /versions/],
    ['a version of 0', '{"versions":[0],"ringDepth":64}', /versions/],
    ['a negative version', '{"versions":[-1],"ringDepth":64}', /versions/],
    ['a version of 65536', '{"versions":[65536],"ringDepth":64}', /versions/],
    ['a fractional version', '{"versions":[1.5],"ringDepth":64}', /versions/],
    ['a version as a string', '{"versions":["1"],"ringDepth":64}', /versions/],
    ['65 versions', JSON.stringify({ versions: Array.from({ length: 65 }, (_, i) => i + 1), ringDepth: 64 }), /versions/],
    ['ringDepth missing', '{"versions":[1]}', /ringDepth/],
    ['ringDepth 0', '{"versions":[1],"ringDepth":0}', /ringDepth/],
    ['ringDepth negative', '{"versions":[1],"ringDepth":-64}', /ringDepth/],
    ['ringDepth 65536', '{"versions":[1],"ringDepth":65536}', /ringDepth/],
    ['ringDepth fractional', '{"versions":[1],"ringDepth":64.5}', /ringDepth/],
    ['ringDepth as a string', '{"versions":[1],"ringDepth":"64"}', /ringDepth/],
    ['client not a string', '{"versions":[1],"ringDepth":64,"client":42}', /client/],
    ['client of 257 characters', JSON.stringify({ versions: [1], ringDepth: 64, client: 'c'.repeat(257) }), /client/],
  ];
  for (const [name, payload, message] of helloCases) {
    test(`Hello with ${name} is Malformed`, () => {
      assertXpci(() => decodeRequest(hello(payload)), ErrorCode.Malformed, message);
    });
  }

  test('Hello ignores unknown keys and keeps only the known ones', () => {
    const decoded = decodeRequest(hello('{"versions":[2,1],"ringDepth":300,"extra":{"a":1},"client":"t"}'));
    assert.deepEqual(decoded, { type: MessageType.Hello, id: 1, hello: { versions: [2, 1], ringDepth: 300, client: 't' } });
  });
});

describe('replies', () => {
  test('ConfigRead reply: u32 value, Reply flag, request type and id echoed', () => {
    for (const value of [0, 0xff, 0x10411af4, 0xffffffff]) {
      const f = reframe(encodeConfigReadReply(0xfffffffe, value));
      assert.deepEqual([f.type, f.flags, f.id, f.payload.length], [MessageType.ConfigRead, FrameFlags.Reply, 0xfffffffe, 4]);
      assert.equal(isErrorReply(f), false);
      assert.equal(decodeConfigReadReply(f), value);
    }
  });

  test('BarRead reply: u64 value across the whole range', () => {
    for (const value of [0n, 1n, 0xffff_ffffn, 0x8000_0000_0000_0000n, 0xffff_ffff_ffff_ffffn]) {
      const f = reframe(encodeBarReadReply(9, value));
      assert.deepEqual([f.type, f.flags, f.id], [MessageType.BarRead, FrameFlags.Reply, 9]);
      assert.equal(decodeBarReadReply(f), value);
    }
  });

  test('reply decoders refuse payloads of the wrong length', () => {
    for (const n of [0, 3, 5, 8]) assertXpci(() => decodeConfigReadReply(rawFrame(2, Buffer.alloc(n), 1)), ErrorCode.Malformed, /ConfigRead reply/);
    for (const n of [0, 4, 7, 9]) assertXpci(() => decodeBarReadReply(rawFrame(4, Buffer.alloc(n), 1)), ErrorCode.Malformed, /BarRead reply/);
  });

  test('empty replies for writes', () => {
    for (const type of [MessageType.ConfigWrite, MessageType.BarWrite]) {
      const f = reframe(encodeEmptyReply(type, 77));
      assert.deepEqual([f.type, f.flags, f.id, f.payload.length], [type, FrameFlags.Reply, 77, 0]);
    }
  });

  test('Ping reply echoes the payload, up to the largest frame', () => {
    const payload = Buffer.alloc(MAX_FRAME - HEADER_SIZE);
    payload.fill(0xc3);
    const f = reframe(encodePingReply(5, payload));
    assert.ok(f.payload.equals(payload));
    assert.throws(() => encodePingReply(5, Buffer.alloc(MAX_FRAME - HEADER_SIZE + 1)), RangeError);
  });

  test('JSON replies (Hello, ListDevices) decode as objects; non-objects are refused', () => {
    const body = { devices: [], roots: ['0000:00'] };
    const f = reframe(encodeJsonReply(MessageType.ListDevices, 3, body));
    assert.deepEqual([f.type, f.flags], [MessageType.ListDevices, FrameFlags.Reply]);
    assert.deepEqual(decodeJsonPayload(f, 'ListDevices reply'), body);
    assertXpci(() => decodeJsonPayload(rawFrame(6, Buffer.from('[1]'), 1), 'ListDevices reply'), ErrorCode.Malformed, /ListDevices reply payload must be a JSON object/);
    assertXpci(() => decodeJsonPayload(rawFrame(1, Buffer.from('{'), 1), 'Hello reply'), ErrorCode.Malformed, /Hello reply payload is not valid JSON/);
  });
});

describe('error replies', () => {
  test('layout: u16 code, u16 0, i32 errno, UTF-8 text; flags Reply|Error', () => {
    const bytes = encodeErrorReply(MessageType.ConfigRead, 7, { code: ErrorCode.OperationFailed, errno: 5, message: 'EIO' });
    assert.equal(bytes.toString('hex'), '58504349' + '1b000000' + '0200' + '0300' + '07000000' + '0700' + '0000' + '05000000' + '45494f');
    const f = reframe(bytes);
    assert.equal(isErrorReply(f), true);
    assert.deepEqual(decodeErrorPayload(f.payload), { code: ErrorCode.OperationFailed, errno: 5, message: 'EIO' });
    const e = errorFromReply(f);
    assert.ok(e instanceof XpciError);
    assert.deepEqual([e.code, e.errno, e.message], [ErrorCode.OperationFailed, 5, 'EIO']);
  });

  test('every error code survives the round trip, negative errno too', () => {
    for (const code of Object.values(ErrorCode).filter((v): v is ErrorCode => typeof v === 'number')) {
      const f = reframe(encodeErrorReply(0, 0, { code, errno: -22, message: `code ${code}` }));
      assert.deepEqual(decodeErrorPayload(f.payload), { code, errno: -22, message: `code ${code}` });
    }
  });

  test('an empty message is allowed; an error payload shorter than 8 bytes is Malformed', () => {
    const f = reframe(encodeErrorReply(2, 1, { code: ErrorCode.Busy, errno: 0, message: '' }));
    assert.equal(f.payload.length, 8);
    assert.equal(decodeErrorPayload(f.payload).message, '');
    for (const n of [0, 1, 4, 7]) {
      assertXpci(() => decodeErrorPayload(Buffer.alloc(n)), ErrorCode.Malformed, new RegExp(`error payload of ${n} bytes`));
      assertXpci(() => errorFromReply(rawFrame(2, Buffer.alloc(n), FrameFlags.Reply | FrameFlags.Error)), ErrorCode.Malformed);
    }
  });

  test(`the text is cut to ${MAX_ERROR_MESSAGE} UTF-8 bytes on a character boundary`, () => {
    const ascii = reframe(encodeErrorReply(2, 1, { code: ErrorCode.Malformed, errno: 0, message: 'a'.repeat(5000) }));
    assert.equal(ascii.payload.length, 8 + MAX_ERROR_MESSAGE);
    // 3-byte characters: 1024 is not a multiple of 3, so the cut must back off to 1023.
    const wide = reframe(encodeErrorReply(2, 1, { code: ErrorCode.Malformed, errno: 0, message: '€'.repeat(1000) }));
    const text = decodeErrorPayload(wide.payload).message;
    assert.equal(Buffer.byteLength(text), 1023);
    assert.equal(text, '€'.repeat(341));
    // 4-byte characters (surrogate pairs in JS): never half a pair.
    const emoji = reframe(encodeErrorReply(2, 1, { code: ErrorCode.Malformed, errno: 0, message: '😀'.repeat(600) }));
    assert.equal(decodeErrorPayload(emoji.payload).message, '😀'.repeat(256));
  });

  test('errorCodeName names known codes and marks unknown ones', () => {
    assert.equal(errorCodeName(ErrorCode.AccessDenied), 'AccessDenied');
    assert.equal(errorCodeName(999), 'Unknown(999)');
  });
});

describe('events', () => {
  const descriptor: DeviceDescriptor = {
    address: '0000:00:01.0', vendor: 0x1af4, device: 0x1041, classCode: 0x020000, revision: 1, headerType: 0,
    configSize: 4096, readOnly: false, permissive: false,
    bars: [{ index: 0, kind: 'mem', is64: true, prefetchable: true, size: 0x4000 }],
  };

  test('DeviceAdded: JSON descriptor, Event flag, id 0', () => {
    const f = reframe(encodeEvent(MessageType.DeviceAdded, descriptor));
    assert.deepEqual([f.type, f.flags, f.id], [MessageType.DeviceAdded, FrameFlags.Event, 0]);
    assert.deepEqual(decodeJsonPayload<DeviceDescriptor>(f, 'DeviceAdded'), descriptor);
  });

  test('DeviceRemoved: 4-byte packed address', () => {
    for (const a of [addr(0, 0, 0, 2), addr(0xffff, 0xff, 0x1f, 7)]) {
      const f = reframe(encodeEvent(MessageType.DeviceRemoved, a));
      assert.deepEqual([f.type, f.flags, f.id, f.payload.length], [MessageType.DeviceRemoved, FrameFlags.Event, 0, 4]);
      assert.equal(f.payload.readUInt32LE(0), packAddress(a));
      assert.deepEqual(decodeDeviceRemoved(f), a);
    }
    assertXpci(() => decodeDeviceRemoved(rawFrame(MessageType.DeviceRemoved, [1, 2, 3], FrameFlags.Event)), ErrorCode.Malformed);
  });

  test('Shutdown: JSON reason', () => {
    const f = reframe(encodeEvent(MessageType.Shutdown, { reason: 'SIGTERM' }));
    assert.deepEqual([f.type, f.flags, f.id], [MessageType.Shutdown, FrameFlags.Event, 0]);
    assert.deepEqual(decodeJsonPayload(f, 'Shutdown'), { reason: 'SIGTERM' });
  });
});

test('a request encoded by the frontend and its reply share one FrameReader stream cleanly', () => {
  // Replies may be batched: several reply frames and an event concatenated into one write.
  const batch = Buffer.concat([
    encodeConfigReadReply(1, 0x1234),
    encodeEvent(MessageType.DeviceRemoved, addr(0, 0, 3, 0)),
    encodeErrorReply(MessageType.ConfigRead, 2, { code: ErrorCode.DeviceNotFound, errno: 0, message: 'no device 0000:00:04.0' }),
    encodeEmptyReply(MessageType.ConfigWrite, 3),
  ]);
  const frames = new FrameReader().push(batch).map((i) => i.frame).filter((f): f is Frame => f !== undefined);
  assert.deepEqual(frames.map((f) => [f.type, f.flags, f.id]), [
    [MessageType.ConfigRead, FrameFlags.Reply, 1],
    [MessageType.DeviceRemoved, FrameFlags.Event, 0],
    [MessageType.ConfigRead, FrameFlags.Reply | FrameFlags.Error, 2],
    [MessageType.ConfigWrite, FrameFlags.Reply, 3],
  ]);
  assert.equal(decodeConfigReadReply(frames[0]), 0x1234);
  assert.equal(errorFromReply(frames[2]).code, ErrorCode.DeviceNotFound);
});

test('encodeFrame builds frames for arbitrary types (used for raw test traffic)', () => {
  const f = reframe(encodeFrame(0xbeef, 0, 1, Buffer.from([1])));
  assert.equal(f.type, 0xbeef);
});
