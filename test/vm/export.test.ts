/**
 * `xpci export` on a real kernel's devices (the QEMU guest; never this machine's): the backend and
 * the frontend CLI both run inside one guest. vPCI numbering of the e1000 pair and edu, a lone
 * non-zero function, a refused bridge, edu's liveness register through `xpci bar`, a config write
 * through the ring seen by the guest's own setpci, and the registers restored at shutdown.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Guest, STANDARD_DEVICES, announceSkip, qemuAvailable } from './harness/index.js';

const hasAddon = existsSync(new URL('../../../build/Release/xpci_native.node', import.meta.url));
const unavailable = (await qemuAvailable()) ?? (hasAddon ? null : 'the native addon is not built (npm run build:native)');
const { e1000Fn0, e1000Fn1, edu, pciBridge } = STANDARD_DEVICES;

const short = (bdf: string): string => bdf.slice(5);

describe('xpci export in the QEMU guest', { skip: unavailable !== null && announceSkip('export', unavailable) }, () => {
  let vm: Guest;
  const xpci = (args: string) => vm.exec(`node dist/src/cli/main.js ${args}`, { timeoutMs: 90_000 });

  /** Start a backend in the background (it outlives the exec) and wait for its JSON ready line. */
  async function startExport(name: string, args: string): Promise<{ pid: number; ready: { socket: string; devices: { host: string; guest: string }[] } }> {
    const out = `/tmp/${name}.out`;
    const pid = Number((await vm.execOk(
      `setsid node dist/src/cli/main.js export --json --socket /tmp/${name}.sock --state-dir /tmp/xpci-state ${args} < /dev/null > ${out} 2> /tmp/${name}.err & echo $!`)).trim());
    const wait = await vm.exec(`for i in $(seq 600); do grep -q '^{"socket"' ${out} && break; kill -0 ${pid} 2>/dev/null || break; sleep 0.1; done; head -1 ${out}`, { timeoutMs: 90_000 });
    const line = wait.stdout.trim();
    assert.match(line, /^\{"socket"/, `export ${args} did not become ready: ${(await vm.exec(`cat /tmp/${name}.err`)).stdout}`);
    return { pid, ready: JSON.parse(line) };
  }

  /** SIGTERM, wait for the exit, return the status and the shutdown summary line. */
  async function stopExport(name: string, pid: number): Promise<{ status: number; summary: { shutdown: string } }> {
    const r = await vm.execOk(`kill -TERM ${pid}; for i in $(seq 300); do kill -0 ${pid} 2>/dev/null || break; sleep 0.1; done; ` +
      `kill -0 ${pid} 2>/dev/null && echo still-running; grep '^{"shutdown"' /tmp/${name}.out; test -e /tmp/${name}.sock && echo socket-left; true`);
    assert.doesNotMatch(r, /still-running|socket-left/);
    return { status: 0, summary: JSON.parse(r.trim()) };
  }

  before(async () => {
    vm = await Guest.boot({ timeoutMs: 120_000 });
  });
  after(async () => {
    await vm?.shutdown();
  });

  test('vPCI export of the e1000 pair and edu: documented numbering, scan, BAR and config writes', async () => {
    const guestClsBefore = (await vm.execOk(`setpci -s ${short(e1000Fn0)} CACHE_LINE_SIZE`)).trim();
    const { pid, ready } = await startExport('main', `${e1000Fn1} ${edu} ${e1000Fn0}`);
    assert.deepEqual(ready.devices, [
      { host: e1000Fn0, guest: '0000:00:00.0' },
      { host: e1000Fn1, guest: '0000:00:00.1' },
      { host: edu, guest: '0000:00:01.0' },
    ]);

    const lspci = await xpci('lspci -n --connect /tmp/main.sock');
    assert.equal(lspci.exitCode, 0, lspci.stderr);
    assert.match(lspci.stdout, /^00:00\.0 0200: 8086:100e/m);
    assert.match(lspci.stdout, /^00:00\.1 0200: 8086:100e/m);
    assert.match(lspci.stdout, /^00:01\.0 00ff: 1234:11e8/m);

    // edu's liveness register (BAR0 + 4) returns the inverse of what was written; memory decode
    // must be on as the frontend sees it first.
    const bar = await xpci('setpci --connect /tmp/main.sock -s 00:01.0 COMMAND=0x0002:0x0002 && ' +
      'node dist/src/cli/main.js bar --connect /tmp/main.sock -s 00:01.0 0:4.l=0x12345678 0:4.l 0:0.l');
    assert.equal(bar.exitCode, 0, bar.stderr);
    assert.match(bar.stdout, /0xedcba987/);
    assert.match(bar.stdout, /0x010000ed/);

    // A config write through the ring reaches the device, as the guest's own setpci sees it.
    const write = await xpci('setpci --connect /tmp/main.sock -s 00:00.0 CACHE_LINE_SIZE=0x20');
    assert.equal(write.exitCode, 0, write.stderr);
    assert.equal((await vm.execOk(`setpci -s ${short(e1000Fn0)} CACHE_LINE_SIZE`)).trim(), '20');

    // A second export of a device this backend holds: refused, naming the holder.
    const second = await xpci(`export --socket /tmp/other.sock --state-dir /tmp/xpci-state ${e1000Fn0}`);
    assert.equal(second.exitCode, 1);
    assert.match(second.stderr, new RegExp(`${e1000Fn0.replace(/\./g, '\\.')} is already in use by pid ${pid}`));

    const { summary } = await stopExport('main', pid);
    assert.equal(summary.shutdown, 'received SIGTERM');
    assert.equal((await vm.execOk(`setpci -s ${short(e1000Fn0)} CACHE_LINE_SIZE`)).trim(), guestClsBefore, 'restored at release');
  });

  test('a lone non-zero function keeps its number and the frontend scan finds it', async () => {
    const { pid, ready } = await startExport('lone', e1000Fn1);
    assert.deepEqual(ready.devices, [{ host: e1000Fn1, guest: '0000:00:00.1' }]);
    const lspci = await xpci('lspci -n --connect /tmp/lone.sock');
    assert.equal(lspci.exitCode, 0, lspci.stderr);
    assert.match(lspci.stdout, /^00:00\.1 0200: 8086:100e/m);
    assert.doesNotMatch(lspci.stdout, /^00:00\.0/m);
    await stopExport('lone', pid);
  });

  test('a bridge export is refused', async () => {
    const r = await xpci(`export --socket /tmp/bridge.sock --state-dir /tmp/xpci-state ${pciBridge}`);
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /^xpci: 0000:00:06\.0 is a bridge \(class 0604/m);
  });
});
