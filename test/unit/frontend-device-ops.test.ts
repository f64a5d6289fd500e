/**
 * The frontend library's whole-device surface against the mini backend over a real Unix socket:
 * DMA windows (reads and writes split into MAX_DMA_TRANSFER ops, in order), interrupts (the
 * 'interrupt' event, waitForInterrupt taking queued and future records, timeouts), reset events.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { constants as osConstants } from 'node:os';
import { connect } from '../../src/frontend/index.js';
import { parseAddress } from '../../src/pci/address.js';
import { encodeDeviceResetEvent, encodeInterruptEvent, MAX_DMA_TRANSFER } from '../../src/protocol/ring/device-ops-codec.js';
import { ErrorCode, MessageType, XpciError, type InterruptRecord, type Request } from '../../src/protocol/ring/messages.js';
import { buildConfigImage } from '../support/fixture-sysfs.js';
import { MiniBackend } from '../support/mini-backend.js';

const EDU = parseAddress('00:00.0');

async function withBackend(body: (backend: MiniBackend, requests: Request[]) => Promise<void>): Promise<void> {
  const requests: Request[] = [];
  const backend = await MiniBackend.start({
    devices: [{ address: '00:00.0', config: buildConfigImage({ vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00 }) }],
    handle: (request, reply) => { requests.push(request); return reply; },
  });
  try {
    await body(backend, requests);
  } finally {
    await backend.close();
  }
}

describe('frontend whole-device API', () => {
  test('mapDma: a window with its IOVA; large reads and writes are split at MAX_DMA_TRANSFER; unmap', async () => {
    await withBackend(async (backend, requests) => {
      const client = await connect(backend.path);
      const device = client.remoteDevice(EDU);
      const size = 4096 * 64; // 256 KiB: several ops each way
      const window = await device.mapDma(size);
      assert.equal(typeof window.iova, 'bigint');
      assert.equal(window.size, size);
      const pattern = Buffer.alloc(size);
      for (let i = 0; i < size; i++) pattern[i] = (i * 7) & 0xff;
      await window.write(0, pattern);
      assert.ok(backend.dmaWindows.get(window.iova)!.equals(pattern));
      const writes = requests.filter((r) => r.type === MessageType.DmaWrite);
      const op = client.maxDmaTransfer;
      assert.ok(op <= MAX_DMA_TRANSFER && op === client.maxFrame - 16 - 24);
      const expected = Array.from({ length: Math.ceil(size / op) }, (_, i) => Math.min(op, size - i * op));
      assert.deepEqual(writes.map((r) => (r as { data: Buffer }).data.length), expected);
      assert.ok((await window.read(0, size)).equals(pattern));
      assert.ok((await window.read(100, 3)).equals(pattern.subarray(100, 103)));
      await assert.rejects(window.read(size - 1, 2), (e: unknown) => e instanceof XpciError && e.code === ErrorCode.InvalidOffset);
      const fixed = await device.mapDma(4096, { iova: 0x4000_0000n });
      assert.equal(fixed.iova, 0x4000_0000n);
      await window.unmap();
      assert.equal(backend.dmaWindows.has(window.iova), false);
      await assert.rejects(window.write(0, Buffer.from([1])), /unmapped/);
      await client.close();
    });
  });

  test('a large window write leaves from the caller\'s buffer between the requests of the same turn, in order', async () => {
    await withBackend(async (backend, requests) => {
      const client = await connect(backend.path);
      const device = client.remoteDevice(EDU);
      const window = await device.mapDma(0x20000);
      const pattern = Buffer.from(Array.from({ length: 0x8000 }, (_, i) => (i * 13) & 0xff));
      assert.ok(client.maxDmaTransfer >= pattern.length, 'one op');
      requests.length = 0;
      const [vendor] = await Promise.all([
        device.read(0x00, 2),
        window.write(0x100, pattern),
        device.write(0x0c, 1, 0x10),
        window.write(0x1000, Buffer.from([9, 8, 7])),
        device.read(0x0c, 1),
      ]);
      assert.equal(vendor, 0x1234);
      const memory = backend.dmaWindows.get(window.iova)!;
      assert.ok(memory.subarray(0x100, 0x100 + pattern.length).equals(Buffer.concat([pattern.subarray(0, 0xf00), Buffer.from([9, 8, 7]), pattern.subarray(0xf03)])));
      assert.deepEqual(requests.map((r) => MessageType[r.type]), ['ConfigRead', 'DmaWrite', 'ConfigWrite', 'DmaWrite', 'ConfigRead']);
      await client.close();
    });
  });

  test("interrupts: the 'interrupt' event, waitForInterrupt takes queued and future records by kind and vector", async () => {
    await withBackend(async (backend) => {
      const client = await connect(backend.path);
      const device = client.remoteDevice(EDU);
      const seen: [string, InterruptRecord][] = [];
      client.on('interrupt', (address, record) => seen.push([`${address.device}.${address.function}`, record]));
      backend.writeRaw(Buffer.concat([
        encodeInterruptEvent(EDU, { kind: 'msix', vector: 1, count: 1 }),
        encodeInterruptEvent(EDU, { kind: 'msix', vector: 2, count: 3 }),
      ]));
      assert.deepEqual(await device.waitForInterrupt({ vector: 2, timeoutMs: 2000 }), { kind: 'msix', vector: 2, count: 3 });
      const later = device.waitForInterrupt({ kind: 'intx', timeoutMs: 2000 });
      backend.writeRaw(encodeInterruptEvent(EDU, { kind: 'intx', vector: 0, count: 1 }));
      assert.deepEqual(await later, { kind: 'intx', vector: 0, count: 1 });
      assert.deepEqual(await device.waitForInterrupt({ timeoutMs: 2000 }), { kind: 'msix', vector: 1, count: 1 }, 'the queued one is still there');
      assert.equal(seen.length, 3);
      const timedOut = await device.waitForInterrupt({ kind: 'msi', timeoutMs: 50 }).then(() => undefined, (e: unknown) => e);
      assert.ok(timedOut instanceof XpciError && timedOut.errno === osConstants.errno.ETIMEDOUT, String(timedOut));
      await device.unmaskInterrupt();
      await client.close();
    });
  });

  test('a DeviceReset event is emitted and drops interrupts queued before it; reset() sends ResetDevice', async () => {
    await withBackend(async (backend, requests) => {
      const client = await connect(backend.path);
      const device = client.remoteDevice(EDU);
      backend.writeRaw(encodeInterruptEvent(EDU, { kind: 'intx', vector: 0, count: 1 }));
      const reset = once(client, 'deviceReset');
      backend.writeRaw(encodeDeviceResetEvent(EDU));
      assert.deepEqual((await reset)[0], EDU);
      await assert.rejects(device.waitForInterrupt({ timeoutMs: 50 }), /within 50 ms/);
      await device.reset();
      assert.equal(requests.at(-1)?.type, MessageType.ResetDevice);
      await client.close();
    });
  });

  test('a wait pending when the session ends rejects', async () => {
    await withBackend(async (backend) => {
      const client = await connect(backend.path);
      const wait = client.remoteDevice(EDU).waitForInterrupt({ timeoutMs: 5000 });
      await client.close();
      await assert.rejects(wait, (e: unknown) => e instanceof XpciError);
    });
  });
});
