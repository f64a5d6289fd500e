/**
 * Interrupts, DMA windows and reset of an exported device, through the API the backend server
 * calls (configRead/Write, barRead/Write, serveDeviceOp, frontendGone, release), on a fixture
 * sysfs tree with a test double of the host's VFIO services (this machine has no VFIO). What is
 * checked is the backend's policy: what the frontend's view says, which host calls it makes, which
 * events it sends, and that bad requests change nothing.
 */
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAddress } from '../../src/pci/address.js';
import { readDevice } from '../../src/host/sysfs/discovery.js';
import { openExportedDevice, type ExportedDevice } from '../../src/backend/exported-device.js';
import { DmaBudget } from '../../src/backend/dma/dma-windows.js';
import { FrameReader, type Frame } from '../../src/protocol/ring/frame.js';
import { decodeDeviceResetEvent, decodeDmaMapReply, decodeInterruptEvent } from '../../src/protocol/ring/device-ops-codec.js';
import { isErrorReply } from '../../src/protocol/ring/codec.js';
import { ErrorCode, MessageType, XpciError, type InterruptRecord, type Request } from '../../src/protocol/ring/messages.js';
import type { DeviceOpRequest } from '../../src/protocol/ring/device-ops-codec.js';
import { buildConfigImage, createFixtureTree, type FixtureBar, type FixtureTree } from '../support/fixture-sysfs.js';
import { fakeDmaMemory, fakeHost, type FakeHost } from '../support/fake-host-services.js';

const EDU = '0000:00:04.0';
const BARS: FixtureBar[] = [
  { index: 0, kind: 'mem', size: 0x10_0000, start: 0xfea0_0000 },
  { index: 4, kind: 'mem', size: 0x4000, start: 0xfeb0_0000 },
];
const MSI_AT = 0x40;
const MSIX_AT = 0x58;
// MSI: 64-bit, per-vector masking, 4 vectors capable (MMC = 2).
const MSI_BODY = [0x84, 0x01, ...new Array(20).fill(0)];
// MSI-X: 5 entries, table at BAR4 + 0, PBA at BAR4 + 0x2000.
const MSIX_BODY = [0x04, 0x00, 0x04, 0x00, 0x00, 0x00, 0x04, 0x20, 0x00, 0x00];
const IMAGE = buildConfigImage({
  vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00, interruptPin: 1, bars: BARS,
  capabilities: [{ id: 0x05, body: MSI_BODY }, { id: 0x11, body: MSIX_BODY }],
});
const GUEST = parseAddress('0000:00:03.0');

const refused = (code: ErrorCode, pattern?: RegExp) => (error: unknown): boolean =>
  error instanceof XpciError && error.code === code && (pattern === undefined || pattern.test(error.message));

interface Setup {
  device: ExportedDevice;
  host: FakeHost;
  memory: ReturnType<typeof fakeDmaMemory>;
  budget: DmaBudget;
  events: Frame[];
  interrupts(): InterruptRecord[];
  op(request: OpBody): Frame;
  /** read-modify-write of a 16-bit register, as drivers do (read-only bits keep their value) */
  control(offset: number, set: number, clear?: number): void;
}

type OpBody = DeviceOpRequest extends infer R ? (R extends DeviceOpRequest ? Omit<R, 'id' | 'address'> : never) : never;

describe('whole-device services of an exported device', () => {
  let tree: FixtureTree;
  const opened: ExportedDevice[] = [];

  before(() => {
    tree = createFixtureTree([{ address: EDU, config: IMAGE, bars: BARS }]);
  });
  afterEach(() => {
    for (const device of opened.splice(0)) device.release({ restore: false });
  });
  after(() => tree.cleanup());

  function setup(options: { readOnly?: boolean; limit?: number; host?: FakeHost; permissive?: boolean } = {}): Setup {
    const host = options.host ?? fakeHost();
    const memory = fakeDmaMemory();
    const budget = new DmaBudget(options.limit ?? 64 * 1024 * 1024);
    // Every test starts from the image: earlier tests set decode bits in the fixture's hardware.
    writeFileSync(join(tree.deviceDir(EDU), 'config'), IMAGE);
    const device = openExportedDevice({
      sysfsRoot: tree.root, info: readDevice(tree.root, parseAddress(EDU)), guest: GUEST, mode: 'vpci',
      readOnly: options.readOnly ?? false, permissive: options.permissive ?? false,
      services: host, dma: { budget, allocate: memory.allocate },
    });
    opened.push(device);
    const events: Frame[] = [];
    const reader = new FrameReader();
    device.setEventSink((frame) => { for (const item of reader.push(frame)) if (item.frame) events.push(item.frame); });
    const frameOf = (bytes: Buffer): Frame => new FrameReader().push(bytes)[0].frame!;
    return {
      device, host, memory, budget, events,
      interrupts: () => events.filter((e) => e.type === MessageType.Interrupt).map((e) => {
        const { address, record } = decodeInterruptEvent(e);
        assert.deepEqual(address, GUEST);
        return record;
      }),
      op: (request) => frameOf(device.serveDeviceOp({ ...request, id: 7, address: GUEST } as DeviceOpRequest)),
      control: (offset, set, clear = 0) => device.configWrite(offset, 2, (device.configRead(offset, 2) & ~clear) | set),
    };
  }

  test('the descriptor says what the device offers; a read-only export offers nothing', () => {
    const { device } = setup();
    const d = device.descriptor();
    assert.deepEqual([d.interrupts, d.dma, d.reset], [{ intx: 1, msi: 4, msix: 5 }, true, true]);
    const readOnly = setup({ readOnly: true }).device.descriptor();
    assert.deepEqual([readOnly.interrupts, readOnly.dma, readOnly.reset], [{}, false, false]);
    const noDma = setup({ host: fakeHost({ dma: false, interrupts: { intx: 1 } }) }).device.descriptor();
    assert.deepEqual([noDma.interrupts, noDma.dma], [{ intx: 1 }, false]);
  });

  test('INTx: routed at export, one event per interrupt, masked until the frontend unmasks', () => {
    const { host, interrupts, op } = setup();
    assert.deepEqual(host.interrupts.routed(), ['intx']);
    assert.equal(host.interrupts.fire('intx', 0), true);
    assert.equal(host.interrupts.fire('intx', 0), false, 'masked by the kernel until unmasked');
    assert.deepEqual(interrupts(), [{ kind: 'intx', vector: 0, count: 1 }]);
    const reply = op({ type: MessageType.InterruptUnmask, kind: 'intx', vector: 0 });
    assert.equal(isErrorReply(reply), false);
    assert.ok(host.interrupts.calls.includes('unmask intx 0'));
    host.interrupts.fire('intx', 0, 3);
    assert.deepEqual(interrupts().at(-1), { kind: 'intx', vector: 0, count: 3 });
  });

  test('INTx Disable stays in the view (DMA through an IOMMU) and masks INTx in the kernel; an unmask waits for it to clear', () => {
    const { device, host, interrupts, op, control } = setup();
    control(0x04, 0x0400);
    assert.equal(device.configRead(0x04, 2) & 0x0400, 0x0400, 'the frontend reads its INTx Disable back');
    assert.equal(tree.configBytes(EDU).readUInt16LE(0x04) & 0x0400, 0, "the hardware bit stays vfio-pci's");
    assert.equal(host.interrupts.calls.at(-1), 'mask intx 0');
    assert.equal(host.interrupts.fire('intx', 0), false);
    control(0x04, 0, 0x0400);
    assert.equal(host.interrupts.calls.at(-1), 'unmask intx 0');
    assert.equal(host.interrupts.fire('intx', 0), true);
    // Set and cleared around a delivered interrupt: the kernel's automask holds until the frontend unmasks.
    control(0x04, 0x0400);
    const calls = host.interrupts.calls.length;
    control(0x04, 0, 0x0400);
    assert.deepEqual(host.interrupts.calls.slice(calls), []);
    control(0x04, 0x0400);
    op({ type: MessageType.InterruptUnmask, kind: 'intx', vector: 0 });
    assert.deepEqual(host.interrupts.calls.slice(calls), ['mask intx 0'], 'no unmask while INTx is disabled');
    control(0x04, 0, 0x0400);
    assert.deepEqual(host.interrupts.calls.slice(calls), ['mask intx 0', 'unmask intx 0']);
    assert.deepEqual(interrupts(), [{ kind: 'intx', vector: 0, count: 1 }]);
    assert.equal(tree.configBytes(EDU).readUInt16LE(0x04) & 0x0400, 0);
  });

  test("a vfio-user client's INTx: routed masked and never unmasked while the frontend has INTx disabled", () => {
    const { device, host, control } = setup();
    const client = device.hostFacilities().interrupts!;
    control(0x04, 0x0400);
    const calls = host.interrupts.calls.length;
    client.attachEventFds('intx', 0, [100]);
    client.mask('intx', 0, false);
    assert.deepEqual(host.interrupts.calls.slice(calls), ['attach intx 0 1', 'mask intx 0']);
    control(0x04, 0, 0x0400);
    client.mask('intx', 0, false);
    assert.deepEqual(host.interrupts.calls.slice(calls + 2), ['unmask intx 0', 'unmask intx 0']);
  });

  test('a vfio-user client that leaves gives INTx back: routed to the device again, its interrupts events for the ring', () => {
    const { device, host, interrupts } = setup();
    const facilities = device.hostFacilities();
    facilities.interrupts!.attachEventFds('intx', 0, [100]);
    facilities.interrupts!.disable('intx');
    assert.deepEqual(host.interrupts.routed(), []);
    facilities.restoreInterrupts!();
    assert.deepEqual(host.interrupts.routed(), ['intx']);
    assert.equal(host.interrupts.fire('intx', 0), true);
    assert.deepEqual(interrupts(), [{ kind: 'intx', vector: 0, count: 1 }]);
  });

  test('VFIO no-IOMMU (INTx delivered, no DMA): INTx Disable stays in the view and masks INTx; bus master refused even permissive', () => {
    for (const permissive of [false, true]) {
      const { device, host, control } = setup({ host: fakeHost({ dma: false, interrupts: { intx: 1 } }), permissive });
      control(0x04, 0x0400);
      assert.equal(device.configRead(0x04, 2) & 0x0400, 0x0400);
      assert.equal(tree.configBytes(EDU).readUInt16LE(0x04) & 0x0400, 0, "the hardware bit stays vfio-pci's");
      assert.equal(host.interrupts.calls.at(-1), 'mask intx 0');
      assert.throws(() => device.configWrite(0x04, 2, device.configRead(0x04, 2) | 0x0004), refused(ErrorCode.AccessDenied, /Command.*bus master only on a device with DMA through an IOMMU/));
      assert.equal(tree.configBytes(EDU).readUInt16LE(0x04) & 0x0004, 0);
    }
  });

  test('without delivered INTx or an IOMMU (pci-stub), INTx Disable is refused unless permissive (it would reach the hardware)', () => {
    const { device } = setup({ host: fakeHost({ dma: false, interrupts: {} }) });
    assert.throws(() => device.configWrite(0x04, 2, device.configRead(0x04, 2) | 0x0400), refused(ErrorCode.AccessDenied, /Command/));
  });

  test('unmask of a vector that is not routed or does not exist: clear errors, no host call', () => {
    const { device, host, op, control } = setup();
    const calls = host.interrupts.calls.length;
    assert.throws(() => op({ type: MessageType.InterruptUnmask, kind: 'intx', vector: 1 }), refused(ErrorCode.InvalidOffset, /one vector/));
    assert.throws(() => op({ type: MessageType.InterruptUnmask, kind: 'msix', vector: 2 }), refused(ErrorCode.NotImplemented, /MSI-X table/));
    control(MSI_AT + 2, 0x0001);
    assert.throws(() => op({ type: MessageType.InterruptUnmask, kind: 'intx', vector: 0 }), refused(ErrorCode.AccessDenied, /while msi is enabled/));
    assert.deepEqual(host.interrupts.calls.slice(calls), ['disableAll', 'enable msi 1']);
    const bare = setup({ host: fakeHost({ interrupts: {} }) });
    assert.throws(() => bare.op({ type: MessageType.InterruptUnmask, kind: 'intx', vector: 0 }), refused(ErrorCode.AccessDenied, /no INTx/));
  });

  test('MSI: the frontend programs its own view; enabling routes the vectors; address/data never reach the hardware', () => {
    const { device, host, interrupts, control } = setup();
    const hardwareBefore = tree.configBytes(EDU).subarray(MSI_AT, MSI_AT + 24);
    device.configWrite(MSI_AT + 4, 4, 0xfee0_1000);
    device.configWrite(MSI_AT + 8, 4, 0);
    device.configWrite(MSI_AT + 12, 2, 0x4041);
    control(MSI_AT + 2, 0x0011); // enable, 2 vectors
    assert.equal(device.configRead(MSI_AT + 4, 4), 0xfee0_1000);
    assert.equal(device.configRead(MSI_AT + 12, 2), 0x4041);
    assert.equal(device.configRead(MSI_AT, 4), (0x0195 << 16 | 0x05 | device.configRead(MSI_AT + 1, 1) << 8) >>> 0);
    assert.deepEqual(tree.configBytes(EDU).subarray(MSI_AT, MSI_AT + 24), hardwareBefore, 'nothing written to the hardware capability');
    assert.deepEqual(host.interrupts.routed(), ['msi']);
    assert.equal(host.interrupts.fire('msi', 1), true);
    assert.deepEqual(interrupts(), [{ kind: 'msi', vector: 1, count: 1 }]);
    control(MSI_AT + 2, 0, 0x0001);
    assert.deepEqual(host.interrupts.routed(), ['intx'], 'MSI off: back to INTx');
  });

  test('MSI mask bits: a masked vector is pending, delivered with its count on unmask', () => {
    const { device, host, interrupts, control } = setup();
    device.configWrite(MSI_AT + 16, 4, 0x1);
    control(MSI_AT + 2, 0x0011);
    host.interrupts.fire('msi', 0);
    host.interrupts.fire('msi', 0);
    assert.deepEqual(interrupts(), []);
    assert.equal(device.configRead(MSI_AT + 20, 4), 0x1, 'pending bit');
    device.configWrite(MSI_AT + 16, 4, 0x0);
    assert.deepEqual(interrupts(), [{ kind: 'msi', vector: 0, count: 2 }]);
    assert.equal(device.configRead(MSI_AT + 20, 4), 0);
  });

  test('MSI writes that change read-only bits, or enable more vectors than offered, are refused and change nothing', () => {
    const { device, host } = setup({ host: fakeHost({ interrupts: { intx: 1, msi: 2 } }) });
    const control = device.configRead(MSI_AT + 2, 2);
    assert.throws(() => device.configWrite(MSI_AT + 2, 2, control | 0x0021), refused(ErrorCode.AccessDenied, /4 vectors enabled, the device offers 2/));
    assert.throws(() => device.configWrite(MSI_AT + 2, 2, control ^ 0x0080), refused(ErrorCode.AccessDenied, /read-only/));
    assert.throws(() => device.configWrite(MSI_AT + 20, 4, 1), refused(ErrorCode.AccessDenied));
    assert.equal(device.configRead(MSI_AT + 2, 2), control);
    assert.deepEqual(host.interrupts.routed(), ['intx']);
  });

  test('MSI-X: the table and PBA are emulated in BAR4; a masked vector is pending until its entry is unmasked', () => {
    const { device, host, interrupts, control } = setup();
    device.configWrite(0x04, 2, 0x0002); // memory decode
    const entry2 = 2n * 16n;
    device.barWrite(4, entry2, 4, 0xfee0_0000n);
    device.barWrite(4, entry2 + 8n, 4, 0x22n);
    assert.equal(device.barRead(4, entry2, 8), 0xfee0_0000n);
    assert.equal(device.barRead(4, entry2 + 12n, 4), 1n, 'entries start masked');
    control(MSIX_AT + 2, 0x8000);
    assert.equal(device.configRead(MSIX_AT + 2, 2), 0x8004);
    assert.deepEqual(host.interrupts.calls.slice(-1), ['enable msix 5']);
    host.interrupts.fire('msix', 2);
    assert.deepEqual(interrupts(), []);
    assert.equal(device.barRead(4, 0x2000n, 8), 1n << 2n, 'PBA bit 2');
    device.barWrite(4, entry2 + 12n, 4, 0n);
    assert.deepEqual(interrupts(), [{ kind: 'msix', vector: 2, count: 1 }]);
    assert.equal(device.barRead(4, 0x2000n, 8), 0n);
    host.interrupts.fire('msix', 2);
    assert.deepEqual(interrupts().at(-1), { kind: 'msix', vector: 2, count: 1 });
    // function mask holds everything back
    control(MSIX_AT + 2, 0x4000);
    host.interrupts.fire('msix', 2);
    assert.equal(interrupts().length, 2);
    control(MSIX_AT + 2, 0, 0x4000);
    assert.equal(interrupts().length, 3);
  });

  test('MSI-X: ops in the table pages outside the table, PBA writes and odd sizes are refused', () => {
    const { device } = setup();
    device.configWrite(0x04, 2, 0x0002);
    assert.throws(() => device.barWrite(4, 5n * 16n, 4, 0n), refused(ErrorCode.AccessDenied, /only the table/));
    assert.throws(() => device.barRead(4, 0xffcn, 4), refused(ErrorCode.AccessDenied, /only the table/));
    assert.throws(() => device.barWrite(4, 0x2000n, 8, 1n), refused(ErrorCode.AccessDenied, /PBA is read-only/));
    assert.throws(() => device.barWrite(4, 2n * 16n, 2, 1n), refused(ErrorCode.InvalidSize));
    assert.throws(() => device.configWrite(MSIX_AT + 4, 4, 0x1004), refused(ErrorCode.AccessDenied, /read-only/));
    assert.equal(device.barRead(4, 0x3000n, 4), 0n, 'the rest of the BAR is the hardware');
  });

  test('DMA windows: chosen and fixed IOVAs, contents through the ring, unmap frees everything', () => {
    const { host, memory, budget, op } = setup();
    const a = decodeDmaMapReply(op({ type: MessageType.DmaMap, size: 0x1000n }));
    const b = decodeDmaMapReply(op({ type: MessageType.DmaMap, size: 0x2000n }));
    const c = decodeDmaMapReply(op({ type: MessageType.DmaMap, size: 0x1000n, iova: 0x4000_0000n }));
    assert.equal(c, 0x4000_0000n);
    assert.ok(a !== b && (a + 0x1000n <= b || b + 0x2000n <= a), 'chosen windows do not overlap');
    assert.deepEqual([...host.dma.mappings.keys()].sort(), [a, b, c].sort());
    assert.equal(budget.used, 0x4000);
    op({ type: MessageType.DmaWrite, iova: b, offset: 0x1ffen, data: Buffer.from([0xaa, 0xbb]) });
    assert.deepEqual([...op({ type: MessageType.DmaRead, iova: b, offset: 0x1ffdn, length: 3 }).payload], [0, 0xaa, 0xbb]);
    op({ type: MessageType.DmaUnmap, iova: b });
    assert.deepEqual([...host.dma.mappings.keys()].sort(), [a, c].sort());
    assert.equal(memory.live.size, 2);
    assert.equal(budget.used, 0x2000);
  });

  test('bad DMA requests: clear errors, and after 1,000 of them nothing is mapped, allocated or reserved', () => {
    const { host, memory, budget, op } = setup({ limit: 0x10000 });
    const window = decodeDmaMapReply(op({ type: MessageType.DmaMap, size: 0x1000n }));
    const before = { mappings: host.dma.mappings.size, live: memory.live.size, used: budget.used };
    const bad: [Parameters<Setup['op']>[0], ErrorCode, RegExp][] = [
      [{ type: MessageType.DmaMap, size: 0x20000n }, ErrorCode.LimitExceeded, /DMA limit/],
      [{ type: MessageType.DmaMap, size: 0x1800n }, ErrorCode.InvalidSize, /multiple of 4096/],
      [{ type: MessageType.DmaMap, size: 0n }, ErrorCode.InvalidSize, /non-zero/],
      [{ type: MessageType.DmaMap, size: 0x1000n, iova: 0x1234n }, ErrorCode.Misaligned, /not a multiple/],
      [{ type: MessageType.DmaMap, size: 0x1000n, iova: window }, ErrorCode.InvalidOffset, /overlaps/],
      [{ type: MessageType.DmaMap, size: 0x1000n, iova: (1n << 48n) - 0x1000n + 0x1000n }, ErrorCode.InvalidOffset, /IOVA space/],
      [{ type: MessageType.DmaRead, iova: window, offset: 0xfffn, length: 2 }, ErrorCode.InvalidOffset, /ends past the window/],
      [{ type: MessageType.DmaRead, iova: window, offset: 0n, length: 0 }, ErrorCode.InvalidSize, /1\.\./],
      [{ type: MessageType.DmaWrite, iova: window, offset: 0x1000n, data: Buffer.from([1]) }, ErrorCode.InvalidOffset, /ends past/],
      [{ type: MessageType.DmaWrite, iova: window + 0x1000n, offset: 0n, data: Buffer.from([1]) }, ErrorCode.InvalidOffset, /no DMA window/],
      [{ type: MessageType.DmaUnmap, iova: window + 0x1000n }, ErrorCode.InvalidOffset, /no DMA window/],
    ];
    for (let i = 0; i < 1000; i++) {
      const [request, code, pattern] = bad[i % bad.length];
      assert.throws(() => op(request), refused(code, pattern), `${MessageType[request.type]} #${i % bad.length}`);
    }
    assert.deepEqual({ mappings: host.dma.mappings.size, live: memory.live.size, used: budget.used }, before);
    host.dma.failNextMap = 'EINVAL: reserved IOVA range';
    assert.throws(() => op({ type: MessageType.DmaMap, size: 0x1000n, iova: 0xfee0_0000n }), /reserved IOVA/);
    assert.deepEqual({ mappings: host.dma.mappings.size, live: memory.live.size, used: budget.used }, before, 'a failed map frees its memory');
  });

  test('no DMA without an IOMMU-backed device', () => {
    const { op } = setup({ host: fakeHost({ dma: false }) });
    assert.throws(() => op({ type: MessageType.DmaMap, size: 0x1000n }), refused(ErrorCode.NotImplemented, /not offered/));
  });

  test('ResetDevice: the host resets, the view is back to export time, DeviceReset comes before the reply', () => {
    const { device, host, events, op, control } = setup();
    device.configWrite(0x04, 2, 0x0002);
    control(MSI_AT + 2, 0x0001);
    const window = decodeDmaMapReply(op({ type: MessageType.DmaMap, size: 0x1000n }));
    const reply = op({ type: MessageType.ResetDevice });
    assert.equal(isErrorReply(reply), false);
    assert.equal(host.resets, 1);
    assert.deepEqual(decodeDeviceResetEvent(events.at(-1)!), GUEST);
    assert.equal(device.configRead(MSI_AT + 2, 2) & 1, 0, 'MSI off in the view');
    assert.equal(device.configRead(0x04, 2) & 2, 0, 'memory decode back to export time');
    assert.deepEqual(host.interrupts.routed(), ['intx']);
    assert.ok(host.dma.mappings.has(window), 'windows stay across a reset');
    const noReset = setup({ host: fakeHost({ reset: false }) });
    assert.throws(() => noReset.op({ type: MessageType.ResetDevice }), refused(ErrorCode.NotImplemented, /no reset/));
  });

  test("a vfio-user client's DEVICE_RESET is the device's: the view back to export time, INTx routed, DeviceReset for the ring", () => {
    const { device, host, events, control } = setup();
    device.configWrite(0x04, 2, 0x0002);
    control(MSI_AT + 2, 0x0001);
    device.hostFacilities().reset!();
    assert.equal(host.resets, 1);
    assert.deepEqual(decodeDeviceResetEvent(events.at(-1)!), GUEST);
    assert.equal(device.configRead(MSI_AT + 2, 2) & 1, 0, 'MSI off in the view');
    assert.equal(device.configRead(0x04, 2) & 2, 0, 'memory decode back to export time');
    assert.deepEqual(host.interrupts.routed(), ['intx']);
    assert.equal(setup({ host: fakeHost({ reset: false }) }).device.hostFacilities().reset, undefined);
  });

  test('the frontend goes: windows unmapped and freed, interrupts off, device reset, view clean', () => {
    const { device, host, memory, budget, op, events, control } = setup();
    op({ type: MessageType.DmaMap, size: 0x1000n });
    op({ type: MessageType.DmaMap, size: 0x1000n });
    control(MSI_AT + 2, 0x0001);
    assert.deepEqual(device.frontendGone(), []);
    assert.equal(host.dma.mappings.size, 0);
    assert.equal(memory.live.size, 0);
    assert.equal(budget.used, 0);
    assert.equal(host.resets, 1);
    assert.equal(device.configRead(MSI_AT + 2, 2) & 1, 0);
    assert.deepEqual(host.interrupts.routed(), ['intx']);
    assert.equal(events.at(-1)!.type, MessageType.DeviceReset);
    // A frontend that used nothing leaves the device alone.
    assert.deepEqual(device.frontendGone(), []);
    assert.equal(host.resets, 1);
  });

  test('release unmaps every window and tears interrupts down', () => {
    const { device, host, memory, op, control } = setup();
    op({ type: MessageType.DmaMap, size: 0x1000n });
    control(MSI_AT + 2, 0x0001);
    opened.splice(opened.indexOf(device), 1);
    device.release({ restore: false });
    assert.equal(host.dma.mappings.size, 0);
    assert.equal(memory.live.size, 0);
    assert.deepEqual(host.interrupts.routed(), []);
    assert.throws(() => op({ type: MessageType.DmaMap, size: 0x1000n }), refused(ErrorCode.DeviceNotFound));
  });

  test('a device without services answers the whole-device requests with clear errors', () => {
    const device = openExportedDevice({
      sysfsRoot: tree.root, info: readDevice(tree.root, parseAddress(EDU)), guest: GUEST, mode: 'vpci', readOnly: false, permissive: false,
    });
    opened.push(device);
    const requests: Request[] = [
      { type: MessageType.DmaMap, id: 1, address: GUEST, size: 0x1000n },
      { type: MessageType.ResetDevice, id: 1, address: GUEST },
      { type: MessageType.InterruptUnmask, id: 1, address: GUEST, kind: 'intx', vector: 0 },
    ];
    for (const request of requests) assert.throws(() => device.serveDeviceOp(request as DeviceOpRequest), (e: unknown) => e instanceof XpciError);
    assert.deepEqual([device.descriptor().interrupts, device.descriptor().dma], [{}, false]);
    // MSI stays as the config policy has it: hardware value, read-only.
    assert.throws(() => device.configWrite(MSI_AT + 2, 2, 0x0001), refused(ErrorCode.AccessDenied));
  });
});
