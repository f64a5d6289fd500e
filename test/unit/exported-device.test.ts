/**
 * ExportedDevice on fixture sysfs trees: validation, BAR register emulation (sizing masks, vPCI
 * addresses), decode as the frontend sees it, read-only exports, release/restore and denial
 * accounting, all through the API the backend server calls.
 */
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import createDebug from 'debug';
import { enableDebugNamespaces } from '../../src/diagnostics/debug-log.js';
import { formatAddress, parseAddress } from '../../src/pci/address.js';
import { readDevice } from '../../src/host/sysfs/discovery.js';
import { ErrorCode, XpciError, type ExportMode } from '../../src/protocol/ring/messages.js';
import { openExportedDevice, type ExportedDevice } from '../../src/backend/exported-device.js';
import { buildConfigImage, createFixtureTree, type FixtureBar, type FixtureTree } from '../support/fixture-sysfs.js';

const NIC = '0000:06:01.0'; // 4096-byte config, every BAR type
const OLD = '0000:06:02.0'; // 256-byte config, an 8 GiB 64-bit BAR
const BRIDGE = '0000:06:03.0'; // refused: bridges are never exported

const NIC_BARS: FixtureBar[] = [
  { index: 0, kind: 'mem', size: 0x1000, start: 0xfebf_0000 },
  { index: 1, kind: 'io', size: 0x20, start: 0xc040 },
  { index: 2, kind: 'mem', size: 0x4000, start: 0x2_0000_0000, is64: true, prefetchable: true },
  { index: 4, kind: 'mem', size: 0x10_0000, start: 0xfd00_0000, prefetchable: true },
];
const NIC_ROM = { start: 0xfeb8_0000, size: 0x1_0000 };
const OLD_BARS: FixtureBar[] = [{ index: 0, kind: 'mem', size: 2 ** 33, start: 0x40_0000_0000, is64: true, prefetchable: true }];

const NIC_IMAGE = buildConfigImage({
  vendor: 0x8086, device: 0x100e, classCode: 0x020000, command: 0x0000, status: 0x0200,
  cacheLineSize: 0x10, interruptLine: 0x0b, interruptPin: 0x01, subsystemVendor: 0x8086, subsystemDevice: 0x001e,
  bars: NIC_BARS, rom: NIC_ROM,
  capabilities: [{ id: 0x01, body: [0x03, 0x00, 0x08, 0x00, 0x00, 0x00] }, { id: 0x10, body: new Array(58).fill(0x11) }],
  extendedCapabilities: [{ id: 0x0001, body: new Array(0x44).fill(0) }],
});
const OLD_IMAGE = buildConfigImage({ vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00, command: 0x0002, bars: OLD_BARS, size: 256 });
const BRIDGE_IMAGE = buildConfigImage({
  vendor: 0x8086, device: 0x244e, classCode: 0x060400, headerType: 0x01,
  bars: [{ index: 0, kind: 'mem', size: 0x1000, start: 0xfe00_0000 }], rom: { start: 0xfe10_0000, size: 0x800 },
});

const denied = (code: ErrorCode) => (error: unknown): boolean => error instanceof XpciError && error.code === code;

/** Paths of this process's open file descriptors and mappings (to see what an export holds). */
const openPaths = (): string[] => readdirSync('/proc/self/fd').flatMap((fd) => {
  try { return [readlinkSync(`/proc/self/fd/${fd}`)]; } catch { return []; }
});
const mappedPaths = (): string => readFileSync('/proc/self/maps', 'utf8');

describe('ExportedDevice on a fixture tree', () => {
  let tree: FixtureTree;
  const opened: ExportedDevice[] = [];

  before(() => {
    tree = createFixtureTree([
      { address: NIC, config: NIC_IMAGE, bars: NIC_BARS, rom: NIC_ROM },
      { address: OLD, config: OLD_IMAGE, bars: OLD_BARS },
      { address: BRIDGE, config: BRIDGE_IMAGE, bars: [{ index: 0, kind: 'mem', size: 0x1000, start: 0xfe00_0000 }], rom: { start: 0xfe10_0000, size: 0x800 } },
    ]);
  });
  afterEach(() => {
    for (const device of opened.splice(0)) device.release({ restore: false });
  });
  after(() => tree.cleanup());

  const reset = (address: string, image: Uint8Array): void => writeFileSync(join(tree.deviceDir(address), 'config'), image);

  const open = (address: string, options: { mode?: ExportMode; guest?: string; readOnly?: boolean; permissive?: boolean } = {}): ExportedDevice => {
    const device = openExportedDevice({
      sysfsRoot: tree.root,
      info: readDevice(tree.root, parseAddress(address)),
      guest: parseAddress(options.guest ?? (options.mode === 'passthrough' ? address : '0000:00:03.0')),
      mode: options.mode ?? 'vpci',
      readOnly: options.readOnly ?? false,
      permissive: options.permissive ?? false,
    });
    opened.push(device);
    return device;
  };

  test('descriptor: frontend address, BARs, config size; host address only in passthrough', () => {
    const vpci = open(NIC).descriptor();
    assert.equal(vpci.address, '0000:00:03.0');
    assert.equal(vpci.hostAddress, undefined);
    assert.equal(JSON.stringify(vpci).includes('06:01'), false, 'nothing in the vPCI descriptor names the host address');
    assert.equal(vpci.configSize, 4096);
    assert.deepEqual(vpci.bars.map((b) => [b.index, b.kind, b.is64, b.prefetchable, b.size]),
      [[0, 'mem', false, false, 0x1000], [1, 'io', false, false, 0x20], [2, 'mem', true, true, 0x4000], [4, 'mem', false, true, 0x10_0000]]);
    const passthrough = open(NIC, { mode: 'passthrough', readOnly: true }).descriptor();
    assert.equal(passthrough.hostAddress, NIC);
    assert.equal(passthrough.address, NIC);
    assert.equal(passthrough.readOnly, true);
    assert.equal(open(OLD).descriptor().configSize, 256);
  });

  test('validation: size, alignment and range against 256- and 4096-byte devices', () => {
    const big = open(NIC);
    const small = open(OLD);
    for (const size of [0, 3, 8, -1, 2.5]) {
      assert.throws(() => big.configRead(0, size), denied(ErrorCode.InvalidSize), `size ${size}`);
      assert.throws(() => big.configWrite(0, size, 0), denied(ErrorCode.InvalidSize), `write size ${size}`);
    }
    for (const [offset, size] of [[1, 2], [2, 4], [3, 4], [0x101, 2]]) {
      assert.throws(() => big.configRead(offset, size), denied(ErrorCode.Misaligned), `0x${offset.toString(16)}/${size}`);
      assert.throws(() => big.configWrite(offset, size, 0), denied(ErrorCode.Misaligned));
    }
    assert.equal(small.configRead(0xfc, 4), 0);
    assert.throws(() => small.configRead(0x100, 1), denied(ErrorCode.InvalidOffset));
    assert.throws(() => small.configRead(0x100, 4), denied(ErrorCode.InvalidOffset));
    assert.throws(() => small.configWrite(0x100, 4, 0), denied(ErrorCode.InvalidOffset));
    assert.equal(big.configRead(0xffc, 4), 0);
    assert.throws(() => big.configRead(0x1000, 1), denied(ErrorCode.InvalidOffset));
    assert.throws(() => big.configRead(-4, 4), denied(ErrorCode.InvalidOffset));
    assert.throws(() => big.configWrite(0x0c, 1, 2 ** 32), denied(ErrorCode.Malformed));
    assert.throws(() => big.configWrite(0x0c, 1, -1), denied(ErrorCode.Malformed));
    assert.equal(big.configRead(0, 4), 0x100e8086);
  });

  test('only the low bytes of a narrow write count (protocol §4.2)', () => {
    reset(NIC, NIC_IMAGE);
    const device = open(NIC, { mode: 'passthrough' });
    device.configWrite(0x0c, 1, 0xdead40);
    assert.equal(tree.configBytes(NIC)[0x0c], 0x40);
    assert.equal(tree.configBytes(NIC)[0x0d], 0x00);
  });

  test('BAR sizing: 32-bit, 64-bit (both dwords), prefetchable, I/O, absent BAR and ROM masks', () => {
    reset(NIC, NIC_IMAGE);
    const device = open(NIC, { mode: 'passthrough' });
    const size = (offset: number): number => {
      const original = device.configRead(offset, 4);
      device.configWrite(offset, 4, 0xffffffff);
      const mask = device.configRead(offset, 4);
      device.configWrite(offset, 4, original); // restoring the value read always succeeds
      assert.equal(device.configRead(offset, 4), original, `0x${offset.toString(16)} restored`);
      return mask;
    };
    assert.equal(size(0x10), 0xfffff000, 'BAR0: 4 KiB 32-bit memory');
    assert.equal(size(0x14), 0xffffffe1, 'BAR1: 32 B I/O');
    assert.equal(size(0x18), 0xffffc00c, 'BAR2: 16 KiB 64-bit prefetchable, lower dword');
    assert.equal(size(0x1c), 0xffffffff, 'BAR3: upper dword of BAR2');
    assert.equal(size(0x20), 0xfff00008, 'BAR4: 1 MiB 32-bit prefetchable');
    assert.equal(size(0x24), 0, 'BAR5: not implemented');
    // Linux sizes the ROM with the enable bit cleared and address bits set
    device.configWrite(0x30, 4, 0xfffff800);
    assert.equal(device.configRead(0x30, 4), 0xffff0000, 'ROM: 64 KiB');
    device.configWrite(0x30, 4, 0xfeb80001);
    assert.equal(device.configRead(0x30, 4), 0xfeb80001, 'ROM restored, enable bit emulated');
    assert.deepEqual(tree.configBytes(NIC), Buffer.from(NIC_IMAGE), 'no BAR sizing ever reaches the hardware');

    const old = open(OLD, { mode: 'passthrough' });
    old.configWrite(0x10, 4, 0xffffffff);
    old.configWrite(0x14, 4, 0xffffffff);
    assert.equal(old.configRead(0x10, 4), 0x0000000c, '8 GiB BAR: no size bits in the lower dword');
    assert.equal(old.configRead(0x14, 4), 0xfffffffe, '8 GiB BAR: upper dword');
    old.configWrite(0x10, 4, 0x0000000c);
    assert.equal(old.configRead(0x10, 4), 0x0000000c, 'the lower dword restores independently');
    assert.equal(old.configRead(0x14, 4), 0xfffffffe, 'while the upper stays latched');
    old.configWrite(0x14, 4, 0x40);
    assert.equal(old.configRead(0x14, 4), 0x40);
  });

  test('a BAR never moves: other values are refused and the hardware is untouched', () => {
    reset(NIC, NIC_IMAGE);
    const device = open(NIC, { mode: 'passthrough' });
    for (const [offset, value] of [[0x10, 0x12345000], [0x1c, 0x3], [0x14, 0xc081], [0x30, 0xfe000000], [0x24, 0x1000]]) {
      const read = device.configRead(offset, 4);
      assert.throws(() => device.configWrite(offset, 4, value), denied(ErrorCode.AccessDenied), `0x${offset.toString(16)}`);
      assert.equal(device.configRead(offset, 4), read);
    }
    assert.throws(() => device.configWrite(0x12, 2, 0x1234), denied(ErrorCode.AccessDenied), 'a partial write that moves the BAR');
    device.configWrite(0x10, 2, 0x0000); // a partial write that keeps the address is a restore
    assert.deepEqual(tree.configBytes(NIC), Buffer.from(NIC_IMAGE));
    const names = device.denials().map((d) => d.register);
    assert.ok(names.includes('BAR3 (upper half of 64-bit BAR2)'), names.join(', '));
  });

  test('passthrough BARs read the host addresses with the hardware type bits', () => {
    const device = open(NIC, { mode: 'passthrough', readOnly: true });
    assert.deepEqual([0x10, 0x14, 0x18, 0x1c, 0x20, 0x24, 0x30].map((o) => device.configRead(o, 4)),
      [0xfebf0000, 0x0000c041, 0x0000000c, 0x00000002, 0xfd000008, 0, 0xfeb80000]);
  });

  test('vPCI BARs: stable per frontend address, naturally aligned, never the host\'s', () => {
    const bars = (device: ExportedDevice): number[] => [0x10, 0x14, 0x18, 0x1c, 0x20, 0x24, 0x30].map((o) => device.configRead(o, 4));
    const first = open(NIC, { guest: '0000:00:03.0', readOnly: true });
    const values = bars(first);
    first.release();
    // reconnect / re-export, and other devices exported around it: same frontend address, same BARs
    open(OLD, { guest: '0000:00:00.0', readOnly: true });
    assert.deepEqual(bars(open(NIC, { guest: '0000:00:03.0', readOnly: true })), values);
    const [bar0, bar1, bar2lo, bar2hi, bar4, , rom] = values;
    const shown = [(bar0 & ~0xf) >>> 0, (bar1 & ~0x3) >>> 0, Number((BigInt(bar2hi) << 32n) | BigInt((bar2lo & ~0xf) >>> 0)), (bar4 & ~0xf) >>> 0, (rom & ~0x7ff) >>> 0];
    for (const address of [...NIC_BARS.map((b) => b.start), NIC_ROM.start]) {
      assert.ok(!shown.includes(address), `host address 0x${address.toString(16)} not revealed`);
    }
    assert.deepEqual(values.map((v, i) => (i === 6 ? v & 0x7ff : v & 0xf)), [0x0, 0x1, 0xc, values[3] & 0xf, 0x8, 0, 0], 'type bits kept');
    assert.equal(bar0 % 0x1000, 0);
    assert.equal((bar1 & ~3) % 0x20, 0);
    assert.equal(((BigInt(bar2hi) << 32n) | BigInt(bar2lo & ~0xf)) % 0x4000n, 0n);
    assert.ok(bar2hi > 0, '64-bit BARs live above 4 GiB');
    assert.equal(((bar4 & ~0xf) >>> 0) % 0x10_0000, 0);
    assert.equal(rom % 0x1_0000, 0);
    const elsewhere = bars(open(NIC, { guest: '0000:00:04.0', readOnly: true }));
    assert.notDeepEqual(elsewhere, values, 'another frontend address gets other addresses');
  });

  test('BAR access follows decode as the frontend sees it; hardware decode stays on', () => {
    reset(NIC, NIC_IMAGE);
    const device = open(NIC);
    assert.throws(() => device.barRead(0, 0n, 4), denied(ErrorCode.AccessDenied), 'memory decode off');
    device.configWrite(0x04, 2, 0x0002);
    device.barWrite(0, 0x10n, 4, 0xcafef00dn);
    assert.equal(device.barRead(0, 0x10n, 4), 0xcafef00dn);
    assert.throws(() => device.barRead(1, 0n, 4), denied(ErrorCode.AccessDenied), 'I/O decode still off');
    device.configWrite(0x04, 2, 0x0003);
    device.barWrite(1, 4n, 2, 0xbeefn);
    assert.equal(device.barRead(1, 4n, 2), 0xbeefn);
    device.configWrite(0x04, 2, 0x0000);
    assert.equal(tree.configBytes(NIC).readUInt16LE(0x04), 0x0003, 'hardware keeps decoding');
    assert.throws(() => device.barRead(0, 0x10n, 4), denied(ErrorCode.AccessDenied), 'refused while the frontend sees decode off');
    assert.throws(() => device.barWrite(1, 4n, 2, 0n), denied(ErrorCode.AccessDenied));
    assert.equal(readFileSync(join(tree.deviceDir(NIC), 'resource1')).readUInt16LE(4), 0xbeef, 'the refused write did not land');
    const reasons = device.denials().filter((d) => d.register.startsWith('BAR'));
    assert.deepEqual(reasons.map((d) => [d.register, d.count]), [['BAR0 access', 2], ['BAR1 access', 2]]);
  });

  test('permissive exports also check hardware decode: a reset behind the policy stops BAR access', () => {
    reset(NIC, NIC_IMAGE);
    const device = open(NIC, { mode: 'passthrough', permissive: true });
    device.configWrite(0x04, 2, 0x0002);
    assert.equal(device.barRead(0, 0n, 4), 0n);
    const image = Uint8Array.from(tree.configBytes(NIC));
    image[0x04] = 0; // what an FLR written through an unlisted register would do
    reset(NIC, image);
    assert.equal(device.configRead(0x04, 2) & 0x2, 0x2, 'the frontend still sees its own decode bit');
    assert.throws(() => device.barRead(0, 0n, 4), (error: unknown) =>
      error instanceof XpciError && error.code === ErrorCode.AccessDenied && /stopped memory decoding/.test(error.message));
  });

  test('read-only export: reads only, config opened O_RDONLY, no BAR op and no mapping ever', () => {
    const image = Uint8Array.from(NIC_IMAGE);
    image[0x04] = 0x03; // decode on in hardware: BAR refusals come from the read-only export itself
    reset(NIC, image);
    const device = open(NIC, { mode: 'passthrough', readOnly: true });
    const configFile = join(tree.deviceDir(NIC), 'config');
    const fds = readdirSync('/proc/self/fd').filter((fd) => {
      try { return readlinkSync(`/proc/self/fd/${fd}`).endsWith(`${NIC}/config`); } catch { return false; }
    });
    const flags = fds.map((fd) => parseInt(/flags:\s+(\d+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1], 8) & 3);
    assert.ok(flags.length > 0 && flags.every((f) => f === 0), `config fds opened O_RDONLY (flags ${flags})`);
    assert.equal(device.configRead(0x00, 2), 0x8086);
    for (const [offset, size, value] of [[0x0c, 1, 0x20], [0x3c, 1, 5], [0x04, 2, 0x0007], [0x10, 4, 0xffffffff], [0x100, 4, 0]]) {
      assert.throws(() => device.configWrite(offset, size, value), denied(ErrorCode.AccessDenied), `0x${offset.toString(16)}`);
    }
    assert.throws(() => device.barRead(0, 0n, 4), denied(ErrorCode.AccessDenied));
    assert.throws(() => device.barRead(1, 0n, 1), denied(ErrorCode.AccessDenied));
    assert.throws(() => device.barWrite(2, 0n, 8, 1n), denied(ErrorCode.AccessDenied));
    assert.throws(() => device.barRead(3, 0n, 4), denied(ErrorCode.InvalidOffset), 'validation still comes first');
    assert.equal(mappedPaths().includes(join(NIC, 'resource')), false, 'no BAR mapped');
    assert.equal(openPaths().some((p) => p.includes(`${NIC}/resource`)), false, 'no BAR file opened');
    assert.deepEqual(tree.configBytes(NIC), Buffer.from(image));
    assert.ok(device.denials().every((d) => d.reason.startsWith('read-only export')));
    assert.equal(configFile.length > 0, true);
  });

  test('BAR mappings are created lazily and released with the device', () => {
    const image = Uint8Array.from(NIC_IMAGE);
    image[0x04] = 0x03;
    reset(NIC, image);
    const device = open(NIC, { mode: 'passthrough' });
    const resource0 = join(tree.deviceDir(NIC), 'resource0');
    const isMapped = (): boolean => mappedPaths().includes(`${NIC}/resource0`) || mappedPaths().includes(resource0);
    assert.equal(isMapped(), false, 'nothing mapped at export');
    device.barRead(0, 0n, 8);
    assert.equal(isMapped(), true, 'mapped on first use');
    device.release();
    assert.equal(isMapped(), false, 'unmapped on release');
  });

  test('release restores command, cache line size and interrupt line; idempotent; the device is gone after', () => {
    reset(NIC, NIC_IMAGE);
    const device = open(NIC, { mode: 'passthrough', permissive: true });
    device.configWrite(0x0c, 1, 0x20);
    device.configWrite(0x3c, 1, 0x05);
    device.configWrite(0x04, 2, 0x0003);
    device.configWrite(0x80, 4, 0x12345678); // unlisted, through permissive
    device.configWrite(0x10, 4, 0xffffffff); // BAR latch (never in hardware)
    assert.equal(device.configRead(0x3c, 1), 0x05, 'the frontend sees its interrupt line');
    const changed = tree.configBytes(NIC);
    assert.equal(changed[0x0c], 0x20);
    assert.equal(changed.readUInt16LE(0x04), 0x0003);
    assert.equal(changed[0x3c], 0x0b, 'interrupt line is emulated: hardware never changed');
    device.release();
    assert.deepEqual(tree.configBytes(NIC), Buffer.from(NIC_IMAGE), 'every changed register is back');
    device.release();
    assert.throws(() => device.configRead(0, 4), denied(ErrorCode.DeviceNotFound));

    const keep = open(NIC, { mode: 'passthrough' });
    keep.configWrite(0x0c, 1, 0x40);
    keep.release({ restore: false });
    assert.equal(tree.configBytes(NIC)[0x0c], 0x40, 'restore: false leaves the device as the frontend left it');
  });

  test('denials: one record per register with counts, logged once per register', async () => {
    reset(NIC, NIC_IMAGE);
    const lines: string[] = [];
    const previousLog = createDebug.log;
    const previous = createDebug.disable();
    await enableDebugNamespaces('xpci:policy');
    createDebug.log = (...args: unknown[]) => { lines.push(args.map(String).join(' ')); };
    try {
      const device = open(NIC);
      for (let i = 0; i < 3; i++) assert.throws(() => device.configWrite(0x00, 2, 0x1234), denied(ErrorCode.AccessDenied));
      assert.throws(() => device.configWrite(0x0d, 1, 0x40), denied(ErrorCode.AccessDenied));
      assert.throws(() => device.configWrite(0x4c, 4, 1), denied(ErrorCode.AccessDenied));
      assert.deepEqual(device.denials().map((d) => [d.register, d.offset, d.size, d.count]), [
        ['Vendor ID', 0x00, 2, 3], ['Latency Timer', 0x0d, 1, 1], ['register 0x4c (unlisted)', 0x4c, 4, 1],
      ]);
      assert.equal(lines.filter((l) => l.includes('Vendor ID')).length, 1, 'logged once, counted three times');
      assert.ok(lines.some((l) => l.includes(NIC)), 'host-side log names the host device');
    } finally {
      createDebug.log = previousLog;
      createDebug.disable();
      if (previous) createDebug.enable(previous);
    }
  });

  test('AccessDenied messages name the register and the reason; vPCI errors never name host paths', () => {
    reset(NIC, NIC_IMAGE);
    const device = open(NIC);
    assert.throws(() => device.configWrite(0x04, 2, 0x0400), (error: unknown) =>
      error instanceof XpciError && /Command \(bits 0x0400\)/.test(error.message) && /bus master/.test(error.message));
    device.configWrite(0x04, 2, 0x0002);
    const resource = join(tree.deviceDir(NIC), 'resource0');
    renameSync(resource, `${resource}.away`);
    try {
      assert.throws(() => device.barRead(0, 0n, 4), (error: unknown) =>
        error instanceof XpciError && error.code === ErrorCode.OperationFailed && error.errno !== 0
        && !error.message.includes('06:01') && !error.message.includes(tree.root));
    } finally {
      renameSync(`${resource}.away`, resource);
    }
    assert.equal(formatAddress(device.guest), '0000:00:03.0');
  });

  test('bridges (PCI-to-PCI and CardBus) are refused at export in both modes', () => {
    const bridge = readDevice(tree.root, parseAddress(BRIDGE));
    const cardbus = { ...readDevice(tree.root, parseAddress(NIC)), headerLayout: 2 };
    for (const info of [bridge, cardbus]) {
      for (const mode of ['passthrough', 'vpci'] as const) {
        assert.throws(() => openExportedDevice({ sysfsRoot: tree.root, info, guest: parseAddress(NIC), mode, readOnly: true, permissive: false }),
          denied(ErrorCode.NotImplemented), `${info.bdf} header type ${info.headerLayout} (${mode})`);
      }
    }
  });
});
