/**
 * The export reconciler's policy with a recording host: the order of lock, reset, open and release
 * steps, refusals, and that a failing step never leaves a device locked.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { formatAddress, parseAddress, type PciAddress } from '../../src/pci/address.js';
import type { PciDeviceInfo } from '../../src/pci/device-info.js';
import { ErrorCode, XpciError, type DeviceDescriptor } from '../../src/protocol/ring/messages.js';
import { ExportReconciler, type ExportHost, type ExportPolicy, type ManagedDevice } from '../../src/backend/server/export-reconciler.js';

function info(bdf: string, extra: Partial<PciDeviceInfo> = {}): PciDeviceInfo {
  const address = parseAddress(bdf);
  return {
    address, bdf: formatAddress(address), vendor: 0x8086, device: 0x100e, subsystemVendor: 0, subsystemDevice: 0,
    classCode: 0x020000, revision: 0, headerLayout: 0, multiFunction: false, isBridge: false, driver: null,
    configSize: 256, bars: [], rom: null, iommuGroup: null, hasReset: true, isVirtualFunction: false, sysfsPath: `/x/${bdf}`, ...extra,
  };
}

class RecordingHost implements ExportHost<ManagedDevice> {
  readonly log: string[] = [];
  readonly devices = new Map<string, PciDeviceInfo>();
  failOpen = new Set<string>();
  failRestore = new Set<string>();

  readDevice(address: PciAddress): PciDeviceInfo {
    const found = this.devices.get(formatAddress(address));
    if (!found) throw new Error(`no PCI device ${formatAddress(address)}`);
    return found;
  }
  lock(bdf: string) {
    this.log.push(`lock ${bdf}`);
    return { staleNote: null, release: () => void this.log.push(`unlock ${bdf}`) };
  }
  reset(device: PciDeviceInfo) {
    this.log.push(`reset ${device.bdf}`);
    return { performed: device.hasReset, message: `${device.bdf}: ${device.hasReset ? 'reset' : 'not reset'}` };
  }
  open(device: PciDeviceInfo, guest: PciAddress, permissive: boolean): ManagedDevice {
    if (this.failOpen.has(device.bdf)) throw new XpciError(ErrorCode.OperationFailed, `${device.bdf}: cannot open config`);
    this.log.push(`open ${device.bdf} at ${formatAddress(guest)}${permissive ? ' permissive' : ''}`);
    const log = this.log;
    const failRestore = this.failRestore;
    return {
      descriptor: () => ({ address: formatAddress(guest) }) as DeviceDescriptor,
      configRead: () => 0,
      configWrite: () => {},
      barRead: () => 0n,
      barWrite: () => {},
      denials: () => [],
      release(options) {
        if (failRestore.has(device.bdf)) throw new Error('restore failed');
        log.push(`release ${device.bdf}${options.restore ? ' restore' : ''}`);
      },
    };
  }
}

const policy = (extra: Partial<ExportPolicy> = {}): ExportPolicy => ({ readOnly: false, resetOnExport: true, resetOnRelease: true, ...extra });

function setup(devices: PciDeviceInfo[], extra: Partial<ExportPolicy> = {}) {
  const host = new RecordingHost();
  for (const d of devices) host.devices.set(d.bdf, d);
  return { host, reconciler: new ExportReconciler<ManagedDevice>('vpci', policy(extra), host) };
}

describe('export reconciler', () => {
  test('export: lock, reset, open; release: restore, reset, unlock', () => {
    const { host, reconciler } = setup([info('06:01.0')]);
    reconciler.want({ address: parseAddress('06:01.0'), permissive: true });
    const first = reconciler.reconcile();
    assert.deepEqual(first.added.map((e) => formatAddress(e.guest)), ['0000:00:00.0']);
    reconciler.unwant(parseAddress('06:01.0'));
    const second = reconciler.reconcile();
    assert.deepEqual(second.removed.map((e) => formatAddress(e.host)), ['0000:06:01.0']);
    assert.deepEqual(host.log, [
      'lock 0000:06:01.0', 'reset 0000:06:01.0', 'open 0000:06:01.0 at 0000:00:00.0 permissive',
      'release 0000:06:01.0 restore', 'reset 0000:06:01.0', 'unlock 0000:06:01.0',
    ]);
  });

  test('reconcile is level-triggered: repeating it changes nothing', () => {
    const { host, reconciler } = setup([info('06:01.0')]);
    reconciler.want({ address: parseAddress('06:01.0'), permissive: false });
    reconciler.reconcile();
    const count = host.log.length;
    const again = reconciler.reconcile();
    assert.deepEqual([again.added, again.removed, again.refused], [[], [], []]);
    assert.equal(host.log.length, count);
  });

  test('read-only exports never reset; a device without a reset file is reported once', () => {
    const ro = setup([info('06:01.0')], { readOnly: true });
    ro.reconciler.want({ address: parseAddress('06:01.0'), permissive: false });
    ro.reconciler.reconcile();
    ro.reconciler.releaseAll();
    assert.ok(!ro.host.log.some((l) => l.startsWith('reset')));

    const noReset = setup([info('06:02.0', { hasReset: false })]);
    noReset.reconciler.want({ address: parseAddress('06:02.0'), permissive: false });
    assert.deepEqual(noReset.reconciler.reconcile().notes, ['0000:06:02.0: not reset']);
    assert.deepEqual(noReset.reconciler.releaseAll().notes, []);
  });

  test('a failed open drops the lock and refuses that device only', () => {
    const { host, reconciler } = setup([info('06:01.0'), info('06:02.0')]);
    host.failOpen.add('0000:06:01.0');
    reconciler.want({ address: parseAddress('06:01.0'), permissive: false });
    reconciler.want({ address: parseAddress('06:02.0'), permissive: false });
    const outcome = reconciler.reconcile();
    assert.deepEqual(outcome.refused, [{ bdf: '0000:06:01.0', reason: '0000:06:01.0: cannot open config' }]);
    assert.ok(host.log.includes('unlock 0000:06:01.0'));
    assert.equal(reconciler.isWanted(parseAddress('06:01.0')), false, 'a refusal leaves the desired set');
    assert.deepEqual(outcome.added.map((e) => formatAddress(e.guest)), ['0000:00:00.0'], 'the next device takes the first free slot');
  });

  test('a failing restore is reported and the device is still reset and unlocked', () => {
    const { host, reconciler } = setup([info('06:01.0')]);
    host.failRestore.add('0000:06:01.0');
    reconciler.want({ address: parseAddress('06:01.0'), permissive: false });
    reconciler.reconcile();
    const outcome = reconciler.releaseAll();
    assert.deepEqual(outcome.notes, ['0000:06:01.0: restoring registers failed: restore failed']);
    assert.deepEqual(host.log.slice(-2), ['reset 0000:06:01.0', 'unlock 0000:06:01.0']);
  });

  test('refusals: bridge, host driver (pci-stub is fine), absent device; nothing is locked for them', () => {
    const { host, reconciler } = setup([
      info('00:1c.0', { isBridge: true, classCode: 0x060400 }),
      info('00:08.0', { driver: 'e1000' }),
      info('00:09.0', { driver: 'pci-stub' }),
    ]);
    for (const bdf of ['00:1c.0', '00:08.0', '00:09.0', '00:0a.0']) reconciler.want({ address: parseAddress(bdf), permissive: false });
    const outcome = reconciler.reconcile();
    assert.deepEqual(outcome.refused.map((r) => r.bdf), ['0000:00:1c.0', '0000:00:08.0', '0000:00:0a.0']);
    assert.match(outcome.refused[0].reason, /bridge \(class 060400\)/);
    assert.match(outcome.refused[1].reason, /host driver 'e1000'/);
    assert.match(outcome.refused[2].reason, /no PCI device/);
    assert.deepEqual(host.log.filter((l) => l.startsWith('lock')), ['lock 0000:00:09.0']);
  });

  test('announcements: function 0 of a multi-function slot comes last', () => {
    const { reconciler } = setup([info('06:01.0'), info('06:01.1'), info('06:01.3')]);
    for (const bdf of ['06:01.0', '06:01.1', '06:01.3']) reconciler.want({ address: parseAddress(bdf), permissive: false });
    assert.deepEqual(reconciler.reconcile().added.map((e) => formatAddress(e.guest)), ['0000:00:00.3', '0000:00:00.1', '0000:00:00.0']);
  });
});
