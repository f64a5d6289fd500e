/**
 * `xpci status` and `xpci list` against a running fixture export: the export's devices, its
 * connected frontend, denial counts, locks and seized devices; then the permission mistakes of a
 * non-root user (run as uid 65534), each one line naming the cause and the fix.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfigImage, createFixtureTree, type FixtureTree } from '../support/fixture-sysfs.js';
import { RawClient, replyError } from '../support/raw-client.js';
import { runXpci, startExport, XPCI_MAIN, type XpciResult } from '../support/xpci-process.js';
import { parseAddress } from '../../src/pci/address.js';
import { MessageType } from '../../src/protocol/ring/messages.js';

const NIC = '0000:06:01.0';
const OTHER = '0000:06:02.0';
const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;

let tree: FixtureTree;
let scratch: string;

/** xpci as uid/gid 65534, with a private TMPDIR for the defaults of a non-root export. */
const asNobody = (args: string[]): Promise<XpciResult> =>
  runXpci(args, { TMPDIR: join(scratch, 'tmp'), XDG_RUNTIME_DIR: '' }, { uid: NOBODY, gid: NOBODY });

function oneLine(r: XpciResult, status: number, pattern: RegExp): void {
  assert.equal(r.status, status, r.stderr);
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], pattern);
}

before(() => {
  scratch = mkdtempSync(join(tmpdir(), 'xpci-status-'));
  chmodSync(scratch, 0o755);
  mkdirSync(join(scratch, 'tmp'), { mode: 0o1777 });
  chmodSync(join(scratch, 'tmp'), 0o1777);
  tree = createFixtureTree([
    { address: NIC, config: buildConfigImage({ vendor: 0x8086, device: 0x100e, classCode: 0x020000 }) },
    { address: OTHER, config: buildConfigImage({ vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00 }) },
  ], join(scratch, 'sysfs'));
  chmodSync(join(scratch, 'sysfs'), 0o755);
});
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('xpci status', () => {
  test('a running export: devices host -> frontend, its frontend (pid, uid), denials, locks; list shows it held', async (t) => {
    const stateDir = join(scratch, 'state');
    const socket = join(scratch, 'run', 'ring.sock');
    const backend = await startExport(['--sysfs-root', tree.root, '--state-dir', stateDir, '--socket', socket, '--no-reset-on-export', '--no-reset-on-release', NIC]);
    t.after(() => backend.stop());
    const client = await RawClient.connect(socket);
    await client.hello();
    const denied = await client.request({ type: MessageType.ConfigWrite, id: client.id(), address: parseAddress('00:00.0'), offset: 0, size: 2, value: 0x1234 });
    assert.ok(replyError(denied), 'the vendor id write is refused');

    const r = await runXpci(['status', '--json', '--state-dir', stateDir]);
    assert.equal(r.status, 0, r.stderr);
    const status = JSON.parse(r.stdout);
    assert.equal(status.stateDir, stateDir);
    assert.equal(status.exports.length, 1);
    const [running] = status.exports;
    assert.equal(running.pid, backend.process.pid);
    assert.equal(running.state, 'running');
    assert.equal(running.socket, socket);
    assert.equal(running.mode, 'vpci');
    assert.deepEqual(running.peer, { pid: process.pid, uid: process.getuid?.(), gid: process.getgid?.() });
    assert.deepEqual(running.devices, [{ host: NIC, guest: '0000:00:00.0', permissive: false, denied: 1 }]);
    assert.deepEqual(status.locks.map((l: { bdf: string; pid: number; state: string }) => [l.bdf, l.pid, l.state]), [[NIC, backend.process.pid, 'alive']]);
    assert.deepEqual(status.assignable, []);

    const text = await runXpci(['status', '--state-dir', stateDir]);
    assert.match(text.stdout, new RegExp(`^export pid ${backend.process.pid} \\(vpci\\) since .*: socket ${socket}$`, 'm'));
    assert.match(text.stdout, new RegExp(`^  frontend: pid ${process.pid} uid `, 'm'));
    assert.match(text.stdout, /^ {2}0000:06:01\.0 -> 0000:00:00\.0 {2}denied accesses: 1$/m);

    const list = await runXpci(['list', '--sysfs-root', tree.root, '--state-dir', stateDir]);
    assert.equal(list.status, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`^0000:06:01\\.0 .*\\[driver: none, export: held by pid ${backend.process.pid}\\]$`, 'm'));
    assert.match(list.stdout, /^0000:06:02\.0 .*\[driver: none, export: yes\]$/m);
    const listed = JSON.parse((await runXpci(['list', '--json', '--sysfs-root', tree.root, '--state-dir', stateDir])).stdout) as { bdf: string; heldBy: number | null }[];
    assert.deepEqual(listed.map((d) => [d.bdf, d.heldBy]), [[NIC, backend.process.pid], [OTHER, null]]);

    await client.close();
    assert.equal(await backend.stop(), 0);
    const after = JSON.parse((await runXpci(['status', '--json', '--state-dir', stateDir])).stdout);
    assert.deepEqual([after.exports, after.locks], [[], []], 'a stopped export withdraws its record and lock');
  });

  test('a record left by a killed export is shown as stale', async () => {
    const stateDir = join(scratch, 'stale-state');
    mkdirSync(join(stateDir, 'exports'), { recursive: true, mode: 0o700 });
    writeFileSync(join(stateDir, 'exports', '999999.json'), JSON.stringify({ pid: 999999, startTime: '1', socket: '/nowhere/x.sock', control: '/nowhere/x.sock.ctl', mode: 'vpci', readOnly: false, since: 'then' }));
    const status = JSON.parse((await runXpci(['status', '--json', '--state-dir', stateDir])).stdout);
    assert.equal(status.exports[0].state, 'stale');
    assert.match(status.exports[0].error, /pid 999999 is gone/);
  });
});

describe('permission mistakes of a non-root user', { skip: !asRoot && 'needs root to run commands as uid 65534' }, () => {
  let rootState: string;
  before(() => {
    rootState = join(scratch, 'root-state');
    mkdirSync(join(rootState, 'assignable'), { recursive: true, mode: 0o700 });
    chmodSync(rootState, 0o700);
  });

  test('a frontend that cannot open a root socket is told the mode, owner and fix', async (t) => {
    const socket = join(scratch, 'root-run', 'ring.sock');
    mkdirSync(join(scratch, 'root-run'), { mode: 0o755 });
    chmodSync(join(scratch, 'root-run'), 0o755);
    const backend = await startExport(['--sysfs-root', tree.root, '--state-dir', join(scratch, 'state2'), '--socket', socket, '--read-only', NIC]);
    t.after(() => backend.stop());
    const r = await asNobody(['lspci', '--connect', socket]);
    oneLine(r, 1, new RegExp(`^xpci: permission denied on ${socket} \\(socket mode 0600, owner root\\): run as root or export with --allow-uid ${NOBODY}$`));
    const hidden = await asNobody(['setpci', '--connect', join(rootState, 'xpci.sock'), '-s', '00:00.0', '0.w']);
    oneLine(hidden, 1, new RegExp(`^xpci: permission denied on ${rootState} \\(directory mode 0700, owner root, which holds the socket\\): run as root or export with --allow-uid ${NOBODY}$`));
  });

  test('a non-root export of host devices is refused before anything happens, naming what it needs', async () => {
    const r = await asNobody(['export', '--socket', join(scratch, 'tmp', 'never.sock'), '--state-dir', join(scratch, 'tmp', 'never-state'), '00:00.0']);
    oneLine(r, 1, /^xpci: exporting host devices needs root \(running as uid 65534\): full config space, BAR access and resets need CAP_SYS_ADMIN, .*run it as root .*--sysfs-root DIR/);
    assert.equal(r.stdout, '', 'nothing printed as if it were ready');
  });

  test('a non-root export of a fixture tree runs, with its state and socket in a private folder', async () => {
    const child = spawn(process.execPath, [XPCI_MAIN, 'export', '--json', '--exit-on-disconnect', '--read-only', '--sysfs-root', tree.root, OTHER], {
      env: { ...process.env, DEBUG: '', TMPDIR: join(scratch, 'tmp'), XDG_RUNTIME_DIR: '', XPCI_SOCKET: '', XPCI_STATE_DIR: '' }, stdio: ['ignore', 'pipe', 'pipe'], uid: NOBODY, gid: NOBODY,
    });
    let stdout = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => { stderr += text; });
    const ready = await new Promise<{ socket: string }>((resolve, reject) => {
      child.stdout.setEncoding('utf8').on('data', (text: string) => {
        stdout += text;
        const line = stdout.split('\n').find((l) => l.startsWith('{"socket"'));
        if (line) resolve(JSON.parse(line) as { socket: string });
      });
      child.once('exit', (code) => reject(new Error(`export exited ${code}: ${stderr}`)));
    });
    assert.equal(ready.socket, join(scratch, 'tmp', `xpci-${NOBODY}`, 'xpci.sock'));
    const client = await RawClient.connect(ready.socket);
    await client.hello();
    await client.close();
    const [code] = await once(child, 'exit');
    assert.equal(code, 0, stderr);
  });

  test('assignable-list without permission on the state directory exits 1 with the reason', async () => {
    const r = await asNobody(['assignable-list', '--state-dir', rootState, '--sysfs-root', tree.root]);
    oneLine(r, 1, new RegExp(`^xpci: permission denied on ${rootState}.* \\(mode 0700, owner root\\): .*run as root`));
    assert.equal(r.stdout, '', 'never "no devices held"');
    const status = await asNobody(['status', '--state-dir', rootState]);
    oneLine(status, 1, /^xpci: permission denied on .*run as root/);
  });

  test('the control socket refuses a non-root attach with its mode, owner and fix', async (t) => {
    const socket = join(scratch, 'root-run', 'ctl.sock');
    const backend = await startExport(['--sysfs-root', tree.root, '--state-dir', join(scratch, 'state3'), '--socket', socket, '--allow-uid', String(NOBODY), '--read-only', NIC]);
    t.after(() => backend.stop());
    const r = await asNobody(['attach', '--socket', socket, OTHER]);
    oneLine(r, 1, new RegExp(`^xpci: permission denied on ${socket}\\.ctl \\(the control socket is mode 0600, owner root\\): run as root$`));
  });
});
