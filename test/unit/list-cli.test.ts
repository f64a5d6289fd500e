/**
 * `xpci list` as a user runs it: the built CLI in a child process, against this machine (read-only)
 * and against fixture sysfs trees.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildConfigImage, createFixtureTree, type FixtureBar } from '../support/fixture-sysfs.js';

const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');

function xpci(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, DEBUG: '' } });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

interface ListedDevice {
  bdf: string; vendor: string; device: string; class: string; revision: string; driver: string | null; bridge: boolean;
  subsystemVendor: string; subsystemDevice: string; headerType: number; multiFunction: boolean; configSize: number;
  iommuGroup: number | null; exportable: string; reason: string; description: string;
  bars: { index: number; start: number; size: number; type: string; prefetchable: boolean; is64: boolean }[];
  rom: { start: number; size: number } | null;
}

const haveLspci = spawnSync('lspci', ['--version']).status === 0 && existsSync('/sys/bus/pci/devices');

describe('xpci list on this machine (read-only)', { skip: haveLspci ? false : 'lspci or /sys/bus/pci not installed: cannot compare' }, () => {
  test('--json reports the devices of lspci -Dnmm with equal vendor, device, class and driver', () => {
    const run = xpci('list', '--json');
    assert.equal(run.status, 0, run.stderr);
    const listed = JSON.parse(run.stdout) as ListedDevice[];
    const machine = spawnSync('lspci', ['-Dnmm'], { encoding: 'utf8' }).stdout.trim().split('\n').map((line) => {
      const m = /^(\S+) "([0-9a-f]{4})" "([0-9a-f]{4})" "([0-9a-f]{4})"/.exec(line);
      assert.ok(m, line);
      return { bdf: m[1], class: m[2], vendor: m[3], device: m[4] };
    });
    assert.deepEqual(listed.map((d) => d.bdf), machine.map((d) => d.bdf));
    for (const [i, theirs] of machine.entries()) {
      const ours = listed[i];
      assert.equal(ours.vendor, theirs.vendor, ours.bdf);
      assert.equal(ours.device, theirs.device, ours.bdf);
      assert.match(ours.class, /^[0-9a-f]{6}$/);
      assert.equal(ours.class.slice(0, 4), theirs.class, ours.bdf);
      assert.equal(ours.bridge, ours.class.startsWith('06'));
      assert.equal(ours.exportable, ours.bridge ? 'no' : ours.driver ? 'read-only' : 'yes');
    }
    // Drivers: lspci -k's "Kernel driver in use", and the sysfs link itself.
    const kernel = new Map<string, string>();
    let current = '';
    for (const line of spawnSync('lspci', ['-Dk'], { encoding: 'utf8' }).stdout.split('\n')) {
      if (/^\S/.test(line)) current = line.split(' ')[0];
      const m = /^\tKernel driver in use: (.+)$/.exec(line);
      if (m) kernel.set(current, m[1]);
    }
    for (const ours of listed) {
      assert.equal(ours.driver, kernel.get(ours.bdf) ?? null, ours.bdf);
      const link = join('/sys/bus/pci/devices', ours.bdf, 'driver');
      assert.equal(ours.driver, existsSync(link) ? basename(readlinkSync(link)) : null, ours.bdf);
    }
  });

  test('text lines start with the lspci -D lines (also -n, -nn, -s, -d)', () => {
    for (const args of [[], ['-n', '-s', '00:03'], ['-nn', '-d', '::02xx']]) {
      const ours = xpci('list', ...args);
      assert.equal(ours.status, 0, ours.stderr);
      const theirs = spawnSync('lspci', ['-D', ...args], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
      const lines = ours.stdout.split('\n').filter(Boolean);
      assert.equal(lines.length, theirs.length, `list ${args.join(' ')}`);
      lines.forEach((line, i) => {
        assert.ok(line.startsWith(theirs[i] + '  [driver: '), `${line}\n  !~ ${theirs[i]}`);
        assert.match(line, /\[driver: \S+, export: (yes|read-only|no \(bridge\))\]$/);
      });
    }
  });
});

describe('xpci list on fixture trees', () => {
  const nicBars: FixtureBar[] = [
    { index: 0, kind: 'mem', start: 0xfebc0000, size: 0x20000 },
    { index: 2, kind: 'io', start: 0xc040, size: 0x20 },
    { index: 4, kind: 'mem', start: 0x80_0000_0000, size: 0x100000, is64: true, prefetchable: true },
  ];
  const tree = createFixtureTree([
    {
      address: '0000:06:01.0', bars: nicBars, rom: { start: 0xfeb80000, size: 0x40000 }, driver: 'igb', iommuGroup: 3, reset: true,
      config: buildConfigImage({
        vendor: 0x8086, device: 0x10c9, classCode: 0x020000, revision: 1, headerType: 0x80, subsystemVendor: 0x8086, subsystemDevice: 0xa03c,
        bars: nicBars, capabilities: [{ id: 0x01, body: [3, 0, 0, 0, 0, 0] }, { id: 0x10, body: [2, 0] }],
        extendedCapabilities: [{ id: 0x01, body: new Array(0x38).fill(0) }],
      }),
    },
    { address: '0000:06:01.1', config: buildConfigImage({ vendor: 0x8086, device: 0x10c9, classCode: 0x020000, revision: 1, headerType: 0x80 }) },
    { address: '0000:00:1e.0', config: buildConfigImage({ vendor: 0x8086, device: 0x244e, classCode: 0x060401, headerType: 1, revision: 0x90 }) },
    { address: '0000:00:04.0', config: buildConfigImage({ vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00, revision: 0x10 }), driver: 'pci-stub' },
  ]);
  after(() => tree.cleanup());

  test('--json fields for multi-function, bridge, 64-bit prefetchable and I/O BARs, 4096-byte config, driver, ROM', () => {
    const run = xpci('list', '--json', '--sysfs-root', tree.root, '-i', '/dev/null');
    assert.equal(run.status, 0, run.stderr);
    const listed = JSON.parse(run.stdout) as ListedDevice[];
    assert.deepEqual(listed.map((d) => d.bdf), ['0000:00:04.0', '0000:00:1e.0', '0000:06:01.0', '0000:06:01.1']);
    const [edu, bridge, nic0, nic1] = listed;
    assert.deepEqual(nic0, {
      bdf: '0000:06:01.0', vendor: '8086', device: '10c9', class: '020000', revision: '01', subsystemVendor: '8086', subsystemDevice: 'a03c',
      description: 'Class 0200: Device 8086:10c9 (rev 01)', headerType: 0, multiFunction: true, bridge: false, driver: 'igb',
      configSize: 4096, iommuGroup: 3,
      bars: [
        { index: 0, start: 0xfebc0000, size: 0x20000, type: 'mem', prefetchable: false, is64: false },
        { index: 2, start: 0xc040, size: 0x20, type: 'io', prefetchable: false, is64: false },
        { index: 4, start: 0x80_0000_0000, size: 0x100000, type: 'mem', prefetchable: true, is64: true },
      ],
      rom: { start: 0xfeb80000, size: 0x40000 },
      exportable: 'read-only', reason: nic0.reason,
    });
    assert.match(nic0.reason, /host driver igb.*--read-only.*xpci assignable-add 0000:06:01.0/);
    assert.deepEqual([nic1.multiFunction, nic1.driver, nic1.exportable, nic1.configSize, nic1.bars, nic1.rom], [true, null, 'yes', 256, [], null]);
    assert.deepEqual([bridge.bridge, bridge.headerType, bridge.exportable, bridge.class], [true, 1, 'no', '060401']);
    assert.match(bridge.reason, /bridge/);
    assert.deepEqual([edu.driver, edu.exportable, edu.revision], ['pci-stub', 'yes', '10']);
  });

  test('text, selectors, names from -i FILE', () => {
    const ids = join(tree.root, 'test.ids');
    writeFileSync(ids, '8086  Intel Corporation\n\t10c9  82576 Gigabit Network Connection\nC 02  Network controller\n\t00  Ethernet controller\n');
    const run = xpci('list', '--sysfs-root', tree.root, '-i', ids, '-s', '06:01');
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.stdout.split('\n'), [
      '0000:06:01.0 Ethernet controller: Intel Corporation 82576 Gigabit Network Connection (rev 01)  [driver: igb, export: read-only]',
      '0000:06:01.1 Ethernet controller: Intel Corporation 82576 Gigabit Network Connection (rev 01)  [driver: none, export: yes]',
      '',
    ]);
    const nn = xpci('list', '--sysfs-root', tree.root, '-i', ids, '-nn', '-d', '::06xx');
    assert.equal(nn.stdout, '0000:00:1e.0 Class [0604]: Intel Corporation Device [8086:244e] (rev 90)  [driver: none, export: no (bridge)]\n');
    const none = xpci('list', '--sysfs-root', tree.root, '-s', '07:');
    assert.deepEqual([none.status, none.stdout, none.stderr], [0, '', ''], 'a pattern that matches nothing is fine');
  });

  test('bad input: one line on stderr, exit 2 for usage, 1 for runtime failures, never a stack', () => {
    const cases: [string[], number, RegExp][] = [
      [['list', '-s', '0g:'], 2, /^xpci: -s '0g:': invalid bus number/],
      [['list', '-s', '0000:06:01.0.1'], 2, /^xpci: -s '0000:06:01.0.1': invalid slot\/function/],
      [['list', '-s', '06:20.0'], 2, /invalid slot number '20'/],
      [['list', '-d', '8086'], 2, /^xpci: -d '8086': at least two fields/],
      [['list', '--bogus'], 2, /^xpci: unknown option --bogus for 'xpci list' \(see xpci list --help\)/],
      [['list', 'extra'], 2, /^xpci: Unknown argument: extra/],
      [['list', '-s', '06:01.7'], 1, /^xpci: no PCI device matches -s '06:01.7' under .*bus\/pci\/devices/],
      [['list', '--sysfs-root', join(tree.root, 'missing')], 1, /^xpci: no PCI devices directory under sysfs root '.*missing'/],
    ];
    for (const [args, status, message] of cases) {
      const run = xpci(...(args[1] === '--sysfs-root' ? args : [...args, '--sysfs-root', tree.root]));
      assert.equal(run.status, status, `${args.join(' ')}: ${run.stderr}`);
      assert.equal(run.stdout, '');
      assert.match(run.stderr, message);
      assert.equal(run.stderr.trimEnd().split('\n').length, 1, `one line: ${run.stderr}`);
      assert.doesNotMatch(run.stderr, /\n\s+at /);
    }
  });

  test('--help is a manual page with examples', () => {
    const run = xpci('list', '--help');
    assert.equal(run.status, 0);
    for (const text of ['-s', '-d', '-n', '--json', '--sysfs-root', 'Examples:', 'xpci list -d ::0200', 'read-only', 'Exit status']) {
      assert.ok(run.stdout.includes(text), text);
    }
  });
});
