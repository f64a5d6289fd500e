/**
 * The vfio-user server on fixture devices, through the TypeScript client: handshake, device, region
 * and interrupt info, config through the policy (a permitted write reaches the fixture file, a
 * forbidden one does not), BARs mapped by fd with the MSI-X pages left out, guest-assigned BAR
 * addresses, DMA windows, malformed input, and one client per socket.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfigImage, createFixtureTree, type FixtureTree } from '../support/fixture-sysfs.js';
import { VfioUserClient } from '../support/vfio-user-client.js';
import { openExportedDevice, type ExportedDevice } from '../../src/backend/exported-device.js';
import { admitPeer } from '../../src/backend/server/export-host.js';
import { VfioUserServer } from '../../src/backend/vfio-user/vfio-user-server.js';
import type { HostExtras } from '../../src/backend/vfio-user/session.js';
import { FakeInterrupts } from '../support/fake-host-services.js';
import { readDevice } from '../../src/host/sysfs/discovery.js';
import { parseAddress } from '../../src/pci/address.js';
import { encodeMessage, errno } from '../../src/protocol/vfio-user/codec.js';
import { Command, DeviceFlags, DmaMapFlags, IrqSetFlags, MessageFlags, PciIrq, PciRegion, RegionFlags, VfioUserError } from '../../src/protocol/vfio-user/messages.js';

const EDU = '0000:00:04.0';
const MSIX_DEVICE = '0000:00:05.0';
const access = { allowUids: [], allowGids: [] };

async function rejectsWith(promise: Promise<unknown>, code: number): Promise<void> {
  await assert.rejects(promise, (error: unknown) => error instanceof VfioUserError && error.errno === code);
}

describe('vfio-user server on fixture devices', () => {
  let tree: FixtureTree;
  let dir: string;
  let server: VfioUserServer;
  const devices: ExportedDevice[] = [];
  const warnings: string[] = [];
  /** What the next client's session gets from the device's host back end (a fixture has none). */
  let extras: HostExtras = {};
  const paths = new Map<string, string>();

  before(async () => {
    tree = createFixtureTree([
      {
        address: EDU,
        config: buildConfigImage({
          vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00, revision: 0x10, interruptPin: 1,
          bars: [{ index: 0, kind: 'mem', size: 0x100000, start: 0xfea00000 }],
          capabilities: [{ id: 0x05, body: [0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] }],
        }),
        bars: [{ index: 0, kind: 'mem', size: 0x100000, start: 0xfea00000 }],
      },
      {
        address: MSIX_DEVICE,
        config: buildConfigImage({
          vendor: 0x8086, device: 0x10d3, classCode: 0x020000,
          bars: [{ index: 0, kind: 'mem', size: 0x20000, start: 0xfeb00000 }, { index: 2, kind: 'io', size: 0x20, start: 0xc000 }],
          // MSI-X: 5 vectors, table in BAR0 at 0x10000, PBA in BAR0 at 0x12000
          capabilities: [{ id: 0x11, body: [0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x20, 0x01, 0x00] }],
        }),
        bars: [{ index: 0, kind: 'mem', size: 0x20000, start: 0xfeb00000 }, { index: 2, kind: 'io', size: 0x20, start: 0xc000 }],
      },
    ]);
    // edu's identification register, as the snapshot of a real edu holds it
    const bar0 = join(tree.deviceDir(EDU), 'resource0');
    const fd = openSync(bar0, 'r+');
    const ident = Buffer.alloc(4);
    ident.writeUInt32LE(0x010000ed);
    writeSync(fd, ident, 0, 4, 0);
    closeSync(fd);

    dir = mkdtempSync(join(tmpdir(), 'xpci-vfio-user-'));
    server = new VfioUserServer({ dir, access, admit: (fd) => admitPeer(fd, access), warn: (m) => warnings.push(m), extras: () => extras });
    for (const [bdf, guest] of [[EDU, '0000:00:00.0'], [MSIX_DEVICE, '0000:00:01.0']]) {
      const device = openExportedDevice({
        sysfsRoot: tree.root, info: readDevice(tree.root, parseAddress(bdf)), guest: parseAddress(guest),
        mode: 'vpci', readOnly: false, permissive: false, guestAssignedBars: true,
      });
      devices.push(device);
      paths.set(bdf, await server.attach(parseAddress(guest), device));
    }
  });

  after(async () => {
    await server.close();
    for (const device of devices) device.release({ restore: false });
    tree.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  async function connected(bdf: string): Promise<VfioUserClient> {
    const client = VfioUserClient.connect(paths.get(bdf)!);
    await client.version();
    return client;
  }

  test('one socket per device, named by the frontend BDF, mode 0600', () => {
    assert.equal(paths.get(EDU), join(dir, '0000:00:00.0.sock'));
    assert.equal(statSync(paths.get(EDU)!).mode & 0o777, 0o600);
  });

  test('VERSION first, then the capabilities the server states', async () => {
    const client = VfioUserClient.connect(paths.get(EDU)!);
    try {
      await rejectsWith(client.deviceInfo(), errno.EINVAL);
      const version = await client.version();
      assert.equal(version.major, 0);
      assert.equal(version.minor, 0);
      assert.deepEqual(version.capabilities, { capabilities: { max_msg_fds: 16, max_data_xfer_size: 1048576, max_dma_maps: 1024, pgsizes: 4096 } });
      await rejectsWith(client.version(), errno.EINVAL);
    } finally {
      client.close();
    }
  });

  test('device, region and interrupt info of edu; BAR0 mapped by its resource fd', async () => {
    const client = await connected(EDU);
    try {
      assert.deepEqual(await client.deviceInfo(), { flags: DeviceFlags.pci, regions: 9, irqs: 5 });
      const config = await client.regionInfo(PciRegion.config);
      assert.equal(config.size, 256n);
      assert.equal(config.flags, RegionFlags.read | RegionFlags.write);
      assert.equal(config.fd, null);
      const bar0 = await client.regionInfo(0);
      assert.equal(bar0.size, 0x100000n);
      assert.equal(bar0.flags, RegionFlags.read | RegionFlags.write | RegionFlags.mmap);
      assert.equal(bar0.sparse, undefined);
      assert.notEqual(bar0.fd, null);
      // The fd is the BAR's own file: what the client maps is edu's register file.
      assert.equal(fstatSync(bar0.fd!).size, 0x100000);
      const ident = Buffer.alloc(4);
      readSync(bar0.fd!, ident, 0, 4, Number(bar0.offset));
      assert.equal(ident.readUInt32LE(), 0x010000ed);
      closeSync(bar0.fd!);
      assert.equal((await client.regionInfo(1)).size, 0n);
      assert.equal((await client.regionInfo(PciRegion.rom)).size, 0n);
      assert.deepEqual(await client.irqInfo(PciIrq.intx), { flags: 7, count: 1 });
      assert.deepEqual(await client.irqInfo(PciIrq.msi), { flags: 9, count: 1 });
      assert.deepEqual(await client.irqInfo(PciIrq.msix), { flags: 9, count: 0 });
      await rejectsWith(client.irqInfo(7), errno.EINVAL);
      await rejectsWith(client.reset(), errno.ENOTSUP);
    } finally {
      client.close();
    }
  });

  test('the MSI-X table and PBA pages are left out of the mmap areas; the I/O BAR is in-band only', async () => {
    const client = await connected(MSIX_DEVICE);
    try {
      const bar0 = await client.regionInfo(0);
      assert.ok(bar0.flags & RegionFlags.caps);
      assert.deepEqual(bar0.sparse, [{ offset: 0n, size: 0x10000n }, { offset: 0x11000n, size: 0x1000n }, { offset: 0x13000n, size: 0xd000n }]);
      closeSync(bar0.fd!);
      const io = await client.regionInfo(2);
      assert.equal(io.flags, RegionFlags.read | RegionFlags.write);
      assert.equal(io.fd, null);
      assert.deepEqual(await client.irqInfo(PciIrq.msix), { flags: 9, count: 5 });
    } finally {
      client.close();
    }
  });

  test('config through the policy: cache line size reaches the fixture, a vendor ID write does not', async () => {
    const client = await connected(EDU);
    try {
      const config = await client.regionRead(PciRegion.config, 0n, 256);
      assert.equal(config.readUInt32LE(0), 0x11e81234);
      await client.regionWrite(PciRegion.config, 0x0cn, Buffer.from([0x10]));
      assert.equal(tree.configBytes(EDU)[0x0c], 0x10);
      await rejectsWith(client.regionWrite(PciRegion.config, 0n, Buffer.from([0x34, 0x13])), errno.EPERM);
      assert.equal(tree.configBytes(EDU).readUInt16LE(0), 0x1234);
      await rejectsWith(client.regionRead(PciRegion.config, 0xfen, 4), errno.EINVAL);
    } finally {
      client.close();
    }
  });

  test('a guest-assigned BAR address is read back; the fixture BAR never moves', async () => {
    const client = await connected(EDU);
    try {
      const address = Buffer.alloc(4);
      address.writeUInt32LE(0xc0012345);
      await client.regionWrite(PciRegion.config, 0x10n, address);
      assert.equal((await client.regionRead(PciRegion.config, 0x10n, 4)).readUInt32LE(), 0xc0000000);
      await client.regionWrite(PciRegion.config, 0x10n, Buffer.from([0xff, 0xff, 0xff, 0xff]));
      assert.equal((await client.regionRead(PciRegion.config, 0x10n, 4)).readUInt32LE(), 0xfff00000);
      assert.equal(tree.configBytes(EDU).readUInt32LE(0x10), 0xfea00000);
    } finally {
      client.close();
    }
  });

  test('in-band BAR access follows the command register as the guest set it', async () => {
    const client = await connected(EDU);
    try {
      await rejectsWith(client.regionRead(0, 0n, 4), errno.EPERM);
      await client.regionWrite(PciRegion.config, 0x04n, Buffer.from([0x02, 0x00]));
      assert.equal((await client.regionRead(0, 0n, 4)).readUInt32LE(), 0x010000ed);
      await client.regionWrite(PciRegion.config, 0x04n, Buffer.from([0x00, 0x00]));
    } finally {
      client.close();
    }
  });

  test('DMA windows: fd-less ones are kept, overlaps refused, unmap must match exactly', async () => {
    const client = await connected(EDU);
    const memory = join(dir, 'guest-ram');
    writeFileSync(memory, Buffer.alloc(0x4000));
    const fd = openSync(memory, 'r+');
    try {
      await client.dmaMap(0x100000n, 0x4000n, DmaMapFlags.read | DmaMapFlags.write, { fd, offset: 0n });
      await client.dmaMap(0x200000n, 0x1000n, DmaMapFlags.read, Buffer.alloc(0x1000));
      await rejectsWith(client.dmaMap(0x101000n, 0x1000n, DmaMapFlags.read, Buffer.alloc(0x1000)), errno.EEXIST);
      await rejectsWith(client.dmaMap(0x300800n, 0x1000n, DmaMapFlags.read, Buffer.alloc(0x1000)), errno.EINVAL);
      await rejectsWith(client.dmaUnmap(0x100000n, 0x1000n), errno.ENOENT);
      await client.dmaUnmap(0x100000n, 0x4000n);
      await client.dmaUnmap(0n, 0n, 2);
      await rejectsWith(client.dmaUnmap(0x200000n, 0x1000n), errno.ENOENT);
    } finally {
      closeSync(fd);
      client.close();
    }
  });

  /** Any open fd stands in for an eventfd: the fixture device has no host interrupts to route it to. */
  const placeholderFd = (): number => {
    const file = join(dir, 'not-an-eventfd');
    writeFileSync(file, '');
    return openSync(file, 'r');
  };

  test('SET_IRQS: eventfds are taken for vectors the device has, refused beyond them', async () => {
    const client = await connected(EDU);
    const fd = placeholderFd();
    try {
      await client.setIrqs(IrqSetFlags.dataEventfd | IrqSetFlags.actionTrigger, PciIrq.intx, 0, 1, [fd]);
      await client.setIrqs(IrqSetFlags.dataNone | IrqSetFlags.actionUnmask, PciIrq.intx, 0, 1);
      await rejectsWith(client.setIrqs(IrqSetFlags.dataEventfd | IrqSetFlags.actionTrigger, PciIrq.msi, 0, 2, [fd, fd]), errno.EINVAL);
      await rejectsWith(client.setIrqs(IrqSetFlags.dataEventfd | IrqSetFlags.actionTrigger, PciIrq.intx, 0, 1, [fd, fd]), errno.EINVAL);
      await client.setIrqs(IrqSetFlags.dataNone | IrqSetFlags.actionTrigger, PciIrq.intx, 0, 0);
    } finally {
      closeSync(fd);
      client.close();
    }
  });

  test('a client that routed interrupts leaves: its routes torn down, the device takes its interrupts back', async () => {
    const interrupts = new FakeInterrupts();
    let restored = 0;
    extras = { interrupts, restoreInterrupts: () => { restored++; } };
    const client = await connected(EDU);
    const fd = placeholderFd();
    try {
      await client.setIrqs(IrqSetFlags.dataEventfd | IrqSetFlags.actionTrigger, PciIrq.intx, 0, 1, [fd]);
    } finally {
      closeSync(fd);
      extras = {};
    }
    client.close();
    for (let waited = 0; waited < 50 && restored === 0; waited++) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(interrupts.calls, ['attach intx 0 1', 'disable intx']);
    assert.equal(restored, 1);
  });

  test('malformed messages get errno replies and the session goes on', async () => {
    const client = await connected(EDU);
    try {
      const unknown = await client.send(encodeMessage(40, 99, MessageFlags.request));
      assert.equal(unknown.header.flags, MessageFlags.reply | MessageFlags.error);
      assert.equal(unknown.header.error, errno.ENOSYS);
      const short = await client.send(encodeMessage(41, Command.RegionRead, MessageFlags.request, Buffer.alloc(8)));
      assert.equal(short.header.error, errno.EINVAL);
      const reserved = await client.send(encodeMessage(42, Command.DeviceReset, MessageFlags.request | 0x100));
      assert.equal(reserved.header.error, errno.EINVAL);
      assert.equal((await client.deviceInfo()).regions, 9);
    } finally {
      client.close();
    }
  });

  test('a header whose size is below 16 closes the stream; the socket serves the next client', async () => {
    const client = await connected(EDU);
    const broken = encodeMessage(50, Command.DeviceReset, MessageFlags.request);
    broken.writeUInt32LE(8, 4);
    void client.send(broken).catch(() => undefined);
    assert.match(await client.closed, /closed/);
    const next = await connected(EDU);
    assert.equal((await next.deviceInfo()).irqs, 5);
    next.close();
  });

  test('a second client on a socket in use is refused', async () => {
    const first = await connected(EDU);
    try {
      const second = VfioUserClient.connect(paths.get(EDU)!);
      await assert.rejects(second.version(), /connection closed/);
      assert.ok(warnings.some((w) => /second vfio-user client/.test(w)));
      assert.equal((await first.deviceInfo()).regions, 9);
    } finally {
      first.close();
    }
  });

  test('fixture config file unchanged by everything refused above', () => {
    assert.equal(readFileSync(join(tree.deviceDir(EDU), 'config')).readUInt16LE(2), 0x11e8);
  });
});
