/**
 * What a local user or a hostile frontend can try against a running backend, in process on fixture
 * trees: refused-peer floods, silent peers, Hello floods and peers that never read. Each test
 * reproduces an attack that used to work and checks the backend's defence.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { copyFileSync, renameSync, truncateSync, unlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { CHECK_INTERVAL_MS } from '../../src/host/sysfs/device-presence.js';
import { join } from 'node:path';
import { RawClient, replyError } from '../support/raw-client.js';
import { plain, readValue, startBackend } from '../support/backend-harness.js';
import { buildConfigImage } from '../support/fixture-sysfs.js';
import { parseAddress } from '../../src/pci/address.js';
import { controlSocketPath } from '../../src/protocol/control/hotplug-control.js';
import { encodeRequest } from '../../src/protocol/ring/codec.js';
import { ErrorCode, MessageType } from '../../src/protocol/ring/messages.js';

/** Connect to `path`, wait for the backend to close the stream, return what it sent. */
async function refusedConnection(path: string): Promise<void> {
  const socket = connect(path);
  socket.on('error', () => undefined);
  socket.resume();
  await once(socket, 'close');
}

describe('refused peers', () => {
  test('a flood of refused connections logs once per cause, on the ring and on the control socket', async (t) => {
    let pid = 1000;
    const h = await startBackend(t, ['00:05.0'], {}, undefined, {
      admit: () => {
        pid++;
        return pid % 2 === 0
          ? { allowed: false, reason: `access denied: peer uid 4321 gid 4321 (pid ${pid}) is not allowed`, cause: 'peer uid 4321 gid 4321' }
          : { allowed: false, reason: `access denied: peer uid 4322 gid 4322 (pid ${pid}) is not allowed`, cause: 'peer uid 4322 gid 4322' };
      },
    });
    for (let round = 0; round < 20; round++) {
      await Promise.all(Array.from({ length: 20 }, () => refusedConnection(h.socket)));
      await Promise.all(Array.from({ length: 5 }, () => refusedConnection(controlSocketPath(h.socket))));
    }
    const ring = h.warnings.filter((w) => /refused a frontend/.test(w));
    const control = h.warnings.filter((w) => /refused a control connection/.test(w));
    assert.equal(ring.length, 2, ring.join('\n'));
    assert.equal(control.length, 2, control.join('\n'));
    assert.match(ring.join('\n'), /uid 4321/);
    assert.match(ring.join('\n'), /uid 4322/);
    const client = await RawClient.connect(h.socket).catch(() => null);
    void client?.destroy();
  });
});

const helloFrame = (id: number): Buffer => encodeRequest({ type: MessageType.Hello, id, hello: { versions: [1], ringDepth: 64, client: 'flood' } });

describe('silent and idle peers', () => {
  test('a connection that never says Hello gives way to the next frontend after the Hello deadline', async (t) => {
    const h = await startBackend(t, ['00:05.0'], { helloDeadlineMs: 300 });
    const silent = await RawClient.connect(h.socket);
    const next = await RawClient.connect(h.socket);
    const reply = await next.hello();
    assert.equal(reply.devices.length, 1, 'the second frontend is served, not Busy');
    await silent.closed;
    const refusal = silent.frames.map(replyError).find((e) => e !== null);
    assert.equal(refusal?.code, ErrorCode.Busy);
    assert.match(refusal?.message ?? '', /no Hello within 300 ms/);
    await next.close();
  });

  test('half a frame and then silence is the same as silence', async (t) => {
    const h = await startBackend(t, ['00:05.0'], { helloDeadlineMs: 300 });
    const half = await RawClient.connect(h.socket);
    half.write(helloFrame(1).subarray(0, 10));
    const next = await RawClient.connect(h.socket);
    assert.equal((await next.hello()).devices.length, 1);
    await half.closed;
    await next.close();
  });

  test('alone, a silent connection stays open (the host end of a virtio-serial port) and is served when it speaks', async (t) => {
    const h = await startBackend(t, ['00:05.0'], { helloDeadlineMs: 100 });
    const quiet = await RawClient.connect(h.socket);
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(quiet.isClosed, false);
    assert.equal((await quiet.hello()).devices.length, 1);
    await quiet.close();
  });

  test('an idle session gives way to a new frontend with a Shutdown event; a busy one does not', async (t) => {
    const h = await startBackend(t, ['00:05.0'], { idleYieldMs: 300 });
    const first = await RawClient.connect(h.socket);
    await first.hello();
    const early = await RawClient.connect(h.socket);
    await early.closed;
    assert.equal(early.frames.map(replyError).find((e) => e !== null)?.code, ErrorCode.Busy, 'an active session is not displaced');
    await new Promise((resolve) => setTimeout(resolve, 400));
    const late = await RawClient.connect(h.socket);
    assert.equal((await late.hello()).devices.length, 1);
    const shutdown = await first.event(MessageType.Shutdown);
    assert.match(JSON.parse(shutdown.payload.toString()).reason, /idle for 300 ms/);
    await late.close();
  });
});

describe('Hello amplification and peers that do not read', () => {
  test('repeated Hellos in one read get one Hello reply; the rest are LimitExceeded', async (t) => {
    const specs = Array.from({ length: 32 }, (_, slot) => plain(`0000:01:${slot.toString(16).padStart(2, "0")}.0`, 0x1000 + slot));
    const h = await startBackend(t, specs.map((s) => s.address), {}, specs);
    const client = await RawClient.connect(h.socket);
    const count = 500;
    client.write(Buffer.concat(Array.from({ length: count }, (_, i) => helloFrame(i + 1))));
    await client.waitFor((f) => f.id === count);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const replies = client.frames.filter((f) => f.type === MessageType.Hello);
    const helloReplies = replies.filter((f) => replyError(f) === null);
    assert.ok(helloReplies.length < count / 10, `${helloReplies.length} full Hello replies for ${count} Hellos`);
    assert.ok(replies.filter((f) => replyError(f)?.code === ErrorCode.LimitExceeded).length > count / 2);
    await client.close();
  });

  test('a peer that floods Hellos and never reads: what the backend buffers for it stays bounded and is freed when it goes', async (t) => {
    const specs = Array.from({ length: 32 }, (_, slot) => plain(`0000:01:${slot.toString(16).padStart(2, "0")}.0`, 0x1000 + slot));
    const limit = 256 * 1024;
    const h = await startBackend(t, specs.map((s) => s.address), { maxUnreadReplyBytes: limit }, specs);
    const ring = (h.backend as unknown as { ring: { unreadReplyBytes: number } }).ring;
    const socket = connect(h.socket);
    socket.on('error', () => undefined);
    await once(socket, 'connect');
    socket.pause(); // never reads
    let highest = 0;
    let id = 1;
    const closed = once(socket, 'close');
    let open = true;
    void closed.then(() => { open = false; });
    for (let round = 0; round < 300 && open; round++) {
      socket.write(Buffer.concat(Array.from({ length: 200 }, () => helloFrame(id++))));
      highest = Math.max(highest, ring.unreadReplyBytes);
      await new Promise((resolve) => setImmediate(resolve));
    }
    highest = Math.max(highest, ring.unreadReplyBytes);
    socket.destroy();
    await closed;
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok(highest <= limit, `at most ${limit} bytes stayed buffered (${highest})`);
    assert.equal(ring.unreadReplyBytes, 0, 'nothing is kept once the peer is gone');
    assert.ok(h.warnings.filter((w) => /unread/.test(w)).length <= 1);
    const next = await RawClient.connect(h.socket);
    assert.equal((await next.hello()).devices.length, 32, 'the backend still serves');
    await next.close();
  });
});

describe('faults in the device files', () => {
  test('a BAR file truncated under its mapping: the device is reported gone, the backend keeps serving the others', async (t) => {
    const bar = { index: 0, kind: 'mem' as const, size: 4096, start: 0xfebf0000 };
    const device = (address: string) => plain(address, 0x1234, {
      config: buildConfigImage({ vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00, command: 0x0002, bars: [bar] }),
      bars: [bar],
    });
    const [goner, other] = [device('0000:00:06.0'), device('0000:00:07.0')];
    const h = await startBackend(t, [goner.address, other.address], {}, [goner, other]);
    const client = await RawClient.connect(h.socket);
    await client.hello();
    const barRead = (address: string) => client.request({ type: MessageType.BarRead, id: client.id(), address: parseAddress(address), bar: 0, offset: 0n, size: 4 });
    assert.equal(replyError(await barRead('00:00.0')), null, 'the BAR is mapped and readable');
    truncateSync(join(h.tree.deviceDir(goner.address), 'resource0'), 0);
    const error = replyError(await barRead('00:00.0'));
    assert.equal(error?.code, ErrorCode.DeviceNotFound, 'reported gone, not a SIGBUS');
    assert.match(error?.message ?? '', /00:00\.0 is gone: the host device was removed \(BAR 0 read of 4 bytes at 0x0 failed: ENXIO\)/);
    const config = replyError(await client.request({ type: MessageType.ConfigRead, id: client.id(), address: parseAddress('00:00.0'), offset: 0, size: 2 }));
    assert.equal(config?.code, ErrorCode.DeviceNotFound, 'a gone device stays gone, config included');
    assert.equal(h.warnings.filter((w) => /0000:00:06\.0 \(frontend 0000:00:00\.0\) is gone from the host/.test(w)).length, 1, 'the operator is told once');
    assert.equal(replyError(await barRead('00:01.0')), null, 'the other device\'s BAR still works');
    assert.equal(await readValue(client, '00:01.0', 0, 2), 0x1234, 'and its config');
    await client.close();
  });

  test('a device removed from sysfs, or replaced by a rescan, under a live mapping: its next BAR access reports it gone', async (t) => {
    const bar = { index: 0, kind: 'mem' as const, size: 4096, start: 0xfebf0000 };
    const device = (address: string) => plain(address, 0x1234, {
      config: buildConfigImage({ vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00, command: 0x0002, bars: [bar] }),
      bars: [bar],
    });
    const [removed, rescanned, kept] = [device('0000:00:06.0'), device('0000:00:07.0'), device('0000:00:08.0')];
    const h = await startBackend(t, [removed.address, rescanned.address, kept.address], {}, [removed, rescanned, kept]);
    const client = await RawClient.connect(h.socket);
    await client.hello();
    const barRead = (address: string) => client.request({ type: MessageType.BarRead, id: client.id(), address: parseAddress(address), bar: 0, offset: 0n, size: 4 });
    for (const address of ['00:00.0', '00:01.0', '00:02.0']) assert.equal(replyError(await barRead(address)), null, 'mapped and readable');

    unlinkSync(join(h.tree.root, 'bus', 'pci', 'devices', removed.address)); // what `remove` leaves
    const config = join(h.tree.deviceDir(rescanned.address), 'config');
    copyFileSync(config, `${config}.new`); // a new device at the same address: a new inode
    renameSync(`${config}.new`, config);
    await sleep(CHECK_INTERVAL_MS + 20);

    for (const address of ['00:00.0', '00:01.0']) {
      const error = replyError(await barRead(address));
      assert.equal(error?.code, ErrorCode.DeviceNotFound, `${address} reported gone`);
      assert.match(error?.message ?? '', new RegExp(`0000:${address.replace('.', '\\.')} is gone: the host device was removed \\(BAR 0 read of 4 bytes at 0x0 failed: ENODEV\\)`));
    }
    assert.equal(h.warnings.filter((w) => /is gone from the host/.test(w)).length, 2);
    assert.equal(replyError(await barRead('00:02.0')), null, 'the device still there is still served');
    await client.close();
  });
});
