/**
 * `xpci setpci` end to end (CLI as a child process) against the mini backend, whose config images
 * the test inspects directly, and against the real `xpci export` on a fixture sysfs tree.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfigImage, createFixtureTree } from '../support/fixture-sysfs.js';
import { MiniBackend } from '../support/mini-backend.js';
import { runXpci, startExport } from '../support/xpci-process.js';

const hasAddon = existsSync(new URL('../../../build/Release/xpci_native.node', import.meta.url));

const image = (): Uint8Array => buildConfigImage({
  vendor: 0x8086, device: 0x10d3, classCode: 0x020000, revision: 2, command: 0x0006, interruptLine: 0x0b, interruptPin: 1,
  capabilities: [{ id: 0x05, body: [0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] }, { id: 0x01, body: [0x22, 0xc8, 0x08, 0x00, 0, 0] }],
});
const word = (config: Uint8Array, offset: number): number => config[offset] | (config[offset + 1] << 8);

describe('xpci setpci against the mini backend', () => {
  let backend: MiniBackend;
  let nic: Uint8Array;
  let readOnly: Uint8Array;
  before(async () => {
    nic = image();
    readOnly = image();
    backend = await MiniBackend.start({
      devices: [{ address: '00:00.0', config: nic }, { address: '00:01.0', config: readOnly, readOnly: true }],
    });
  });
  after(() => backend.close());
  const setpci = (...args: string[]) => runXpci(['setpci', '--connect', backend.path, ...args]);

  test('reads print setpci\'s hex: by name, hex offset, width suffix and capability-relative names', async () => {
    const r = await setpci('-s', '00:00.0', 'COMMAND', 'VENDOR_ID', '0.l', '3c.b', 'INTERRUPT_PIN', 'CAP_PM+4.w', 'CAP_MSI+2.w', 'CAP5.b');
    assert.equal(r.stderr, '');
    assert.equal(r.status, 0);
    // MSI at 0x40 (message control 0x0080), PM at 0x50 (PMCSR 0x0008).
    assert.equal(r.stdout, '0006\n8086\n10d38086\n0b\n01\n0008\n0080\n05\n');
  });

  test('writes: plain, masked read-modify-write, several values; -v traces like setpci', async () => {
    const r = await setpci('-v', '-s', '00:00.0', 'COMMAND=0x0407', 'COMMAND=0400:0404', 'CACHE_LINE_SIZE=10', '0x60.b=1,2,3', 'COMMAND');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, [
      '0000:00:00.0 @04 0407',
      '0000:00:00.0 @04 0407->(0400:0404)->0403',
      '0000:00:00.0 @0c 10',
      '0000:00:00.0 @60 01 02 03',
      '0000:00:00.0 @04 = 0403',
      '',
    ].join('\n'));
    assert.equal(word(nic, 0x04), 0x0403);
    assert.equal(nic[0x0c], 0x10);
    assert.deepEqual([...nic.subarray(0x60, 0x63)], [1, 2, 3]);
  });

  test('-D (demo mode) reads for masks but writes nothing', async () => {
    const before = Buffer.from(nic);
    const r = await setpci('-D', '-v', '-s', '00:00.0', 'COMMAND=0:0001', 'INTERRUPT_LINE=5');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '0000:00:00.0 @04 0403->(0000:0001)->0402\n0000:00:00.0 @3c 05\n');
    assert.deepEqual(Buffer.from(nic), before);
  });

  test('a refused write is one line naming the register and the protocol error, exit 1', async () => {
    const r = await setpci('-s', '01.0', 'VENDOR_ID', 'COMMAND=0', 'COMMAND');
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '8086\n', 'what ran before the failure is printed');
    assert.equal(r.stderr, 'xpci: 0000:00:01.0 COMMAND=0 (@4.w): AccessDenied: read-only export\n');
    assert.equal(word(readOnly, 0x04), 0x0006);
  });

  test('runtime failures: no device selected, a capability the device lacks, an offset beyond its config space', async () => {
    // As setpci: selecting nothing is a warning with exit 0, and -f silences it.
    const none = await setpci('-s', '07.0', 'COMMAND');
    assert.deepEqual([none.status, none.stdout, none.stderr], [0, '', 'xpci: warning: setpci: no devices selected; nothing done\n']);
    const quiet = await setpci('-f', '-s', '07.0', 'COMMAND');
    assert.deepEqual([quiet.status, quiet.stdout, quiet.stderr], [0, '', '']);
    const noCap = await setpci('-s', '00.0', 'CAP_EXP+2.w', 'ECAP_AER+4.l');
    assert.equal(noCap.status, 1);
    assert.match(noCap.stderr, /^xpci: 0000:00:00\.0: register 'CAP_EXP\+2\.w': instance #0 of capability 10 not found/);
    // Past config space a read prints all ones, as setpci does; a write is refused by the backend.
    const beyond = await setpci('-s', '00.0', '100.l', 'ffe.w');
    assert.deepEqual([beyond.status, beyond.stdout], [0, 'ffffffff\nffff\n'], beyond.stderr);
    const beyondWrite = await setpci('-s', '00.0', '100.l=0');
    assert.equal(beyondWrite.status, 1);
    assert.equal(beyondWrite.stderr, 'xpci: 0000:00:00.0 100.l=0 (@100.l): InvalidOffset: offset 0x100 beyond config size\n');
  });

  test('--dumpregs prints setpci --dumpregs\' table (ours may know names an older pciutils lacks)', { skip: spawnSync('setpci', ['--version']).status !== 0 && 'pciutils not installed' }, async () => {
    const r = await runXpci(['setpci', '--dumpregs']);
    assert.equal(r.status, 0, r.stderr);
    const theirs = spawnSync('setpci', ['--dumpregs'], { encoding: 'utf8' }).stdout.split('\n');
    const known = new Set(theirs);
    assert.deepEqual(r.stdout.split('\n').filter((line) => known.has(line)), theirs, 'every line of theirs, same format and order');
  });

  test('syntax errors are usage errors (exit 2) before any connection', async () => {
    for (const args of [['COMMAND'], ['-s', '00.0', 'NO_SUCH_REG'], ['-s', '00.0', 'COMMAND.q'], ['-s', '00.0', 'CACHE_LINE_SIZE=100'], ['-s', '0:0:0:0', 'COMMAND']]) {
      const r = await runXpci(['setpci', '--connect', '/nonexistent/xpci.sock', ...args]);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.split('\n').length, 2, r.stderr);
      assert.doesNotMatch(r.stderr, /cannot connect/);
    }
  });
});

describe('xpci setpci against the real xpci export', { skip: !hasAddon && 'native addon not built' }, () => {
  test('a config write through the ring reaches the fixture device', async () => {
    const tree = createFixtureTree([{ address: '0000:06:01.0', config: image(), driver: null }]);
    const dir = mkdtempSync(join(tmpdir(), 'xpci-setpci-real-'));
    const backend = await startExport(['--sysfs-root', tree.root, '--state-dir', join(dir, 'state'), '--socket', join(dir, 'ring.sock'),
      '--no-reset-on-export', '--no-reset-on-release', '06:01.0']);
    try {
      const r = await runXpci(['setpci', '--connect', backend.socket, '-s', '00:00.0', 'CACHE_LINE_SIZE=10', 'CACHE_LINE_SIZE', 'VENDOR_ID=1234']);
      assert.equal(r.stdout, '10\n');
      assert.equal(tree.configBytes('0000:06:01.0')[0x0c], 0x10);
      assert.equal(r.status, 1, 'the vendor id is read-only');
      assert.match(r.stderr, /^xpci: 0000:00:00\.0 VENDOR_ID=1234 \(@0\.w\): AccessDenied: /);
      assert.equal(word(tree.configBytes('0000:06:01.0'), 0), 0x8086);
    } finally {
      await backend.stop();
      tree.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
