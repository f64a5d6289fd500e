/** `xpci irq` and `xpci reset` end to end against the mini backend. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAddress } from '../../src/pci/address.js';
import { encodeInterruptEvent } from '../../src/protocol/ring/device-ops-codec.js';
import { MessageType, type Request } from '../../src/protocol/ring/messages.js';
import { buildConfigImage } from '../support/fixture-sysfs.js';
import { MiniBackend } from '../support/mini-backend.js';
import { runXpci } from '../support/xpci-process.js';

describe('xpci irq and xpci reset against the mini backend', () => {
  let backend: MiniBackend;
  const requests: Request[] = [];
  /** Interrupt events the mini backend sends once a session's Hello is answered (the CLI may send nothing else before it waits). */
  let pending: Buffer[] = [];
  before(async () => {
    const config = buildConfigImage({ vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00 });
    backend = await MiniBackend.start({
      devices: [{ address: '00:00.0', config }, { address: '00:01.0', config }],
      handle: (request, reply) => {
        requests.push(request);
        if (request.type === MessageType.Hello && pending.length > 0) {
          const events = Buffer.concat(pending);
          pending = [];
          // After the Hello reply has been taken in: events before it are not for this session yet.
          setTimeout(() => backend.writeRaw(events), 100);
        }
        return reply;
      },
    });
  });
  after(() => backend.close());

  test('irq --wait prints kind, vector and count of the matching interrupt; --unmask unmasks INTx', async () => {
    const device = parseAddress('00:01.0');
    pending = [
      encodeInterruptEvent(device, { kind: 'msi', vector: 0, count: 1 }),
      encodeInterruptEvent(device, { kind: 'intx', vector: 0, count: 2 }),
    ];
    const result = await runXpci(['irq', '--connect', backend.path, '-s', '00:01.0', '--kind', 'intx', '--wait', '--timeout', '5000', '--unmask']);
    assert.equal(result.stderr, '');
    assert.equal(result.status, 0);
    assert.equal(result.stdout, 'intx 0 2\n');
    assert.equal(requests.at(-1)?.type, MessageType.InterruptUnmask);
  });

  test('irq times out with exit 1 and says what it waited for', async () => {
    const result = await runXpci(['irq', '--connect', backend.path, '-s', '00:00.0', '--vector', '3', '--wait', '--timeout', '100']);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /waiting for an interrupt of 0000:00:00\.0: OperationFailed \(errno \d+\): no interrupt on vector 3 from 0000:00:00\.0 within 100 ms/);
  });

  test('irq without --wait, or with -s matching two devices, is a usage error', async () => {
    assert.equal((await runXpci(['irq', '--connect', backend.path, '-s', '00:00.0'])).status, 2);
    const both = await runXpci(['irq', '--connect', backend.path, '-s', '00:', '--wait', '--timeout', '10']);
    assert.equal(both.status, 2);
    assert.match(both.stderr, /selects 2 devices/);
  });

  test('reset sends ResetDevice for the selected device', async () => {
    const result = await runXpci(['reset', '--connect', backend.path, '-s', '00:00.0']);
    assert.equal(result.status, 0, result.stderr);
    const reset = requests.at(-1);
    assert.equal(reset?.type, MessageType.ResetDevice);
    assert.deepEqual((reset as { address: unknown }).address, parseAddress('00:00.0'));
  });
});
