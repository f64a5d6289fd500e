/**
 * The whole device through the ring (#10), on a real kernel: the QEMU guest with intel-iommu (never
 * this machine's devices). edu and e1000e go to vfio-pci by `xpci assignable-add`, `xpci export`
 * serves them in vPCI mode from /run/xpci, and a frontend built on the library alone
 * (test/vm/guest/vfio-device-frontend.ts) drives them: INTx with unmask, MSI whose address/data never
 * reach the hardware, MSI-X with a masked vector, DMA windows behind the IOMMU, cleanup after a
 * killed frontend, recovery after a killed backend, and 1,000 bad requests that leak nothing.
 * Node starts slowly under TCG: one guest, one backend story in order, few frontend runs.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Guest, STANDARD_DEVICES, announceSkip, qemuAvailable , startBackgroundExport, type BackgroundExport } from './harness/index.js';

const hasAddon = existsSync(new URL('../../../build/Release/xpci_native.node', import.meta.url));
const unavailable = (await qemuAvailable()) ?? (hasAddon ? null : 'the native addon is not built (npm run build:native)');
const { edu, e1000e } = STANDARD_DEVICES;
const X = 'node dist/src/cli/main.js';
const SOCKET = '/run/xpci/device.sock';
/** Small enough that a 128 KiB window is refused; the DMA steps use 4 KiB and 8 KiB windows. */
const DMA_LIMIT = 64 * 1024;
/** Below edu's 28-bit DMA mask and far from the windows the backend picks (from 0x100000). */
const OUTSIDE_IOVA = '0x8000000';
const MSI_ENABLE = 0x1;


describe('interrupts, DMA and reset through the ring in the QEMU guest (#10)', { skip: unavailable !== null && announceSkip('vfio-device', unavailable) }, () => {
  let vm: Guest;
  let backend: BackgroundExport;
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const driverOf = async (bdf: string): Promise<string> => (await vm.exec(`basename "$(readlink /sys/bus/pci/devices/${bdf}/driver)"`)).stdout.trim();

  /** The export under test, in the background; resolves once it listens. */
  async function startBackend(name: string): Promise<BackgroundExport> {
    const started = await startBackgroundExport(vm, name, `--dma-limit ${DMA_LIMIT} --socket ${SOCKET} ${edu} ${e1000e}`);
    assert.equal(started.ready.mode, 'vpci');
    return started;
  }

  /** One frontend run; its last stdout line is its JSON report. */
  async function frontend(step: string, args: Record<string, unknown> = {}): Promise<Record<string, any>> {
    const all = { edu: backend.guestOf[edu], e1000e: backend.guestOf[e1000e], eduHost: edu, e1000eHost: e1000e, backendPid: backend.pid, ...args };
    const out = await vm.exec(`node dist/test/vm/guest/vfio-device-frontend.js ${step} ${SOCKET} '${JSON.stringify(all)}'`, { timeoutMs: 240_000 });
    const last = out.stdout.trim().split('\n').pop() ?? '';
    assert.ok(last.startsWith('{'), `frontend ${step} printed no report (exit ${out.exitCode}): ${out.stdout}\n${out.stderr}\n${await backend.stderr()}`);
    const report = JSON.parse(last) as Record<string, any>;
    assert.equal(report.error, undefined, `frontend ${step}: ${report.error}\nso far: ${JSON.stringify(report.partial)}\nbackend: ${await backend.stderr()}`);
    return report;
  }

  before(async () => {
    vm = await Guest.boot({ iommu: true, modules: ['vfio_pci', 'vfio_iommu_type1'], timeoutMs: 180_000 });
    const added = await vm.exec(`${X} assignable-add ${edu} ${e1000e}`, { timeoutMs: 180_000 });
    assert.equal(added.exitCode, 0, added.stderr);
    assert.equal(await driverOf(edu), 'vfio-pci');
    assert.equal(await driverOf(e1000e), 'vfio-pci');
    backend = await startBackend('backend1');
  });
  after(async () => {
    await vm?.shutdown();
  });

  let irq: Record<string, any>;
  test('edu INTx: factorial with interrupt-when-done, ack (0x64), unmask, a second round', async () => {
    irq = await frontend('interrupts');
    assert.deepEqual(irq.eduDescriptor.interrupts, { intx: 1, msi: 1 });
    assert.equal(irq.eduDescriptor.dma, true);
    assert.deepEqual(irq.intx, [
      { record: { kind: 'intx', vector: 0, count: 1 }, factorial: 120, status: 1 },
      { record: { kind: 'intx', vector: 0, count: 1 }, factorial: 720, status: 1 },
    ]);
  });

  test("edu MSI: vector 0 arrives; the real capability holds the kernel's address/data, never the frontend's", () => {
    assert.equal(irq.msiFrontendView.control & MSI_ENABLE, MSI_ENABLE);
    assert.equal(irq.msiFrontendView.address, irq.msiFrontend.address, "the frontend reads back its own view");
    assert.equal(irq.msiFrontendView.data, irq.msiFrontend.data);
    assert.equal(irq.msiReal.control & MSI_ENABLE, MSI_ENABLE, 'the backend enabled MSI on the hardware (VFIO_DEVICE_SET_IRQS)');
    assert.equal((irq.msiReal.address & 0xfff00000) >>> 0, 0xfee00000, `real MSI address 0x${irq.msiReal.address.toString(16)} is the kernel's (x86 interrupt window)`);
    assert.notEqual(irq.msiReal.address, irq.msiFrontend.address);
    assert.notEqual(irq.msiReal.upper, irq.msiFrontend.upper);
    assert.notEqual(irq.msiReal.data, irq.msiFrontend.data);
    assert.deepEqual(irq.msi, { kind: 'msi', vector: 0, count: 1 });
    assert.equal(irq.msiRealAfterDisable & MSI_ENABLE, 0, 'MSI disabled in the frontend view is disabled on the hardware');
  });

  test('e1000e MSI-X: vector 2 through ICS; a masked vector stays pending (PBA) until unmasked', () => {
    assert.equal(irq.e1000eDescriptor.interrupts.msix, 5);
    assert.deepEqual(irq.msix, { kind: 'msix', vector: 2, count: 1 });
    assert.equal(irq.msixWhileMasked, 'none');
    assert.equal(irq.pbaWhileMasked, 1 << 2);
    assert.deepEqual(irq.msixAfterUnmask, { kind: 'msix', vector: 2, count: 1 });
    assert.equal(irq.pbaAfterUnmask, 0);
    const [eduGuest, nicGuest] = [backend.guestOf[edu], backend.guestOf[e1000e]];
    assert.deepEqual(irq.events, [`${eduGuest} intx/0/1`, `${eduGuest} intx/0/1`, `${eduGuest} msi/0/1`, `${nicGuest} msix/2/1`, `${nicGuest} msix/2/1`],
      "the client's 'interrupt' events carry the device address and the same records");
  });

  test("reset: e1000e with MSI-X on is reset through VFIO, MSI-X off in the view and on the hardware, DeviceReset first; edu has no reset", () => {
    assert.equal(irq.e1000eDescriptor.reset, true);
    assert.equal(irq.msixRealBeforeReset & 0x8000, 0x8000, 'MSI-X was on on the hardware');
    assert.deepEqual(irq.resetEvents, [backend.guestOf[e1000e]]);
    assert.equal(irq.msixViewAfterReset & 0x8000, 0);
    assert.equal(irq.msixRealAfterReset & 0x8000, 0);
    assert.equal(irq.eduDescriptor.reset, false);
    assert.match(irq.eduReset, /^NotImplemented: the device offers no reset/);
  });

  test('DMA: two 4 KiB windows, RAM → edu (0x40000) → RAM matches; a DMA outside every window faults in the IOMMU and changes no window', async () => {
    await vm.exec('dmesg -c > /dev/null');
    const dma = await frontend('dma', { outsideIova: OUTSIDE_IOVA });
    assert.deepEqual(dma.iovas, ['100000', '101000']);
    assert.equal(dma.copyMatches, true);
    assert.equal(dma.restUntouched, true);
    assert.equal(dma.windowsUnchanged, true);
    const log = (await vm.exec('dmesg')).stdout;
    assert.match(log, /DMAR: .*fault addr (0x)?0*8000000/i, `no DMAR fault for ${OUTSIDE_IOVA} in the guest's kernel log:\n${log}`);
  });

  test('1,000 bad requests: each a clear error; the backend keeps its fds and mappings', async (t) => {
    const { tableBar, tableAt, pbaBar, pbaAt } = irq.msixLayout;
    const report = await frontend('bad', { dmaLimit: DMA_LIMIT, tableBar, outsideTable: tableAt + 0x800, pbaBar, outsidePba: pbaAt + 0x800 });
    const { outcomes } = report;
    t.diagnostic(JSON.stringify(outcomes));
    for (const kind of ['pastLimit', 'outOfRange', 'unmaskNeverEnabled', 'msixOutsideTable']) {
      assert.equal(outcomes[kind].failed, 250, `${kind}: ${JSON.stringify(outcomes[kind])}`);
      assert.equal(outcomes[kind].messages.length, 2, `${kind}: one clear error per form, got ${JSON.stringify(outcomes[kind].messages)}`);
    }
    const [tooLarge, pastBudget] = outcomes.pastLimit.messages;
    assert.match(tooLarge, /^LimitExceeded: a DMA window of 131072 bytes exceeds the export's DMA limit of 65536 bytes/);
    assert.match(pastBudget, /^LimitExceeded: a DMA window of 65536 bytes would exceed the export's DMA limit of 65536 bytes \(4096 in use/);
    assert.match(outcomes.outOfRange.messages[0], /^InvalidOffset: DMA transfer 0xfa0\+200 ends past the window of 4096 bytes at 0x100000/);
    assert.match(outcomes.outOfRange.messages[1], /^InvalidOffset: DMA transfer 0xfff\+2 ends past the window of 4096 bytes at 0x100000/);
    assert.match(outcomes.unmaskNeverEnabled.messages[0], /^NotImplemented: msix vectors are unmasked in the frontend's view/);
    assert.match(outcomes.unmaskNeverEnabled.messages[1], /^InvalidOffset: INTx has one vector \(0\), not 1/);
    for (const message of outcomes.msixOutsideTable.messages) assert.match(message, /^AccessDenied: BAR3 0x[0-9a-f]+\+4: the pages holding the MSI-X table and PBA are emulated/);
    const { resourcesBefore: before, resourcesAfter: after } = report;
    assert.equal(after.fds, before.fds, 'no fd leaked');
    assert.deepEqual(after.namedMaps, before.namedMaps, 'no file (memfd, VFIO region) left mapped');
    assert.ok(before.deviceMaps > 0, 'the backend maps its device (the check can see a mapping)');
  });

  test('a frontend killed with windows mapped and MSI on: the next frontend finds edu clean', async () => {
    const out = await vm.exec(`node dist/test/vm/guest/vfio-device-frontend.js dirty ${SOCKET} '${JSON.stringify({ edu: backend.guestOf[edu], eduHost: edu, backendPid: backend.pid })}'`,
      { timeoutMs: 240_000 });
    assert.equal(out.exitCode, 137, `the dirty frontend killed itself: ${out.stdout}\n${out.stderr}`);
    const dirty = JSON.parse(out.stdout.trim().split('\n').pop()!);
    assert.equal(dirty.msiControl & MSI_ENABLE, MSI_ENABLE);
    assert.equal(dirty.msiRealControl & MSI_ENABLE, MSI_ENABLE);
    const clean = await frontend('clean', { oldIova: dirty.firstIova });
    assert.equal(clean.msiControl & MSI_ENABLE, 0, "MSI off in the frontend's view");
    assert.equal(clean.msiRealControl & MSI_ENABLE, 0, 'MSI off on the hardware');
    assert.match(clean.oldWindow, /^InvalidOffset: no DMA window starts at IOVA 0x100000/);
    assert.ok(clean.backend.deviceMaps < dirty.backend.deviceMaps, `the windows' memory is unmapped: ${dirty.backend.deviceMaps} → ${clean.backend.deviceMaps}`);
    assert.ok(clean.backend.fds < dirty.backend.fds, `the windows' memfds are closed: ${dirty.backend.fds} → ${clean.backend.fds}`);
    assert.equal(clean.nextIova, '100000');
    assert.equal(clean.nextWindowZero, true);
  });

  test('kill -9 of the backend while a frontend holds windows and MSI: the next xpci export recovers the device; xpci reset through it', async () => {
    const args = JSON.stringify({ edu: backend.guestOf[edu], eduHost: edu, backendPid: backend.pid, hold: true });
    await vm.execOk(`cat > /tmp/hold.sh <<'EOF'\nnode dist/test/vm/guest/vfio-device-frontend.js dirty ${SOCKET} '${args}' > /tmp/hold.out 2>&1\nEOF\n` +
      'setsid bash /tmp/hold.sh < /dev/null > /dev/null 2>&1 &');
    let held = '';
    for (let i = 0; i < 120 && !held.startsWith('{'); i++) {
      await sleep(1000);
      held = (await vm.exec('head -1 /tmp/hold.out')).stdout.trim();
    }
    const holding = JSON.parse(held);
    assert.equal(holding.msiRealControl & MSI_ENABLE, MSI_ENABLE, `the holding frontend has MSI on: ${held}`);
    await vm.execOk(`kill -9 ${backend.pid}; for i in $(seq 100); do kill -0 ${backend.pid} 2>/dev/null || break; sleep 0.1; done`);
    backend = await startBackend('backend2');
    const after = await frontend('ident');
    assert.equal(after.ident, 0x010000ed);
    assert.equal(after.liveness, ~0x12345678 >>> 0);
    assert.equal(after.msiControl & MSI_ENABLE, 0, "MSI off in the new export's view");
    assert.equal(after.msiRealControl & MSI_ENABLE, 0, 'MSI off on the hardware');
    assert.equal(after.descriptor.dma, true);
    const cli = await vm.exec(`${X} reset --connect ${SOCKET} -s ${backend.guestOf[e1000e]}; echo "status=$?"; ` +
      `${X} reset --connect ${SOCKET} -s ${backend.guestOf[edu]}; echo "status=$?"`, { timeoutMs: 120_000 });
    assert.deepEqual(cli.stdout.match(/status=\d/g), ['status=0', 'status=1'], cli.stderr);
    assert.match(cli.stderr, /no reset/);
    assert.equal(await backend.stop(), 0, await backend.stderr());
  });

  test('assignable-remove gives both devices back', async () => {
    const out = await vm.exec(`${X} assignable-remove ${edu} ${e1000e}`, { timeoutMs: 180_000 });
    assert.equal(out.exitCode, 0, out.stderr);
    assert.equal(await driverOf(edu), '');
  });
});
