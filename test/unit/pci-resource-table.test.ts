import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseResourceTable } from '../../src/host/sysfs/resource-table.js';

const line = (start: bigint, end: bigint, flags: number): string =>
  `0x${start.toString(16).padStart(16, '0')} 0x${end.toString(16).padStart(16, '0')} 0x${flags.toString(16).padStart(16, '0')}`;
const empty = line(0n, 0n, 0);

describe('parseResourceTable', () => {
  test("this machine's virtio BAR4 line: 64-bit, non-prefetchable memory, index = line number", () => {
    const lines = [empty, empty, empty, empty, line(0x4000100000n, 0x400017ffffn, 0x140204), empty, empty];
    const { bars, rom } = parseResourceTable(lines.join('\n') + '\n');
    assert.deepEqual(bars, [{ index: 4, start: 0x4000100000, size: 0x80000, kind: 'mem', is64: true, prefetchable: false, flags: 0x140204 }]);
    assert.equal(rom, null);
  });

  test('I/O, 32-bit, 64-bit prefetchable, ROM, and lines beyond the ROM', () => {
    const lines = [
      line(0xfe000000n, 0xfe01ffffn, 0x40200),
      line(0xc000n, 0xc01fn, 0x40101),
      line(0x7f00000000n, 0x7f00003fffn, 0x14220c),
      empty, empty, empty,
      line(0xfe100000n, 0xfe17ffffn, 0x46200),
      line(0xd0000000n, 0xd00fffffn, 0x200), // SR-IOV / bridge window: not a BAR
    ];
    const { bars, rom } = parseResourceTable(lines.join('\n'));
    assert.deepEqual(bars.map((b) => [b.index, b.kind, b.size, b.is64, b.prefetchable]), [
      [0, 'mem', 0x20000, false, false],
      [1, 'io', 0x20, false, false],
      [2, 'mem', 0x4000, true, true],
    ]);
    assert.deepEqual(rom && [rom.index, rom.start, rom.size, rom.prefetchable], [6, 0xfe100000, 0x80000, true]);
  });

  test('a resource with a size but no type is not a BAR; a start at 0 with an end counts', () => {
    const { bars } = parseResourceTable([line(0x1000n, 0x1fffn, 0), line(0n, 0xfffn, 0x100)].join('\n'));
    assert.deepEqual(bars.map((b) => [b.index, b.start, b.size, b.kind]), [[1, 0, 0x1000, 'io']]);
  });

  test('malformed input names the source and line', () => {
    assert.throws(() => parseResourceTable(`${empty}\n0x10 0x20\n`, '/x/resource'), /\/x\/resource: line 2: expected 'start end flags'/);
    assert.throws(() => parseResourceTable('0xzz 0x20 0x200\n', 'r'), /r: line 1: bad start '0xzz'/);
    assert.throws(() => parseResourceTable('0x20 0x10 0x200\n', 'r'), /end 0x10 below start 0x20/);
    assert.throws(() => parseResourceTable('0x0 0xffffffffffffffff 0x200\n', 'r'), /beyond 2\^53/);
  });

  test("every resource file of this machine parses (read-only)", { skip: existsSync('/sys/bus/pci/devices') ? false : 'no /sys/bus/pci' }, () => {
    for (const name of readdirSync('/sys/bus/pci/devices')) {
      const path = join('/sys/bus/pci/devices', name, 'resource');
      const text = readFileSync(path, 'utf8');
      const { bars } = parseResourceTable(text, path);
      const used = text.trim().split('\n').slice(0, 6).filter((l) => !/^0x0+ 0x0+ /.test(l)).length;
      assert.equal(bars.length, used, path);
    }
  });
});
