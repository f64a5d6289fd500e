/**
 * Self-tests of the VM test bed (test/vm/harness): exit statuses propagate, timeouts and crashes
 * are reported as such (never as an exit status), shares and the overlay root behave, and the
 * host-visible devices (ivshmem file, xpci.0 socket) really reach the guest.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeSync, closeSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Guest, GuestCrashedError, GuestTimeoutError, announceSkip, qemuAvailable, runInGuest, STANDARD_DEVICES } from './harness/index.js';

const unavailable = await qemuAvailable();

/** Resolves with everything `socket` receives until `expected` bytes arrived. */
function receive(socket: Socket, expected: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      if (data.length >= expected) resolve(data);
    });
    socket.once('error', reject);
  });
}

describe('VM test bed: persistent guest', { skip: unavailable ? announceSkip('harness', unavailable) : false }, () => {
  let vm: Guest;
  const shared = mkdtempSync(join(tmpdir(), 'xpci-vm-share-'));

  before(async () => {
    vm = await Guest.boot({ shares: [shared], timeoutMs: 120_000 });
    console.log(`# guest booted in ${vm.bootMs} ms (kernel ${vm.kernelRelease})`);
  });
  after(async () => {
    await vm?.shutdown();
    rmSync(shared, { recursive: true, force: true });
  });

  test('a failing command returns its own exit status, stdout and stderr apart', async () => {
    const result = await vm.exec('echo to-stdout; echo to-stderr >&2; exit 7');
    assert.deepEqual(result, { exitCode: 7, stdout: 'to-stdout\n', stderr: 'to-stderr\n' });
    assert.equal((await vm.exec('true')).exitCode, 0);
    await assert.rejects(vm.execOk('exit 3'), /exited with 3/);
  });

  test('commands run with bash as root in the repository root; cwd and env options apply', async () => {
    const result = await vm.exec('echo "$PWD $(id -u) ${BASH_VERSION%%.*}"; [[ -f package.json ]] && echo has-package-json');
    assert.equal(result.exitCode, 0, result.stderr);
    const [pwd, uid, bashMajor] = result.stdout.split('\n')[0].split(' ');
    assert.equal(pwd, vm.repoRoot);
    assert.equal(uid, '0');
    assert.ok(Number(bashMajor) >= 4, result.stdout);
    assert.match(result.stdout, /has-package-json/);
    const other = await vm.exec('echo "$PWD $GREETING"', { cwd: '/usr/share', env: { GREETING: "it's here" } });
    assert.equal(other.stdout, "/usr/share it's here\n");
  });

  test('shares are read-write at the host path; writes to the rest of / stay in the guest overlay', async () => {
    const token = randomBytes(8).toString('hex');
    const probe = `/etc/xpci-overlay-probe-${token}`;
    await vm.execOk(`echo ${token} > ${join(shared, 'from-guest')} && echo overlay > ${probe} && cat ${probe}`);
    assert.equal(readFileSync(join(shared, 'from-guest'), 'utf8'), `${token}\n`);
    assert.equal(existsSync(probe), false, 'a guest write to / must never reach the host');
  });

  test('a command that hangs is killed at its timeout and reported as a timeout; the guest stays usable', async () => {
    const started = Date.now();
    const error = await vm.exec('echo started; echo on-stderr >&2; sleep 600 & sleep 600; echo never', { timeoutMs: 2000 }).then(
      () => assert.fail('a hung command must not resolve'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof GuestTimeoutError, String(error));
    assert.equal(error.phase, 'exec');
    assert.equal(error.guestKilled, false);
    assert.equal(error.stdout, 'started\n');
    assert.equal(error.stderr, 'on-stderr\n');
    assert.ok(Date.now() - started < 60_000);
    assert.equal(await vm.execOk("echo alive; pgrep -f 'sleep 600' || echo none-left"), 'alive\nnone-left\n', 'the timed-out process group is gone');
  });

  test('ivshmem-plain BAR2 is the host file: bytes cross in both directions', async () => {
    assert.ok(vm.ivshmemPath);
    const fromHost = randomBytes(4).readUInt32LE(0);
    const fromGuest = randomBytes(4).readUInt32LE(0);
    const fd = openSync(vm.ivshmemPath, 'r+');
    try {
      const word = Buffer.alloc(4);
      word.writeUInt32LE(fromHost, 0);
      writeSync(fd, word, 0, 4, 0);
      const bar2 = `$(sed -n 3p /sys/bus/pci/devices/${STANDARD_DEVICES.ivshmem}/resource | cut -d' ' -f1)`;
      const read = await vm.execOk(`devmem ${bar2} 32 && devmem $((${bar2} + 4)) 32 ${fromGuest}`);
      assert.equal(Number(read.trim()), fromHost);
      readSync(fd, word, 0, 4, 4);
      assert.equal(word.readUInt32LE(0), fromGuest);
    } finally {
      closeSync(fd);
    }
  });

  test('the xpci.0 port (QEMU as server) carries bytes both ways', async () => {
    assert.ok(vm.xpciSocketPath);
    const socket = connect(vm.xpciSocketPath);
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    try {
      const pong = receive(socket, 5);
      socket.write('ping\n');
      const read = await vm.execOk('head -c 5 /dev/virtio-ports/xpci.0 && printf pong! > /dev/virtio-ports/xpci.0', { timeoutMs: 30_000 });
      assert.equal(read, 'ping\n');
      assert.equal(await pong, 'pong!');
    } finally {
      socket.destroy();
    }
  });

  test('a guest that dies is reported as crashed, not as an exit status, and can be restarted', async () => {
    const error = await vm.exec('echo c > /proc/sysrq-trigger').then(
      () => assert.fail('a kernel panic must not resolve'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof GuestCrashedError, String(error));
    assert.match(error.diagnostics, /Kernel panic/);
    assert.equal(vm.alive, false);
    await assert.rejects(vm.exec('true'), GuestCrashedError);
    await vm.shutdown();
    vm = await vm.restart();
    assert.equal(await vm.execOk('echo restarted'), 'restarted\n');
  });
});

describe('VM test bed: hung guest and one-shot runs', { skip: unavailable ? announceSkip('harness', unavailable) : false }, () => {
  test('a guest that stops answering is killed and reported as a timeout with guestKilled', async () => {
    const vm = await Guest.boot({ devices: { standard: false, xpciPort: false }, hangGraceMs: 2000, timeoutMs: 120_000 });
    try {
      assert.ok(vm.qemuPid);
      process.kill(vm.qemuPid, 'SIGSTOP');
      const error = await vm.exec('true', { timeoutMs: 1000 }).then(
        () => assert.fail('a frozen guest must not answer'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof GuestTimeoutError, String(error));
      assert.equal(error.guestKilled, true);
      assert.equal(vm.alive, false);
    } finally {
      await vm.shutdown();
    }
  });

  test('one-shot: a command that never ends is killed and reported as timeout', async () => {
    const result = await runInGuest({
      command: 'echo started; while :; do sleep 1; done',
      devices: { standard: false, xpciPort: false },
      timeoutMs: 15_000,
    });
    assert.equal(result.status, 'timeout');
    assert.equal(result.exitCode, undefined);
    assert.match(result.output, /started/);
  });

  test('one-shot: exit status and output come back; xpci.0 reaches a host socket (QEMU as client)', async () => {
    const dir = mkdtempSync('/tmp/xpci-vm-client-');
    const path = join(dir, 'xpci.sock');
    const server = createServer();
    const received = new Promise<string>((resolve, reject) => {
      server.once('connection', (socket) => receive(socket, 'hello-host'.length).then(resolve, reject));
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      const result = await runInGuest({
        command: 'printf hello-host > /dev/virtio-ports/xpci.0; echo out; echo err >&2; exit 7',
        devices: { standard: false, xpciPort: { mode: 'client', path } },
        timeoutMs: 120_000,
      });
      assert.deepEqual(result, { status: 'exited', exitCode: 7, output: 'out\nerr\n' });
      assert.equal(await received, 'hello-host');
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
