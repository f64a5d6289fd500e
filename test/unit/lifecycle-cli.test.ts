import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildConfigImage, createFixtureTree, type FixtureTree } from '../support/fixture-sysfs.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const NIC = '0000:06:01.0';
const BRIDGE = '0000:00:1c.0';

let tree: FixtureTree;
let scratch: string;
let stateDir: string;
let fakeBin: string;

/** Run xpci with a PATH whose `modprobe` refuses, so no test can load a module into this host. */
function xpci(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    env: { ...process.env, PATH: `${fakeBin}:${process.env.PATH}`, XPCI_STATE_DIR: stateDir },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('assignable and snapshot commands (fixture trees only)', () => {
  before(() => {
    tree = createFixtureTree([
      { address: NIC, config: buildConfigImage({ vendor: 0x8086, device: 0x100e, classCode: 0x020000 }), bars: [{ index: 0, kind: 'mem', size: 0x20000, start: 0xfeb80000 }], driver: 'e1000' },
      { address: BRIDGE, config: buildConfigImage({ vendor: 0x8086, device: 0x2448, classCode: 0x060400, headerType: 1 }), driver: 'pcieport' },
    ]);
    mkdirSync(join(tree.root, 'bus', 'pci', 'drivers', 'pci-stub'));
    scratch = mkdtempSync(join(tmpdir(), 'xpci-cli-'));
    stateDir = join(scratch, 'state');
    fakeBin = join(scratch, 'bin');
    mkdirSync(fakeBin);
    writeFileSync(join(fakeBin, 'modprobe'), `#!/bin/sh\ntouch ${join(scratch, 'modprobe-ran')}\necho "fake modprobe refused: $*" >&2\nexit 1\n`);
    chmodSync(join(fakeBin, 'modprobe'), 0o755);
  });
  after(() => {
    tree.cleanup();
    rmSync(scratch, { recursive: true, force: true });
  });

  test('a bad address is a usage error (exit 2, one line)', () => {
    const r = xpci('assignable-add', '06:1.x', '--sysfs-root', tree.root);
    assert.equal(r.status, 2);
    assert.equal(r.stderr, "xpci: invalid PCI address '06:1.x': expected [DDDD:]BB:DD.F (hex), e.g. 0000:06:01.0\n");
    assert.equal(existsSync(stateDir), false);
  });

  test('a bridge is refused (exit 1) and nothing is written', () => {
    const r = xpci('assignable-add', BRIDGE, '--sysfs-root', tree.root);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^xpci: refused: 0000:00:1c\.0 is a bridge \(class 060400\)/);
    assert.equal(existsSync(join(tree.deviceDir(BRIDGE), 'driver_override')), false);
  });

  test('on a plain fixture the bind cannot happen: the failed add is rolled back and leaves no record', () => {
    const r = xpci('assignable-add', '06:01.0', '--sysfs-root', tree.root, '--json');
    assert.equal(r.status, 1);
    assert.equal(r.stderr, 'xpci: assignable-add failed: 0000:06:01.0: not bound to pci-stub after probing (driver now: e1000); rolled back: still on e1000, no record kept\n');
    assert.equal(JSON.parse(r.stdout).devices[0].action, 'failed');
    assert.equal(readFileSync(join(tree.root, 'bus', 'pci', 'drivers', 'e1000', 'unbind'), 'utf8'), NIC, 'the seize was attempted');
    assert.equal(readFileSync(join(tree.deviceDir(NIC), 'driver_override'), 'utf8'), '\n', 'driver_override cleared again');
    assert.equal(xpci('assignable-list', '--sysfs-root', tree.root).stdout, `no devices held by xpci (state directory ${stateDir})\n`);
    assert.match(xpci('assignable-remove', NIC, '--sysfs-root', tree.root).stdout, /not held by xpci \(driver: e1000\)/);
  });

  test('a fixture tree without pci-stub never runs the host modprobe', () => {
    const bare = createFixtureTree([{ address: NIC, config: buildConfigImage({ vendor: 0x8086, device: 0x100e, classCode: 0x020000 }), driver: 'e1000' }]);
    try {
      const r = xpci('assignable-add', NIC, '--sysfs-root', bare.root);
      assert.equal(r.status, 1);
      assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, r.stderr);
      assert.match(r.stderr, /^xpci: pci-stub is not in the sysfs tree .* modprobe is only run for \/sys\n$/);
      assert.equal(existsSync(join(scratch, 'modprobe-ran')), false, 'modprobe was run');
      assert.equal(xpci('assignable-list', '--sysfs-root', bare.root).stdout, `no devices held by xpci (state directory ${stateDir})\n`);
    } finally {
      bare.cleanup();
    }
  });

  test('snapshot: usage errors, then a snapshot that serves as a sysfs root', () => {
    assert.equal(xpci('snapshot', NIC, '--sysfs-root', tree.root).status, 2);
    assert.equal(xpci('snapshot', 'zz', '--out', join(scratch, 's'), '--sysfs-root', tree.root).status, 2);
    const out = join(scratch, 'snap');
    const r = xpci('snapshot', '06:01.0', '--out', out, '--sysfs-root', tree.root, '--json');
    assert.equal(r.status, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    assert.equal(result.bdf, NIC);
    assert.deepEqual(result.bars, [{ index: 0, kind: 'mem', size: 0x20000, captured: false }]);
    const again = xpci('snapshot', '06:01.0', '--out', out, '--sysfs-root', tree.root);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /already exists/);
    const refused = xpci('snapshot', '06:01.0', '--out', join(scratch, 'bars'), '--with-bars', '--sysfs-root', tree.root);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /bound to driver e1000/);
  });
});
