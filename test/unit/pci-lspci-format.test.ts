import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAddress } from '../../src/pci/address.js';
import { formatDevice, formatDevices, type LspciDevice } from '../../src/pci/lspci-format.js';
import { describeDevice, identityFromConfig } from '../../src/pci/lspci-device-line.js';
import { formatHexDump, hexDumpLength } from '../../src/pci/lspci-hex-dump.js';
import { verboseLines } from '../../src/pci/lspci-verbose.js';
import { DumpParseError, parseLspciDump } from '../../src/pci/lspci-dump.js';
import { PciIds } from '../../src/pci/pci-ids.js';
import { listDevices, snapshotDevice } from '../../src/host/sysfs/discovery.js';
import { buildConfigImage } from '../support/fixture-sysfs.js';

const noNames = new PciIds('/dev/null');
const haveLspci = spawnSync('lspci', ['--version']).status === 0;
const dir = mkdtempSync(join(tmpdir(), 'xpci-lspci-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Fixture devices covering the header types and BAR kinds the formatter decodes. */
const fixtures: LspciDevice[] = [
  {
    address: parseAddress('0000:06:01.0'),
    config: buildConfigImage({
      vendor: 0x8086, device: 0x10c9, classCode: 0x020000, revision: 1, headerType: 0x80, command: 0x0407, status: 0x0010,
      subsystemVendor: 0x8086, subsystemDevice: 0xa03c, interruptLine: 11, interruptPin: 1,
      bars: [{ index: 0, kind: 'mem', start: 0xfe000000, size: 0x20000 }, { index: 2, kind: 'io', start: 0xc000, size: 0x20 },
        // below 4 GiB: pciutils 3.9 in dump mode misreads a non-zero upper half as another BAR
        { index: 3, kind: 'mem', start: 0xd000_0000, size: 0x4000, is64: true, prefetchable: true }],
      rom: { start: 0xfe100000, size: 0x80000 },
      capabilities: [{ id: 0x01, body: [0x03, 0, 0, 0, 0, 0] }, { id: 0x05, body: [0x86, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] },
        { id: 0x11, body: [0x09, 0x80, 3, 0, 0, 0, 3, 0x20, 0, 0] }, { id: 0x10, body: [0x02, 0x00, 0, 0, 0, 0, 0, 0] }],
      extendedCapabilities: [{ id: 0x01, body: new Array(0x38).fill(0) }, { id: 0x03, body: [8, 7, 6, 5, 4, 3, 2, 1] }, { id: 0x0e, body: [0, 0, 0, 0] }],
    }),
  },
  { address: parseAddress('0000:06:01.1'), config: buildConfigImage({ vendor: 0x8086, device: 0x10c9, classCode: 0x020000, revision: 1, headerType: 0x80 }) },
  {
    address: parseAddress('0000:00:1e.0'),
    config: (() => {
      const c = buildConfigImage({ vendor: 0x8086, device: 0x244e, classCode: 0x060401, headerType: 1, revision: 0x90, command: 0x0107, capabilities: [{ id: 0x0d, body: [0, 0, 0x43, 0x10, 0x34, 0x12] }] });
      c.set([0x00, 0x02, 0x02, 0x20, 0xd0, 0xd0], 0x18); // buses, sec latency, I/O window d000-dfff
      c.set([0x00, 0xfe, 0xf0, 0xfe, 0xf1, 0xff, 0x01, 0x00], 0x20); // memory fe00-fef0, prefetchable disabled 64-bit
      return c;
    })(),
  },
  { address: parseAddress('0001:00:00.0'), config: buildConfigImage({ vendor: 0x1b36, device: 0x0008, classCode: 0x060000 }) },
];

describe('hex dumps', () => {
  test('exact lspci layout: two-digit offsets, three from 0x100, lowercase', () => {
    const config = new Uint8Array(4096).map((_, i) => (i * 7) & 0xff);
    const dump = formatHexDump(config, 4096).split('\n');
    assert.equal(dump.length, 257);
    assert.equal(dump[0], '00: 00 07 0e 15 1c 23 2a 31 38 3f 46 4d 54 5b 62 69');
    assert.equal(dump[15], 'f0: 90 97 9e a5 ac b3 ba c1 c8 cf d6 dd e4 eb f2 f9');
    assert.equal(dump[16], '100: 00 07 0e 15 1c 23 2a 31 38 3f 46 4d 54 5b 62 69');
    assert.equal(dump[255].slice(0, 4), 'ff0:');
    assert.equal(dump[256], '');
  });

  test('-x 64 bytes (128 for CardBus), -xxx 256, -xxxx 4096 only for extended devices', () => {
    const normal = buildConfigImage({ vendor: 1, device: 2, classCode: 0, size: 4096 });
    assert.equal(hexDumpLength(normal, 1), 64);
    assert.equal(hexDumpLength(normal, 3), 256);
    assert.equal(hexDumpLength(normal, 4), 4096);
    assert.equal(hexDumpLength(normal.slice(0, 256), 4), 256);
    assert.equal(hexDumpLength(normal, 4, 256), 256);
    assert.equal(hexDumpLength(normal.slice(0, 64), 3), 64, 'non-root readers only get 64 bytes');
    const cardbus = buildConfigImage({ vendor: 1, device: 2, classCode: 0x060700, headerType: 2 });
    assert.equal(hexDumpLength(cardbus, 1), 128);
  });

  test('formatDevice block: line, dump, blank line', () => {
    const text = formatDevice(fixtures[1], { hex: 1, ids: noNames });
    const lines = text.split('\n');
    assert.equal(lines[0], '06:01.1 Class 0200: Device 8086:10c9 (rev 01)');
    assert.equal(lines.length, 1 + 4 + 2);
    assert.equal(lines[5], '');
    assert.ok(text.endsWith('\n\n'));
    assert.equal(formatDevice(fixtures[1], { ids: noNames }), '06:01.1 Class 0200: Device 8086:10c9 (rev 01)\n');
  });
});

describe('one-line description', () => {
  test('domains: -D, or automatically when any device has one', () => {
    const id = identityFromConfig(parseAddress('06:01.0'), fixtures[0].config);
    assert.equal(describeDevice(id, { ids: noNames }), '06:01.0 Class 0200: Device 8086:10c9 (rev 01)');
    assert.equal(describeDevice(id, { ids: noNames, domains: true }), '0000:06:01.0 Class 0200: Device 8086:10c9 (rev 01)');
    assert.equal(describeDevice(id, { ids: noNames, names: 'numeric' }), '06:01.0 0200: 8086:10c9 (rev 01)');
    const listing = formatDevices(fixtures, { ids: noNames }).split('\n');
    assert.deepEqual(listing.map((l) => l.split(' ')[0]), ['0000:00:1e.0', '0000:06:01.0', '0000:06:01.1', '0001:00:00.0', '']);
    assert.equal(describeDevice(identityFromConfig(parseAddress('0001:00:00.0'), fixtures[3].config), { ids: noNames }), '0001:00:00.0 Class 0600: Device 1b36:0008');
  });

  test('prog-if with -v only', () => {
    const ahci = identityFromConfig(parseAddress('00:1f.2'), buildConfigImage({ vendor: 0x8086, device: 0x3a22, classCode: 0x010601 }));
    assert.equal(describeDevice(ahci, { ids: noNames }), '00:1f.2 Class 0106: Device 8086:3a22');
    assert.equal(describeDevice(ahci, { ids: noNames, verbose: 1 }), '00:1f.2 Class 0106: Device 8086:3a22 (prog-if 01)');
  });

  test('a header shorter than 64 bytes is refused', () => {
    assert.throws(() => identityFromConfig(parseAddress('00:00.0'), new Uint8Array(16)), RangeError);
  });
});

describe('-v block', () => {
  test('endpoint: subsystem, flags, regions with sysfs sizes, ROM, capabilities, driver', () => {
    const device: LspciDevice = {
      ...fixtures[0], configSize: 4096, driver: 'igb', irq: 0, iommuGroup: 12,
      resources: {
        bars: [
          { index: 0, start: 0xfe000000, size: 0x20000, kind: 'mem', is64: false, prefetchable: false, flags: 0x40200 },
          { index: 2, start: 0xc000, size: 0x20, kind: 'io', is64: false, prefetchable: false, flags: 0x40101 },
          { index: 3, start: 0x7f_0000_0000, size: 0x4000, kind: 'mem', is64: true, prefetchable: true, flags: 0x14220c },
        ],
        rom: { index: 6, start: 0xfe100000, size: 0x80000, kind: 'mem', is64: false, prefetchable: true, flags: 0x46200 },
      },
    };
    assert.deepEqual(formatDevice(device, { ids: noNames, verbose: 1 }).split('\n'), [
      '06:01.0 Class 0200: Device 8086:10c9 (rev 01)',
      '\tSubsystem: Device 8086:a03c',
      '\tFlags: bus master, fast devsel, latency 0, IOMMU group 12',
      '\tMemory at fe000000 (32-bit, non-prefetchable) [size=128K]',
      '\tI/O ports at c000 [size=32]',
      '\tMemory at 7f00000000 (64-bit, prefetchable) [size=16K]',
      '\tExpansion ROM at fe100000 [disabled] [size=512K]',
      '\tCapabilities: [40] Power Management version 3',
      '\tCapabilities: [48] MSI: Enable- Count=1/8 Maskable+ 64bit+',
      '\tCapabilities: [58] MSI-X: Enable+ Count=10 Masked-',
      '\tCapabilities: [64] Express Endpoint, MSI 00',
      '\tCapabilities: [100] Advanced Error Reporting',
      '\tCapabilities: [13c] Device Serial Number 01-02-03-04-05-06-07-08',
      '\tCapabilities: [148] Alternative Routing-ID Interpretation (ARI)',
      '\tKernel driver in use: igb',
      '',
      '',
    ]);
  });

  test('bridge: windows from the header, subsystem from SSVID', () => {
    assert.deepEqual(verboseLines(fixtures[2], { ids: noNames }), [
      '\tSubsystem: Device 1043:1234',
      '\tFlags: bus master, fast devsel, latency 0',
      '\tBus: primary=00, secondary=02, subordinate=02, sec-latency=32',
      '\tI/O behind bridge: d000-dfff [size=4K] [16-bit]',
      '\tMemory behind bridge: fe000000-feffffff [size=16M] [32-bit]',
      '\tPrefetchable memory behind bridge: [disabled] [64-bit]',
      '\tCapabilities: [40] Subsystem: Device 1043:1234',
    ]);
  });

  test('a 64-byte snapshot (non-root reader) says the capabilities are not readable', () => {
    const lines = verboseLines({ address: fixtures[0].address, config: fixtures[0].config.slice(0, 64) }, { ids: noNames });
    assert.equal(lines.at(-1), '\tCapabilities: <access denied>');
  });
});

describe('dump parsing (lspci -F rules)', () => {
  test('round trip of every fixture at -xxxx', () => {
    const text = formatDevices(fixtures, { hex: 4, ids: noNames });
    const parsed = parseLspciDump(text);
    assert.deepEqual(parsed.map((d) => d.address), [...fixtures].sort((a, b) => a.address.domain - b.address.domain || a.address.bus - b.address.bus || a.address.device - b.address.device).map((d) => d.address));
    for (const dumped of parsed) {
      const original = fixtures.find((f) => f.address.bus === dumped.address.bus && f.address.device === dumped.address.device && f.address.function === dumped.address.function && f.address.domain === dumped.address.domain)!;
      assert.deepEqual(dumped.config, original.config);
    }
  });

  test('verbose text ignored, CRLF, gaps read as 0xff, 5-digit domains, malformed bytes refused', () => {
    const parsed = parseLspciDump('10000:02:03.1 Anything\r\n\tFlags: whatever\r\n00: 01 02\r\n10: 03\r\n\r\n');
    assert.equal(parsed.length, 1);
    assert.deepEqual(parsed[0].address, { domain: 0x10000, bus: 2, device: 3, function: 1 });
    assert.equal(parsed[0].description, 'Anything');
    assert.equal(parsed[0].config.length, 0x11);
    assert.deepEqual([...parsed[0].config.slice(0, 3)], [1, 2, 0xff]);
    assert.equal(parsed[0].config[0x10], 3);
    assert.throws(() => parseLspciDump('00:00.0 x\n00: 01 2\n'), DumpParseError);
    assert.throws(() => parseLspciDump('00:00.0 x\nfff: 01 02\n'), /at most 4096 bytes/);
    assert.deepEqual(parseLspciDump('00: 01 02\n'), [], 'bytes outside a device are ignored');
  });
});

describe('against lspci', { skip: haveLspci ? false : 'lspci not installed' }, () => {
  test('lspci -F decodes our fixture dumps like we do (-v and -xxxx)', () => {
    const file = join(dir, 'fixtures.dump');
    writeFileSync(file, formatDevices(fixtures, { hex: 4, ids: noNames }));
    for (const [flags, options] of [[['-v'], { verbose: 1 }], [['-xxxx'], { hex: 4 }], [['-nn', '-v'], { verbose: 1, names: 'mixed' as const }]] as const) {
      const theirs = spawnSync('lspci', ['-F', file, '-i', '/dev/null', ...flags], { encoding: 'utf8' });
      assert.equal(theirs.status, 0, theirs.stderr);
      assert.equal(formatDevices(fixtures, { ids: noNames, ...options }), theirs.stdout, `lspci -F ${flags.join(' ')}`);
    }
  });

  test("this machine's devices print exactly as the live lspci prints them (read-only)", { skip: existsSync('/sys/bus/pci/devices') ? false : 'no /sys/bus/pci' }, () => {
    const devices = listDevices('/sys').map((info) => snapshotDevice('/sys', info, 4096));
    for (const [flags, options] of [[['-v'], { verbose: 1 }], [['-xxx'], { hex: 3 }], [['-nn', '-x'], { hex: 1, names: 'mixed' as const }], [['-k'], { kernel: true }]] as const) {
      const theirs = spawnSync('lspci', ['-D', ...flags], { encoding: 'utf8' });
      assert.equal(formatDevices(devices, { domains: true, ...options }), theirs.stdout, `lspci -D ${flags.join(' ')}`);
    }
  });
});
