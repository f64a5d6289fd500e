/**
 * The VFIO back end on a real kernel: the QEMU guest with intel-iommu (never this machine's
 * devices). edu and e1000e are handed to vfio-pci by `xpci assignable-add` (its default where the
 * device has an IOMMU group); a probe in the guest then opens them through src/host/vfio/ and
 * reports: BAR access through the mapped region, INTx (auto-masked, a second one after unmask), MSI,
 * DMA through two memfd windows, e1000e MSI-X through ICS, VFIO_DEVICE_RESET (the kernel picks a PM
 * reset, which QEMU 7.2's e1000e does not act on, so its effect is not checked), and no fd left behind.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Guest, STANDARD_DEVICES, announceSkip, qemuAvailable } from './harness/index.js';

const hasAddon = existsSync(new URL('../../../build/Release/xpci_native.node', import.meta.url));
const unavailable = (await qemuAvailable()) ?? (hasAddon ? null : 'the native addon is not built (npm run build:native)');
const { edu, e1000e } = STANDARD_DEVICES;
const X = 'node dist/src/cli/main.js';

describe('VFIO host back end in the QEMU guest', { skip: unavailable !== null && announceSkip('vfio-host', unavailable) }, () => {
  let vm: Guest;
  let probe: Record<string, any>;
  const driverOf = async (bdf: string): Promise<string> => (await vm.exec(`basename "$(readlink /sys/bus/pci/devices/${bdf}/driver)"`)).stdout.trim();

  before(async () => {
    vm = await Guest.boot({ iommu: true, modules: ['vfio_pci', 'vfio_iommu_type1'], timeoutMs: 180_000 });
  });
  after(async () => { await vm?.shutdown(); });

  test('assignable-add hands devices with an IOMMU group to vfio-pci by default; the record keeps the original driver', async () => {
    const out = await vm.exec(`${X} assignable-add ${edu} ${e1000e}`, { timeoutMs: 180_000 });
    assert.equal(out.exitCode, 0, out.stderr);
    assert.equal(await driverOf(edu), 'vfio-pci');
    assert.equal(await driverOf(e1000e), 'vfio-pci');
    assert.match((await vm.execOk(`ls /dev/vfio`)).trim(), /^\d+\s/m);
  });

  test('the probe runs through the VFIO back end', async () => {
    const out = await vm.exec(`node dist/test/vm/guest/vfio-host-probe.js ${edu} ${e1000e}`, { timeoutMs: 240_000 });
    assert.equal(out.exitCode, 0, out.stderr);
    probe = JSON.parse(out.stdout.trim().split('\n').pop()!);
    assert.equal(probe.error, undefined, probe.error);
  });

  test('edu: VFIO features, ident through the mapped region', () => {
    const e = probe.edu;
    assert.equal(e.method, 'vfio');
    assert.deepEqual(e.features.interrupts, { intx: 1, msi: 1 });
    assert.equal(e.features.dma, true);
    assert.equal(e.ident, 0x010000ed);
    assert.equal(e.barMapped, true, 'BAR0 is an mmap of the VFIO region');
    assert.equal(e.liveness, ~0x12345678 >>> 0);
  });

  test('edu INTx: delivered, auto-masked, and again after unmask', () => {
    const e = probe.edu;
    assert.deepEqual(e.intxFirst, { kind: 'intx', vector: 0, count: 1 });
    assert.equal(e.intxMaskedCommand, true, 'VFIO masked INTx (DisINTx) after it fired');
    assert.deepEqual(e.intxSecond, { kind: 'intx', vector: 0, count: 1 });
  });

  test('edu MSI: one vector, raised by edu, INTx routing torn down', () => {
    const e = probe.edu;
    assert.equal(e.intxStillRouted, false);
    assert.deepEqual(e.msi, { kind: 'msi', vector: 0, count: 1 });
  });

  test('edu DMA: RAM → device → RAM through two memfd windows', () => {
    const e = probe.edu;
    assert.equal(e.dmaMatches, true);
    assert.equal(e.dmaRestUntouched, true);
    assert.equal(e.dmaMapped, 2);
    assert.equal(e.dmaAfterUnmap, 1);
  });

  test('close() leaves no fd and no VFIO mapping behind', () => {
    assert.ok(probe.edu.fdsWhileOpen > 0);
    assert.equal(probe.edu.fdsLeft, 0);
    assert.equal(probe.edu.vfioMapsLeft, 0);
    assert.equal(probe.e1000e.fdsLeft, 0);
  });

  test('e1000e: MSI-X vector 2 through ICS; VFIO_DEVICE_RESET is offered and performed', () => {
    const e = probe.e1000e;
    assert.equal(e.features.interrupts.msix, 5);
    assert.equal(e.features.reset, true);
    assert.deepEqual(e.msix, { kind: 'msix', vector: 2, count: 1 });
    assert.equal(e.resetError, null);
  });

  test('assignable-remove gives both devices back (no original driver: unbound)', async () => {
    const out = await vm.exec(`${X} assignable-remove ${edu} ${e1000e}`, { timeoutMs: 180_000 });
    assert.equal(out.exitCode, 0, out.stderr);
    assert.equal(await driverOf(edu), '');
    assert.equal(await driverOf(e1000e), '');
  });
});
