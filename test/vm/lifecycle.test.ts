/**
 * Device lifecycle on a real kernel (the QEMU guest; never this machine's devices): seizing the
 * e1000 pair onto pci-stub and handing it back, refusals, snapshots with BAR contents, sysfs reset.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Guest, STANDARD_DEVICES, announceSkip, qemuAvailable } from './harness/index.js';

const unavailable = await qemuAvailable();
const { e1000Fn0, e1000Fn1, pciBridge, edu, e1000e } = STANDARD_DEVICES;

describe('device lifecycle in the QEMU guest', { skip: unavailable !== null && announceSkip('lifecycle', unavailable) }, () => {
  let vm: Guest;
  const xpci = (args: string) => vm.exec(`node dist/src/cli/main.js ${args}`);
  const driverOf = async (bdf: string): Promise<string> => (await vm.exec(`basename "$(readlink /sys/bus/pci/devices/${bdf}/driver)"`)).stdout.trim();

  before(async () => {
    vm = await Guest.boot({ modules: ['e1000'] });
  });
  after(async () => {
    await vm?.shutdown();
  });

  test('assignable-add moves the e1000 pair to pci-stub (loading it), assignable-remove puts it back on e1000', async () => {
    assert.equal(await driverOf(e1000Fn0), 'e1000');
    assert.equal((await vm.exec('test -d /sys/bus/pci/drivers/pci-stub')).exitCode, 1, 'pci-stub starts unloaded');

    // No IOMMU in the guest: the two functions of slot 00:05 must move together.
    const alone = await xpci(`assignable-add ${e1000Fn0}`);
    assert.equal(alone.exitCode, 1);
    assert.match(alone.stderr, /0000:00:05\.0 is one function of slot 0000:00:05, whose 0000:00:05\.1 \(driver e1000\) is not being added/);
    assert.equal(await driverOf(e1000Fn0), 'e1000');

    const added = await xpci(`assignable-add ${e1000Fn0} ${e1000Fn1} --json`);
    assert.equal(added.exitCode, 0, added.stderr);
    assert.deepEqual(JSON.parse(added.stdout).devices.map((d: { bdf: string; action: string; originalDriver: string }) => [d.bdf, d.action, d.originalDriver]),
      [[e1000Fn1, 'seized', 'e1000'], [e1000Fn0, 'seized', 'e1000']]);
    assert.equal(await driverOf(e1000Fn0), 'pci-stub');
    assert.equal(await driverOf(e1000Fn1), 'pci-stub');

    const again = await xpci(`assignable-add ${e1000Fn0} ${e1000Fn1}`);
    assert.equal(again.exitCode, 0);
    assert.match(again.stdout, /0000:00:05\.0: already held on pci-stub \(original driver: e1000\)/);

    const list = await xpci('assignable-list --json');
    assert.deepEqual(JSON.parse(list.stdout).devices.map((d: { bdf: string; originalDriver: string; driver: string }) => [d.bdf, d.originalDriver, d.driver]),
      [[e1000Fn0, 'e1000', 'pci-stub'], [e1000Fn1, 'e1000', 'pci-stub']]);

    const removed = await xpci(`assignable-remove ${e1000Fn0} ${e1000Fn1}`);
    assert.equal(removed.exitCode, 0, removed.stderr);
    assert.equal(await driverOf(e1000Fn0), 'e1000');
    assert.equal(await driverOf(e1000Fn1), 'e1000');
    assert.equal((await vm.exec(`cat /sys/bus/pci/devices/${e1000Fn0}/driver_override`)).stdout, '(null)\n');
    assert.match((await xpci('assignable-list')).stdout, /^no devices held by xpci/);
  });

  test('a bridge is refused and keeps its driver', async () => {
    const before = await driverOf(pciBridge);
    const r = await xpci(`assignable-add ${pciBridge}`);
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /0000:00:06\.0 is a bridge \(class 0604/);
    assert.equal(await driverOf(pciBridge), before);
  });

  test('snapshot --with-bars of the driverless edu captures its identification register', async () => {
    const r = await xpci(`snapshot ${edu} --out /tmp/edu-snap --with-bars --json`);
    assert.equal(r.exitCode, 0, r.stderr);
    const snap = `/tmp/edu-snap/bus/pci/devices/${edu}`;
    // edu's register 0x00 reads 0x010000ed (version 1.0, "ed").
    assert.equal((await vm.exec(`od -A n -t x4 -N 4 ${snap}/resource0`)).stdout.trim(), '010000ed');
    assert.equal((await vm.exec(`cmp ${snap}/config /sys/bus/pci/devices/${edu}/config && echo same`)).stdout, 'same\n');
  });

  test('reset writes the sysfs reset file where the kernel offers one, and reports where it does not', async () => {
    const script = (bdf: string) => `node --input-type=module -e "
      const { resetDevice } = await import('./dist/src/backend/lifecycle/reset.js');
      const { parseAddress } = await import('./dist/src/pci/address.js');
      console.log(JSON.stringify(resetDevice('/sys', { address: parseAddress('${bdf}') })));"`;
    const withReset = await vm.exec(script(e1000e));
    assert.equal(withReset.exitCode, 0, withReset.stderr);
    assert.deepEqual(JSON.parse(withReset.stdout), { performed: true, message: `${e1000e}: reset (methods: pm bus)` });
    const without = await vm.exec(script(edu));
    assert.equal(without.exitCode, 0, without.stderr);
    assert.equal(JSON.parse(without.stdout).performed, false);
  });
});
