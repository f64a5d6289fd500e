/**
 * `xpci lspci` end to end: the CLI as a child process against the in-test mini backend (fixture
 * config images), against the real `xpci export` on a fixture sysfs tree, and the acceptance
 * check against a read-only passthrough export of a device of this machine (reads only).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatAddress } from '../../src/pci/address.js';
import { walkCapabilities } from '../../src/pci/capabilities.js';
import { parseLspciDump } from '../../src/pci/lspci-dump.js';
import { buildConfigImage, createFixtureTree } from '../support/fixture-sysfs.js';
import { MiniBackend } from '../support/mini-backend.js';
import { runXpci, startExport } from '../support/xpci-process.js';

const hasLspci = spawnSync('lspci', ['--version'], { stdio: 'ignore' }).status === 0;
const hasAddon = existsSync(new URL('../../../build/Release/xpci_native.node', import.meta.url));

const nic = buildConfigImage({
  vendor: 0x8086, device: 0x10d3, classCode: 0x020000, revision: 0x02, headerType: 0x80, command: 0x0006,
  subsystemVendor: 0x8086, subsystemDevice: 0xa01f, interruptPin: 1,
  bars: [{ index: 0, kind: 'mem', size: 0x20000, start: 0xfebc0000 }],
  capabilities: [{ id: 0x01, body: [0x22, 0xc8, 0x00, 0x00, 0, 0] }, { id: 0x10, body: [0x01, 0x00] }],
  extendedCapabilities: [{ id: 0x0001, version: 1 }],
});
const nicSibling = buildConfigImage({ vendor: 0x8086, device: 0x10d3, classCode: 0x020000, revision: 0x02, headerType: 0x80 });
const lone = buildConfigImage({ vendor: 0x1af4, device: 0x1041, classCode: 0x020000, revision: 0x01, command: 0x0007 });

describe('xpci lspci against the mini backend', () => {
  let backend: MiniBackend;
  let scratch: string;
  before(async () => {
    backend = await MiniBackend.start({
      devices: [
        { address: '00:00.0', config: nic, bars: [{ index: 0, data: Buffer.alloc(64) }] },
        { address: '00:00.1', config: nicSibling },
        { address: '00:01.2', config: lone },
      ],
    });
    scratch = mkdtempSync(join(tmpdir(), 'xpci-lspci-'));
  });
  after(async () => {
    await backend.close();
    rmSync(scratch, { recursive: true, force: true });
  });
  const lspci = (...args: string[]) => runXpci(['lspci', '--connect', backend.path, ...args]);

  test('-n lists every function the scan finds, multi-function siblings and a lone function 2 included', async () => {
    const r = await lspci('-n');
    assert.equal(r.stderr, '');
    assert.equal(r.status, 0);
    assert.equal(r.stdout, [
      '00:00.0 0200: 8086:10d3 (rev 02)',
      '00:00.1 0200: 8086:10d3 (rev 02)',
      '00:01.2 0200: 1af4:1041 (rev 01)',
      '',
    ].join('\n'));
  });

  test('-nn -D with a pci.ids file (-i) prints names and numbers with the domain', async () => {
    const ids = join(scratch, 'pci.ids');
    writeFileSync(ids, '8086  Intel Corporation\n\t10d3  82574L Gigabit Network Connection\n1af4  Red Hat, Inc.\n\t1041  Virtio 1.0 network device\nC 02  Network controller\n\t00  Ethernet controller\n');
    const r = await lspci('-nn', '-D', '-i', ids, '-s', '1.2');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '0000:00:01.2 Ethernet controller [0200]: Red Hat, Inc. Virtio 1.0 network device [1af4:1041] (rev 01)\n');
  });

  test('-s and -d filter like lspci; bad selectors are usage errors (exit 2)', async () => {
    assert.equal((await lspci('-n', '-s', '00:00')).stdout.split('\n').filter(Boolean).length, 2);
    assert.equal((await lspci('-n', '-d', '1af4:')).stdout, '00:01.2 0200: 1af4:1041 (rev 01)\n');
    for (const bad of [['-s', '0g.0'], ['-d', '8086']]) {
      const r = await lspci(...bad);
      assert.equal(r.status, 2, `${bad.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.split('\n').filter(Boolean).length, 1);
      assert.match(r.stderr, /^xpci: -[sd] /);
    }
  });

  test('-x, -xxx and -xxxx dump 64, 256 and 4096 bytes in lspci\'s exact format', async () => {
    const x = await lspci('-n', '-x', '-s', '00:00.0');
    const lines = x.stdout.split('\n');
    assert.equal(lines[0], '00:00.0 0200: 8086:10d3 (rev 02)');
    assert.equal(lines[1], '00: 86 80 d3 10 06 00 10 00 02 00 00 02 00 00 80 00');
    assert.equal(lines[2], '10: 00 00 bc fe 00 00 00 00 00 00 00 00 00 00 00 00');
    assert.equal(lines.length, 1 + 4 + 2, 'header line, 4 hex lines, blank line, final newline');
    assert.equal(lines[5], '');

    const xxx = await lspci('-n', '-xxx', '-s', '00:00.0');
    assert.equal(xxx.stdout.split('\n').length, 1 + 16 + 2);
    const xxxx = await lspci('-n', '-xxxx');
    const dumps = parseLspciDump(xxxx.stdout);
    assert.deepEqual(dumps.map((d) => [formatAddress(d.address), d.config.length]),
      [['0000:00:00.0', 4096], ['0000:00:00.1', 256], ['0000:00:01.2', 256]]);
    assert.deepEqual(dumps[0].config, nic);
    assert.deepEqual(dumps[2].config, lone);
    assert.match(xxxx.stdout, /^100: 01 00 01 00 /m, 'offsets from 0x100 print three digits');
  });

  test('real lspci -F decodes the frontend\'s dump', { skip: !hasLspci && 'lspci not installed' }, async () => {
    const dump = join(scratch, 'dump.txt');
    writeFileSync(dump, (await lspci('-xxx')).stdout);
    const decoded = spawnSync('lspci', ['-F', dump, '-n'], { encoding: 'utf8' });
    assert.equal(decoded.status, 0, decoded.stderr);
    assert.equal(decoded.stdout, (await lspci('-n')).stdout);
    const verbose = spawnSync('lspci', ['-F', dump, '-vv', '-s', '00:00.0'], { encoding: 'utf8' });
    assert.match(verbose.stdout, /Capabilities: \[40\] Power Management version 2/);
  });

  test('--json: address, ids, class, revision, config size, BARs, and config bytes with a dump flag', async () => {
    const plain = JSON.parse((await lspci('--json', '-s', '00:00.0')).stdout);
    assert.deepEqual(plain, [{
      address: '0000:00:00.0', vendor: '8086', device: '10d3', class: '020000', revision: '02', configSize: 4096,
      bars: [{ index: 0, kind: 'mem', is64: false, prefetchable: false, size: 64 }],
    }]);
    const dumped = JSON.parse((await lspci('--json', '-xxx', '-s', '.2')).stdout);
    assert.equal(dumped[0].config, Buffer.from(lone).toString('hex'));
  });

  test('-v prints lspci\'s verbose block from the remote config space', async () => {
    const r = await lspci('-n', '-v', '-s', '00:00.0');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^\tSubsystem: 8086:a01f$/m);
    // The size comes from the backend's description of the BAR (the Hello), as lspci shows it for a local device.
    assert.match(r.stdout, /^\tMemory at febc0000 \(32-bit, non-prefetchable\) \[size=64\]$/m);
    assert.match(r.stdout, /^\tCapabilities: \[40\] Power Management version 2$/m);
  });

  test('--verbose-request logs each request on stderr; stdout is unchanged', async () => {
    // A full listing scans like pcifront, so the probes of empty devfns show too.
    const r = await lspci('-n', '--verbose-request');
    assert.match(r.stdout, /^00:01\.2 0200: 1af4:1041 \(rev 01\)$/m);
    assert.match(r.stderr, /^xpci:request #\d+ 0000:00:01\.2 ConfigRead offset=0x0 size=4 -> 0x10411af4$/m);
    assert.match(r.stderr, /^xpci:request #\d+ 0000:00:1f\.7 ConfigRead offset=0x0 size=4 -> error DeviceNotFound: /m);
  });
});

test('a missing backend is one line naming the path and a hint, exit 1', async () => {
  const r = await runXpci(['lspci', '--connect', '/nonexistent/xpci.sock']);
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, 'xpci: cannot connect to /nonexistent/xpci.sock: no such file (is `xpci export` running?)\n');
  const fromEnv = await runXpci(['lspci'], { XPCI_SOCKET: '/nonexistent/env.sock' });
  assert.match(fromEnv.stderr, /cannot connect to \/nonexistent\/env\.sock/);
});

describe('xpci lspci against the real xpci export', { skip: !hasAddon && 'native addon not built' }, () => {
  test('vPCI export of a fixture tree: the scan finds the documented numbering', async () => {
    const tree = createFixtureTree([
      { address: '0000:06:01.0', config: nic, driver: null },
      { address: '0000:06:01.1', config: nicSibling, driver: null },
      { address: '0000:07:00.2', config: lone, driver: null },
    ]);
    const dir = mkdtempSync(join(tmpdir(), 'xpci-lspci-real-'));
    const backend = await startExport(['--sysfs-root', tree.root, '--state-dir', join(dir, 'state'), '--socket', join(dir, 'ring.sock'),
      '--no-reset-on-export', '--no-reset-on-release', '06:01.0', '06:01.1', '07:00.2']);
    try {
      const r = await runXpci(['lspci', '-n', '--connect', backend.socket]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, '00:00.0 0200: 8086:10d3 (rev 02)\n00:00.1 0200: 8086:10d3 (rev 02)\n00:01.2 0200: 1af4:1041 (rev 01)\n');
    } finally {
      await backend.stop();
      tree.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const HOST_DEVICE = '0000:00:03.0';
  const hostConfig = `/sys/bus/pci/devices/${HOST_DEVICE}/config`;
  const canRunAcceptance = hasLspci && existsSync(hostConfig) && process.getuid?.() === 0;
  test(`read-only passthrough export of this machine's ${HOST_DEVICE}: the -xxx dump matches the host's lspci, and lspci -F decodes it`,
    { skip: !canRunAcceptance && 'needs root, lspci and the host device' }, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'xpci-accept-'));
      const backend = await startExport(['--read-only', '--mode', 'passthrough', '--state-dir', join(dir, 'state'), '--socket', join(dir, 'ring.sock'), HOST_DEVICE]);
      try {
        const front = await runXpci(['lspci', '-xxx', '-s', '00:03.0', '--connect', backend.socket]);
        assert.equal(front.status, 0, front.stderr);
        const host = spawnSync('lspci', ['-xxx', '-s', '00:03.0'], { encoding: 'utf8' }).stdout;
        const [frontDump] = parseLspciDump(front.stdout);
        const [hostDump] = parseLspciDump(host);
        assert.equal(front.stdout.split('\n')[0], host.split('\n')[0], 'the same device line');
        assert.equal(frontDump.config.length, 256);
        // docs/protocol.md §13: the only bytes allowed to differ are the virtualized registers.
        const pm = walkCapabilities(hostDump.config).capabilities.find((c) => c.id === 0x01)?.offset;
        const virtualized = (offset: number): boolean => (offset >= 0x04 && offset < 0x06) || (offset >= 0x10 && offset < 0x28)
          || (offset >= 0x30 && offset < 0x34) || offset === 0x3c || (pm !== undefined && offset >= pm + 2 && offset < pm + 6);
        const differing = [...hostDump.config.keys()].filter((i) => hostDump.config[i] !== frontDump.config[i]);
        assert.deepEqual(differing.filter((i) => !virtualized(i)), [], 'identity/pass-through bytes must match exactly');
        // Hex lines that hold no virtualized byte match the host's text exactly.
        const lineOf = (text: string, offset: number) => text.split('\n').find((l) => l.startsWith(`${offset.toString(16).padStart(2, '0')}: `));
        for (let offset = 0; offset < 256; offset += 16) {
          if (![...Array(16).keys()].some((i) => virtualized(offset + i))) assert.equal(lineOf(front.stdout, offset), lineOf(host, offset));
        }
        const dumpFile = join(dir, 'front.txt');
        writeFileSync(dumpFile, front.stdout);
        const decoded = spawnSync('lspci', ['-F', dumpFile], { encoding: 'utf8' });
        assert.equal(decoded.status, 0, decoded.stderr);
        assert.equal(decoded.stdout, spawnSync('lspci', ['-s', '00:03.0'], { encoding: 'utf8' }).stdout);
      } finally {
        await backend.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    });
});
