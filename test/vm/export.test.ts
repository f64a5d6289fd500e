/**
 * `xpci export` on a real kernel's devices (the QEMU guest; never this machine's): the backend and
 * the frontend CLI both run inside one guest, against one backend (Node is slow under TCG, so each
 * CLI run counts). vPCI numbering of the e1000 pair, a lone function 2 and edu; a refused bridge;
 * edu's liveness register through `xpci bar`; a config write through the ring seen by the guest's
 * own setpci; the registers restored at shutdown.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Guest, STANDARD_DEVICES, announceSkip, qemuAvailable } from './harness/index.js';

const hasAddon = existsSync(new URL('../../../build/Release/xpci_native.node', import.meta.url));
const unavailable = (await qemuAvailable()) ?? (hasAddon ? null : 'the native addon is not built (npm run build:native)');
const { e1000Fn0, e1000Fn1, edu, pciBridge } = STANDARD_DEVICES;
/** An extra two-function slot (edu at functions 0 and 2), so that function 2 can be exported alone. */
const LONE_SLOT = 0x13;
const loneFn2 = `0000:00:${LONE_SLOT.toString(16)}.2`;
const SOCKET = '/run/xpci/export.sock';
const OUT = '/tmp/xpci-export.out';

const short = (bdf: string): string => bdf.slice(5);

describe('xpci export in the QEMU guest', { skip: unavailable !== null && announceSkip('export', unavailable) }, () => {
  let vm: Guest;
  let pid = 0;
  let ready: { socket: string; mode: string; devices: { host: string; guest: string }[]; refused?: { bdf: string; reason: string }[] };
  let eduClsBefore = '';
  const xpci = (args: string) => vm.exec(`node dist/src/cli/main.js ${args}`, { timeoutMs: 120_000 });

  before(async () => {
    vm = await Guest.boot({
      devices: { extraDevices: [`edu,addr=0x${LONE_SLOT.toString(16)}.0,multifunction=on`, `edu,addr=0x${LONE_SLOT.toString(16)}.2`] },
      timeoutMs: 120_000,
    });
    eduClsBefore = (await vm.execOk(`setpci -s ${short(edu)} CACHE_LINE_SIZE`)).trim();
    // In the background (it outlives this exec, with its output in files; a wrapper records its exit
    // status), then wait for the ready line.
    const exportCommand = `node dist/src/cli/main.js export --json --socket ${SOCKET} --state-dir /tmp/xpci-state ` +
      `${e1000Fn1} ${edu} ${pciBridge} ${e1000Fn0} ${loneFn2}`;
    await vm.execOk(`setsid bash -c '${exportCommand} < /dev/null > ${OUT} 2> /tmp/xpci-export.err & echo $! > /tmp/xpci-export.pid; ` +
      `wait $!; echo $? > /tmp/xpci-export.status' < /dev/null > /dev/null 2>&1 &`);
    pid = Number((await vm.execOk('for i in $(seq 100); do test -s /tmp/xpci-export.pid && break; sleep 0.1; done; cat /tmp/xpci-export.pid')).trim());
    // Polled from the host in short execs: Node takes tens of seconds to start under TCG.
    let line = '';
    for (let attempt = 0; attempt < 180 && !line.startsWith('{"socket"'); attempt++) {
      const poll = await vm.exec(`head -1 ${OUT}; kill -0 ${pid} 2>/dev/null || echo exited`);
      if (/exited/.test(poll.stdout) && !poll.stdout.startsWith('{"socket"')) break;
      line = poll.stdout.split('\n')[0];
      if (!line.startsWith('{"socket"')) await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    assert.match(line, /^\{"socket"/, `xpci export did not become ready: ${(await vm.exec('cat /tmp/xpci-export.err')).stdout}`);
    ready = JSON.parse(line);
  });
  after(async () => {
    await vm?.shutdown();
  });

  test('documented vPCI numbering; the bridge is refused on its own', () => {
    assert.deepEqual(ready.devices, [
      { host: e1000Fn0, guest: '0000:00:00.0' },
      { host: e1000Fn1, guest: '0000:00:00.1' },
      { host: edu, guest: '0000:00:01.0' },
      { host: loneFn2, guest: '0000:00:02.2' },
    ]);
    assert.deepEqual(ready.refused?.map((r) => r.bdf), [pciBridge]);
    assert.match(ready.refused?.[0].reason ?? '', /is a bridge \(class 0604/);
  });

  test('the frontend scan finds every exported function, the lone function 2 included', async () => {
    const r = await xpci(`lspci -n --connect ${SOCKET}`);
    assert.equal(r.exitCode, 0, r.stderr);
    const found = r.stdout.split('\n').filter((l) => l !== '').map((l) => l.split(' ').slice(0, 3).join(' '));
    assert.deepEqual(found, ['00:00.0 0200: 8086:100e', '00:00.1 0200: 8086:100e', '00:01.0 00ff: 1234:11e8', '00:02.2 00ff: 1234:11e8']);
  });

  test('config writes through the ring reach the device (the guest\'s own setpci sees them)', async () => {
    const r = await xpci(`setpci --connect ${SOCKET} -s 00:01.0 COMMAND=0x0002:0x0002 CACHE_LINE_SIZE=0x20`);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal((await vm.execOk(`setpci -s ${short(edu)} CACHE_LINE_SIZE`)).trim(), '20');
    assert.equal(Number.parseInt((await vm.execOk(`setpci -s ${short(edu)} COMMAND`)).trim(), 16) & 0x2, 0x2, 'memory decode on in the hardware');
  });

  test('edu\'s liveness register inverts through xpci bar', async () => {
    // BAR access needs memory decode on in the frontend's view: turned on here, whatever ran before.
    const decode = await xpci(`setpci --connect ${SOCKET} -s 00:01.0 COMMAND=0x0002:0x0002`);
    assert.equal(decode.exitCode, 0, decode.stderr);
    const r = await xpci(`bar --connect ${SOCKET} -s 00:01.0 0:0.l 0:4.l=0x12345678 0:4.l`);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['0x010000ed', '0xedcba987']);
  });

  test('SIGTERM: clean exit, socket removed, the frontend\'s register changes restored', async () => {
    const r = await vm.execOk(`kill -TERM ${pid}; for i in $(seq 600); do test -s /tmp/xpci-export.status && break; sleep 0.1; done; ` +
      `echo "status=$(cat /tmp/xpci-export.status)"; test -e ${SOCKET} && echo socket-left; grep '^{"shutdown"' ${OUT}; true`, { timeoutMs: 90_000 });
    const [status, summary] = r.trim().split('\n');
    assert.equal(status, 'status=0', r);
    assert.doesNotMatch(r, /socket-left/);
    assert.equal(JSON.parse(summary).shutdown, 'received SIGTERM');
    assert.equal((await vm.execOk(`setpci -s ${short(edu)} CACHE_LINE_SIZE`)).trim(), eduClsBefore);
  });
});
