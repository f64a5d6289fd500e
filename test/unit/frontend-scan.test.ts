/** pcifront-style scan against the mini backend: standard scan plus the 256-devfn sweep. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, describeScanMismatch, scanBus } from '../../src/frontend/index.js';
import { formatAddress } from '../../src/pci/address.js';
import { MessageType } from '../../src/protocol/ring/messages.js';
import { buildConfigImage } from '../support/fixture-sysfs.js';
import { MiniBackend } from '../support/mini-backend.js';

const image = (device: number, headerType = 0): Uint8Array =>
  buildConfigImage({ vendor: 0x8086, device, classCode: 0x020000, headerType });

test('finds multi-function siblings, a lone function 2, on every root, and probes each devfn once', async () => {
  const backend = await MiniBackend.start({
    mode: 'passthrough',
    roots: ['0000:00', '0000:06'],
    devices: [
      { address: '00:00.0', config: image(0x10d3, 0x80) },
      { address: '00:00.1', config: image(0x10d3) },
      { address: '00:03.2', config: image(0x1234) },
      { address: '00:1f.0', config: image(0x2918) },
      { address: '06:01.0', config: image(0x5678) },
    ],
  });
  const client = await connect(backend.path);
  try {
    const result = await scanBus(client);
    assert.deepEqual(result.addresses.map(formatAddress),
      ['0000:00:00.0', '0000:00:00.1', '0000:00:03.2', '0000:00:1f.0', '0000:06:01.0']);
    assert.deepEqual(result.unlisted, []);
    assert.deepEqual(result.missing, []);
    const vendorProbes = backend.received.filter((r) => r.type === MessageType.ConfigRead && r.offset === 0);
    assert.equal(vendorProbes.length, 2 * 256, 'every devfn of both roots probed exactly once');
    const keys = new Set(vendorProbes.map((r) => r.type === MessageType.ConfigRead ? `${r.address.bus}:${r.address.device}.${r.address.function}` : ''));
    assert.equal(keys.size, 2 * 256);
  } finally {
    await client.close();
    await backend.close();
  }
});

test('the standard scan alone would miss a lone function 2: the sweep finds it', async () => {
  const backend = await MiniBackend.start({ devices: [{ address: '00:00.2', config: image(0x1234) }] });
  const client = await connect(backend.path);
  try {
    const result = await scanBus(client);
    assert.deepEqual(result.addresses.map(formatAddress), ['0000:00:00.2']);
    // Function 0 answered DeviceNotFound, so the standard scan never looked at 00:00.2's header type.
    assert.ok(!backend.received.some((r) => r.type === MessageType.ConfigRead && r.offset === 0x0e));
  } finally {
    await client.close();
    await backend.close();
  }
});

test('cross-checks the scan against the handshake device list', async () => {
  const backend = await MiniBackend.start({
    devices: [
      { address: '00:00.0', config: image(0x1111) },
      { address: '00:02.0', config: image(0x2222), listed: false },
    ],
  });
  const client = await connect(backend.path);
  try {
    const result = await scanBus(client);
    assert.deepEqual(result.unlisted.map(formatAddress), ['0000:00:02.0']);
    assert.deepEqual(describeScanMismatch(result), ["0000:00:02.0 answers on the bus but is not in the backend's device list"]);
  } finally {
    await client.close();
    await backend.close();
  }
});

test('a listed device that does not answer is reported missing; all-ones vendor means absent', async () => {
  const ghost = new Uint8Array(256).fill(0xff);
  const backend = await MiniBackend.start({ devices: [{ address: '00:00.0', config: image(0x1111) }, { address: '00:04.0', config: ghost }] });
  const client = await connect(backend.path);
  try {
    const result = await scanBus(client);
    assert.deepEqual(result.addresses.map(formatAddress), ['0000:00:00.0']);
    assert.deepEqual(result.missing.map(formatAddress), ['0000:00:04.0']);
  } finally {
    await client.close();
    await backend.close();
  }
});
