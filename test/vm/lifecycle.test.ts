/**
 * Device lifecycle on a real kernel (the QEMU guest; never this machine's devices): seizing the
 * e1000 pair onto pci-stub and handing it back, export locks across `kill -9`, hot-plug over the
 * control socket with a connected frontend, peer-credential refusal, a snapshot served through
 * the ring, sysfs reset. Node starts slowly under TCG, so every CLI run counts: the tests share one
 * guest and follow one device story in order.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Guest, STANDARD_DEVICES, announceSkip, qemuAvailable, startBackgroundExport, type BackgroundExport } from './harness/index.js';

const hasAddon = existsSync(new URL('../../../build/Release/xpci_native.node', import.meta.url));
const unavailable = (await qemuAvailable()) ?? (hasAddon ? null : 'the native addon is not built (npm run build:native)');
const { e1000Fn0, e1000Fn1, pciBridge, edu, pciTestdev, e1000e } = STANDARD_DEVICES;
const X = 'node dist/src/cli/main.js';


describe('device lifecycle in the QEMU guest', { skip: unavailable !== null && announceSkip('lifecycle', unavailable) }, () => {
  let vm: Guest;
  const startBackend = (name: string, args: string): Promise<BackgroundExport> => startBackgroundExport(vm, name, args);
  const xpci = (args: string) => vm.exec(`${X} ${args}`, { timeoutMs: 120_000 });
  const driverOf = async (bdf: string): Promise<string> => (await vm.exec(`basename "$(readlink /sys/bus/pci/devices/${bdf}/driver)"`)).stdout.trim();


  before(async () => {
    vm = await Guest.boot({ modules: ['e1000'], timeoutMs: 120_000 });
  });
  after(async () => {
    await vm?.shutdown();
  });

  test('assignable-add refuses one function of the e1000 pair alone and a bridge, then moves the pair to pci-stub (loading it)', async () => {
    assert.equal(await driverOf(e1000Fn0), 'e1000');
    assert.equal((await vm.exec('test -d /sys/bus/pci/drivers/pci-stub')).exitCode, 1, 'pci-stub starts unloaded');
    const bridgeDriver = await driverOf(pciBridge);

    // No IOMMU in the guest: the two functions of slot 00:05 must move together.
    const refused = await vm.exec(`${X} assignable-add ${e1000Fn0}; echo "status=$?"; ${X} assignable-add ${pciBridge}; echo "status=$?"`, { timeoutMs: 120_000 });
    assert.match(refused.stderr, /0000:00:05\.0 is one function of slot 0000:00:05, whose 0000:00:05\.1 \(driver e1000\) is not being added/);
    assert.match(refused.stderr, /0000:00:06\.0 is a bridge \(class 0604/);
    assert.deepEqual(refused.stdout.match(/status=\d/g), ['status=1', 'status=1']);
    assert.equal(await driverOf(e1000Fn0), 'e1000');
    assert.equal(await driverOf(pciBridge), bridgeDriver);

    const added = await xpci(`assignable-add ${e1000Fn0} ${e1000Fn1} --json`);
    assert.equal(added.exitCode, 0, added.stderr);
    assert.deepEqual(JSON.parse(added.stdout).devices.map((d: { bdf: string; action: string; originalDriver: string }) => [d.bdf, d.action, d.originalDriver]),
      [[e1000Fn1, 'seized', 'e1000'], [e1000Fn0, 'seized', 'e1000']]);
    assert.equal(await driverOf(e1000Fn0), 'pci-stub');
    assert.equal(await driverOf(e1000Fn1), 'pci-stub');
    assert.equal((await vm.execOk('stat -c %a /run/xpci/assignable')).trim(), '700');
  });

  test('export locks: a second export and assignable-remove name the holder; after kill -9 a new export clears the stale lock', async () => {
    const first = await startBackend('lock1', `${e1000Fn0} ${e1000Fn1} --socket /run/xpci/lock.sock`);
    let third: BackgroundExport | undefined;
    try {
      assert.deepEqual(first.ready.devices.map((d) => d.guest), ['0000:00:00.0', '0000:00:00.1'], 'held on pci-stub: exported without --read-only');

      const second = await vm.exec(`${X} export --socket /run/xpci/other.sock ${e1000Fn0}; echo "status=$?"; ${X} assignable-remove ${e1000Fn0} ${e1000Fn1}; echo "status=$?"`,
        { timeoutMs: 120_000 });
      assert.deepEqual(second.stdout.match(/status=\d/g), ['status=1', 'status=1']);
      assert.match(second.stderr, new RegExp(`^xpci: 0000:00:05\\.0 is already in use by pid ${first.pid} \\(.*export --json 0000:00:05\\.0 0000:00:05\\.1 --socket /run/xpci/lock\\.sock`, 'm'));
      assert.match(second.stderr, new RegExp(`^xpci: assignable-remove failed: 0000:00:05\\.0 is already in use by pid ${first.pid}`, 'm'));
      assert.equal(await driverOf(e1000Fn0), 'pci-stub');

      await vm.execOk(`kill -9 ${first.pid}`);
      third = await startBackend('lock2', `${e1000Fn0} ${e1000Fn1} --socket /run/xpci/lock.sock`);
      const notes = await third.stderr();
      assert.match(notes, new RegExp(`0000:00:05\\.0: cleared stale lock of pid ${first.pid} \\(process gone\\)`));
      assert.match(notes, new RegExp(`0000:00:05\\.1: cleared stale lock of pid ${first.pid} \\(process gone\\)`));
      assert.equal(await third.stop(), 0);
      assert.equal((await vm.exec('ls /run/xpci/locks')).stdout, '', 'a graceful end drops every lock');
      assert.equal(await driverOf(e1000Fn0), 'pci-stub', 'export end leaves the devices seized');
    } finally {
      await vm.exec(`kill -9 ${first.pid} ${third?.pid ?? ''} 2>/dev/null; true`);
    }
  });

  test('assignable-remove puts the pair back on e1000 and forgets it', async () => {
    const removed = await xpci(`assignable-remove ${e1000Fn0} ${e1000Fn1}; ${X} assignable-list`);
    assert.equal(removed.exitCode, 0, removed.stderr);
    assert.match(removed.stdout, /no devices held by xpci/);
    assert.equal(await driverOf(e1000Fn0), 'e1000');
    assert.equal(await driverOf(e1000Fn1), 'e1000');
    assert.equal((await vm.execOk(`cat /sys/bus/pci/devices/${e1000Fn0}/driver_override`)), '(null)\n');
  });

  test('hot-plug: a connected frontend sees attach at the next free slot and detach, the first device keeps its address; a non-allowed uid is refused', async () => {
    const backend = await startBackend('hotplug', `${edu} --socket /run/xpci/hp.sock --allow-uid 1000`);
    try {
      assert.deepEqual(backend.ready.devices, [{ host: edu, guest: '0000:00:00.0' }]);
      // A frontend that stays connected and logs the events it gets, one JSON line each.
      const frontend = `
        const { connect } = await import('${vm.repoRoot}/dist/src/frontend/index.js');
        const { parseAddress, formatAddress } = await import('${vm.repoRoot}/dist/src/pci/address.js');
        const client = await connect('/run/xpci/hp.sock');
        const log = (o) => console.log(JSON.stringify(o));
        const list = () => client.devices().map((d) => d.address);
        log({ connected: list() });
        client.on('deviceAdded', async (d) => log({ added: d.address, vendor: await client.configRead(parseAddress(d.address), 0, 2), devices: list() }));
        client.on('deviceRemoved', (a) => { log({ removed: formatAddress(a), devices: list() }); client.close(); });`;
      await vm.execOk(`cat > /tmp/frontend.mjs <<'EOF'\n${frontend}\nEOF\nsetsid node /tmp/frontend.mjs < /dev/null > /tmp/frontend.out 2> /tmp/frontend.err & echo $! > /tmp/frontend.pid`);
      // Until the line appears or the frontend exits (its stderr then says why).
      const waitFor = (pattern: string) => vm.execOk(`for i in $(seq 600); do grep -q '${pattern}' /tmp/frontend.out && break; ` +
        `kill -0 $(cat /tmp/frontend.pid) 2>/dev/null || break; sleep 0.1; done; cat /tmp/frontend.out /tmp/frontend.err`, { timeoutMs: 120_000 });
      assert.match(await waitFor('connected'), /\{"connected":\["0000:00:00.0"\]\}/);

      const attached = await xpci(`attach ${pciTestdev} --socket /run/xpci/hp.sock`);
      assert.equal(attached.exitCode, 0, attached.stderr);
      assert.equal(attached.stdout, `${pciTestdev}: attached (frontend address 0000:00:01.0)\n`);
      const afterAttach = await waitFor('added');
      assert.deepEqual(JSON.parse(afterAttach.split('\n')[1]), { added: '0000:00:01.0', vendor: 0x1b36, devices: ['0000:00:00.0', '0000:00:01.0'] });

      const detached = await xpci(`detach ${pciTestdev} --socket /run/xpci/hp.sock`);
      assert.equal(detached.exitCode, 0, detached.stderr);
      const afterDetach = await waitFor('removed');
      assert.deepEqual(JSON.parse(afterDetach.split('\n')[2]), { removed: '0000:00:01.0', devices: ['0000:00:00.0'] });

      // uid 65534 may open the socket (0666 because of --allow-uid) but SO_PEERCRED refuses it.
      const nobody = await vm.exec(`node --input-type=module -e "
        process.setgid(65534); process.setuid(65534);
        const { connect } = await import('./dist/src/frontend/index.js');
        try { await connect('/run/xpci/hp.sock'); console.log('admitted'); } catch (error) { console.log('refused: ' + error.message); }"`, { timeoutMs: 120_000 });
      assert.match(nobody.stdout, /^refused: .*uid 65534/);
      assert.match(await backend.stderr(), /peer uid 65534 gid 65534 .* is not allowed/);
      assert.equal(await backend.stop(), 0);
    } finally {
      await vm.exec(`kill -9 ${backend.pid} $(cat /tmp/frontend.pid 2>/dev/null) 2>/dev/null; true`);
    }
  });

  test('snapshot --with-bars of the driverless edu, served read-only through the ring, gives the same lspci -xxx bytes', async () => {
    const snap = await xpci(`snapshot ${edu} --out /tmp/edu-snap --with-bars --json`);
    assert.equal(snap.exitCode, 0, snap.stderr);
    const dir = `/tmp/edu-snap/bus/pci/devices/${edu}`;
    // edu's register 0x00 reads 0x010000ed (version 1.0, "ed").
    assert.equal((await vm.execOk(`od -A n -t x4 -N 4 ${dir}/resource0`)).trim(), '010000ed');
    assert.equal(await vm.execOk(`cmp ${dir}/config /sys/bus/pci/devices/${edu}/config && echo same`), 'same\n');

    const backend = await startBackend('snapshot', `${edu} --sysfs-root /tmp/edu-snap --mode passthrough --read-only --socket /run/xpci/snap.sock`);
    try {
      const hexLines = (dump: string) => dump.split('\n').filter((line) => /^[0-9a-f]{2,3}: /.test(line));
      const throughRing = await xpci(`lspci -xxx --connect /run/xpci/snap.sock -s ${edu.slice(5)}`);
      assert.equal(throughRing.exitCode, 0, throughRing.stderr);
      const host = await vm.execOk(`lspci -xxx -s ${edu.slice(5)}`);
      assert.equal(hexLines(throughRing.stdout).length, 16);
      assert.deepEqual(hexLines(throughRing.stdout), hexLines(host));
      assert.equal(await backend.stop(), 0);
    } finally {
      await vm.exec(`kill -9 ${backend.pid} 2>/dev/null; true`);
    }
  });

  test('reset writes the sysfs reset file where the kernel offers one, and reports where it does not', async () => {
    const script = `node --input-type=module -e "
      const { resetDevice } = await import('./dist/src/backend/lifecycle/reset.js');
      const { parseAddress } = await import('./dist/src/pci/address.js');
      for (const bdf of ['${e1000e}', '${edu}']) console.log(JSON.stringify(resetDevice('/sys', { address: parseAddress(bdf) })));"`;
    const [withReset, without] = (await vm.execOk(script, { timeoutMs: 120_000 })).trim().split('\n').map((line) => JSON.parse(line));
    assert.deepEqual(withReset, { performed: true, message: `${e1000e}: reset (methods: pm bus)` });
    assert.equal(without.performed, false);
    assert.match(without.message, /no sysfs reset file/);
  });
});
