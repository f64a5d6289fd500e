/**
 * FrameReader: every way a byte stream can go wrong before a frame is even decoded (garbage,
 * split magic, corrupt lengths, truncation, fragmentation), plus a property test that valid frames
 * interleaved with magic-free garbage always come out whole and in order.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { FrameReader, encodeFrame, writeHeader, type Frame, type FrameFault, type ReadItem } from '../../src/protocol/ring/frame.js';
import { HEADER_SIZE, MAGIC, MAX_FRAME } from '../../src/protocol/ring/messages.js';
import { Random, seedFromEnv } from '../support/fuzz-random.js';

const MAGIC_BYTES = Buffer.from([0x58, 0x50, 0x43, 0x49]);

const framesOf = (items: ReadItem[]): Frame[] => items.flatMap((i) => (i.frame ? [i.frame] : []));
const faultsOf = (items: ReadItem[]): FrameFault[] => items.flatMap((i) => (i.fault ? [i.fault] : []));

function frame(type: number, id: number, payload: number[] | Buffer = []): Buffer {
  return encodeFrame(type, 0, id, Buffer.from(payload));
}

/** A header with an arbitrary (possibly invalid) length field and no payload behind it. */
function rawHeader(length: number, type = 2, id = 1): Buffer {
  const header = Buffer.alloc(HEADER_SIZE);
  header.writeUInt32LE(MAGIC, 0);
  header.writeUInt32LE(length >>> 0, 4);
  header.writeUInt16LE(type, 8);
  header.writeUInt32LE(id, 12);
  return header;
}

function pushAll(reader: FrameReader, chunks: Buffer[]): ReadItem[] {
  return chunks.flatMap((c) => reader.push(c));
}

describe('FrameReader: well-formed streams', () => {
  test('the magic is "XPCI" on the wire and the header is little-endian', () => {
    const f = encodeFrame(0x1234, 0x0003, 0xdeadbeef, Buffer.from([9, 8, 7]));
    assert.deepEqual([...f.subarray(0, 4)], [0x58, 0x50, 0x43, 0x49]);
    assert.equal(f.subarray(0, 4).toString('latin1'), 'XPCI');
    assert.deepEqual([...f.subarray(4, 16)], [19, 0, 0, 0, 0x34, 0x12, 0x03, 0x00, 0xef, 0xbe, 0xad, 0xde]);
    assert.deepEqual([...f.subarray(16)], [9, 8, 7]);
  });

  test('several frames in one chunk come out in order with their fields', () => {
    const r = new FrameReader();
    const items = r.push(Buffer.concat([frame(2, 1, [1, 2]), frame(3, 2), frame(7, 0xffffffff, [5])]));
    assert.equal(faultsOf(items).length, 0);
    assert.deepEqual(framesOf(items).map((f) => [f.type, f.flags, f.id, [...f.payload]]), [
      [2, 0, 1, [1, 2]], [3, 0, 2, []], [7, 0, 0xffffffff, [5]],
    ]);
    assert.equal(r.pending, 0);
  });

  test('a frame of exactly MAX_FRAME bytes is accepted', () => {
    const payload = Buffer.alloc(MAX_FRAME - HEADER_SIZE, 0xa5);
    const items = new FrameReader().push(frame(7, 3, payload));
    assert.equal(framesOf(items).length, 1);
    assert.equal(framesOf(items)[0].payload.length, MAX_FRAME - HEADER_SIZE);
  });

  test('encodeFrame refuses a frame longer than MAX_FRAME', () => {
    assert.throws(() => encodeFrame(7, 0, 1, Buffer.alloc(MAX_FRAME - HEADER_SIZE + 1)), RangeError);
  });

  test('handed-out payloads are never overwritten by later input', () => {
    const r = new FrameReader();
    const first = framesOf(r.push(Buffer.concat([frame(7, 1, [1, 1, 1, 1]), frame(7, 2, [2, 2]).subarray(0, 10)])));
    assert.equal(first.length, 1);
    // Feed the rest of frame 2 byte by byte, then many more frames: the reader grows and compacts.
    const rest = Buffer.concat([frame(7, 2, [2, 2]).subarray(10), ...Array.from({ length: 50 }, (_, i) => frame(7, 3 + i, [i, i, i]))]);
    const later: Frame[] = [];
    for (const byte of rest) later.push(...framesOf(r.push(Buffer.from([byte]))));
    assert.equal(later.length, 51);
    assert.deepEqual([...first[0].payload], [1, 1, 1, 1]);
    assert.deepEqual([...later[0].payload], [2, 2]);
    assert.deepEqual(later.slice(1).map((f) => [...f.payload]), Array.from({ length: 50 }, (_, i) => [i, i, i]));
  });
});

describe('FrameReader: bad magic', () => {
  test('leading garbage is skipped and reported once, then the frame is read', () => {
    const r = new FrameReader();
    const items = r.push(Buffer.concat([Buffer.from('hello, garbage!'), frame(2, 5, [1, 2, 3, 4, 5, 6, 7, 8])]));
    assert.equal(items.length, 2);
    assert.deepEqual(items[0].fault, { reason: 'bad-magic', skipped: 15, detail: 'bytes without the frame magic' });
    assert.equal(items[1].frame?.id, 5);
  });

  test('garbage between frames: the fault sits between the two frames it separates', () => {
    const items = new FrameReader().push(Buffer.concat([frame(2, 1), Buffer.alloc(40, 0xee), frame(2, 2)]));
    assert.deepEqual(items.map((i) => (i.frame ? `frame ${i.frame.id}` : `${i.fault?.reason} ${i.fault?.skipped}`)), [
      'frame 1', 'bad-magic 40', 'frame 2',
    ]);
  });

  test('garbage holding a partial magic (58 50 43 but not 49) is still skipped', () => {
    const garbage = Buffer.from([0x58, 0x50, 0x43, 0x00, 0x58, 0x50, 0x58, 0x50, 0x43]);
    const items = new FrameReader().push(Buffer.concat([garbage, frame(6, 9)]));
    assert.equal(faultsOf(items).reduce((n, f) => n + f.skipped, 0), garbage.length);
    assert.deepEqual(framesOf(items).map((f) => f.id), [9]);
  });

  test('garbage alone leaves at most 3 bytes pending (a possible split magic)', () => {
    const r = new FrameReader();
    const items = r.push(Buffer.alloc(1000, 0x11));
    assert.deepEqual(faultsOf(items), [{ reason: 'bad-magic', skipped: 997, detail: 'bytes without the frame magic' }]);
    assert.equal(r.pending, 3);
    assert.equal(framesOf(r.push(frame(2, 4))).length, 1);
  });

  test('magic split across chunks at every position', () => {
    const whole = Buffer.concat([Buffer.from([0x00, 0x58, 0x50]), frame(2, 77, [1, 2, 3, 4, 5, 6, 7, 8])]);
    for (let cut = 1; cut < 10; cut++) {
      const r = new FrameReader();
      const items = pushAll(r, [whole.subarray(0, cut), whole.subarray(cut)]);
      assert.deepEqual(framesOf(items).map((f) => f.id), [77], `cut at ${cut}`);
      assert.equal(faultsOf(items).reduce((n, f) => n + f.skipped, 0), 3, `cut at ${cut}`);
    }
  });

  test('the magic itself split 1+3, 2+2, 3+1 after a long garbage run', () => {
    const f = frame(3, 12, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    for (const split of [1, 2, 3]) {
      const r = new FrameReader();
      const first = r.push(Buffer.concat([Buffer.alloc(100, 0x20), f.subarray(0, split)]));
      assert.equal(framesOf(first).length, 0);
      assert.ok(r.pending <= 3);
      const second = r.push(f.subarray(split));
      assert.deepEqual(framesOf(second).map((x) => x.id), [12], `split ${split}`);
    }
  });
});

describe('FrameReader: bad length', () => {
  for (const length of [0, 1, 15]) {
    test(`length ${length} (< 16): magic skipped, the next frame recovered`, () => {
      const items = new FrameReader().push(Buffer.concat([rawHeader(length), frame(2, 8)]));
      const faults = faultsOf(items);
      assert.equal(faults[0].reason, 'bad-length');
      assert.equal(faults[0].skipped, 4);
      assert.match(faults[0].detail, new RegExp(`frame length ${length} outside 16\\.\\.${MAX_FRAME}`));
      // The other 12 header bytes are garbage without a magic.
      assert.deepEqual(faults.slice(1), [{ reason: 'bad-magic', skipped: 12, detail: 'bytes without the frame magic' }]);
      assert.deepEqual(framesOf(items).map((f) => f.id), [8]);
    });
  }

  for (const length of [MAX_FRAME + 1, 0x7fffffff, 0xffffffff]) {
    test(`length ${length} (> MAX_FRAME) is never buffered`, () => {
      const r = new FrameReader();
      const items = r.push(Buffer.concat([rawHeader(length), frame(2, 9)]));
      assert.equal(faultsOf(items)[0].reason, 'bad-length');
      assert.deepEqual(framesOf(items).map((f) => f.id), [9]);
      assert.equal(r.pending, 0);
    });
  }

  test('a bad header whose remaining bytes hold a magic resyncs on that magic', () => {
    // The corrupt header's 12 trailing bytes are replaced by the start of a real frame.
    const good = frame(2, 33, [1, 2, 3, 4, 5, 6, 7, 8]);
    const items = new FrameReader().push(Buffer.concat([rawHeader(3).subarray(0, 8), good]));
    assert.deepEqual(items.map((i) => i.frame?.id ?? i.fault?.reason), ['bad-length', 'bad-magic', 33]);
  });

  test('a smaller maxFrame is honoured', () => {
    const r = new FrameReader(64);
    const items = r.push(Buffer.concat([frame(7, 1, Buffer.alloc(49)), frame(7, 2, Buffer.alloc(48))]));
    assert.equal(faultsOf(items)[0].reason, 'bad-length');
    assert.deepEqual(framesOf(items).map((f) => f.id), [2]);
  });
});

describe('FrameReader: truncation and fragmentation', () => {
  test('a truncated frame waits, then discardPartial drops it and the stream continues', () => {
    const r = new FrameReader();
    const f = frame(5, 1, Buffer.alloc(24, 0x77));
    assert.deepEqual(r.push(f.subarray(0, 30)), []);
    assert.equal(r.pending, 30);
    assert.deepEqual(r.push(Buffer.alloc(0)), []);
    assert.equal(r.pending, 30);
    assert.equal(r.discardPartial(), 30);
    assert.equal(r.pending, 0);
    assert.equal(r.discardPartial(), 0);
    assert.deepEqual(framesOf(r.push(frame(2, 2))).map((x) => x.id), [2]);
  });

  test('a truncated header (magic + fewer than 12 bytes) waits too', () => {
    const r = new FrameReader();
    assert.deepEqual(r.push(frame(2, 3).subarray(0, 9)), []);
    assert.equal(r.pending, 9);
  });

  test('without discardPartial, a new frame after a dead partial is absorbed as its body', () => {
    // Why the backend needs the idle-discard rule (docs/protocol.md §9): the reader cannot tell.
    const r = new FrameReader();
    r.push(frame(7, 1, Buffer.alloc(40)).subarray(0, 20));
    const items = r.push(frame(2, 2));
    assert.equal(framesOf(items).length, 0);
    assert.equal(r.pending, 20 + HEADER_SIZE, 'both frames held: the dead one still wants 36 more bytes');
  });

  test('1-byte fragmentation of a whole session gives the same frames as one chunk', () => {
    const session = Buffer.concat([
      Buffer.from('junk'), frame(1, 1, Buffer.from('{"versions":[1],"ringDepth":64}')),
      frame(2, 2, [8, 0, 0, 0, 0, 0, 4, 0]), rawHeader(5), frame(3, 3, Buffer.alloc(12)),
      Buffer.alloc(7, 0x49), frame(4, 4, Buffer.alloc(16)), frame(5, 5, Buffer.alloc(24)), frame(6, 6), frame(7, 7, Buffer.alloc(300, 1)),
    ]);
    const whole = new FrameReader().push(session);
    const r = new FrameReader();
    const pieces: ReadItem[] = [];
    for (let i = 0; i < session.length; i++) pieces.push(...r.push(session.subarray(i, i + 1)));
    const summary = (items: ReadItem[]): string[] => framesOf(items).map((f) => `${f.type}/${f.id}/${f.payload.toString('hex')}`);
    assert.deepEqual(summary(pieces), summary(whole));
    assert.equal(framesOf(pieces).length, 7);
    const skipped = (items: ReadItem[]): number => faultsOf(items).reduce((n, f) => n + f.skipped, 0);
    assert.equal(skipped(pieces), skipped(whole));
    assert.equal(skipped(whole), 4 + HEADER_SIZE + 7);
    assert.equal(r.pending, 0);
  });

  test('a large frame split across chunks is assembled in one buffer of its own length', () => {
    const big = frame(12, 1, Buffer.alloc(65536 + 24, 0x5a));
    const small = frame(1, 2, [7]);
    const stream = Buffer.concat([small, big, small]);
    const reader = new FrameReader();
    // As a socket delivers it: 64 KiB reads; the second frame starts in the first read.
    const frames = framesOf([...reader.push(stream.subarray(0, 65536)), ...reader.push(stream.subarray(65536))]);
    assert.deepEqual(frames.map((f) => f.id), [2, 1, 2]);
    assert.ok(frames[1].payload.equals(big.subarray(HEADER_SIZE)));
    assert.equal(frames[1].payload.buffer.byteLength, big.length, 'sized from the header, not doubled');
  });

  test('a maximal frame delivered one byte at a time arrives intact', () => {
    const payload = Buffer.alloc(MAX_FRAME - HEADER_SIZE);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
    const f = frame(7, 42, payload);
    const r = new FrameReader();
    const out: Frame[] = [];
    for (let i = 0; i < f.length; i++) out.push(...framesOf(r.push(f.subarray(i, i + 1))));
    assert.equal(out.length, 1);
    assert.ok(out[0].payload.equals(payload));
  });
});

describe('FrameReader: property', () => {
  /** Garbage that can never contain the magic, even joined to its neighbours (no 0x58 byte). */
  function magicFreeGarbage(rng: Random, n: number): Buffer {
    const out = rng.bytes(n);
    for (let i = 0; i < n; i++) if (out[i] === 0x58) out[i] = 0x59;
    return out;
  }

  test('random valid frames interleaved with magic-free garbage are all recovered in order', () => {
    const seed = seedFromEnv(0x5eed_f00d);
    const rng = new Random(seed);
    for (let round = 0; round < 200; round++) {
      const expected: Frame[] = [];
      const parts: Buffer[] = [];
      let garbageBytes = 0;
      const count = rng.int(1, 30);
      for (let i = 0; i < count; i++) {
        if (rng.chance(0.5)) {
          const g = magicFreeGarbage(rng, rng.int(1, 200));
          garbageBytes += g.length;
          parts.push(g);
        }
        const payload = rng.chance(0.05) ? rng.bytes(rng.int(0, 4000)) : rng.bytes(rng.int(0, 40));
        const f: Frame = { type: rng.int(0, 0xffff), flags: rng.int(0, 0xffff), id: rng.u32(), payload };
        expected.push(f);
        parts.push(encodeFrame(f.type, f.flags, f.id, payload));
      }
      const stream = Buffer.concat(parts);
      // Cut the stream at random points, including 1-byte chunks and the empty chunk.
      const r = new FrameReader();
      const items: ReadItem[] = [];
      for (let at = 0; at < stream.length;) {
        const n = rng.pick([0, 1, 1, 2, 3, 5, 16, 17, rng.int(1, 300), rng.int(1, 5000)]);
        items.push(...r.push(stream.subarray(at, at + n)));
        at += n;
      }
      const got = framesOf(items);
      const where = `seed ${seed} (XPCI_SEED=${seed}), round ${round}`;
      assert.equal(got.length, expected.length, where);
      got.forEach((f, i) => {
        const e = expected[i];
        assert.deepEqual([f.type, f.flags, f.id], [e.type, e.flags, e.id], where);
        assert.ok(f.payload.equals(e.payload), where);
      });
      assert.equal(faultsOf(items).every((f) => f.reason === 'bad-magic'), true, where);
      assert.equal(faultsOf(items).reduce((n, f) => n + f.skipped, 0), garbageBytes, where);
      assert.equal(r.pending, 0, where);
    }
  });
});

test('writeHeader writes the header at an offset inside a larger buffer', () => {
  const buf = Buffer.alloc(40, 0xff);
  writeHeader(buf, 8, 20, 2, 1, 0x1_0000_0007);
  assert.ok(buf.subarray(8, 12).equals(MAGIC_BYTES));
  assert.equal(buf.readUInt32LE(12), 20);
  assert.equal(buf.readUInt16LE(16), 2);
  assert.equal(buf.readUInt16LE(18), 1);
  assert.equal(buf.readUInt32LE(20), 7, 'ids are taken modulo 2^32');
  assert.equal(buf[7], 0xff);
  assert.equal(buf[24], 0xff);
});
