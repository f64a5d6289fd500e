/**
 * BAR register emulation on its own: vPCI address placement (alignment, regions, no overlap over a
 * full virtual bus, independence from host addresses) and the sizing latch state machine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { unpackAddress } from '../../src/pci/address.js';
import type { BarInfo } from '../../src/pci/device-info.js';
import { BarEmulation, VPCI_WINDOWS, vpciAddresses } from '../../src/backend/bar-emulation.js';

const bar = (index: number, kind: 'mem' | 'io', size: number, start: number, is64 = false, prefetchable = false): BarInfo =>
  ({ index, kind, size, start, is64, prefetchable, flags: 0 });

const TYPICAL: BarInfo[] = [
  bar(0, 'mem', 0x2_0000, 0xfebc_0000),
  bar(1, 'io', 0x40, 0xc000),
  bar(2, 'mem', 0x4000, 0x8_0000_0000, true, true),
  bar(4, 'mem', 0x1000, 0xfebf_0000),
];
const TYPICAL_ROM = bar(6, 'mem', 0x4_0000, 0xfeb8_0000);

const guestOf = (devfn: number) => unpackAddress(devfn);

test('vPCI addresses over a full bus: aligned, in their region, never overlapping', () => {
  const ranges: { start: bigint; end: bigint; what: string }[] = [];
  for (let devfn = 0; devfn < 256; devfn++) {
    const addresses = vpciAddresses(guestOf(devfn), TYPICAL, TYPICAL_ROM);
    for (const info of [...TYPICAL, TYPICAL_ROM]) {
      const address = addresses.get(info.index)!;
      const size = BigInt(info.size);
      assert.equal(address % size, 0n, `devfn ${devfn} BAR ${info.index} naturally aligned`);
      const region = info.kind === 'io' ? VPCI_WINDOWS.io : info.is64 ? VPCI_WINDOWS.mem64 : VPCI_WINDOWS.mem32;
      assert.ok(address >= region.base && address + size <= region.base + region.span, `devfn ${devfn} BAR ${info.index} inside its region`);
      if (!info.is64) assert.ok(address + size <= 1n << 32n, '32-bit BARs and the ROM stay below 4 GiB');
      if (info.kind === 'io') assert.ok(address + size <= 0x1_0000n, 'I/O stays in 16-bit port space');
      ranges.push({ start: address, end: address + size, what: `${info.kind} devfn ${devfn} BAR ${info.index}` });
    }
  }
  for (const kind of ['io', 'mem']) {
    const sorted = ranges.filter((r) => r.what.startsWith(kind)).sort((a, b) => (a.start < b.start ? -1 : 1));
    for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i - 1].end <= sorted[i].start, `${sorted[i - 1].what} overlaps ${sorted[i].what}`);
  }
});

test('vPCI addresses depend on the frontend address and the BAR layout only, never on host addresses', () => {
  const moved = TYPICAL.map((b) => ({ ...b, start: b.start + 0x10_0000 }));
  assert.deepEqual(vpciAddresses(guestOf(0x18), moved, null), vpciAddresses(guestOf(0x18), TYPICAL, null));
  assert.notDeepEqual(vpciAddresses(guestOf(0x19), TYPICAL, null), vpciAddresses(guestOf(0x18), TYPICAL, null));
});

test('a BAR too large for its window is still placed aligned in its region', () => {
  const big = [bar(0, 'mem', 0x100_0000, 0xe000_0000, false, true), bar(1, 'mem', 0x1000, 0xfebf_0000)];
  const addresses = vpciAddresses(guestOf(0x28), big, null);
  const address = addresses.get(0)!;
  assert.equal(address % 0x100_0000n, 0n);
  assert.ok(address >= VPCI_WINDOWS.mem32.base && address + 0x100_0000n <= 1n << 32n);
  assert.equal(addresses.get(1)!, VPCI_WINDOWS.mem32.base + 0x28n * VPCI_WINDOWS.mem32.stride, 'the one that fits keeps its window');
});

test('sizing latch: per dword, cleared by writing back the address, moves refused', () => {
  const emulation = new BarEmulation({
    mode: 'passthrough', guest: guestOf(0), romEnabled: false,
    bars: [bar(0, 'mem', 0x1_0000_0000, 0x40_0000_0000, true, true), bar(2, 'io', 0x100, 0xe000)], rom: null,
  });
  assert.deepEqual(emulation.offsets(), [0x10, 0x14, 0x18, 0x1c, 0x20, 0x24, 0x30]);
  assert.equal(emulation.read(0x10), 0x0000000c);
  assert.equal(emulation.read(0x14), 0x40);
  assert.equal(emulation.check(0x14, 0xffffffff), null);
  emulation.write(0x14, 0xffffffff);
  assert.equal(emulation.read(0x14), 0xffffffff, '4 GiB BAR: upper dword all ones');
  assert.equal(emulation.read(0x10), 0x0000000c, 'the lower dword is not latched');
  emulation.write(0x10, 0xfffffff0);
  assert.equal(emulation.read(0x10), 0x0000000c, '4 GiB BAR: no size bits below 4 GiB');
  assert.match(emulation.check(0x14, 0x41) ?? '', /never moves/);
  assert.match(emulation.check(0x14, 0xfffffffe) ?? '', /never moves/, 'the upper half sizes only with all ones');
  assert.equal(emulation.check(0x14, 0x40), null);
  emulation.write(0x14, 0x40);
  assert.equal(emulation.read(0x14), 0x40);
  // I/O: two flag bits, the address field starts at bit 2
  emulation.write(0x18, 0xfffffffc);
  assert.equal(emulation.read(0x18), 0xffffff01);
  assert.equal(emulation.check(0x18, 0x0000e003), null, 'flag bits of the value are ignored on restore');
  // absent BAR and absent ROM: hardwired zero; sizing and restoring 0 accepted, anything else refused
  emulation.write(0x20, 0xffffffff);
  assert.equal(emulation.read(0x20), 0);
  assert.match(emulation.check(0x20, 0x1000) ?? '', /not implemented/);
  emulation.write(0x30, 0xfffff801);
  assert.equal(emulation.read(0x30), 0, 'no ROM: the enable bit does not stick either');
});

test('ROM: enable bit is the frontend\'s own, address latch as for BARs', () => {
  const emulation = new BarEmulation({
    mode: 'passthrough', guest: guestOf(0), romEnabled: true, bars: [], rom: bar(6, 'mem', 0x2_0000, 0xfeb0_0000),
  });
  assert.equal(emulation.read(0x30), 0xfeb00001, 'initial enable bit from the hardware');
  emulation.write(0x30, 0xfffff800);
  assert.equal(emulation.read(0x30), 0xfffe0000);
  emulation.write(0x30, 0xfeb00001);
  assert.equal(emulation.read(0x30), 0xfeb00001);
  assert.match(emulation.check(0x30, 0xfec00001) ?? '', /never moves/);
});
