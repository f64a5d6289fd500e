/**
 * The addon and the xpci CLI against real Linux sysfs behaviour, inside one throwaway QEMU guest
 * (test/vm/harness) with the standard device set and the e1000 driver loaded (00:05.x bound).
 * Guest-side probes are compiled on the host (test/vm/guest/testbed-*.ts) and run with the
 * host's node; every sysfs write happens inside the guest.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { Guest, STANDARD_DEVICES as DEV, announceSkip, qemuAvailable } from './harness/index.js';

const unavailable = await qemuAvailable();

const probe = (name: string, args: string): string => `node dist/test/vm/guest/testbed-${name}.js ${args}`;
const short = (bdf: string): string => bdf.replace(/^0000:/, '');

/** Config bytes from `lspci -xxx` (or -xxxx) output: lines "OFF: b0 b1 … b15". */
function parseHexDump(text: string): number[] {
  const bytes: number[] = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{2,3}): ((?:[0-9a-f]{2} ?){16})$/.exec(line.trim());
    if (m) m[2].trim().split(' ').forEach((b, i) => (bytes[parseInt(m[1], 16) + i] = parseInt(b, 16)));
  }
  return bytes;
}

/** A random byte different from `avoid`, so a write that does not land cannot pass by luck. */
function freshByte(avoid: number): number {
  const value = randomInt(1, 255);
  return value === avoid ? value + 1 : value;
}

describe('test bed: addon and CLI on emulated PCI devices', { skip: unavailable ? announceSkip('testbed', unavailable) : false }, () => {
  let vm: Guest;

  before(async () => {
    vm = await Guest.boot({ modules: ['e1000'], timeoutMs: 120_000 });
    console.log(`# guest booted in ${vm.bootMs} ms (kernel ${vm.kernelRelease})`);
  });
  after(async () => {
    await vm?.shutdown();
  });

  test('config writes through the addon reach edu (cache line size 0x0c, interrupt line 0x3c) and back', async () => {
    const before = parseHexDump(await vm.execOk(`lspci -xxx -s ${short(DEV.edu)}`));
    const cacheLine = freshByte(before[0x0c]);
    const interruptLine = freshByte(before[0x3c]);
    const written = JSON.parse(
      await vm.execOk(probe('config', `${DEV.edu} write:0x0c:1:${cacheLine} write:0x3c:1:${interruptLine} read:0x0c:1 read:0x3c:1 read:0:4`)),
    ) as { size: number; results: (number | null)[] };
    assert.equal(written.size, 256);
    assert.deepEqual(written.results.slice(2), [cacheLine, interruptLine, 0x11e81234]);

    const setpci = await vm.execOk(`setpci -s ${short(DEV.edu)} CACHE_LINE_SIZE INTERRUPT_LINE`);
    assert.deepEqual(setpci.trim().split('\n').map((h) => parseInt(h, 16)), [cacheLine, interruptLine]);
    const after = parseHexDump(await vm.execOk(`lspci -xxx -s ${short(DEV.edu)}`));
    assert.equal(after[0x0c], cacheLine);
    assert.equal(after[0x3c], interruptLine);

    // The other direction: the guest's own setpci writes, the addon reads.
    const again = freshByte(cacheLine);
    await vm.execOk(`setpci -s ${short(DEV.edu)} CACHE_LINE_SIZE=${again.toString(16)}`);
    const read = JSON.parse(await vm.execOk(probe('config', `${DEV.edu} read:0x0c:1`))) as { results: number[] };
    assert.deepEqual(read.results, [again]);
  });

  test('edu BAR0 mapped through the addon: identification 0x010000ed, liveness inverts (also behind the bridge)', async () => {
    const value = randomInt(0, 2 ** 32);
    const report = JSON.parse(await vm.execOk(probe('mmio', `${value} ${DEV.edu} ${DEV.eduBehindBridge}`))) as {
      bdf: string; length: number; identification: number; liveness: number;
    }[];
    assert.deepEqual(report, [DEV.edu, DEV.eduBehindBridge].map((bdf) => ({
      bdf, length: 1 << 20, identification: 0x010000ed, liveness: ~value >>> 0,
    })));
  });

  test('I/O BARs are read through the addon pread path (e1000 resource1, pci-testdev resource1)', async () => {
    const report = JSON.parse(await vm.execOk(probe('io', `${DEV.e1000Fn1} ${DEV.pciTestdev}`))) as {
      e1000: { size: number; first: number; last: number; pastEnd: { code?: string; syscall?: string } };
      testdev: { name: string };
    };
    assert.equal(report.e1000.size, 64);
    assert.equal(typeof report.e1000.first, 'number');
    assert.equal(typeof report.e1000.last, 'number');
    assert.equal(report.e1000.pastEnd.code, 'ESHORT', JSON.stringify(report.e1000.pastEnd));
    // QEMU's e1000 I/O window reads as zeros; pci-testdev's carries text only a real port read returns.
    assert.equal(report.testdev.name, 'portio-no-eventfd');
  });

  test('xpci list --json inside the guest equals the guest lspci -Dnmm, with drivers, bridges and config sizes', async () => {
    const listed = JSON.parse(await vm.execOk('node dist/src/cli/main.js list --json')) as {
      bdf: string; vendor: string; device: string; class: string; driver: string | null; bridge: boolean; configSize: number;
    }[];
    const machine = await vm.execOk('lspci -Dnmm');
    const drivers = await vm.execOk('lspci -Dk');
    const sizes = await vm.execOk(`for d in /sys/bus/pci/devices/*; do echo "\${d##*/} $(stat -c %s "$d/config")"; done`);

    const expected = new Map<string, { vendor: string; device: string; class: string }>();
    for (const line of machine.trim().split('\n')) {
      const m = /^(\S+) "([0-9a-f]{4})" "([0-9a-f]{4})" "([0-9a-f]{4})"(?: -r[0-9a-f]+)?(?: -p([0-9a-f]{2}))?/.exec(line);
      assert.ok(m, `unexpected lspci -Dnmm line: ${line}`);
      expected.set(m[1], { class: m[2] + (m[5] ?? '00'), vendor: m[3], device: m[4] });
    }
    const driverOf = new Map<string, string>();
    let current = '';
    for (const line of drivers.split('\n')) {
      if (/^\S/.test(line)) current = line.split(' ')[0];
      const m = /^\s+Kernel driver in use: (\S+)/.exec(line);
      if (m) driverOf.set(current, m[1]);
    }
    const configSize = new Map(sizes.trim().split('\n').map((l) => [l.split(' ')[0], Number(l.split(' ')[1])] as const));

    assert.deepEqual(listed.map((d) => d.bdf).sort(), [...expected.keys()].sort());
    for (const device of listed) {
      const want = expected.get(device.bdf)!;
      assert.deepEqual(
        { bdf: device.bdf, vendor: device.vendor, device: device.device, class: device.class, driver: device.driver, bridge: device.bridge, configSize: device.configSize },
        { bdf: device.bdf, ...want, driver: driverOf.get(device.bdf) ?? null, bridge: want.class.startsWith('06'), configSize: configSize.get(device.bdf) },
      );
    }
    const byBdf = new Map(listed.map((d) => [d.bdf, d]));
    for (const pcie of [DEV.rootPort, DEV.e1000e]) assert.equal(byBdf.get(pcie)?.configSize, 4096, pcie);
    assert.equal(byBdf.get(DEV.edu)?.configSize, 256);
    for (const bridge of [DEV.pciBridge, DEV.rootPort]) assert.equal(byBdf.get(bridge)?.bridge, true, bridge);
    assert.equal(byBdf.get(DEV.e1000Fn0)?.driver, 'e1000');
  });

  test('mmap is refused with EINVAL while a kernel driver owns the device, and works once it is unbound', async () => {
    const [owned] = JSON.parse(await vm.execOk(probe('owned-mmap', DEV.e1000Fn0))) as {
      driver: string | null; mapped: boolean; code?: string; syscall?: string; path?: string; message?: string;
    }[];
    const resource0 = `/sys/bus/pci/devices/${DEV.e1000Fn0}/resource0`;
    assert.equal(owned.driver, 'e1000');
    assert.deepEqual(
      { mapped: owned.mapped, code: owned.code, syscall: owned.syscall, path: owned.path },
      { mapped: false, code: 'EINVAL', syscall: 'mmap', path: resource0 },
    );
    assert.match(owned.message ?? '', /mmap/);
    assert.ok(owned.message?.includes(resource0), owned.message);

    const unbind = `echo ${DEV.e1000Fn1} > /sys/bus/pci/drivers/e1000/unbind`;
    const rebind = `echo ${DEV.e1000Fn1} > /sys/bus/pci/drivers/e1000/bind`;
    const [freed] = JSON.parse(await vm.execOk(`${unbind} && ${probe('owned-mmap', DEV.e1000Fn1)}; status=$?; ${rebind}; exit $status`)) as {
      driver: string | null; mapped: boolean; length?: number;
    }[];
    assert.deepEqual(freed, { bdf: DEV.e1000Fn1, driver: null, mapped: true, length: 128 << 10 });
  });
});
