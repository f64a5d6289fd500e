/**
 * `xpci export` as a process: output contract (mapping table, ready line, JSON lines), signals,
 * exit statuses, locks between two backends, --config merging, and a read-only export of one of this
 * machine's own devices (the only mode ever used on them).
 */
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildConfigImage, createFixtureTree, type FixtureDeviceSpec } from '../support/fixture-sysfs.js';
import { RawClient, replyError } from '../support/raw-client.js';
import { parseAddress } from '../../src/pci/address.js';
import { decodeConfigReadReply } from '../../src/protocol/ring/codec.js';
import { MessageType } from '../../src/protocol/ring/messages.js';

const CLI = resolve('dist/src/cli/main.js');

const DEVICES: FixtureDeviceSpec[] = [
  { address: '0000:00:05.0', config: buildConfigImage({ vendor: 0x8086, device: 0x100e, classCode: 0x020000, headerType: 0x80 }) },
  { address: '0000:00:05.1', config: buildConfigImage({ vendor: 0x8086, device: 0x100e, classCode: 0x020000, headerType: 0x80 }) },
  { address: '0000:00:07.2', config: buildConfigImage({ vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00 }) },
  { address: '0000:00:08.0', config: buildConfigImage({ vendor: 0x1af4, device: 0x1041, classCode: 0x020000 }), driver: 'virtio-pci' },
  { address: '0000:00:1c.0', config: buildConfigImage({ vendor: 0x8086, device: 0x2448, classCode: 0x060400, headerType: 1 }) },
];

interface Run {
  child: ChildProcess;
  stdout: string[];
  stderr: () => string;
  line(pattern: RegExp): Promise<string>;
  exit: Promise<number | null>;
}

function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBUG: '', ...env } });
  const stdout: string[] = [];
  let partial = '';
  let err = '';
  const waiters: { pattern: RegExp; resolve: (l: string) => void }[] = [];
  child.stdout!.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      stdout.push(line);
      for (const w of waiters.filter((w) => w.pattern.test(line))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return {
    child,
    stdout,
    stderr: () => err,
    exit,
    line: (pattern) => {
      const seen = stdout.find((l) => pattern.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiters.push({ pattern, resolve });
        void exit.then((code) => reject(new Error(`xpci exited (${code}) before printing ${pattern}; stderr: ${err}`)));
      });
    },
  };
}

function workspace(t: TestContext, devices = DEVICES): { dir: string; sysfs: string; socket: string; common: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'xpci-export-cli-'));
  const tree = createFixtureTree(devices, join(dir, 'sysfs'));
  const socket = join(dir, 'run', 'ring.sock');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, sysfs: tree.root, socket, common: ['--sysfs-root', tree.root, '--state-dir', join(dir, 'state'), '--socket', socket] };
}

/** Stop a backend the test started, whatever happened to the assertions. */
function stopOnExit(t: TestContext, run: Run): void {
  t.after(async () => {
    if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
    await run.exit;
  });
}

describe('xpci export (process)', () => {
  test('--json: one ready line, SIGTERM: one summary line, exit 0, socket removed', async (t) => {
    const w = workspace(t);
    const run = runCli(['export', ...w.common, '--json', '00:05.1', '00:07.2', '00:05.0']);
    stopOnExit(t, run);
    const ready = JSON.parse(await run.line(/^\{"socket"/));
    assert.deepEqual(ready, {
      socket: w.socket,
      mode: 'vpci',
      devices: [
        { host: '0000:00:05.0', guest: '0000:00:00.0' },
        { host: '0000:00:05.1', guest: '0000:00:00.1' },
        { host: '0000:00:07.2', guest: '0000:00:01.2' },
      ],
    });
    assert.ok(existsSync(w.socket));
    const client = await RawClient.connect(w.socket);
    await client.hello();
    const frame = await client.request({ type: MessageType.ConfigRead, id: client.id(), address: parseAddress('00:01.2'), offset: 0, size: 2 });
    assert.equal(decodeConfigReadReply(frame), 0x1234);
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0, run.stderr());
    const summary = JSON.parse(run.stdout.find((l) => l.startsWith('{"shutdown"')) ?? '{}');
    assert.equal(summary.shutdown, 'received SIGTERM');
    assert.deepEqual(summary.devices.map((d: { host: string; denials: unknown[] }) => [d.host, d.denials]), [
      ['0000:00:05.0', []], ['0000:00:05.1', []], ['0000:00:07.2', []],
    ]);
    assert.equal(existsSync(w.socket), false);
    assert.deepEqual(readdirSync(join(w.dir, 'state', 'locks')).filter((f) => f.endsWith('.lock')), []);
    await client.closed;
  });

  test('text mode: mapping table, ready line, refusals on stderr; SIGINT exits 0', async (t) => {
    const w = workspace(t);
    const run = runCli(['export', ...w.common, '00:05.0', '00:1c.0', '00:07.2:permissive']);
    stopOnExit(t, run);
    await run.line(/^ready: listening on /);
    assert.ok(run.stdout.some((l) => /0000:00:05\.0\s+0000:00:00\.0/.test(l)));
    assert.ok(run.stdout.some((l) => /0000:00:07\.2\s+0000:00:01\.2\s+permissive/.test(l)));
    assert.match(run.stderr(), /^xpci: 0000:00:1c\.0 is a bridge/m);
    run.child.kill('SIGINT');
    assert.equal(await run.exit, 0);
    assert.ok(run.stdout.some((l) => /^shutdown \(received SIGINT\): released 2 devices/.test(l)));
  });

  test('--verbose-request logs each request with its result', async (t) => {
    const w = workspace(t);
    const run = runCli(['export', ...w.common, '--verbose-request', '--read-only', '00:05.0']);
    stopOnExit(t, run);
    await run.line(/^ready/);
    const client = await RawClient.connect(w.socket);
    await client.hello();
    await client.request({ type: MessageType.ConfigRead, id: 42, address: parseAddress('00:00.0'), offset: 0, size: 2 });
    const denied = await client.request({ type: MessageType.ConfigWrite, id: 43, address: parseAddress('00:00.0'), offset: 4, size: 2, value: 0 });
    assert.ok(replyError(denied));
    await client.close();
    run.child.kill('SIGTERM');
    await run.exit;
    assert.match(run.stderr(), /xpci:request #42 0000:00:00\.0 ConfigRead offset=0x0 size=2 -> 0x8086/);
    assert.match(run.stderr(), /xpci:request #43 0000:00:00\.0 ConfigWrite offset=0x4 size=2 value=0x0 -> error AccessDenied: /);
  });

  test('a device bound to a host driver: exit 1, one line naming the driver and the fix', async (t) => {
    const w = workspace(t);
    const run = runCli(['export', ...w.common, '00:08.0']);
    assert.equal(await run.exit, 1);
    const lines = run.stderr().trimEnd().split('\n');
    assert.equal(lines.length, 1, run.stderr());
    assert.match(lines[0], /^xpci: 0000:00:08\.0 is in use by host driver 'virtio-pci': run 'xpci assignable-add 0000:00:08\.0'.*--read-only/);
    assert.equal(existsSync(w.socket), false);
  });

  test('--strict: one device that cannot be exported fails the whole export (exit 1), every device released', async (t) => {
    const w = workspace(t);
    const run = runCli(['export', ...w.common, '--strict', '--no-reset-on-export', '00:05.0', '00:1c.0']);
    assert.equal(await run.exit, 1);
    const lines = run.stderr().trimEnd().split('\n');
    assert.equal(lines.length, 1, run.stderr());
    assert.match(lines[0], /^xpci: --strict: 0000:00:1c\.0 is a bridge .*; nothing is exported$/);
    assert.ok(!run.stdout.some((l) => l.startsWith('ready')), 'never listened');
    assert.equal(existsSync(w.socket), false);
    assert.deepEqual(readdirSync(join(w.dir, 'state', 'locks')).filter((f) => f.endsWith('.lock')), [], 'the exported device was released');
  });

  test('bad usage exits 2 with one line', async (t) => {
    const w = workspace(t);
    for (const args of [['export', ...w.common], ['export', ...w.common, 'zz:1'], ['export', ...w.common, '--mode', 'bus', '00:05.0'], ['export', ...w.common, '00:05.0:loose'], ['export', ...w.common, '--allow-uid', 'alice', '00:05.0']]) {
      const run = runCli(args);
      assert.equal(await run.exit, 2, `${args.join(' ')}: ${run.stderr()}`);
      assert.equal(run.stderr().trimEnd().split('\n').length, 1, run.stderr());
      assert.match(run.stderr(), /^xpci: /);
    }
  });

  test('a second backend exporting the same device fails naming the holder pid; after kill -9, a new export succeeds', async (t) => {
    const w = workspace(t);
    const first = runCli(['export', ...w.common, '--json', '00:05.0']);
    stopOnExit(t, first);
    await first.line(/^\{"socket"/);
    const second = runCli(['export', ...w.common.slice(0, 4), '--socket', join(w.dir, 'other.sock'), '00:05.0']);
    assert.equal(await second.exit, 1);
    assert.match(second.stderr(), new RegExp(`0000:00:05\\.0 is already in use by pid ${first.child.pid}`));
    // The same socket path while the first listens: refused before any device is touched.
    const third = runCli(['export', ...w.common, '00:07.2']);
    assert.equal(await third.exit, 1);
    assert.match(third.stderr(), /another backend is already listening/);

    first.child.kill('SIGKILL');
    await first.exit;
    const again = runCli(['export', ...w.common, '--json', '00:05.0']);
    stopOnExit(t, again);
    assert.equal(JSON.parse(await again.line(/^\{"socket"/)).devices[0].host, '0000:00:05.0');
    again.child.kill('SIGTERM');
    assert.equal(await again.exit, 0);
  });

  test('--config: file settings with the command line laid over them', async (t) => {
    const w = workspace(t);
    const config = join(w.dir, 'export.json');
    writeFileSync(config, JSON.stringify({ devices: ['00:07.2', { address: '00:05.0', permissive: true }], mode: 'passthrough', socket: 'cfg.sock', stateDir: 'state', sysfsRoot: 'sysfs' }));
    const run = runCli(['export', '--config', config, '--json', '--mode', 'vpci', '00:05.1']);
    stopOnExit(t, run);
    const ready = JSON.parse(await run.line(/^\{"socket"/));
    assert.equal(ready.socket, join(w.dir, 'cfg.sock'), 'relative paths resolve against the config file');
    assert.equal(ready.mode, 'vpci', 'the command line wins');
    // Export order: the file's devices, then the command line's.
    assert.deepEqual(ready.devices, [
      { host: '0000:00:07.2', guest: '0000:00:00.2' },
      { host: '0000:00:05.0', guest: '0000:00:01.0' },
      { host: '0000:00:05.1', guest: '0000:00:01.1' },
    ]);
    const client = await RawClient.connect(ready.socket);
    const hello = await client.hello();
    assert.deepEqual(hello.devices.map((d) => [d.address, d.permissive]), [['0000:00:00.2', false], ['0000:00:01.0', true], ['0000:00:01.1', false]]);
    await client.close();
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
  });

  test('--help describes modes, access and examples', async () => {
    const run = runCli(['export', '--help']);
    assert.equal(await run.exit, 0);
    const text = run.stdout.join('\n');
    for (const word of ['vpci', 'passthrough', '0600', '--allow-gid', '--read-only', 'Examples:', 'assignable-add']) assert.ok(text.includes(word), word);
  });

  test('read-only passthrough export of one of this machine\'s devices serves its real config bytes', async (t) => {
    const devices = existsSync('/sys/bus/pci/devices') ? readdirSync('/sys/bus/pci/devices').sort() : [];
    const candidate = devices.find((bdf) => !readFileSync(`/sys/bus/pci/devices/${bdf}/class`, 'utf8').startsWith('0x06'));
    if (!candidate) return t.skip('no non-bridge PCI device on this machine');
    const dir = mkdtempSync(join(tmpdir(), 'xpci-export-real-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const socket = join(dir, 'ring.sock');
    const run = runCli(['export', '--read-only', '--mode', 'passthrough', '--json', '--state-dir', join(dir, 'state'), '--socket', socket, candidate]);
    stopOnExit(t, run);
    await run.line(/^\{"socket"/);
    const client = await RawClient.connect(socket);
    const hello = await client.hello();
    assert.deepEqual(hello.devices.map((d) => [d.address, d.readOnly]), [[candidate, true]]);
    const host = readFileSync(`/sys/bus/pci/devices/${candidate}/config`).subarray(0, 0x10);
    for (let offset = 0; offset < 0x10; offset += 4) {
      const frame = await client.request({ type: MessageType.ConfigRead, id: client.id(), address: parseAddress(candidate), offset, size: 4 });
      if (offset === 4) continue; // status bits may change between reads; the command word is virtualized
      assert.equal(decodeConfigReadReply(frame), host.readUInt32LE(offset), `offset ${offset}`);
    }
    await client.close();
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
  });
});
