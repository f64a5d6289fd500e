/**
 * Interrupts, DMA windows and reset end to end through the real backend server and the frontend
 * library over a Unix socket, with the host's VFIO services replaced by the test double (this
 * machine has no VFIO): events reach the connected frontend, and what a frontend held is freed
 * when it disconnects.
 */
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from '../../src/frontend/index.js';
import { parseAddress } from '../../src/pci/address.js';
import { BackendServer } from '../../src/backend/server/backend-server.js';
import { admitPeer, createExportHost } from '../../src/backend/server/export-host.js';
import { openExportedDevice, type ExportedDevice } from '../../src/backend/exported-device.js';
import { DmaBudget } from '../../src/backend/dma/dma-windows.js';
import { buildConfigImage, createFixtureTree } from '../support/fixture-sysfs.js';
import { fakeDmaMemory, fakeHost, type FakeHost } from '../support/fake-host-services.js';
import { serveForTest } from '../support/backend-harness.js';

const EDU = '0000:00:04.0';
const FRONT = parseAddress('0000:00:00.0');

async function start(t: TestContext): Promise<{ socket: string; host: FakeHost; memory: ReturnType<typeof fakeDmaMemory>; warnings: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'xpci-device-ops-'));
  const bars = [{ index: 0, kind: 'mem' as const, size: 0x10_0000, start: 0xfea0_0000 }];
  const tree = createFixtureTree([{
    address: EDU, bars,
    config: buildConfigImage({ vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00, interruptPin: 1, bars, capabilities: [{ id: 0x05, body: [0x80, 0x00, ...new Array(12).fill(0)] }] }),
  }], join(dir, 'sysfs'));
  const socket = join(dir, 'xpci.sock');
  const host = fakeHost({ interrupts: { intx: 1, msi: 1 } });
  const memory = fakeDmaMemory();
  const budget = new DmaBudget();
  const exportHost = createExportHost({ sysfsRoot: tree.root, stateDir: join(dir, 'state'), mode: 'vpci', readOnly: false });
  const warnings: string[] = [];
  const backend = new BackendServer<ExportedDevice>({
    mode: 'vpci', socketPath: socket, devices: [{ address: parseAddress(EDU), permissive: false }], permissive: false, readOnly: false,
    resetOnExport: false, resetOnRelease: false, allowUids: [], allowGids: [], verboseRequest: false, exitOnDisconnect: false,
  }, {
    host: {
      ...exportHost,
      open: (info, guest, permissive) => openExportedDevice({
        sysfsRoot: tree.root, info, guest, mode: 'vpci', readOnly: false, permissive, services: host, dma: { budget, allocate: memory.allocate },
      }),
    },
    admit: admitPeer,
    warn: (message) => warnings.push(message),
  });
  await serveForTest(t, backend, dir);
  return { socket, host, memory, warnings };
}

describe('whole-device services through the backend server', () => {
  test('interrupt events reach the frontend; a departed frontend\'s windows and interrupts are freed and the device reset', async (t) => {
    const { socket, host, memory, warnings } = await start(t);
    const client = await connect(socket);
    const device = client.remoteDevice(FRONT);
    assert.deepEqual(device.descriptor?.interrupts, { intx: 1, msi: 1 });
    assert.equal(device.descriptor?.dma, true);
    const window = await device.mapDma(8192);
    await window.write(4090, Buffer.from('across a page'));
    assert.equal((await window.read(4090, 13)).toString(), 'across a page');
    const event = once(client, 'interrupt');
    host.interrupts.fire('intx', 0);
    const [address, record] = await event;
    assert.deepEqual([address, record], [FRONT, { kind: 'intx', vector: 0, count: 1 }]);
    assert.deepEqual(await device.waitForInterrupt({ kind: 'intx', timeoutMs: 1000 }), record);
    await device.unmaskInterrupt();
    assert.equal(host.interrupts.intxMasked, false);
    const reset = once(client, 'deviceReset');
    await device.reset();
    assert.deepEqual((await reset)[0], FRONT, 'the DeviceReset event comes before the reply');
    assert.equal(host.resets, 1);
    assert.equal(memory.live.size, 1);
    const control = await device.read(0x42, 2);
    await device.write(0x42, 2, control | 1);
    assert.equal(await device.read(0x42, 2) & 1, 1, 'MSI enabled in the frontend\'s view');
    assert.deepEqual(host.interrupts.routed(), ['msi']);

    await client.close();
    for (let i = 0; i < 100 && memory.live.size > 0; i++) await sleep(10);
    assert.equal(memory.live.size, 0, 'windows freed when the frontend left');
    assert.equal(host.dma.mappings.size, 0);
    assert.equal(host.resets, 2, 'reset after the frontend that used DMA and interrupts left');
    assert.deepEqual(host.interrupts.routed(), ['intx']);
    assert.deepEqual(warnings, []);

    const next = await connect(socket);
    assert.equal(await next.remoteDevice(FRONT).read(0x42, 2) & 1, 0, 'MSI off for the next frontend');
    await next.close();
  });
});
