/** `xpci bar`: its operation syntax in-process, and the CLI end to end against the mini backend and the real export. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BarSpecError, formatBarValue, parseBarOperation } from '../../src/cli/bar-spec.js';
import { buildConfigImage, createFixtureTree } from '../support/fixture-sysfs.js';
import { MiniBackend } from '../support/mini-backend.js';
import { runXpci, startExport } from '../support/xpci-process.js';

const hasAddon = existsSync(new URL('../../../build/Release/xpci_native.node', import.meta.url));

describe('BAR:OFFSET[.b|.w|.l|.q][=VALUE]', () => {
  test('parses index, hex offset, width (default .l) and hex value', () => {
    assert.deepEqual(parseBarOperation('0:4'), { text: '0:4', bar: 0, offset: 4n, width: 4 });
    assert.deepEqual(parseBarOperation('2:0x10.q=0x1'), { text: '2:0x10.q=0x1', bar: 2, offset: 16n, width: 8, value: 1n });
    assert.deepEqual(parseBarOperation('5:fff.B=ff'), { text: '5:fff.B=ff', bar: 5, offset: 0xfffn, width: 1, value: 0xffn });
    assert.equal(parseBarOperation('0:8.q=ffffffffffffffff').value, 0xffffffffffffffffn);
  });

  test('rejects what it cannot carry out, naming the problem', () => {
    const cases: [string, RegExp][] = [
      ['0', /missing BAR:OFFSET/], ['6:0', /invalid BAR index '6'/], ['x:0', /invalid BAR index/], ['0:', /invalid offset ''/],
      ['0:zz', /invalid offset 'zz'/], ['0:0.d', /invalid width '\.d'/], ['0:2.l', /not aligned/], ['0:0.b=100', /does not fit in 1 bytes/],
      ['0:0.l=', /invalid value ''/], ['0:0.q=10000000000000000', /invalid value/],
    ];
    for (const [text, message] of cases) assert.throws(() => parseBarOperation(text), (e: unknown) => e instanceof BarSpecError && message.test(e.message), text);
  });

  test('values print as 0x and two digits per byte', () => {
    assert.equal(formatBarValue(4, 0x1234n), '0x00001234');
    assert.equal(formatBarValue(8, 0xfedcba9876543210n), '0xfedcba9876543210');
    assert.equal(formatBarValue(1, 0n), '0x00');
  });
});

describe('xpci bar against the mini backend', () => {
  let backend: MiniBackend;
  let bar0: Buffer;
  before(async () => {
    bar0 = Buffer.alloc(256);
    const config = buildConfigImage({ vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00, command: 0x0002 });
    backend = await MiniBackend.start({
      devices: [
        { address: '00:00.0', config, bars: [{ index: 0, data: bar0 }] },
        { address: '00:01.0', config, bars: [{ index: 0, data: Buffer.alloc(16) }], readOnly: true },
      ],
    });
  });
  after(() => backend.close());
  const bar = (...args: string[]) => runXpci(['bar', '--connect', backend.path, ...args]);

  test('a write then reads of every width', async () => {
    const r = await bar('-s', '00:00.0', '0:4.l=0x12345678', '0:4.l', '0:0.q', '0:6.w', '0:7.b', '0:10.q=0xfedcba9876543210', '0:10.q');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '0x12345678\n0x1234567800000000\n0x1234\n0x12\n0xfedcba9876543210\n');
    assert.equal(bar0.readUInt32LE(4), 0x12345678);
  });

  test('protocol errors are one line naming the BAR access, exit 1; bad usage exits 2', async () => {
    const denied = await bar('-s', '01.0', '0:0.l');
    assert.deepEqual([denied.status, denied.stderr], [1, 'xpci: 0000:00:01.0 BAR0 offset 0x0 (4 bytes): AccessDenied: read-only export: no BAR access\n']);
    const beyond = await bar('-s', '00.0', '0:100.l');
    assert.deepEqual([beyond.status, beyond.stderr], [1, 'xpci: 0000:00:00.0 BAR0 offset 0x100 (4 bytes): InvalidOffset: beyond the BAR\n']);
    const two = await bar('-s', '00:', '0:0');
    assert.equal(two.status, 2);
    assert.match(two.stderr, /selects 2 devices \(0000:00:00\.0, 0000:00:01\.0\); name exactly one/);
    const syntax = await runXpci(['bar', '--connect', '/nonexistent/xpci.sock', '-s', '00.0', '0:3.l']);
    assert.equal(syntax.status, 2);
    assert.match(syntax.stderr, /^xpci: BAR operation '0:3\.l': offset 0x3 is not aligned/);
  });
});

describe('xpci bar against the real xpci export', { skip: !hasAddon && 'native addon not built' }, () => {
  test('BAR writes and reads through the ring reach the fixture resource file', async () => {
    const bars = [{ index: 0, kind: 'mem' as const, size: 4096, start: 0xfe000000 }];
    const config = buildConfigImage({ vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00, command: 0x0002, bars });
    const tree = createFixtureTree([{ address: '0000:06:01.0', config, bars, driver: null }]);
    const dir = mkdtempSync(join(tmpdir(), 'xpci-bar-real-'));
    const backend = await startExport(['--sysfs-root', tree.root, '--state-dir', join(dir, 'state'), '--socket', join(dir, 'ring.sock'),
      '--no-reset-on-export', '--no-reset-on-release', '06:01.0']);
    try {
      const r = await runXpci(['bar', '--connect', backend.socket, '-s', '00:00.0', '0:8.l=0xcafef00d', '0:8.l', '0:8.q']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, '0xcafef00d\n0x00000000cafef00d\n');
      assert.equal(readFileSync(join(tree.deviceDir('0000:06:01.0'), 'resource0')).readUInt32LE(8), 0xcafef00d);
    } finally {
      await backend.stop();
      tree.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
