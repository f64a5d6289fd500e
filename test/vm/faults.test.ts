/**
 * Faults on a real kernel (the QEMU guest; never this machine's devices), in one guest boot:
 * - surprise removal: edu is removed from the guest's PCI bus (`remove` in sysfs) while a frontend
 *   reads its BAR (mapped by the backend) and config; the backend reports it gone and keeps serving
 *   pci-testdev;
 * - deaths: the backend exporting edu is killed with SIGKILL, SIGHUP, SIGTERM and SIGINT at random
 *   points of 50 frontend sessions; every next export starts, and edu's command register, cache line
 *   size and interrupt line end as they were before the first export;
 * - `xpci assignable-remove` after a SIGKILL: it repairs edu from the register record the export left.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Guest, STANDARD_DEVICES, announceSkip, qemuAvailable, startBackgroundExport, type BackgroundExport } from './harness/index.js';
import type { FaultReport } from './guest/fault-sessions.js';

const hasAddon = existsSync(new URL('../../../build/Release/xpci_native.node', import.meta.url));
const unavailable = (await qemuAvailable()) ?? (hasAddon ? null : 'the native addon is not built (npm run build:native)');
const { edu, pciTestdev } = STANDARD_DEVICES;
const X = 'node dist/src/cli/main.js';
const STATE = '/run/xpci/state';


describe('faults in the QEMU guest', { skip: unavailable !== null && announceSkip('faults', unavailable) }, () => {
  let vm: Guest;
  const startBackend = (name: string, args: string): Promise<BackgroundExport> => startBackgroundExport(vm, name, `--state-dir ${STATE} ${args}`);


  before(async () => {
    vm = await Guest.boot({ timeoutMs: 120_000 });
  });
  after(async () => {
    await vm?.shutdown();
  });

  test('surprise removal of edu while a frontend reads its BAR and config: reported gone, pci-testdev still served', async () => {
    const backend = await startBackend('removal', `--socket /run/xpci/removal.sock ${edu} ${pciTestdev}`);
    try {
      const guestOf = (host: string) => backend.ready.devices.find((d) => d.host === host)!.guest;
      const run = await vm.exec(`node dist/test/vm/guest/surprise-removal.js /run/xpci/removal.sock ${edu} ${guestOf(edu)} ${guestOf(pciTestdev)}`,
        { timeoutMs: 180_000 });
      assert.equal(run.exitCode, 0, run.stderr);
      const result = JSON.parse(run.stdout) as Record<'before' | 'after', Record<'gone' | 'kept', Record<string, number>>>;
      assert.deepEqual(result.before, { gone: { ok: 40 }, kept: { ok: 40 } }, 'both devices served before the removal');
      assert.deepEqual(result.after.kept, { ok: 40 }, 'pci-testdev is still served after edu is gone');
      // The kernel leaves the BAR mapped (the emulated edu still answers there): the backend's
      // presence check finds edu gone at the first BAR read after the removal; nothing reaches it after.
      const gone = `DeviceNotFound errno=19: ${guestOf(edu)} is gone: the host device was removed (BAR 0 read of 4 bytes at 0x0 failed: ENODEV)`;
      assert.deepEqual(result.after.gone, { [gone]: 40 }, run.stdout);
      assert.equal((await vm.exec(`kill -0 ${backend.pid}`)).exitCode, 0, 'the backend lives on');
      assert.match(await backend.stderr(), new RegExp(`xpci: ${edu} \\(frontend ${guestOf(edu)}\\) is gone from the host \\(BAR 0 read of 4 bytes at 0x0 failed: ENODEV\\)`));
      assert.equal(await backend.stop(), 0, 'a clean end: nothing to restore on the gone device');
    } finally {
      await vm.exec(`kill -9 ${backend.pid} 2>/dev/null; echo 1 > /sys/bus/pci/rescan; true`);
    }
    assert.equal((await vm.exec(`test -e /sys/bus/pci/devices/${edu}/config`)).exitCode, 0, 'edu is back after a rescan');
  });

  test('deaths: SIGKILL, SIGHUP, SIGTERM and SIGINT at random points of 50 sessions; every next export starts and edu ends as before the first', async () => {
    const seed = Number(process.env.XPCI_FAULT_SEED ?? Date.now() % 0x7fffffff);
    const run = await vm.exec(`node dist/test/vm/guest/fault-sessions.js ${edu} /run/xpci/faults.sock ${STATE} ${seed}`, { timeoutMs: 540_000 });
    assert.equal(run.exitCode, 0, `seed ${seed}: ${run.stderr}`);
    const report = JSON.parse(run.stdout) as FaultReport;
    const context = `seed ${seed} (XPCI_FAULT_SEED=${seed} replays it): ${run.stdout}`;
    assert.equal(report.sessions, 50);
    assert.ok(report.ops > 50 * 5, context);
    assert.deepEqual(report.kills.map((k) => k.signal).sort(), ['SIGHUP', 'SIGINT', 'SIGKILL', 'SIGTERM'], context);
    const nothingLeft = { locks: [], records: [], socket: false };
    for (const kill of report.kills) {
      const where = `${kill.signal} in session ${kill.session} before op ${kill.killPoint} of ${kill.planned}; ${context}`;
      assert.deepEqual(kill.registersAfterRestart, report.original, `the next export starts with edu as before the first: ${where}`);
      if (kill.signal === 'SIGKILL') {
        assert.equal(kill.exit.signal, 'SIGKILL', where);
        if (JSON.stringify(kill.registersAfterDeath) !== JSON.stringify(report.original)) {
          assert.match(kill.restartNotes, /restored registers a backend that died left changed: /, where);
        }
        if (kill.leftoversAfterDeath.locks.length > 0) assert.match(kill.restartNotes, /cleared stale lock of pid \d+ \(process gone\)/, where);
      } else {
        assert.deepEqual(kill.exit, { code: 0, signal: null }, where);
        assert.deepEqual(kill.registersAfterDeath, report.original, `restored on the way out: ${where}`);
        assert.deepEqual(kill.leftoversAfterDeath, nothingLeft, `no lock, record or socket left: ${where}`);
        assert.doesNotMatch(kill.restartNotes, /stale|restored registers/, where);
      }
    }
    const sigkill = report.kills.find((k) => k.signal === 'SIGKILL')!;
    assert.notDeepEqual(sigkill.registersAfterDeath, report.original, `the SIGKILL (after the writes) left edu changed, so the repair ran: ${context}`);
    assert.deepEqual(report.final, { exit: { code: 0, signal: null }, registers: report.original, leftovers: nothingLeft }, context);
  });

  test('assignable-remove after a SIGKILL writes back what the export\'s frontend changed, from the register record', async () => {
    const registers = async () => (await vm.execOk(`setpci -s ${edu.slice(5)} COMMAND CACHE_LINE_SIZE`)).trim().split('\n');
    const before = await registers();
    const backend = await startBackend('record', `--socket /run/xpci/record.sock ${edu}`);
    try {
      const guest = backend.ready.devices[0].guest;
      const changed = await vm.exec(`${X} setpci --connect /run/xpci/record.sock -s ${guest.slice(5)} COMMAND=0x0002:0x0002 CACHE_LINE_SIZE=0x20`, { timeoutMs: 120_000 });
      assert.equal(changed.exitCode, 0, changed.stderr);
      assert.notDeepEqual(await registers(), before, 'the frontend changed edu');
    } finally {
      await vm.exec(`kill -9 ${backend.pid}; for i in $(seq 100); do kill -0 ${backend.pid} 2>/dev/null || break; sleep 0.1; done`);
    }
    assert.notDeepEqual(await registers(), before, 'SIGKILL restores nothing');
    const removed = await vm.exec(`${X} assignable-remove --state-dir ${STATE} --json ${edu}`, { timeoutMs: 120_000 });
    assert.equal(removed.exitCode, 0, removed.stderr);
    const [outcome] = JSON.parse(removed.stdout).devices as { action: string; notes: string[] }[];
    assert.equal(outcome.action, 'not-held');
    assert.ok(outcome.notes.some((note) => /^restored registers a backend that died left changed: .*cache line size 0x20 → 0x/.test(note)), removed.stdout);
    assert.deepEqual(await registers(), before);
    assert.equal((await vm.exec(`ls ${STATE}/registers`)).stdout, '', 'the record is removed');
  });
});
