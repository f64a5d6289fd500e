// The compile-time debug switch: a build with XPCI_DEBUG=1 logs each native operation to stderr;
// the normal build is silent. The debug variant is built in a temp copy so build/ is left alone.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { nativeAddonPath, type BuildInfo } from '../../src/native/binding.js';

interface Probe { buildInfo: BuildInfo; value: number; stderr: string }

/** Loads `addon` in a child, reads a dword of `file` and reports buildInfo(), the value and stderr. */
function probe(addon: string, file: string): Probe {
  const script = `
    const addon = require(process.argv[1]);
    const file = addon.openRegisterFile(process.argv[2], false);
    const value = file.read(0, 4);
    file.close();
    process.stdout.write(JSON.stringify({ buildInfo: addon.buildInfo(), value }));`;
  const child = spawnSync(process.execPath, ['-e', script, addon, file], { encoding: 'utf8' });
  assert.equal(child.status, 0, `probe failed: ${child.stderr}`);
  return { ...(JSON.parse(child.stdout) as Omit<Probe, 'stderr'>), stderr: child.stderr };
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('native debug logging', () => {
  let dir: string;
  let file: string;
  const addon = nativeAddonPath();
  const root = resolve(dirname(addon), '..', '..');

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'xpci-native-debug-'));
    file = join(dir, 'config');
    writeFileSync(file, Buffer.from([0xf4, 0x1a, 0x41, 0x10]));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('the normal build logs nothing, and says so in buildInfo()', (t) => {
    const result = probe(addon, file);
    assert.equal(result.value, 0x10411af4);
    assert.equal(result.stderr.includes('[xpci-native]'), result.buildInfo.debugLogging, 'logs exactly when built to');
    assert.equal(result.buildInfo.napiVersion, 8);
    if (process.env.XPCI_DEBUG === '1' || result.buildInfo.debugBuild) {
      return t.skip('the installed addon was built with debug logging on purpose (XPCI_DEBUG=1 or --debug)');
    }
    assert.equal(result.buildInfo.debugLogging, false);
    assert.equal(result.stderr, '');
  });

  test('an XPCI_DEBUG=1 build logs every operation to stderr, without compiler warnings', { timeout: 300_000 }, (t) => {
    const nodeGyp = join(root, 'node_modules', '.bin', 'node-gyp');
    if (!existsSync(nodeGyp)) return t.skip(`node-gyp is not installed (${nodeGyp}); run npm ci`);
    const nodeDir = process.env.npm_config_nodedir ?? resolve(dirname(process.execPath), '..');
    const copy = join(dir, 'package');
    cpSync(join(root, 'addon'), join(copy, 'addon'), { recursive: true });
    copyFileSync(join(root, 'binding.gyp'), join(copy, 'binding.gyp'));
    symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'));
    const build = spawnSync(nodeGyp, ['rebuild', '-j', 'max'], {
      cwd: copy,
      encoding: 'utf8',
      // Local headers only (like the project's .npmrc): node-gyp must never download them.
      env: { ...process.env, XPCI_DEBUG: '1', npm_config_nodedir: nodeDir },
    });
    assert.equal(build.status, 0, `node-gyp rebuild failed:\n${build.stdout}\n${build.stderr}`);
    assert.doesNotMatch(build.stdout + build.stderr, /warning:/, 'the addon compiles without warnings');

    const result = probe(join(copy, 'build', 'Release', 'xpci_native.node'), file);
    assert.equal(result.value, 0x10411af4);
    assert.deepEqual(result.buildInfo, { debugLogging: true, debugBuild: false, napiVersion: 8 });
    const lines = result.stderr.trimEnd().split('\n');
    const path = escape(file);
    assert.match(lines[0] ?? '', new RegExp(`^\\[xpci-native\\] open ${path} ro -> fd=\\d+$`));
    assert.match(lines[1] ?? '', new RegExp(`^\\[xpci-native\\] pread fd=\\d+ ${path} off=0x0 width=4 -> 0x10411af4$`));
    assert.match(lines[2] ?? '', new RegExp(`^\\[xpci-native\\] close fd=\\d+ ${path} -> ok$`));
    assert.equal(lines.length, 3, `one line per operation:\n${result.stderr}`);
  });
});
