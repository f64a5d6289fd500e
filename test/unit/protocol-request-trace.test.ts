/**
 * The one request trace format both sides print (--verbose-request, DEBUG=xpci:request).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatRequestTrace, RequestTrace } from '../../src/protocol/ring/request-trace.js';
import { ErrorCode, MessageType } from '../../src/protocol/ring/messages.js';

const address = { domain: 0, bus: 0, device: 3, function: 1 };

test('every request kind, with its fields in one order', () => {
  assert.equal(formatRequestTrace({ type: MessageType.ConfigRead, id: 7, address, offset: 4, size: 2 }, { result: 0x107 }),
    '#7 0000:00:03.1 ConfigRead offset=0x4 size=2 -> 0x107');
  assert.equal(formatRequestTrace({ type: MessageType.ConfigWrite, id: 8, address, offset: 4, size: 2, value: 7 }, {}),
    '#8 0000:00:03.1 ConfigWrite offset=0x4 size=2 value=0x7 -> ok');
  assert.equal(formatRequestTrace({ type: MessageType.BarRead, id: 9, address, bar: 2, offset: 0x10n, size: 8 }, { result: 0xffn }),
    '#9 0000:00:03.1 BarRead bar=2 offset=0x10 size=8 -> 0xff');
  assert.equal(formatRequestTrace({ type: MessageType.BarWrite, id: 10, address, bar: 0, offset: 0n, size: 4, value: 1n }, {}),
    '#10 0000:00:03.1 BarWrite bar=0 offset=0x0 size=4 value=0x1 -> ok');
  assert.equal(formatRequestTrace({ type: MessageType.ListDevices, id: 11 }, {}), '#11 ListDevices -> ok');
  assert.equal(formatRequestTrace({ type: 0x55, id: 12 }, { error: { code: ErrorCode.NotImplemented, errno: 0, message: 'unknown request type 85' } }),
    '#12 type85 -> error NotImplemented: unknown request type 85');
});

test('errors carry their errno when there is one', () => {
  const request = { type: MessageType.BarRead, id: 3, address, bar: 0, offset: 0n, size: 4 } as const;
  assert.equal(formatRequestTrace(request, { error: { code: ErrorCode.OperationFailed, errno: 5, message: 'pread failed: EIO' } }),
    '#3 0000:00:03.1 BarRead bar=0 offset=0x0 size=4 -> error OperationFailed (errno 5): pread failed: EIO');
});

test('a sink receives the lines and turns the trace on', () => {
  const lines: string[] = [];
  const trace = new RequestTrace((line) => lines.push(line));
  assert.equal(trace.enabled, true);
  trace.done({ type: MessageType.Ping, id: 1, payload: Buffer.alloc(0) });
  trace.failed({ type: MessageType.ListDevices, id: 2 }, { code: ErrorCode.Busy, errno: 0, message: 'busy' });
  assert.deepEqual(lines, ['#1 Ping -> ok', '#2 ListDevices -> error Busy: busy']);
});
