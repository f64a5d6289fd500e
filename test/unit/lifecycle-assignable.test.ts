import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAddress } from '../../src/pci/address.js';
import { buildConfigImage, createFixtureTree, type FixtureDeviceSpec, type FixtureTree } from '../support/fixture-sysfs.js';
import { SimulatedKernel } from '../support/simulated-kernel.js';
import { assignableAdd, assignableList, assignableRemove, AssignableError } from '../../src/backend/lifecycle/assignable.js';
import { recordPath, readRecord, writeRecord } from '../../src/backend/lifecycle/assignable-store.js';
import { acquireDeviceLock } from '../../src/backend/lifecycle/device-lock.js';
import { hasRegisterRecord, recordRegisters } from '../../src/backend/lifecycle/register-record.js';
import type { SysfsWriter } from '../../src/backend/lifecycle/sysfs-writer.js';

const NIC = 0x020000;
const P2P_BRIDGE = 0x060400;

function device(address: string, options: { classCode?: number; driver?: string | null; iommuGroup?: number; multiFunction?: boolean } = {}): FixtureDeviceSpec {
  return {
    address,
    config: buildConfigImage({ vendor: 0x8086, device: 0x100e, classCode: options.classCode ?? NIC, headerType: (options.classCode === P2P_BRIDGE ? 1 : 0) | (options.multiFunction ? 0x80 : 0) }),
    bars: [{ index: 0, kind: 'mem', size: 0x20000, start: 0xfeb80000 }],
    driver: options.driver === undefined ? 'e1000' : options.driver,
    ...(options.iommuGroup === undefined ? {} : { iommuGroup: options.iommuGroup }),
  };
}

interface Bed {
  tree: FixtureTree;
  stateDir: string;
  kernel: SimulatedKernel;
  modules: string[];
  options: { sysfsRoot: string; stateDir: string; writer: SysfsWriter; loadModule: (m: string) => void };
  done(): void;
}

/** A fixture tree, a state dir, a simulated kernel and a modprobe stand-in that "loads" pci-stub. */
function bed(devices: FixtureDeviceSpec[], natural: Record<string, string> = {}): Bed {
  const tree = createFixtureTree(devices);
  const stateDir = join(mkdtempSync(join(tmpdir(), 'xpci-state-')), 'run', 'xpci');
  const kernel = new SimulatedKernel(tree.root, natural);
  const modules: string[] = [];
  const loadModule = (m: string): void => {
    modules.push(m);
    mkdirSync(join(tree.root, 'bus', 'pci', 'drivers', m), { recursive: true });
  };
  return {
    tree, stateDir, kernel, modules,
    options: { sysfsRoot: tree.root, stateDir, writer: kernel, loadModule },
    done: () => {
      tree.cleanup();
      rmSync(join(stateDir, '..', '..'), { recursive: true, force: true });
    },
  };
}

const A = '0000:06:01.0';

/** What a frontend of a writable export changes in hardware: command (decode), cache line size; the interrupt line too, for the record's sake. */
function dirty(tree: FixtureTree, bdf: string): void {
  const fd = openSync(join(tree.deviceDir(bdf), 'config'), 'r+');
  try {
    writeSync(fd, Buffer.from([0x07, 0x00]), 0, 2, 0x04);
    writeSync(fd, Buffer.from([0x20]), 0, 1, 0x0c);
    writeSync(fd, Buffer.from([0x0b]), 0, 1, 0x3c);
  } finally {
    closeSync(fd);
  }
}

const registersOf = (tree: FixtureTree, bdf: string): number[] => {
  const config = tree.configBytes(bdf);
  return [config.readUInt16LE(0x04), config[0x0c], config[0x3c]];
};

describe('assignable-remove after an export was killed (its register record left behind)', () => {
  test('a seized device: the registers are written back from the record before the host driver gets it, and the record is removed', () => {
    const b = bed([device(A)], { [A]: 'e1000' });
    try {
      assignableAdd([parseAddress(A)], { ...b.options, driver: 'pci-stub' });
      const before = registersOf(b.tree, A);
      recordRegisters(b.tree.root, b.stateDir, parseAddress(A)); // what an export does when it claims the device
      dirty(b.tree, A); // its frontend's changes, then SIGKILL: no release ran
      let restoredBeforeFirstWrite: boolean | undefined;
      const writer: SysfsWriter = {
        write: (path, value) => {
          restoredBeforeFirstWrite ??= registersOf(b.tree, A).join() === before.join();
          b.kernel.write(path, value);
        },
      };
      const [removed] = assignableRemove([parseAddress(A)], { ...b.options, writer });
      assert.equal(removed.action, 'released');
      assert.equal(removed.driver, 'e1000');
      assert.deepEqual(removed.notes, ['restored registers a backend that died left changed: command 0x7 → 0x0, cache line size 0x20 → 0x0, interrupt line 0xb → 0x0']);
      assert.deepEqual(registersOf(b.tree, A), before);
      assert.equal(restoredBeforeFirstWrite, true, 'repaired before the driver is touched');
      assert.equal(hasRegisterRecord(b.stateDir, parseAddress(A)), false, 'the record is gone');
    } finally {
      b.done();
    }
  });

  test('a device xpci never seized: only the registers are repaired; no driver is touched', () => {
    const b = bed([device(A, { driver: null })]);
    try {
      const before = registersOf(b.tree, A);
      recordRegisters(b.tree.root, b.stateDir, parseAddress(A));
      dirty(b.tree, A);
      const [outcome] = assignableRemove([parseAddress(A)], b.options);
      assert.equal(outcome.action, 'not-held');
      assert.match(outcome.notes.join('\n'), /^restored registers a backend that died left changed: command 0x7 → 0x0, cache line size 0x20 → 0x0, interrupt line 0xb → 0x0\nnot held by xpci \(driver: none\)/);
      assert.deepEqual(registersOf(b.tree, A), before);
      assert.deepEqual(b.kernel.writes, []);
      assert.equal(hasRegisterRecord(b.stateDir, parseAddress(A)), false);
      const [again] = assignableRemove([parseAddress(A)], b.options);
      assert.deepEqual(again.notes, ['not held by xpci (driver: none); nothing to do'], 'a second run has nothing left to act on');
    } finally {
      b.done();
    }
  });

  test('a record of a live export is not touched: the device is refused while it is claimed', () => {
    const b = bed([device(A, { driver: null })]);
    try {
      recordRegisters(b.tree.root, b.stateDir, parseAddress(A));
      const exported = acquireDeviceLock(b.stateDir, A);
      dirty(b.tree, A);
      assert.throws(() => assignableRemove([parseAddress(A)], b.options), { message: /^assignable-remove failed: 0000:06:01\.0 is already in use by this process/ });
      assert.deepEqual(registersOf(b.tree, A), [0x0007, 0x20, 0x0b], 'the live export\'s frontend keeps its changes');
      assert.equal(hasRegisterRecord(b.stateDir, parseAddress(A)), true);
      exported.release();
    } finally {
      b.done();
    }
  });
});

describe('assignable-add / assignable-remove on a simulated kernel', () => {
  test('seize records the original driver first, then override, unbind, probe; remove gives it back', () => {
    const b = bed([device(A, { iommuGroup: 5 })], { [A]: 'e1000' });
    try {
      let recordedBeforeFirstWrite: boolean | undefined;
      const writer: SysfsWriter = {
        write: (path, value) => {
          recordedBeforeFirstWrite ??= readRecord(b.stateDir, A)?.originalDriver === 'e1000';
          b.kernel.write(path, value);
        },
      };
      const [added] = assignableAdd([parseAddress('06:01.0')], { ...b.options, writer, driver: 'pci-stub' });
      assert.deepEqual(added, { bdf: A, action: 'seized', originalDriver: 'e1000', driver: 'pci-stub', notes: [] });
      assert.equal(recordedBeforeFirstWrite, true, 'the record must exist before the first sysfs write');
      assert.deepEqual(b.modules, ['pci-stub']);
      assert.deepEqual(b.kernel.writes, [
        { path: `bus/pci/devices/${A}/driver_override`, value: 'pci-stub' },
        { path: `bus/pci/devices/${A}/driver/unbind`, value: A },
        { path: 'bus/pci/drivers_probe', value: A },
      ]);
      assert.equal(statSync(b.stateDir).mode & 0o777, 0o700);
      assert.equal(statSync(recordPath(b.stateDir, A)).mode & 0o777, 0o600);
      assert.deepEqual(assignableList(b.stateDir, b.tree.root).map((d) => [d.bdf, d.originalDriver, d.driver]), [[A, 'e1000', 'pci-stub']]);

      b.kernel.writes.length = 0;
      const [removed] = assignableRemove([parseAddress(A)], b.options);
      assert.equal(removed.action, 'released');
      assert.equal(removed.driver, 'e1000');
      assert.deepEqual(b.kernel.writes, [
        { path: `bus/pci/devices/${A}/driver_override`, value: '\n' },
        { path: `bus/pci/devices/${A}/driver/unbind`, value: A },
        { path: 'bus/pci/drivers_probe', value: A },
      ]);
      assert.equal(b.kernel.driverOf(A), 'e1000');
      assert.equal(readRecord(b.stateDir, A), null);
      assert.deepEqual(assignableList(b.stateDir, b.tree.root), []);
    } finally {
      b.done();
    }
  });

  test('the holding driver: vfio-pci by default where the device has an IOMMU group, else pci-stub; --driver moves it, the original driver stays recorded', () => {
    const B = '0000:06:02.0';
    const b = bed([device(A, { iommuGroup: 5 }), device(B)], { [A]: 'e1000', [B]: 'e1000' });
    try {
      const added = assignableAdd([parseAddress(A), parseAddress(B)], b.options);
      assert.deepEqual(added.map((o) => [o.bdf, o.action, o.originalDriver, o.driver]), [[A, 'seized', 'e1000', 'vfio-pci'], [B, 'seized', 'e1000', 'pci-stub']]);
      assert.deepEqual(b.modules.sort(), ['pci-stub', 'vfio-pci'], 'each holding driver loaded when missing');
      assert.deepEqual(b.kernel.writesTo(`${A}/driver_override`), ['vfio-pci']);
      assert.deepEqual(assignableAdd([parseAddress(A)], b.options).map((o) => o.action), ['already-held']);

      b.kernel.writes.length = 0;
      const [moved] = assignableAdd([parseAddress(A)], { ...b.options, driver: 'pci-stub' });
      assert.deepEqual([moved.action, moved.originalDriver, moved.driver, moved.notes], ['seized', 'e1000', 'pci-stub', ['moved from vfio-pci to pci-stub']]);
      assert.deepEqual(b.kernel.writes, [
        { path: `bus/pci/devices/${A}/driver_override`, value: 'pci-stub' },
        { path: `bus/pci/devices/${A}/driver/unbind`, value: A },
        { path: 'bus/pci/drivers_probe', value: A },
      ]);
      const [back] = assignableAdd([parseAddress(A)], { ...b.options, driver: 'vfio-pci' });
      assert.deepEqual([back.originalDriver, back.driver], ['e1000', 'vfio-pci']);

      const removed = assignableRemove([parseAddress(A), parseAddress(B)], b.options);
      assert.deepEqual(removed.map((o) => [o.bdf, o.action, o.driver]), [[B, 'released', 'e1000'], [A, 'released', 'e1000']], 'reverse order');
      assert.equal(b.kernel.driverOf(A), 'e1000');
    } finally {
      b.done();
    }
  });

  test("vfio-pci for a device without an IOMMU group: refused unless VFIO's no-IOMMU mode is on, then held with a note", () => {
    const b = bed([device(A)], { [A]: 'e1000' });
    const mode = join(b.tree.root, 'module', 'vfio', 'parameters', 'enable_unsafe_noiommu_mode');
    const add = () => assignableAdd([parseAddress(A)], { ...b.options, driver: 'vfio-pci' });
    try {
      assert.throws(add, new RegExp(`^LifecycleError: refused: ${A} has no IOMMU group: vfio-pci takes such a device only in VFIO's no-IOMMU mode, `
        + `which this kernel lacks \\(no ${mode}: CONFIG_VFIO_NOIOMMU is not set\\); hold it on pci-stub instead \\(--driver pci-stub`));
      mkdirSync(join(mode, '..'), { recursive: true });
      writeFileSync(mode, 'N\n');
      assert.throws(add, /no-IOMMU mode, which is off \(.*enable_unsafe_noiommu_mode is N; writing Y turns it on for the whole host/);
      assert.deepEqual(b.kernel.writes, [], 'nothing written');
      assert.equal(readRecord(b.stateDir, A), null, 'nothing recorded');
      assert.equal(b.kernel.driverOf(A), 'e1000');
      writeFileSync(mode, 'Y\n');
      const [held] = add();
      assert.deepEqual([held.action, held.driver], ['seized', 'vfio-pci']);
      assert.ok(held.notes.some((n) => /no IOMMU: held in VFIO's no-IOMMU mode, exported only with xpci export --unsafe-noiommu/.test(n)), held.notes.join('; '));
    } finally {
      b.done();
    }
  });

  test('a device on vfio-pci without a record is xpci-held for assignable-remove, as one on pci-stub', () => {
    const b = bed([device(A, { driver: 'vfio-pci', iommuGroup: 5 })], { [A]: 'e1000' });
    try {
      mkdirSync(join(b.tree.root, 'bus', 'pci', 'drivers', 'e1000'), { recursive: true });
      const [removed] = assignableRemove([parseAddress(A)], b.options);
      assert.deepEqual([removed.action, removed.driver], ['released', 'e1000']);
    } finally {
      b.done();
    }
  });

  test('both operations are idempotent: a second run writes nothing', () => {
    const b = bed([device(A)], { [A]: 'e1000' });
    try {
      assignableAdd([parseAddress(A)], b.options);
      b.kernel.writes.length = 0;
      const [again] = assignableAdd([parseAddress(A), parseAddress('06:01.0')], b.options);
      assert.equal(again.action, 'already-held');
      assert.match(again.notes.join(), /nothing to do/);
      assert.deepEqual(b.kernel.writes, []);
      assignableRemove([parseAddress(A)], b.options);
      b.kernel.writes.length = 0;
      const [twice] = assignableRemove([parseAddress(A)], b.options);
      assert.equal(twice.action, 'not-held');
      assert.equal(twice.driver, 'e1000');
      assert.deepEqual(b.kernel.writes, []);
    } finally {
      b.done();
    }
  });

  test('a bridge is refused, naming it, and nothing is written or recorded', () => {
    const bridge = '0000:00:1c.0';
    const b = bed([device(bridge, { classCode: P2P_BRIDGE, driver: 'pcieport' })]);
    try {
      assert.throws(() => assignableAdd([parseAddress(bridge)], b.options), /0000:00:1c\.0 is a bridge \(class 060400\)/);
      assert.deepEqual(b.kernel.writes, []);
      assert.equal(existsSync(recordPath(b.stateDir, bridge)), false);
    } finally {
      b.done();
    }
  });

  test('an IOMMU group sibling in host use is named; listing all members is accepted; a bridge in the group is not a blocker', () => {
    const B = '0000:06:02.0';
    const b = bed([device(A, { iommuGroup: 7 }), device(B, { iommuGroup: 7, driver: 'igb' }),
      device('0000:00:1c.0', { classCode: P2P_BRIDGE, driver: 'pcieport', iommuGroup: 7 })]);
    try {
      assert.throws(() => assignableAdd([parseAddress(A)], b.options), (error: Error) => {
        assert.match(error.message, /0000:06:01\.0 shares IOMMU group 7 with 0000:06:02\.0 \(driver igb\)/);
        assert.doesNotMatch(error.message, /1c\.0/);
        return true;
      });
      assert.deepEqual(b.kernel.writes, []);
      const outcomes = assignableAdd([parseAddress(A), parseAddress(B)], b.options);
      assert.deepEqual(outcomes.map((o) => [o.bdf, o.action, o.originalDriver]), [[A, 'seized', 'e1000'], [B, 'seized', 'igb']]);
    } finally {
      b.done();
    }
  });

  test('without IOMMU groups a multi-function slot is one unit, and function 0 changes hands last', () => {
    const F0 = '0000:07:00.0';
    const F1 = '0000:07:00.1';
    const b = bed([device(F0, { multiFunction: true }), device(F1, { multiFunction: true })], { [F0]: 'e1000', [F1]: 'e1000' });
    try {
      assert.throws(() => assignableAdd([parseAddress(F1)], b.options),
        /0000:07:00\.1 is one function of slot 0000:07:00, whose 0000:07:00\.0 \(driver e1000\) is not being added/);
      assignableAdd([parseAddress(F0), parseAddress(F1)], b.options);
      assert.deepEqual(b.kernel.writesTo('drivers_probe'), [F1, F0]);
      b.kernel.writes.length = 0;
      // Once both are held, handing back one function alone is fine.
      assignableRemove([parseAddress(F1), parseAddress(F0)], b.options);
      assert.deepEqual(b.kernel.writesTo('drivers_probe'), [F0, F1]);
      assert.equal(b.kernel.driverOf(F0), 'e1000');
      assert.equal(b.kernel.driverOf(F1), 'e1000');
    } finally {
      b.done();
    }
  });

  test('an add interrupted after unbind is finished with the recorded driver', () => {
    const b = bed([device(A, { driver: null })], { [A]: 'e1000' });
    try {
      mkdirSync(join(b.tree.root, 'bus', 'pci', 'drivers', 'pci-stub'));
      writeRecord(b.stateDir, { bdf: A, originalDriver: 'e1000', sysfsRoot: b.tree.root, since: '2024-01-01T00:00:00.000Z' });
      const [outcome] = assignableAdd([parseAddress(A)], b.options);
      assert.equal(outcome.action, 'seized');
      assert.equal(outcome.originalDriver, 'e1000');
      assert.match(outcome.notes.join(), /interrupted/);
      assert.deepEqual(b.kernel.writes.map((w) => w.path), [`bus/pci/devices/${A}/driver_override`, 'bus/pci/drivers_probe']);
      assert.deepEqual(b.modules, [], 'pci-stub already present: no module load');
      assert.equal(readRecord(b.stateDir, A)?.since, '2024-01-01T00:00:00.000Z');
    } finally {
      b.done();
    }
  });

  test('when the original driver does not come back, remove fails and keeps the record for a retry', () => {
    const b = bed([device(A)], { [A]: 'e1000' });
    try {
      assignableAdd([parseAddress(A)], b.options);
      rmSync(join(b.tree.root, 'bus', 'pci', 'drivers', 'e1000'), { recursive: true });
      assert.throws(() => assignableRemove([parseAddress(A)], b.options), (error: unknown) => {
        assert.ok(error instanceof AssignableError);
        assert.match(error.message, /no driver, not its original driver e1000.*modprobe e1000/);
        assert.equal(error.outcomes[0].action, 'failed');
        return true;
      });
      assert.equal(readRecord(b.stateDir, A)?.originalDriver, 'e1000');
      // "modprobe e1000", then the retry finishes the job.
      mkdirSync(join(b.tree.root, 'bus', 'pci', 'drivers', 'e1000'));
      const [retry] = assignableRemove([parseAddress(A)], b.options);
      assert.equal(retry.action, 'released');
      assert.equal(b.kernel.driverOf(A), 'e1000');
    } finally {
      b.done();
    }
  });

  test('a device exported by a live backend is not touched; a stale lock is cleared and reported', () => {
    const b = bed([device(A)], { [A]: 'e1000' });
    try {
      const lock = acquireDeviceLock(b.stateDir, A);
      assert.throws(() => assignableAdd([parseAddress(A)], b.options), { message: /^assignable-add failed: 0000:06:01\.0 is already in use by this process/ });
      assert.deepEqual(b.kernel.writes, []);
      lock.release();
      // Held and exported: adding again is still a no-op, removing is refused.
      assignableAdd([parseAddress(A)], b.options);
      const exported = acquireDeviceLock(b.stateDir, A);
      assert.equal(assignableAdd([parseAddress(A)], b.options)[0].action, 'already-held');
      assert.throws(() => assignableRemove([parseAddress(A)], b.options), { message: /^assignable-remove failed: 0000:06:01\.0 is already in use by this process/ });
      exported.release();
      assignableRemove([parseAddress(A)], b.options);
      // A lock left by a process that no longer exists (pid beyond pid_max).
      writeFileSync(lock.path, JSON.stringify({ pid: 2 ** 22 + 1, startTime: '1', command: 'xpci export', since: 'x' }));
      const [outcome] = assignableAdd([parseAddress(A)], b.options);
      assert.equal(outcome.action, 'seized');
      assert.match(outcome.notes.join(), /cleared stale lock of pid 4194305 \(process gone\)/);
      assert.equal(existsSync(lock.path), false);
    } finally {
      b.done();
    }
  });

  test('a multi-device add stops at the first failure and says which devices were not attempted', () => {
    const B = '0000:06:02.0';
    const b = bed([device(A), device(B)], { [A]: 'e1000', [B]: 'e1000' });
    try {
      const failing: SysfsWriter = {
        write: (path, value) => {
          if (path.includes(A) && path.endsWith('driver_override')) throw new Error('EACCES: lockdown');
          b.kernel.write(path, value);
        },
      };
      assert.throws(() => assignableAdd([parseAddress(A), parseAddress(B)], { ...b.options, writer: failing }), (error: unknown) => {
        assert.ok(error instanceof AssignableError);
        assert.match(error.message, /assignable-add failed: 0000:06:01\.0: EACCES: lockdown/);
        assert.deepEqual(error.outcomes.map((o) => [o.bdf, o.action]), [[A, 'failed'], [B, 'not-attempted']]);
        return true;
      });
      assert.equal(b.kernel.driverOf(B), 'e1000');
    } finally {
      b.done();
    }
  });

  test('missing devices and an unavailable pci-stub are reported', () => {
    const b = bed([device(A)]);
    try {
      assert.throws(() => assignableAdd([parseAddress('06:1f.7'), parseAddress(A)], b.options), /no PCI device 0000:06:1f\.7 under .*bus\/pci\/devices/);
      assert.throws(() => assignableAdd([parseAddress(A)], { ...b.options, loadModule: () => {} }), /pci-stub is not available/);
      assert.deepEqual(b.kernel.writes, []);
    } finally {
      b.done();
    }
  });

  test('a device already on pci-stub without a record is adopted with its original driver unknown', () => {
    const b = bed([device(A, { driver: 'pci-stub' })], { [A]: 'e1000' });
    try {
      const [outcome] = assignableAdd([parseAddress(A)], b.options);
      assert.equal(outcome.action, 'seized');
      assert.equal(outcome.originalDriver, null);
      assert.match(outcome.notes.join(), /original driver unknown/);
      assert.deepEqual(b.kernel.writes.map((w) => w.path), [`bus/pci/devices/${A}/driver_override`]);
      mkdirSync(join(b.tree.root, 'bus', 'pci', 'drivers', 'e1000'));
      const [removed] = assignableRemove([parseAddress(A)], b.options);
      assert.equal(removed.driver, 'e1000');
      assert.match(removed.notes.join(), /original driver unknown/);
    } finally {
      b.done();
    }
  });

  test('a corrupt record is reported with its path instead of being guessed at', () => {
    const b = bed([device(A)]);
    try {
      mkdirSync(join(b.stateDir, 'assignable'), { recursive: true });
      writeFileSync(recordPath(b.stateDir, A), '{"bdf": ');
      assert.throws(() => assignableList(b.stateDir, b.tree.root), /assignable record .*0000:06:01\.0\.json is not valid JSON/);
      unlinkSync(recordPath(b.stateDir, A));
      assert.deepEqual(assignableList(b.stateDir, b.tree.root), []);
    } finally {
      b.done();
    }
  });
});
