/**
 * The whole-device messages (interrupts, DMA windows, reset): every request survives an
 * encode/decode round trip, and the decoder refuses what the wire cannot mean.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame } from '../../src/protocol/ring/frame.js';
import { DMA_WRITE_HEAD, decodeRequest, encodeRequest, writeDmaWriteHead } from '../../src/protocol/ring/codec.js';
import {
  DMA_TRANSFER,
  decodeDeviceResetEvent,
  decodeDmaMapReply,
  decodeInterruptEvent,
  encodeDeviceResetEvent,
  encodeDmaMapReply,
  encodeInterruptEvent,
} from '../../src/protocol/ring/device-ops-codec.js';
import { FrameReader, type Frame } from '../../src/protocol/ring/frame.js';
import { ErrorCode, HEADER_SIZE, MessageType, XpciError, type Request } from '../../src/protocol/ring/messages.js';

const address = { domain: 0, bus: 0, device: 3, function: 1 };

function frameOf(bytes: Buffer): Frame {
  const [item] = new FrameReader().push(bytes);
  assert.ok(item.frame);
  return item.frame;
}

function assertMalformed(payload: Buffer, type: MessageType, pattern: RegExp): void {
  assert.throws(() => decodeRequest(frameOf(encodeFrame(type, 0, 9, payload))),
    (error: unknown) => error instanceof XpciError && error.code === ErrorCode.Malformed && pattern.test(error.message));
}

describe('whole-device requests', () => {
  const requests: Request[] = [
    { type: MessageType.InterruptUnmask, id: 3, address, kind: 'intx', vector: 0 },
    { type: MessageType.InterruptUnmask, id: 3, address, kind: 'msix', vector: 2047 },
    { type: MessageType.DmaMap, id: 4, address, size: 0x2000n },
    { type: MessageType.DmaMap, id: 4, address, size: 0x1000n, iova: 0xffff_f000n },
    { type: MessageType.DmaUnmap, id: 5, address, iova: 0x10_0000n },
    { type: MessageType.DmaRead, id: 6, address, iova: 0x10_0000n, offset: 0xffn, length: 4096 },
    { type: MessageType.DmaWrite, id: 7, address, iova: 0x10_0000n, offset: 1n, data: Buffer.from([1, 2, 3]) },
    { type: MessageType.ResetDevice, id: 8, address },
  ];
  for (const request of requests) {
    test(`${MessageType[request.type]} round trip (${JSON.stringify(request, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))})`, () => {
      assert.deepEqual(decodeRequest(frameOf(encodeRequest(request))), request);
    });
  }

  test('an unknown interrupt kind is Malformed', () => {
    const payload = encodeRequest(requests[0]).subarray(HEADER_SIZE);
    payload[4] = 3;
    assertMalformed(payload, MessageType.InterruptUnmask, /interrupt kind 3/);
  });

  test('DmaMap flags other than bit 0 are Malformed', () => {
    const payload = encodeRequest(requests[2]).subarray(HEADER_SIZE);
    payload.writeUInt32LE(2, 4);
    assertMalformed(payload, MessageType.DmaMap, /unknown bits/);
  });

  test('a DmaWrite whose length field disagrees with its data is Malformed', () => {
    const payload = Buffer.from(encodeRequest(requests[6]).subarray(HEADER_SIZE));
    payload.writeUInt32LE(4, DMA_TRANSFER.length);
    assertMalformed(payload, MessageType.DmaWrite, /does not hold 24 \+ length 4/);
    assertMalformed(Buffer.alloc(10), MessageType.DmaWrite, /at least 24 bytes/);
  });

  test('the decoded DmaWrite data is a view of the frame, which later chunks never overwrite', () => {
    const first = encodeRequest(requests[6]);
    const second = encodeRequest({ ...requests[6], id: 9, data: Buffer.from([4, 5, 6, 7]) } as Request);
    const stream = Buffer.concat([first, second, first]);
    const reader = new FrameReader();
    const cut = first.length + 10;
    const [head] = reader.push(stream.subarray(0, cut));
    const decoded = decodeRequest(head.frame!) as Extract<Request, { type: MessageType.DmaWrite }>;
    assert.equal(decoded.data.buffer, head.frame!.payload.buffer, 'no copy');
    const rest = reader.push(stream.subarray(cut, cut + 5)).concat(reader.push(stream.subarray(cut + 5)));
    assert.deepEqual([...decoded.data], [1, 2, 3]);
    assert.deepEqual(rest.map((item) => [...(decodeRequest(item.frame!) as { data: Buffer }).data]), [[4, 5, 6, 7], [1, 2, 3]]);
  });

  test("writeDmaWriteHead: the frame up to the data; with the data after it, encodeRequest's bytes", () => {
    const data = Buffer.from(Array.from({ length: 5000 }, (_, i) => i & 0xff));
    const request = { type: MessageType.DmaWrite, id: 11, address, iova: 0x20_0000n, offset: 64n, data } as const;
    const target = Buffer.alloc(DMA_WRITE_HEAD + 3, 0xcc);
    assert.equal(writeDmaWriteHead(target, 3, request), DMA_WRITE_HEAD + 3);
    assert.deepEqual(Buffer.concat([target.subarray(3), data]), encodeRequest(request));
    assert.throws(() => writeDmaWriteHead(target, 4, request), RangeError);
  });
});

describe('whole-device replies and events', () => {
  test('DmaMap reply carries the IOVA', () => {
    assert.equal(decodeDmaMapReply(frameOf(encodeDmaMapReply(1, 0x1234_5000n))), 0x1234_5000n);
  });

  test('Interrupt event round trip, count saturating at 32 bits', () => {
    for (const record of [{ kind: 'intx', vector: 0, count: 1 }, { kind: 'msi', vector: 31, count: 7 }, { kind: 'msix', vector: 2047, count: 2 ** 32 - 1 }] as const) {
      assert.deepEqual(decodeInterruptEvent(frameOf(encodeInterruptEvent(address, record))), { address, record });
    }
    assert.equal(decodeInterruptEvent(frameOf(encodeInterruptEvent(address, { kind: 'msi', vector: 0, count: 2 ** 40 }))).record.count, 2 ** 32 - 1);
  });

  test('DeviceReset event carries the address', () => {
    assert.deepEqual(decodeDeviceResetEvent(frameOf(encodeDeviceResetEvent(address))), address);
  });
});
