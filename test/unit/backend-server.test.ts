/**
 * The backend server end to end, in process: fixture sysfs trees, the real ExportedDevice, locks and
 * peer checks, a real Unix socket, and a raw client built on the protocol codec.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, existsSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { createFixtureTree } from '../support/fixture-sysfs.js';
import { RawClient, replyError } from '../support/raw-client.js';
import { parseAddress } from '../../src/pci/address.js';
import { decodeConfigReadReply, decodeDeviceRemoved, decodeJsonPayload, encodeRequest } from '../../src/protocol/ring/codec.js';
import { encodeFrame } from '../../src/protocol/ring/frame.js';
import { ErrorCode, MAGIC, MessageType, type DeviceDescriptor } from '../../src/protocol/ring/messages.js';
import { BackendServer } from '../../src/backend/server/backend-server.js';
import { admitPeer, createExportHost } from '../../src/backend/server/export-host.js';
import type { ExportedDevice } from '../../src/backend/exported-device.js';
import { sendControlRequest } from '../../src/cli/control-client.js';
import { DEVICES, plain, read, readValue, serveForTest, startBackend, type Harness } from '../support/backend-harness.js';

describe('vPCI numbering through the handshake', () => {
  test('multi-function functions share a slot, a lone function 2 keeps its number, bridges and driver-bound devices are refused', async (t) => {
    const h = await startBackend(t, ['00:05.1', '00:07.2', '00:1c.0', '00:05.0', '00:08.0', '00:09.0']);
    const client = await h.connect();
    const hello = await client.hello();
    assert.deepEqual(hello.roots, ['0000:00']);
    assert.deepEqual(hello.devices.map((d) => d.address), ['0000:00:00.0', '0000:00:00.1', '0000:00:01.2', '0000:00:02.0']);
    assert.ok(hello.devices.every((d) => d.hostAddress === undefined), 'vPCI mode does not reveal host addresses');
    assert.equal(await readValue(client, '00:00.1', 0, 2), 0x8086);
    assert.equal(await readValue(client, '00:01.2', 0, 2), 0x1234);
    assert.equal(await readValue(client, '00:02.0', 0, 2), 0x1b36, 'a device on pci-stub is exportable');
    const reasons = new Map(h.refused.map((r) => [r.bdf, r.reason]));
    assert.match(reasons.get('0000:00:1c.0') ?? '', /bridge/);
    assert.match(reasons.get('0000:00:08.0') ?? '', /host driver 'virtio-pci'.*xpci assignable-add 0000:00:08\.0.*--read-only/);
    await client.close();
  });

  test('a 33rd slot is refused for that device only', async (t) => {
    // 33 distinct physical slots: 32 on bus 03, one on bus 04.
    const addresses = [...Array.from({ length: 32 }, (_, i) => `0000:03:${i.toString(16).padStart(2, '0')}.0`), '0000:04:00.0'];
    const fixtures = addresses.map((address, i) => plain(address, 0x1000 + i));
    const h = await startBackend(t, addresses, {}, fixtures);
    assert.deepEqual(h.refused.map((r) => r.bdf), ['0000:04:00.0']);
    assert.match(h.refused[0].reason, /full.*0000:04:00\.0/);
    const client = await h.connect();
    assert.equal((await client.hello()).devices.length, 32);
    assert.equal(await readValue(client, '00:1f.0', 0, 2), 0x1000 + 31);
    await client.close();
  });

  test('a bridge is refused in passthrough mode too', async (t) => {
    const h = await startBackend(t, ['00:1c.0', '06:00.0'], { mode: 'passthrough' });
    assert.match(h.refused.find((r) => r.bdf === '0000:00:1c.0')?.reason ?? '', /bridge/);
  });
});

describe('passthrough', () => {
  test('addresses unchanged; roots are the exported devices\' buses, deduplicated', async (t) => {
    const h = await startBackend(t, ['06:03.0', '0001:02:00.0', '00:05.0', '06:00.0'], { mode: 'passthrough' });
    const client = await h.connect();
    const hello = await client.hello();
    assert.equal(hello.mode, 'passthrough');
    assert.deepEqual(hello.roots, ['0000:00', '0000:06', '0001:02']);
    assert.deepEqual(hello.devices.map((d) => [d.address, d.hostAddress]), [
      ['0000:00:05.0', '0000:00:05.0'], ['0000:06:00.0', '0000:06:00.0'], ['0000:06:03.0', '0000:06:03.0'], ['0001:02:00.0', '0001:02:00.0'],
    ]);
    assert.equal(await readValue(client, '0001:02:00.0', 0, 2), 0x15b3);
    await client.close();
  });
});

describe('read-only', () => {
  test('a driver-bound device is exported read-only: config reads work, writes are refused', async (t) => {
    const h = await startBackend(t, ['00:08.0'], { readOnly: true });
    assert.deepEqual(h.refused, []);
    const client = await h.connect();
    const [device] = (await client.hello()).devices;
    assert.equal(device.readOnly, true);
    assert.equal(await readValue(client, '00:00.0', 0, 2), 0x1af4);
    const write = await client.request({ type: MessageType.ConfigWrite, id: client.id(), address: parseAddress('00:00.0'), offset: 0x0c, size: 1, value: 0x20 });
    assert.equal(replyError(write)?.code, ErrorCode.AccessDenied);
    await client.close();
  });
});

describe('sessions', () => {
  test('Hello is required first; then ring depth is enforced per batch', async (t) => {
    const h = await startBackend(t, ['00:05.0']);
    const client = await h.connect();
    assert.equal(replyError(await read(client, '00:00.0', 0, 2))?.code, ErrorCode.HelloRequired);
    assert.equal((await client.hello([1], 32)).ringDepth, 32);
    const ids = Array.from({ length: 40 }, () => client.id());
    client.write(Buffer.concat(ids.map((id) => encodeRequest({ type: MessageType.ConfigRead, id, address: parseAddress('00:00.0'), offset: 0, size: 2 }))));
    const replies = await Promise.all(ids.map((id) => client.reply(id)));
    const limited = replies.filter((f) => replyError(f)?.code === ErrorCode.LimitExceeded).length;
    assert.ok(limited >= 8, `requests beyond 32 in one batch are refused (got ${limited})`);
    assert.ok(replies.slice(0, 32).every((f) => replyError(f) === null));
    await client.close();
  });

  test('64 requests in one write all get their replies', async (t) => {
    const h = await startBackend(t, ['00:05.0', '00:05.1']);
    const client = await h.connect();
    await client.hello([1], 64);
    const requests = Array.from({ length: 64 }, (_, i) => ({
      type: MessageType.ConfigRead as const, id: client.id(), address: parseAddress(i % 2 ? '00:00.1' : '00:00.0'), offset: (i % 16) * 4, size: 4,
    }));
    client.write(Buffer.concat(requests.map((r) => encodeRequest(r))));
    const replies = await Promise.all(requests.map((r) => client.reply(r.id)));
    const config = h.tree.configBytes('0000:00:05.0');
    for (const [i, frame] of replies.entries()) {
      assert.equal(replyError(frame), null);
      if (requests[i].offset >= 0x10 && requests[i].offset < 0x28) continue; // BARs are emulated
      assert.equal(decodeConfigReadReply(frame), config.readUInt32LE(requests[i].offset) >>> 0, `offset ${requests[i].offset}`);
    }
    await client.close();
  });

  test('one frontend at a time: a second gets Busy; one connecting at once after the first dies is served', async (t) => {
    const h = await startBackend(t, ['00:05.0']);
    const first = await h.connect();
    await first.hello();
    const second = await h.connect();
    const busy = await second.waitFor(() => true);
    assert.equal(replyError(busy)?.code, ErrorCode.Busy);
    await second.closed;
    // A successor that arrives while its predecessor is going away (the backend has yet to see the
    // old stream's EOF) waits for it instead of being called Busy: no retry here.
    const third = await h.connect();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await first.destroy();
    assert.equal((await third.hello()).devices.length, 1);
    assert.equal(await readValue(third, '00:00.0', 0, 2), 0x8086);
    await third.close();
  });

  test('a stream of random garbage does not kill the backend; the next frontend is served', async (t) => {
    const h = await startBackend(t, ['00:05.0']);
    const noisy = await h.connect();
    await noisy.hello();
    let seed = 12345;
    const random = Buffer.alloc(1 << 16);
    for (let round = 0; round < 24; round++) {
      for (let i = 0; i < random.length; i++) random[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
      // Sprinkle magics with absurd lengths, the hardest case for a resynchronising reader.
      random.writeUInt32LE(MAGIC, (round * 977) % (random.length - 8));
      if (!noisy.isClosed) noisy.write(random);
    }
    await noisy.closed; // > 1 MiB without a valid frame: the backend closes the stream
    assert.ok(noisy.frames.some((f) => f.id === 0 && replyError(f)?.code === ErrorCode.Malformed));
    assert.ok(h.warnings.some((w) => /garbage/.test(w)));
    const next = await connectWhenFree(h);
    await next.hello();
    assert.equal(await readValue(next, '00:00.0', 0, 2), 0x8086);
    await next.close();
  });

  test('malformed frames get error replies and the same frontend is still served', async (t) => {
    const h = await startBackend(t, ['00:05.0']);
    const client = await h.connect();
    await client.hello();
    client.write(Buffer.concat([Buffer.from('not a frame at all'), encodeFrame(MessageType.ConfigRead, 0, 77, Buffer.alloc(2))]));
    const malformed = await client.waitFor((f) => f.id === 0);
    assert.equal(malformed.type, 0);
    assert.equal(replyError(malformed)?.code, ErrorCode.Malformed);
    assert.equal(replyError(await client.reply(77))?.code, ErrorCode.Malformed);
    assert.equal(await readValue(client, '00:00.0', 0, 2), 0x8086);
    await client.close();
  });

  test('a partial frame left idle is discarded, so the next frame is read correctly', async (t) => {
    const h = await startBackend(t, ['00:05.0'], { partialFrameTimeoutMs: 50 });
    const client = await h.connect();
    await client.hello();
    client.write(encodeRequest({ type: MessageType.ConfigRead, id: 500, address: parseAddress('00:00.0'), offset: 0, size: 2 }).subarray(0, 10));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(await readValue(client, '00:00.0', 2, 2), 0x100e);
    assert.ok(!client.frames.some((f) => f.id === 500), 'the dead frame was never answered');
    await client.close();
  });
});

describe('access control', () => {
  test('the socket is 0600 by default; one --allow-gid gives 0660 with that group; other allow lists 0666', async (t) => {
    const plainBackend = await startBackend(t, ['00:05.0']);
    assert.equal(statSync(plainBackend.socket).mode & 0o777, 0o600);
    assert.equal(statSync(`${plainBackend.socket}.ctl`).mode & 0o777, 0o600);
    const grouped = await startBackend(t, ['00:05.0'], { allowGids: [4321] });
    assert.equal(statSync(grouped.socket).mode & 0o777, 0o660);
    assert.equal(statSync(grouped.socket).gid, 4321);
    assert.equal(statSync(`${grouped.socket}.ctl`).mode & 0o777, 0o600, 'the control socket stays root-only');
    const open = await startBackend(t, ['00:05.0'], { allowUids: [4321] });
    assert.equal(statSync(open.socket).mode & 0o777, 0o666);
  });

  test('a peer whose uid is not allowed gets PermissionDenied before any op', { skip: process.getuid?.() !== 0 && 'needs root to run a client as another uid' }, async (t) => {
    const h = await startBackend(t, ['00:05.0'], { allowUids: [4321] });
    assert.equal(statSync(join(h.dir, 'run')).mode & 0o777, 0o711, 'admitted users can reach the socket folder');
    chmodSync(h.dir, 0o711); // the test's own temporary folder
    const script = `const s=require('net').connect(process.argv[1]);const c=[];s.on('data',d=>c.push(d));` +
      `s.on('connect',()=>s.write(Buffer.from(process.argv[2],'hex')));s.on('close',()=>{process.stdout.write(Buffer.concat(c).toString('hex'))});s.on('error',e=>{process.stderr.write(e.code);});`;
    const hello = encodeRequest({ type: MessageType.Hello, id: 1, hello: { versions: [1], ringDepth: 64 } }).toString('hex');
    const child = spawn(process.execPath, ['-e', script, h.socket, hello], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    await new Promise((resolve) => child.once('close', resolve));
    const bytes = Buffer.from(out, 'hex');
    assert.ok(bytes.length >= 16, `the peer got a frame (stderr: ${err})`);
    assert.equal(bytes.readUInt32LE(0), MAGIC);
    assert.equal(bytes.readUInt16LE(8), 0);
    assert.equal(bytes.readUInt16LE(16), ErrorCode.PermissionDenied);
    assert.match(bytes.subarray(24).toString(), /uid 65534.*not allowed/);
    assert.equal(bytes.length, bytes.readUInt32LE(4), 'nothing but the refusal: no Hello reply');
    assert.ok(h.warnings.some((w) => /refused a frontend/.test(w)));
  });
});

describe('hot-plug', () => {
  test('attach: DeviceAdded at the next free slot, function 0 last; detach: DeviceRemoved; others keep their addresses', async (t) => {
    const h = await startBackend(t, ['06:00.0', '06:03.0']);
    const client = await h.connect();
    const hello = await client.hello();
    assert.deepEqual(hello.devices.map((d) => d.address), ['0000:00:00.0', '0000:00:01.0']);
    const control = `${h.socket}.ctl`;
    assert.deepEqual(await sendControlRequest(control, { op: 'detach', device: '0000:06:00.0' }), { ok: true, host: '0000:06:00.0', guest: '0000:00:00.0' });
    const removed = await client.event(MessageType.DeviceRemoved);
    assert.deepEqual(decodeDeviceRemoved(removed), parseAddress('00:00.0'));
    assert.equal(replyError(await read(client, '00:00.0', 0, 2))?.code, ErrorCode.DeviceNotFound);
    assert.deepEqual(await sendControlRequest(control, { op: 'attach', device: '0000:00:05.1' }), { ok: true, host: '0000:00:05.1', guest: '0000:00:00.1' });
    assert.deepEqual(await sendControlRequest(control, { op: 'attach', device: '0000:00:05.0', permissive: true }), { ok: true, host: '0000:00:05.0', guest: '0000:00:00.0' });
    const added = client.frames.filter((f) => f.type === MessageType.DeviceAdded).map((f) => decodeJsonPayload<DeviceDescriptor>(f, 'added'));
    assert.deepEqual(added.map((d) => [d.address, d.permissive]), [['0000:00:00.1', false], ['0000:00:00.0', true]]);
    assert.equal(await readValue(client, '00:01.0', 0, 2), 0x10ec, 'the untouched device kept its slot');
    assert.equal(await readValue(client, '00:00.1', 0, 2), 0x8086);
    assert.deepEqual(await sendControlRequest(control, { op: 'status', device: '0000:06:03.0' }), { ok: true, host: '0000:06:03.0', guest: '0000:00:01.0' });
    // The frontend address names the same device; the reply says which host device that is.
    assert.deepEqual(await sendControlRequest(control, { op: 'status', device: '0000:00:01.0' }), { ok: true, host: '0000:06:03.0', guest: '0000:00:01.0' });
    assert.deepEqual(await sendControlRequest(control, { op: 'attach', device: '0000:00:01.0' }), { ok: true, host: '0000:06:03.0', guest: '0000:00:01.0' }, 'already served: a no-op');
    const refused = await sendControlRequest(control, { op: 'attach', device: '0000:00:1c.0' });
    assert.equal(refused.ok, false);
    assert.match(refused.error ?? '', /bridge/);
    assert.equal((await sendControlRequest(control, { op: 'detach', device: '0000:00:1c.0' })).ok, false);
    assert.deepEqual(await sendControlRequest(control, { op: 'detach', device: '0000:00:01.0' }), { ok: true, host: '0000:06:03.0', guest: '0000:00:01.0' }, 'detached by its frontend address');
    assert.equal(replyError(await read(client, '00:01.0', 0, 2))?.code, ErrorCode.DeviceNotFound, 'the event was sent before the reply');
    const removals = client.frames.filter((f) => f.type === MessageType.DeviceRemoved).map((f) => decodeDeviceRemoved(f));
    assert.deepEqual(removals, [parseAddress('00:00.0'), parseAddress('00:01.0')]);
    await client.close();
  });
});

describe('graceful end', () => {
  test('stop: Shutdown event, registers restored, lock and socket files removed, denials summarised', async (t) => {
    const h = await startBackend(t, ['00:05.0', '00:07.2'], { resetOnExport: false });
    const before = h.tree.configBytes('0000:00:05.0');
    const client = await h.connect();
    await client.hello();
    const write = (offset: number, size: number, value: number) =>
      client.request({ type: MessageType.ConfigWrite, id: client.id(), address: parseAddress('00:00.0'), offset, size, value });
    assert.equal(replyError(await write(0x0c, 1, 0x40)), null);
    assert.equal(replyError(await write(0x3c, 1, 0x05)), null);
    assert.equal(h.tree.configBytes('0000:00:05.0')[0x0c], 0x40, 'the write reached the fixture device');
    assert.equal(replyError(await write(0x00, 2, 0x1234))?.code, ErrorCode.AccessDenied);
    const summary = await h.backend.stop('test stop');
    const shutdown = await client.event(MessageType.Shutdown);
    assert.deepEqual(decodeJsonPayload(shutdown, 'shutdown'), { reason: 'test stop' });
    await client.closed;
    assert.equal(summary.reason, 'test stop');
    const nic0 = summary.devices.find((d) => d.host === '0000:00:05.0');
    assert.equal(nic0?.guest, '0000:00:00.0');
    assert.ok((nic0?.denials ?? []).some((d) => d.count === 1), 'the refused vendor write is counted');
    assert.equal(Buffer.compare(h.tree.configBytes('0000:00:05.0'), before), 0, 'changed registers restored');
    assert.equal(existsSync(h.socket), false);
    assert.equal(existsSync(`${h.socket}.ctl`), false);
    assert.equal(existsSync(join(h.dir, 'state', 'locks', '0000:00:05.0.lock')), false);
  });

  test('exitOnDisconnect: the frontend leaving stops the backend; a connection without Hello does not', async (t) => {
    const h = await startBackend(t, ['00:05.0'], { exitOnDisconnect: true });
    const probe = await h.connect();
    await probe.close();
    const client = await connectWhenFree(h);
    await client.hello();
    await client.close();
    const summary = await h.backend.stopped;
    assert.match(summary.reason, /disconnected/);
    assert.equal(existsSync(h.socket), false);
  });
});

describe('socket file', () => {
  test('a stale socket is replaced; a live one is refused; a regular file is never removed', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'xpci-sock-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const tree = createFixtureTree(DEVICES, join(dir, 'sysfs'));
    const make = (socketPath: string) => new BackendServer<ExportedDevice>({
      mode: 'vpci', socketPath, devices: [{ address: parseAddress('00:05.0'), permissive: false }], permissive: false, readOnly: true,
      resetOnExport: false, resetOnRelease: false, allowUids: [], allowGids: [], verboseRequest: false, exitOnDisconnect: false,
    }, { host: createExportHost({ sysfsRoot: tree.root, stateDir: join(dir, 'state'), mode: 'vpci', readOnly: true }), admit: admitPeer, warn: () => {} });

    // A stale socket: its listener was killed, so nothing removed the file.
    const stale = join(dir, 'stale.sock');
    const leftover = spawn(process.execPath, ['-e', `require('net').createServer().listen(process.argv[1], () => console.log('up'))`, stale], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((resolve) => leftover.stdout.once('data', resolve));
    leftover.kill('SIGKILL');
    await new Promise((resolve) => leftover.once('close', resolve));
    assert.ok(existsSync(stale));
    const backend = make(stale);
    await backend.prepare();
    backend.exportDevices();
    await backend.listen();
    const client = await RawClient.connect(stale);
    assert.equal((await client.hello()).devices.length, 1);
    await client.close();

    // The same path while that backend listens: refused.
    await assert.rejects(make(stale).prepare(), /another backend is already listening/);
    await backend.stop('done');

    const regular = join(dir, 'file.sock');
    writeFileSync(regular, 'precious');
    await assert.rejects(make(regular).prepare(), /not a socket/);
    assert.ok(existsSync(regular));
  });
});

/**
 * The backend learns that a frontend closed on a later event-loop turn than the client does, so a
 * reconnect may still meet Busy: retry those. A served connection receives nothing unprompted.
 */
async function connectWhenFree(h: Harness): Promise<RawClient> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const client = await h.connect();
    const first = await Promise.race([client.waitFor(() => true, 100).catch(() => null), client.closed.then(() => 'closed' as const)]);
    if (first === null) return client;
    if (first !== 'closed' && replyError(first)?.code !== ErrorCode.Busy) throw new Error('unexpected unprompted frame');
    await client.closed;
  }
  throw new Error('the backend stayed busy');
}
