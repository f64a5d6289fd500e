import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native, nativeAddonPath } from '../../src/native/binding.js';

const NOBODY = 65534;

/**
 * Runs `body` (a function source taking the addon and argv) in a child node process as uid/gid 65534.
 * The addon is copied next to the fixtures so that the checkout's own permissions never matter.
 */
function runAsNobody(addon: string, body: string, ...args: string[]): { result?: unknown; skip?: string } {
  const script = `
    const addon = require(process.argv[1]);
    const args = process.argv.slice(2);
    const result = (${body})(addon, args);
    process.stdout.write(JSON.stringify({ uid: process.getuid(), result }));`;
  const child = spawnSync(process.execPath, ['-e', script, addon, ...args], { uid: NOBODY, gid: NOBODY, encoding: 'utf8' });
  if (child.error) return { skip: `cannot run a child as uid ${NOBODY}: ${child.error.message}` };
  assert.equal(child.status, 0, `child failed: ${child.stderr}`);
  const output = JSON.parse(child.stdout) as { uid: number; result: unknown };
  assert.equal(output.uid, NOBODY, 'the child really runs unprivileged');
  return { result: output.result };
}

/** A function (as source) that runs `call` and returns the error's NativeError fields or 'ok'. */
const catching = (call: string): string => `(addon, args) => {
  try { ${call}; return 'ok'; }
  catch (e) { return { message: e.message, code: e.code, errno: e.errno, syscall: e.syscall, path: e.path }; }
}`;

describe('native errors as an unprivileged user', () => {
  let dir: string;
  let addon: string;
  const isRoot = process.getuid?.() === 0;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'xpci-native-perm-'));
    chmodSync(dir, 0o755); // mkdtemp makes it 0700: the child must reach the files, so only their modes matter
    addon = join(dir, 'xpci_native.node');
    copyFileSync(nativeAddonPath(), addon);
    chmodSync(addon, 0o644);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('opening a 0600 root-owned file reports EACCES with syscall and path', (t) => {
    const secret = join(dir, 'config');
    writeFileSync(secret, Buffer.alloc(256));
    chmodSync(secret, 0o600);
    const open = catching('addon.openRegisterFile(args[0], false)');
    const map = catching('addon.mapResource(args[0], false)');

    if (!isRoot) {
      // Not root: our own file with mode 0 is enough, no child needed.
      chmodSync(secret, 0o000);
      assert.throws(() => native().openRegisterFile(secret, false), { code: 'EACCES', syscall: 'open', path: secret });
      assert.throws(() => native().mapResource(secret, false), { code: 'EACCES', syscall: 'open', path: secret });
      return;
    }
    const denied = runAsNobody(addon, open, secret);
    if (denied.skip) return t.skip(denied.skip);
    assert.deepEqual(denied.result, {
      message: `open ${secret}: Permission denied`, code: 'EACCES', errno: 13, syscall: 'open', path: secret,
    });
    assert.deepEqual(runAsNobody(addon, map, secret).result, {
      message: `open ${secret}: Permission denied`, code: 'EACCES', errno: 13, syscall: 'open', path: secret,
    });

    // Control: the same child opens a world-readable file, so the EACCES above came from the mode.
    chmodSync(secret, 0o644);
    assert.equal(runAsNobody(addon, open, secret).result, 'ok');
    assert.deepEqual(runAsNobody(addon, catching('addon.openRegisterFile(args[0], true)'), secret).result,
      { message: `open ${secret}: Permission denied`, code: 'EACCES', errno: 13, syscall: 'open', path: secret });
  });

  test('a non-root reader of real sysfs config gets 64 bytes: short block and ESHORT', (t) => {
    const devices = '/sys/bus/pci/devices';
    const first = existsSync(devices) ? readdirSync(devices).sort()[0] : undefined;
    if (!first) return t.skip(`no PCI devices under ${devices}`);
    if (!isRoot) return t.skip('needs root to compare against an unprivileged child');
    const config = join(devices, first, 'config');
    const probe = `(addon, args) => {
      const file = addon.openRegisterFile(args[0], false);
      const out = { size: file.size(), block: file.readBlock(0, 4096).length, vendor: file.read(0, 2) };
      try { file.read(64, 4); out.beyond = 'read'; } catch (e) { out.beyond = { code: e.code, bytesRead: e.bytesRead }; }
      file.close();
      return out;
    }`;
    const run = runAsNobody(addon, probe, config);
    if (run.skip) return t.skip(run.skip);
    const file = native().openRegisterFile(config, false);
    try {
      assert.deepEqual(run.result, {
        size: file.size(), block: 64, vendor: file.read(0, 2), beyond: { code: 'ESHORT', bytesRead: 0 },
      });
    } finally {
      file.close();
    }
  });
});
