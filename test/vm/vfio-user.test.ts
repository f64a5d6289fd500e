/**
 * A stock QEMU 10 guest gets an exported device on its own PCI bus, with no device of this machine
 * touched: edu's snapshot (test/fixtures/edu-snapshot, taken in the test guest with
 * `xpci snapshot --with-bars`) is served from a copy by `xpci export --sysfs-root … --vfio-user DIR`
 * on the host, and a guest of the QEMU built by scripts/build-qemu-vfio-user.sh (its first run builds
 * it into ~/.cache/xpci, later runs reuse it) has `vfio-user-pci` on that socket. The guest's
 * `lspci -vvv` shows the device as `xpci lspci -vvv` does, reads edu's identification register
 * through the mapped BAR0, a guest setpci of the cache line size reaches the fixture's config file
 * and a vendor ID write does not; a second vfio-user client on the socket QEMU holds is refused.
 * Then the backend is killed under the running
 * guest: the guest keeps answering, QEMU reports the lost server (it does not reconnect), and a
 * restarted backend replaces the stale socket and serves a new client. One guest boot for all.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Guest, announceSkip, qemuAvailable } from './harness/index.js';
import { VFIO_USER_QEMU_BUILD_TIMEOUT_MS, vfioUserQemu, type VfioUserQemu } from './harness/vfio-user-qemu.js';
import { runXpci, startExport, type RunningExport } from '../support/xpci-process.js';
import { VfioUserClient } from '../support/vfio-user-client.js';
import { PciRegion } from '../../src/protocol/vfio-user/messages.js';

const EDU = '0000:00:10.0';
const GUEST_SLOT = '00:13.0';

const unavailable = await qemuAvailable();
const qemu = unavailable === null ? vfioUserQemu() : { skip: unavailable };
const skip = 'skip' in qemu ? announceSkip('vfio-user', qemu.skip) : false;

/** lspci -vvv of one device without what legitimately differs: bus position, BAR addresses, IRQ routing, the guest's driver. */
function comparable(text: string): string[] {
  return text.split('\n').slice(1)
    .filter((line) => !/Region \d|Interrupt:|Kernel driver|Kernel modules|Expansion ROM/.test(line))
    .map((line) => line.trimEnd()).filter((line) => line !== '');
}

describe('vfio-user: a QEMU 10 guest on an exported edu snapshot', { skip, timeout: VFIO_USER_QEMU_BUILD_TIMEOUT_MS }, () => {
  let work: string;
  let sysfs: string;
  let backend: RunningExport;
  let vm: Guest;
  const startBackend = (): Promise<RunningExport> => startExport(['--sysfs-root', sysfs, '--state-dir', join(work, 'state'),
    '--socket', join(work, 'xpci.sock'), '--vfio-user', join(work, 'vfio-user'), '--no-reset-on-export', '--no-reset-on-release', EDU],
  { DEBUG: process.env.DEBUG ?? '' });
  const config = (): Buffer => readFileSync(join(sysfs, 'devices', 'pci0000:00', EDU, 'config'));

  before(async () => {
    const { binary, firmwareArgs } = qemu as VfioUserQemu;
    work = mkdtempSync(join(tmpdir(), 'xpci-vfio-user-vm-'));
    sysfs = join(work, 'sysfs');
    cpSync(resolve('test/fixtures/edu-snapshot'), sysfs, { recursive: true, verbatimSymlinks: true });
    backend = await startBackend();
    const socket = join(work, 'vfio-user', `${backend.devices[0].guest}.sock`);
    vm = await Guest.boot({
      devices: { standard: false, xpciPort: false, extraDevices: [JSON.stringify({ driver: 'vfio-user-pci', socket: { path: socket, type: 'unix' }, addr: '0x13' })] },
      memoryMiB: 512,
      timeoutMs: 180_000,
      qemu: {
        binary,
        extraArgs: [...firmwareArgs, '-object', 'memory-backend-memfd,id=mem,size=512M,share=on', '-machine', 'memory-backend=mem'],
      },
    });
  });

  after(async () => {
    await vm?.shutdown().catch(() => undefined);
    await backend?.stop();
    if (process.env.DEBUG) console.error(`backend stderr:\n${backend?.stderr()}\nQEMU stderr:\n${vm?.qemuStderrTail}`);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('the guest kernel enumerates edu and lspci -vvv shows it as xpci lspci -vvv does', async () => {
    const inGuest = await vm.execOk(`lspci -vvv -s ${GUEST_SLOT}`);
    assert.match(inGuest.split('\n')[0], /Unclassified device \[00ff\]: Device 1234:11e8 \(rev 10\)/);
    const viaRing = await runXpci(['lspci', '-vvv', '--connect', backend.socket]);
    assert.equal(viaRing.status, 0, viaRing.stderr);
    assert.match(inGuest, /Region 0: Memory at [0-9a-f]+ \(32-bit, non-prefetchable\) \[size=1M\]/);
    assert.match(inGuest, /Capabilities: \[40\] MSI: /);
    assert.deepEqual(comparable(inGuest), comparable(viaRing.stdout));
  });

  test('a second vfio-user client on the socket QEMU holds is refused; QEMU keeps the device', async () => {
    const second = VfioUserClient.connect(join(work, 'vfio-user', `${backend.devices[0].guest}.sock`));
    try {
      await assert.rejects(second.version(), /connection closed/);
    } finally {
      second.close();
    }
    // The warning is written before the connection closes, but its pipe may be read after the close.
    for (let waited = 0; waited < 50 && !/refused a second vfio-user client/.test(backend.stderr()); waited++) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.match(backend.stderr(), /refused a second vfio-user client/);
    assert.equal((await vm.execOk(`setpci -s ${GUEST_SLOT} VENDOR_ID`)).trim(), '1234');
  });

  test("edu's identification register through the mapped BAR0", async () => {
    await vm.execOk(`setpci -s ${GUEST_SLOT} COMMAND=0x0002:0x0002`);
    const ident = await vm.execOk(`python3 -c "
import mmap, struct
with open('/sys/bus/pci/devices/0000:${GUEST_SLOT}/resource0', 'r+b') as f:
    m = mmap.mmap(f.fileno(), 4096)
    print(hex(struct.unpack('<I', m[0:4])[0]))"`);
    assert.equal(ident.trim(), '0x10000ed');
  });

  test("a guest setpci of the cache line size reaches the fixture's config file; a vendor ID write does not", async () => {
    await vm.execOk(`setpci -s ${GUEST_SLOT} CACHE_LINE_SIZE=0x20`);
    assert.equal(config()[0x0c], 0x20);
    await vm.exec(`setpci -s ${GUEST_SLOT} VENDOR_ID=0xbeef`);
    assert.equal(config().readUInt16LE(0), 0x1234);
    assert.equal((await vm.execOk(`setpci -s ${GUEST_SLOT} VENDOR_ID`)).trim(), '1234');
  });

  test('killing the backend under the running guest: the guest answers, QEMU reports the lost server; a restarted backend serves', async () => {
    backend.process.kill('SIGKILL');
    await backend.stop();
    const after = await vm.exec(`lspci -vvv -s ${GUEST_SLOT}; setpci -s ${GUEST_SLOT} CACHE_LINE_SIZE`, { timeoutMs: 60_000 });
    assert.equal(typeof after.exitCode, 'number');
    assert.match(vm.qemuStderrTail, /failed to read header: EOF|server closed socket/);
    // QEMU 10.2 does not reconnect; the restarted backend replaces the stale socket and serves a new client.
    backend = await startBackend();
    const client = VfioUserClient.connect(join(work, 'vfio-user', `${backend.devices[0].guest}.sock`));
    try {
      await client.version();
      assert.equal((await client.regionRead(PciRegion.config, 0n, 4)).readUInt32LE(0), 0x11e81234);
    } finally {
      client.close();
    }
  });
});
