/**
 * VFIO's no-IOMMU mode (#10: "`--unsafe-noiommu` is opt-in only: interrupts yes, DMA refused") on a
 * real kernel: the QEMU guest WITHOUT intel-iommu, so edu has no IOMMU group (never this machine's
 * devices). Debian's vfio lacks the mode (CONFIG_VFIO_NOIOMMU unset): the suite first shows what
 * xpci says about that, then swaps in a vfio.ko built from Debian's source with the mode compiled in
 * (harness/noiommu-vfio.ts) and turns the mode on inside the guest. edu goes to vfio-pci by
 * `xpci assignable-add --driver vfio-pci`; `xpci export` refuses it without --unsafe-noiommu and,
 * with it, offers INTx but no DMA; a frontend (test/vm/guest/noiommu-frontend.ts) gets edu's INTx,
 * is refused a DMA window and bus mastering; a detach leaves no VFIO fd in the backend.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Guest, GuestAssetsUnavailableError, STANDARD_DEVICES, announceSkip, qemuAvailable, startBackgroundExport, type BackgroundExport } from './harness/index.js';
import { ensureNoIommuVfio, type NoIommuVfio } from './harness/noiommu-vfio.js';

const hasAddon = existsSync(new URL('../../../build/Release/xpci_native.node', import.meta.url));
let unavailable = (await qemuAvailable()) ?? (hasAddon ? null : 'the native addon is not built (npm run build:native)');
let vfio: NoIommuVfio | undefined;
if (unavailable === null) {
  try {
    vfio = await ensureNoIommuVfio();
  } catch (error) {
    if (!(error instanceof GuestAssetsUnavailableError)) throw error;
    unavailable = `cannot build vfio with CONFIG_VFIO_NOIOMMU: ${error.message}`;
  }
}
const { edu } = STANDARD_DEVICES;
const X = 'node dist/src/cli/main.js';
const SOCKET = '/run/xpci/noiommu.sock';
const MODE = '/sys/module/vfio/parameters/enable_unsafe_noiommu_mode';

describe("VFIO's no-IOMMU mode in the QEMU guest without an IOMMU (#10)", { skip: unavailable !== null && announceSkip('vfio-noiommu', unavailable) }, () => {
  let vm: Guest;
  let pid = 0;
  let guestEdu = '';
  let backend: BackgroundExport;
  const driverOf = async (bdf: string): Promise<string> => (await vm.exec(`basename "$(readlink /sys/bus/pci/devices/${bdf}/driver)"`)).stdout.trim();
  const addToVfio = () => vm.exec(`${X} assignable-add --driver vfio-pci ${edu}`, { timeoutMs: 180_000 });
  const vfioFds = async (): Promise<string[]> =>
    (await vm.execOk(`for f in /proc/${pid}/fd/*; do readlink $f; done | grep -E 'vfio' | sort || true`)).trim().split('\n').filter(Boolean);

  before(async () => {
    vm = await Guest.boot({ shares: [vfio!.dir], timeoutMs: 180_000 });
  });
  after(async () => {
    await vm?.shutdown();
  });

  test("Debian's vfio (no CONFIG_VFIO_NOIOMMU): assignable-add --driver vfio-pci refuses edu, saying why, and changes nothing", async () => {
    assert.equal((await vm.exec(`test -e /sys/bus/pci/devices/${edu}/iommu_group`)).exitCode, 1, 'no IOMMU: edu has no group');
    await vm.execOk('modprobe vfio_pci');
    const out = await addToVfio();
    assert.equal(out.exitCode, 1, out.stdout);
    assert.match(out.stderr, new RegExp(`refused: ${edu} has no IOMMU group: vfio-pci takes such a device only in VFIO's no-IOMMU mode, `
      + `which this kernel lacks \\(no ${MODE}: CONFIG_VFIO_NOIOMMU is not set\\); hold it on pci-stub instead`));
    assert.equal(await driverOf(edu), '');
    assert.equal((await vm.exec(`${X} assignable-list`)).stdout.includes(edu), false, 'no record');
  });

  test('vfio with the mode compiled in but off: refused, naming the switch; on: edu is held in a no-IOMMU group', async () => {
    await vm.execOk('for m in vfio_pci vfio_pci_core vfio_iommu_type1 vfio; do if grep -q "^$m " /proc/modules; then rmmod $m || exit 1; fi; done; '
      + `insmod ${vfio!.module} && modprobe vfio_pci`);
    assert.equal((await vm.execOk(`cat ${MODE}`)).trim(), 'N');
    const off = await addToVfio();
    assert.equal(off.exitCode, 1, off.stdout);
    assert.match(off.stderr, /no-IOMMU mode, which is off \(.*enable_unsafe_noiommu_mode is N; writing Y turns it on for the whole host/);
    assert.equal(await driverOf(edu), '');

    await vm.execOk(`echo Y > ${MODE}`);
    const on = await addToVfio();
    assert.equal(on.exitCode, 0, on.stderr);
    assert.match(on.stdout + on.stderr, /no IOMMU: held in VFIO's no-IOMMU mode, exported only with xpci export --unsafe-noiommu/);
    assert.equal(await driverOf(edu), 'vfio-pci');
    const group = (await vm.execOk(`basename "$(readlink /sys/bus/pci/devices/${edu}/iommu_group)"`)).trim();
    assert.equal((await vm.execOk(`cat /sys/kernel/iommu_groups/${group}/name`)).trim(), 'vfio-noiommu');
    assert.equal((await vm.exec(`test -c /dev/vfio/noiommu-${group}`)).exitCode, 0);
  });

  test('xpci export without --unsafe-noiommu refuses edu, naming the flag', async () => {
    const out = await vm.exec(`${X} export --socket ${SOCKET} ${edu} < /dev/null`, { timeoutMs: 120_000 });
    assert.notEqual(out.exitCode, 0, out.stdout);
    assert.match(out.stderr, new RegExp(`${edu} is held by vfio-pci in VFIO's no-IOMMU mode \\(IOMMU group \\d+ is 'vfio-noiommu'\\): `
      + 'no IOMMU confines its DMA, so it is exported only with --unsafe-noiommu'));
  });

  let report: Record<string, any>;
  test('with --unsafe-noiommu: the Hello offers INTx and no DMA; INTx after a factorial, twice; INTx Disable holds it back; DmaMap and bus mastering refused', async () => {
    backend = await startBackgroundExport(vm, 'noiommu-backend', `--unsafe-noiommu --socket ${SOCKET} ${edu}`);
    pid = backend.pid;
    guestEdu = backend.guestOf[edu];

    const run = await vm.exec(`node dist/test/vm/guest/noiommu-frontend.js ${SOCKET} '${JSON.stringify({ edu: guestEdu, eduHost: edu })}'`, { timeoutMs: 240_000 });
    const last = run.stdout.trim().split('\n').pop() ?? '';
    assert.ok(last.startsWith('{'), `the frontend printed no report (exit ${run.exitCode}): ${run.stdout}\n${run.stderr}`);
    report = JSON.parse(last);
    assert.equal(report.error, undefined, `${report.error}\nso far: ${JSON.stringify(report.partial)}\nbackend: ${await backend.stderr()}`);
    assert.deepEqual(report.descriptor.interrupts, { intx: 1 }, 'INTx only: MSI would need bus mastering');
    assert.equal(report.descriptor.dma, false);
    assert.deepEqual(report.intx, [
      { record: { kind: 'intx', vector: 0, count: 1 }, factorial: 120, status: 1 },
      { record: { kind: 'intx', vector: 0, count: 1 }, factorial: 720, status: 1 },
    ]);
    assert.equal(report.intxDisableView, 0x400, 'INTx Disable stays in the view');
    assert.equal(report.whileDisabled, 'none', 'no INTx while the frontend has it disabled');
    assert.deepEqual(report.afterEnable, { kind: 'intx', vector: 0, count: 1 }, 'the pending INTx arrives once enabled again');
    assert.match(report.dmaMap, /^NotImplemented: DMA windows are not offered for this device \(no IOMMU-backed VFIO container\)/);
    assert.match(report.busMaster, /^AccessDenied: .*Command.*bus master only on a device with DMA through an IOMMU/);
    assert.equal(report.busMasterView, 0);
    assert.equal(report.busMasterReal, 0, 'bus mastering stays off on the hardware');
    assert.equal(report.ident, 0x010000ed);
  });

  test('release: a detach leaves no VFIO fd in the backend; the export then stops cleanly', async () => {
    const held = await vfioFds();
    assert.ok(held.some((l) => /^\/dev\/vfio\/noiommu-\d+$/.test(l)), `the backend holds the no-IOMMU group while exporting: ${held.join(', ')}`);
    assert.ok(held.includes('/dev/vfio/vfio'));
    assert.ok(held.some((l) => /vfio-device/.test(l)), held.join(', '));
    const detach = await vm.exec(`${X} detach --socket ${SOCKET} ${edu}`, { timeoutMs: 120_000 });
    assert.equal(detach.exitCode, 0, detach.stderr);
    assert.deepEqual(await vfioFds(), [], 'no VFIO fd left after the release');
    assert.equal(await backend.stop(), 0, await backend.stderr());
    const removed = await vm.exec(`${X} assignable-remove ${edu}`, { timeoutMs: 180_000 });
    assert.equal(removed.exitCode, 0, removed.stderr);
    assert.equal(await driverOf(edu), '');
  });
});
