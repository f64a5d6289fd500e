/**
 * The register table, row by row, against fixture devices: for every bit of every row a frontend
 * write either changes exactly the bits the row permits in the fixture's config file, or leaves the
 * file byte-identical and fails with AccessDenied. Expectations come from the row's masks (the
 * documented policy), outcomes from the real file and the real export path.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdtempSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseAddress } from '../../src/pci/address.js';
import { readDevice } from '../../src/host/sysfs/discovery.js';
import { ErrorCode, XpciError } from '../../src/protocol/ring/messages.js';
import { openExportedDevice, type ExportedDevice } from '../../src/backend/exported-device.js';
import { layoutConfigSpace, type PlacedField } from '../../src/backend/config-policy/layout.js';
import { buildConfigImage, createFixtureTree, type FixtureBar, type FixtureTree } from '../support/fixture-sysfs.js';
import { DmaBudget } from '../../src/backend/dma/dma-windows.js';
import { fakeDmaMemory, fakeHost } from '../support/fake-host-services.js';

const ENDPOINT = '0000:00:04.0';

const ENDPOINT_BARS: FixtureBar[] = [
  { index: 0, kind: 'mem', size: 0x1000, start: 0xfebf0000 },
  { index: 1, kind: 'io', size: 0x20, start: 0xc040 },
  { index: 2, kind: 'mem', size: 0x4000, start: 0x2_0000_0000, is64: true, prefetchable: true },
  { index: 4, kind: 'mem', size: 0x10_0000, start: 0xfd00_0000, prefetchable: true },
];

const bytes = (count: number, seed: number): number[] => Array.from({ length: count }, (_, i) => (seed + 37 * i) & 0xff);

/** An endpoint with every capability the table names, plus unknown ones and extended space. */
function endpointImage(command: number): Uint8Array {
  return buildConfigImage({
    vendor: 0x1af4, device: 0x1041, classCode: 0x020000, revision: 0x01,
    subsystemVendor: 0x1af4, subsystemDevice: 0x0001,
    command, status: 0x2200, cacheLineSize: 0x10, interruptLine: 0x0b, interruptPin: 0x01,
    bars: ENDPOINT_BARS, rom: { start: 0xfeb8_0000, size: 0x1_0000 },
    capabilities: [
      { id: 0x01, body: [0x03, 0xfe, 0x08, 0x00, 0x00, 0x00] }, // PM @0x40: PMC with PME support, PMCSR D0
      { id: 0x05, body: [0x80, 0x01, ...bytes(20, 0x11)] }, // MSI @0x48: 64-bit, per-vector masking
      { id: 0x11, body: [0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00] }, // MSI-X @0x60
      { id: 0x03, body: [0x00, 0x80, 0x12, 0x34, 0x56, 0x78] }, // VPD @0x6c
      { id: 0x10, body: bytes(58, 0x42) }, // PCIe @0x74: not in the table
      { id: 0x09, body: [0x08, 0x01, 0x02, 0x03, 0x04, 0x05] }, // vendor-specific @0xb0
    ],
    extendedCapabilities: [
      { id: 0x0001, version: 2, body: bytes(0x44, 0x5a) }, // AER @0x100
      { id: 0x0003, version: 1, body: bytes(8, 0x77) }, // DSN
    ],
  });
}

interface Device { address: string; image: Uint8Array }

/** The classes of one bit of a row, at bit `bit` of the row (little-endian over its bytes). */
function classOf(field: PlacedField, bit: number, permissive: boolean): string {
  const r = field.rule;
  if (typeof r.size !== 'number' || r.size > 4) return r.strict ? 'strict' : 'readOnly';
  const has = (mask: number | undefined): boolean => ((mask ?? 0) >>> bit & 1) === 1;
  if (has(r.hide)) return 'readOnly';
  if (has(r.pass) || (permissive && has(r.permissive))) return 'pass';
  if (has(r.decode)) return 'decode';
  if (has(r.emulate)) return 'emulate';
  if (has(r.rw1c)) return 'rw1c';
  if (has(r.ignore)) return 'ignore';
  return r.strict ? 'strict' : 'readOnly';
}

function expectDenied(action: () => void, what: string): void {
  assert.throws(action, (error: unknown) => error instanceof XpciError && error.code === ErrorCode.AccessDenied, what);
}

describe('config policy table, row by row, on fixture devices', () => {
  let tree: FixtureTree;
  const images: Record<string, Uint8Array> = {};

  before(() => {
    images[ENDPOINT] = endpointImage(0x0000);
    // thousands of exports are opened below: keep the tree in tmpfs when there is one
    tree = createFixtureTree([
      { address: ENDPOINT, config: images[ENDPOINT], bars: ENDPOINT_BARS, rom: { start: 0xfeb8_0000, size: 0x1_0000 } },
    ], existsSync('/dev/shm') ? mkdtempSync('/dev/shm/xpci-policy-') : undefined);
  });
  after(() => {
    for (const fd of fds.values()) closeSync(fd);
    tree.cleanup();
  });

  // One descriptor per fixture config file for the whole suite: each checked bit resets the file
  // and reads it back many times, and opening files is the slow part of this test.
  const fds = new Map<string, number>();
  const fdOf = (address: string): number => {
    if (!fds.has(address)) fds.set(address, openSync(join(tree.deviceDir(address), 'config'), 'r+'));
    return fds.get(address)!;
  };

  const infos = new Map<string, ReturnType<typeof readDevice>>();
  /** A fresh export of `address` over the given config image (the file is rewritten first). */
  /** `dma`: the device as the VFIO back end with an IOMMU offers it (bus mastering allowed). */
  const open = (address: string, image: Uint8Array, permissive: boolean, dma = false): ExportedDevice => {
    writeSync(fdOf(address), image, 0, image.length, 0);
    if (!infos.has(address)) infos.set(address, readDevice(tree.root, parseAddress(address)));
    const info = infos.get(address)!;
    const services = dma ? { services: fakeHost({ interrupts: {} }), dma: { budget: new DmaBudget(), allocate: fakeDmaMemory().allocate } } : {};
    return openExportedDevice({ sysfsRoot: tree.root, info, guest: parseAddress(address), mode: 'passthrough', readOnly: false, permissive, ...services });
  };

  const fileBytes = (address: string): Buffer => {
    const buffer = Buffer.alloc(images[address].length);
    readSync(fdOf(address), buffer, 0, buffer.length, 0);
    return buffer;
  };

  /**
   * Flip one bit of the row relative to what the frontend reads, keep every other bit of the row
   * as read (write-1-to-clear bits as 0: a 0 there asks for nothing), and check the outcome.
   */
  function checkBit(device: Device, field: PlacedField, bit: number, permissive: boolean): void {
    const width = typeof field.rule.size === 'number' && [1, 2, 4].includes(field.rule.size) ? field.size : 1;
    const start = field.start + (width === 1 ? Math.floor(bit / 8) : 0);
    const at = width === 1 ? bit % 8 : bit;
    const dev = open(device.address, device.image, permissive);
    try {
      const before = fileBytes(device.address);
      const visible = dev.configRead(start, width);
      const rw1c = width === field.size && typeof field.rule.size === 'number' ? (field.rule.rw1c ?? 0) & ~(field.rule.hide ?? 0) : 0;
      const kind = classOf(field, bit, permissive);
      const label = `${field.name} bit ${bit} (${kind}, permissive ${permissive})`;
      const flipped = ((visible & ~rw1c) ^ (1 << at)) >>> 0;
      const hwBit = (buf: Buffer): number => (buf[start + (at >> 3)] >> (at & 7)) & 1;
      const onlyBitChanged = (after: Buffer): void => {
        for (let i = 0; i < after.length; i++) {
          if (i !== start + (at >> 3)) assert.equal(after[i], before[i], `${label}: byte 0x${i.toString(16)} must not change`);
        }
      };
      switch (kind) {
        case 'readOnly':
        case 'strict':
          expectDenied(() => dev.configWrite(start, width, flipped), label);
          assert.deepEqual(fileBytes(device.address), before, `${label}: file byte-identical after a refusal`);
          if (kind === 'strict') expectDenied(() => dev.configWrite(start, width, visible), `${label}: even the value read`);
          else dev.configWrite(start, width, visible & ~rw1c); // writing back what was read is not a change
          assert.equal(dev.configRead(start, width), visible, label);
          break;
        case 'pass': {
          dev.configWrite(start, width, flipped);
          const after = fileBytes(device.address);
          assert.equal(hwBit(after), hwBit(before) ^ 1, `${label}: hardware bit flips`);
          onlyBitChanged(after);
          assert.equal((dev.configRead(start, width) >>> at) & 1, (flipped >>> at) & 1, label);
          break;
        }
        case 'decode': {
          dev.configWrite(start, width, flipped);
          const after = fileBytes(device.address);
          const setting = ((visible >>> at) & 1) === 0;
          assert.equal(hwBit(after), setting ? 1 : hwBit(before), `${label}: set reaches hardware, clear does not`);
          onlyBitChanged(after);
          assert.equal((dev.configRead(start, width) >>> at) & 1, setting ? 1 : 0, `${label}: the frontend sees its own value`);
          break;
        }
        case 'emulate':
          dev.configWrite(start, width, flipped);
          assert.deepEqual(fileBytes(device.address), before, `${label}: emulated, hardware untouched`);
          assert.equal(dev.configRead(start, width), flipped, label);
          break;
        case 'ignore':
          dev.configWrite(start, width, flipped);
          assert.deepEqual(fileBytes(device.address), before, `${label}: no effect`);
          assert.equal(dev.configRead(start, width), visible, label);
          break;
        case 'rw1c': {
          const request = ((visible & ~rw1c) | (1 << at)) >>> 0;
          if (!permissive) {
            expectDenied(() => dev.configWrite(start, width, request), label);
            assert.deepEqual(fileBytes(device.address), before, `${label}: file byte-identical after a refusal`);
          } else {
            dev.configWrite(start, width, request);
            // A regular file does not clear on 1: what it holds is exactly what the hardware was sent,
            // the requested 1 and no other write-1-to-clear bit.
            const sent = fileBytes(device.address).readUIntLE(start, width);
            assert.equal(sent & rw1c, 1 << at, `${label}: only the requested clear is sent`);
          }
          break;
        }
        default:
          assert.fail(`unexpected class ${kind}`);
      }
    } finally {
      dev.release({ restore: false });
    }
  }

  const devices = (): Device[] => [
    { address: ENDPOINT, image: images[ENDPOINT] },
    { address: ENDPOINT, image: endpointImage(0x0147) },
  ];

  test('the layout places every row where the table says', () => {
    const layout = layoutConfigSpace(4096, images[ENDPOINT]);
    const at = (name: string): number => layout.fields.find((f) => f.name === name)!.start;
    assert.equal(at('Command'), 0x04);
    assert.equal(at('PM Control/Status (PMCSR) @0x40'), 0x44);
    assert.equal(at('MSI Message Control @0x48'), 0x4a);
    assert.equal(layout.fields.find((f) => f.name === 'MSI Address, Data, Mask and Pending @0x48')!.size, 20);
    assert.equal(at('MSI-X Message Control @0x60'), 0x62);
    assert.equal(at('VPD Address @0x6c'), 0x6e);
    assert.equal(layout.fieldOf[0x76], -1, 'PCIe capability body is unlisted');
    assert.equal(at('AER Extended Capability Header @0x100'), 0x100);
    assert.equal(layout.fieldOf[0x104], -1, 'extended capability body is unlisted');
  });

  for (const permissive of [false, true]) {
    test(`every bit of every row (${permissive ? 'permissive' : 'default'} export)`, () => {
      let checked = 0;
      for (const device of devices()) {
        const layout = layoutConfigSpace(device.image.length, device.image);
        for (const field of layout.fields) {
          if (field.rule.bar !== undefined) continue; // BAR and ROM rows: bar-emulation and exported-device tests
          for (let bit = 0; bit < 8 * field.size; bit++) {
            checkBit(device, field, bit, permissive);
            checked++;
          }
        }
      }
      assert.ok(checked > 900, `checked ${checked} bits`);
    });
  }

  for (const permissive of [false, true]) {
    test(`every offset and size: reads pass through outside emulated bits, writes change only permitted bits (${permissive ? 'permissive' : 'default'})`, () => {
      const image = images[ENDPOINT];
      const layout = layoutConfigSpace(image.length, image);
      const m = layout.masks;
      const isBar = (b: number): boolean => layout.fieldOf[b] >= 0 && layout.fields[layout.fieldOf[b]].rule.bar !== undefined;
      const dev = open(ENDPOINT, image, permissive);
      let random = 0x2545f491;
      const next = (): number => (random = (Math.imul(random, 1103515245) + 12345) >>> 0);
      let accepted = 0;
      try {
        for (const size of [1, 2, 4]) {
          for (let offset = 0; offset < image.length; offset += size) {
            const hardware = fileBytes(ENDPOINT);
            const read = dev.configRead(offset, size);
            for (let i = 0; i < size; i++) {
              const b = offset + i;
              const emulated = isBar(b) ? 0xff : m.emulate[b] | m.decode[b] | m.hide[b];
              assert.equal((read >>> (8 * i)) & 0xff & ~emulated, hardware[b] & ~emulated, `read 0x${b.toString(16)}`);
            }
            for (const value of [0, size === 4 ? 0xffffffff : (1 << (8 * size)) - 1, next() & (size === 4 ? 0xffffffff : (1 << (8 * size)) - 1)]) {
              const before = fileBytes(ENDPOINT);
              let ok = true;
              try {
                dev.configWrite(offset, size, value >>> 0);
              } catch (error) {
                assert.ok(error instanceof XpciError && error.code === ErrorCode.AccessDenied, String(error));
                ok = false;
              }
              const after = fileBytes(ENDPOINT);
              if (!ok) {
                assert.ok(after.equals(before), `refused write 0x${offset.toString(16)}/${size} left the file byte-identical`);
                continue;
              }
              accepted++;
              if (after.equals(before)) continue;
              for (let b = 0; b < image.length; b++) {
                const changed = before[b] ^ after[b];
                if (changed === 0) continue;
                assert.ok(b >= offset && b < offset + size, `write at 0x${offset.toString(16)} changed byte 0x${b.toString(16)}`);
                assert.ok(!isBar(b), `BAR register byte 0x${b.toString(16)} never changes in hardware`);
                // plain files: a 0 sent to a write-1-to-clear bit shows as 1 → 0 (hardware keeps the 1)
                const free = m.pass[b] | (permissive ? m.permissive[b] | m.rw1c[b] : m.rw1c[b] & before[b]);
                assert.equal(changed & ~free & ~m.decode[b], 0, `byte 0x${b.toString(16)}: bits 0x${(changed & ~free).toString(16)} are not permitted`);
                assert.equal(changed & m.decode[b] & before[b], 0, `byte 0x${b.toString(16)}: decode never goes off in hardware`);
              }
            }
          }
        }
      } finally {
        dev.release({ restore: false });
      }
      assert.ok(accepted > 100, `${accepted} writes accepted`);
    });
  }

  test('unlisted registers: refused even when rewriting the value read; permissive writes them', () => {
    for (const offset of [0x78, 0xb4, 0xfc, 0x104, 0xffc]) {
      const strict = open(ENDPOINT, images[ENDPOINT], false);
      const before = fileBytes(ENDPOINT);
      const value = strict.configRead(offset, 4);
      expectDenied(() => strict.configWrite(offset, 4, value), `0x${offset.toString(16)}`);
      expectDenied(() => strict.configWrite(offset, 1, 0x5a), `0x${offset.toString(16)} byte`);
      assert.deepEqual(fileBytes(ENDPOINT), before);
      strict.release();
      const open2 = open(ENDPOINT, images[ENDPOINT], true);
      open2.configWrite(offset, 4, 0xa5c3e10f);
      assert.equal(fileBytes(ENDPOINT).readUInt32LE(offset), 0xa5c3e10f);
      open2.release({ restore: false });
    }
  });

  test('a dword over several fields is judged per field and applied whole or not at all', () => {
    const dev = open(ENDPOINT, images[ENDPOINT], false);
    try {
      const before = fileBytes(ENDPOINT);
      const dword = dev.configRead(0x0c, 4); // CLS, latency, header type, BIST
      dev.configWrite(0x0c, 4, ((dword & ~0xff) | 0x40) >>> 0);
      const after = fileBytes(ENDPOINT);
      assert.equal(after[0x0c], 0x40, 'cache line size written');
      assert.deepEqual(after.subarray(0x0d), before.subarray(0x0d));
      assert.deepEqual(after.subarray(0, 0x0c), before.subarray(0, 0x0c));
      // CLS permitted, latency timer not: nothing is applied
      expectDenied(() => dev.configWrite(0x0c, 4, ((dword & ~0xffff) | 0x2020) >>> 0), 'CLS + latency');
      assert.deepEqual(fileBytes(ENDPOINT), after, 'the permitted CLS part is not applied either');
      // command + status in one dword: status error bits are written as 0, never cleared by a write-back
      const commandStatus = dev.configRead(0x04, 4);
      assert.equal(commandStatus >>> 16, 0x2210, 'status shows the host error bit');
      expectDenied(() => dev.configWrite(0x04, 4, (commandStatus | 0x2) >>> 0), 'writing the error bit back asks to clear it');
      dev.configWrite(0x04, 4, (((commandStatus & 0x06ff0000) | 0x0002) >>> 0));
      assert.equal(fileBytes(ENDPOINT).readUInt16LE(0x04), 0x0002);
      assert.equal(fileBytes(ENDPOINT).readUInt16LE(0x06), 0x2210, 'status untouched');
    } finally {
      dev.release({ restore: false });
    }
  });

  test('command register: bus master only with DMA through an IOMMU, even when permissive', () => {
    for (const permissive of [false, true]) {
      const dev = open(ENDPOINT, images[ENDPOINT], permissive);
      try {
        expectDenied(() => dev.configWrite(0x04, 2, 0x0006), `bus master without an IOMMU${permissive ? ' (permissive)' : ''}`);
        assert.equal(fileBytes(ENDPOINT).readUInt16LE(0x04) & 0x0004, 0);
        dev.configWrite(0x04, 2, 0x0002);
      } finally {
        dev.release({ restore: false });
      }
    }
  });

  test('command register: decode off is view-only, INTx disable view-only with DMA, other bits filtered unless permissive (literal values)', () => {
    const dev = open(ENDPOINT, images[ENDPOINT], false, true);
    try {
      dev.configWrite(0x04, 2, 0x0007);
      assert.equal(fileBytes(ENDPOINT).readUInt16LE(0x04), 0x0007);
      dev.configWrite(0x04, 2, 0x0004);
      assert.equal(dev.configRead(0x04, 2), 0x0004, 'the frontend sees decode off');
      assert.equal(fileBytes(ENDPOINT).readUInt16LE(0x04), 0x0007, 'the hardware keeps decoding (XSA-120)');
      dev.configWrite(0x04, 2, 0x0000);
      assert.equal(fileBytes(ENDPOINT).readUInt16LE(0x04), 0x0003, 'bus master really goes off');
      dev.configWrite(0x04, 2, 0x0400);
      assert.equal(dev.configRead(0x04, 2), 0x0400, 'INTx disable in the view (vfio-pci masks INTx for it)');
      assert.equal(fileBytes(ENDPOINT).readUInt16LE(0x04), 0x0003, 'INTx disable never reaches the hardware');
      dev.configWrite(0x04, 2, 0x0000);
      expectDenied(() => dev.configWrite(0x04, 2, 0x0200), 'fast back-to-back');
      expectDenied(() => dev.configWrite(0x05, 1, 0x01), 'SERR through the high byte');
      assert.equal(fileBytes(ENDPOINT).readUInt16LE(0x04), 0x0003);
      const [denial] = dev.denials();
      assert.equal(denial.register, 'Command');
      assert.equal(denial.count, 2);
    } finally {
      dev.release({ restore: false });
    }
    const permissive = open(ENDPOINT, images[ENDPOINT], true);
    try {
      permissive.configWrite(0x04, 2, 0x0542);
      assert.equal(fileBytes(ENDPOINT).readUInt16LE(0x04), 0x0542, 'INTx disable, SERR, parity and memory decode reach the hardware');
      expectDenied(() => permissive.configWrite(0x04, 2, 0x8000), 'reserved bits stay read-only');
      expectDenied(() => permissive.configWrite(0x00, 2, 0x1234), 'vendor id stays read-only');
    } finally {
      permissive.release({ restore: false });
    }
  });

  test('power management: PME hidden and not settable, power state refused, Data_Select passes', () => {
    const dev = open(ENDPOINT, images[ENDPOINT], false);
    try {
      assert.equal(dev.configRead(0x42, 2), 0x0603, 'PMC reads without PME support bits 15:11 (0xfe03 in hardware)');
      expectDenied(() => dev.configWrite(0x44, 2, 0x0008 | 0x0100), 'PME_En');
      expectDenied(() => dev.configWrite(0x44, 2, 0x0008 | 0x0003), 'D3hot');
      dev.configWrite(0x44, 2, 0x0008 | 0x0600);
      assert.equal(fileBytes(ENDPOINT).readUInt16LE(0x44), 0x0608);
    } finally {
      dev.release({ restore: false });
    }
  });

  test('MSI and MSI-X enable bits are readable but refused; VPD is read-only', () => {
    const dev = open(ENDPOINT, images[ENDPOINT], true); // even permissive
    try {
      const before = fileBytes(ENDPOINT);
      assert.equal(dev.configRead(0x4a, 2), 0x0180);
      expectDenied(() => dev.configWrite(0x4a, 2, 0x0181), 'MSI enable');
      expectDenied(() => dev.configWrite(0x62, 2, 0x8003), 'MSI-X enable');
      expectDenied(() => dev.configWrite(0x62, 2, 0x4003), 'MSI-X function mask');
      expectDenied(() => dev.configWrite(0x6e, 2, 0x0010), 'VPD address (read request)');
      expectDenied(() => dev.configWrite(0x70, 4, 0), 'VPD data');
      assert.deepEqual(fileBytes(ENDPOINT), before);
    } finally {
      dev.release({ restore: false });
    }
  });
});
