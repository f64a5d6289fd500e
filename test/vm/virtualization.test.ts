/**
 * Config-space virtualization and BAR policy on a real kernel's device, in the QEMU guest: inside one guest, `xpci export` serves the driverless edu at 00:10.0 (vPCI 00:00.0) and
 * the edu behind the bridge, 01:03.0, as a per-device permissive export (vPCI 00:01.0); the
 * frontend CLI works against it while the guest's own lspci/setpci/devmem show what the hardware
 * really holds. The test cases share that one export and run in order (the last one stops it and
 * checks what it counted and restored). Frontend commands and hardware reads go in batches to one
 * guest node process (test/vm/guest/virtualization-steps.ts, which calls the CLI's own main():
 * every xpci process start costs 5–10 s under TCG); the BAR0 move is refused to a real `xpci`
 * process too, so its exit status is the process's.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { Guest, STANDARD_DEVICES, announceSkip, qemuAvailable } from './harness/index.js';
import type { Step, StepResult } from './guest/virtualization-steps.js';

const hasAddon = existsSync(new URL('../../../build/Release/xpci_native.node', import.meta.url));
const unavailable = (await qemuAvailable()) ?? (hasAddon ? null : 'the native addon is not built (npm run build:native)');

const EDU = STANDARD_DEVICES.edu.slice(5);
const PERMISSIVE_EDU = STANDARD_DEVICES.eduBehindBridge.slice(5);
/** Their vPCI addresses: slots in host-BDF order, functions kept. */
const FRONT_EDU = '00:00.0';
const FRONT_PERMISSIVE_EDU = '00:01.0';
const SOCKET = '/run/xpci/x.sock';
const OUT = '/tmp/xpci-export.out';
const ERR = '/tmp/xpci-export.err';
/** The step runner's batch folder (test/vm/guest/virtualization-steps.ts). */
const STEPS = '/tmp/xpci-steps';
/** A device-specific byte: no capability covers it (edu's only one, MSI, is 0x40–0x4d), QEMU stores it. */
const UNLISTED = 0x80;
const EDU_SIZE_MASK = 'fff00000'; // 1 MiB, 32-bit non-prefetchable memory: type bits 0

const xpci = (command: string, ...args: string[]): Step => ({ xpci: [command, '--connect', SOCKET, ...args] });
const sh = (command: string): { sh: string } => ({ sh: command });
const hex = (value: number, digits: number): string => value.toString(16).padStart(digits, '0');
const lines = (r: StepResult): string[] => r.stdout.trim().split('\n');

/** A random byte not in `avoid`, so a write that did not land cannot pass by luck. */
function freshByte(...avoid: number[]): number {
  for (;;) {
    const value = randomInt(1, 256);
    if (!avoid.includes(value)) return value;
  }
}

function assertOk(r: StepResult, what: string): void {
  assert.deepEqual({ status: r.status, stderr: r.stderr }, { status: 0, stderr: '' }, `${what}: ${JSON.stringify(r)}`);
}

/** Exit 1 and exactly one `xpci: … CODE: …` line on stderr matching `detail`. */
function assertRefused(r: StepResult, code: string, detail: RegExp, what: string): void {
  assert.equal(r.status, 1, `${what} should be refused: ${JSON.stringify(r)}`);
  assert.match(r.stderr, new RegExp(`^xpci: [^\\n]*: ${code}: [^\\n]*\\n$`), what);
  assert.match(r.stderr, detail, what);
}

/** The guest's own view of a device: `setpci` of BAR0, command, cache line size, the unlisted byte, vendor; lspci's region line. */
const HARDWARE_FIELDS = ['bar0', 'command', 'cacheLine', 'unlisted', 'vendor'] as const;
type Hardware = Record<(typeof HARDWARE_FIELDS)[number] | 'memoryAt', string>;
const hardwareProbe = (bdf: string): { sh: string } =>
  sh(`setpci -s ${bdf} BASE_ADDRESS_0 COMMAND CACHE_LINE_SIZE ${hex(UNLISTED, 2)}.b VENDOR_ID && { lspci -v -s ${bdf} 2>/dev/null | grep -o 'Memory at [0-9a-f]*'; }`);
function parseHardware(r: StepResult): Hardware {
  assertOk(r, 'reading the hardware with setpci/lspci');
  const values = lines(r);
  assert.equal(values.length, HARDWARE_FIELDS.length + 1, r.stdout);
  return { ...Object.fromEntries(HARDWARE_FIELDS.map((field, i) => [field, values[i]])), memoryAt: values[HARDWARE_FIELDS.length] } as Hardware;
}

describe('config-space virtualization and BAR policy on edu in the QEMU guest', { skip: unavailable !== null && announceSkip('virtualization', unavailable) }, () => {
  let vm: Guest;
  let pid = 0;
  let ready: { socket: string; mode: string; devices: { host: string; guest: string }[] };
  let drivers = '';
  /** Hardware state at export time (after the values set below). */
  let edu: Hardware;
  let permissiveEdu: Hardware;
  let presetCacheLine = 0;
  let runnerPid = 0;
  let batch = 0;

  /** Run steps in the guest's step runner; the whole batch must complete (each step has its own status). */
  async function run(steps: Step[]): Promise<StepResult[]> {
    const file = `${STEPS}/${batch++}`;
    const encoded = Buffer.from(JSON.stringify(steps)).toString('base64');
    const out = await vm.execOk(`echo ${encoded} | base64 -d > ${file}.in.tmp && mv ${file}.in.tmp ${file}.in && ` +
      `for i in $(seq 3000); do test -e ${file}.out && break; kill -0 ${runnerPid} || break; sleep 0.05; done; ` +
      `cat ${file}.out || { echo "the step runner died: $(cat ${STEPS}/log)" >&2; exit 1; }`, { timeoutMs: 180_000 });
    const results = JSON.parse(out) as StepResult[] | { error: string };
    assert.ok(Array.isArray(results), `the step runner could not run the batch: ${JSON.stringify(results)}`);
    assert.equal(results.length, steps.length);
    return results;
  }

  before(async () => {
    vm = await Guest.boot({ timeoutMs: 120_000 });
    // Non-default values the frontend will change, so the restore at release cannot pass by luck.
    presetCacheLine = freshByte(0x10);
    drivers = await vm.execOk(
      `for d in ${EDU} ${PERMISSIVE_EDU}; do echo "$d $(readlink /sys/bus/pci/devices/0000:$d/driver || echo none)"; done; ` +
      `setpci -s ${EDU} CACHE_LINE_SIZE=${hex(presetCacheLine, 2)} ${hex(UNLISTED, 2)}.b=${hex(freshByte(), 2)} && ` +
      `setpci -s ${PERMISSIVE_EDU} ${hex(UNLISTED, 2)}.b=${hex(freshByte(), 2)}`);
    const [first, second] = (await vm.execOk(`(${hardwareProbe(EDU).sh}) && echo --- && (${hardwareProbe(PERMISSIVE_EDU).sh})`)).split('---\n');
    edu = parseHardware({ status: 0, stdout: first, stderr: '' });
    permissiveEdu = parseHardware({ status: 0, stdout: second, stderr: '' });

    // In the background (it outlives this exec; a wrapper records its pid and exit status), then
    // wait for the JSON ready line, polled in the guest.
    const exportCommand = `node dist/src/cli/main.js export --json --socket ${SOCKET} --state-dir /tmp/xpci-state ${EDU} ${PERMISSIVE_EDU}:permissive`;
    await vm.execOk(`setsid bash -c '${exportCommand} < /dev/null > ${OUT} 2> ${ERR} & echo $! > /tmp/xpci-export.pid; ` +
      `wait $!; echo $? > /tmp/xpci-export.status' < /dev/null > /dev/null 2>&1 &`);
    // One node process for every batch of frontend commands (it loads the CLI while the export starts).
    runnerPid = Number(await vm.execOk(`mkdir -p ${STEPS} && { nohup node dist/test/vm/guest/virtualization-steps.js ${STEPS} > ${STEPS}/log 2>&1 < /dev/null & echo $!; }`));
    const wait = await vm.exec(`for i in $(seq 900); do grep -q '^{"socket"' ${OUT} 2>/dev/null && break; test -s /tmp/xpci-export.status && break; sleep 0.1; done; ` +
      `cat /tmp/xpci-export.pid; head -1 ${OUT}`, { timeoutMs: 120_000 });
    const [pidLine, readyLine = ''] = wait.stdout.split('\n');
    assert.match(readyLine, /^\{"socket"/, `xpci export did not become ready: ${(await vm.exec(`cat ${OUT} ${ERR}`)).stdout}`);
    pid = Number(pidLine);
    ready = JSON.parse(readyLine);
    assert.ok(pid > 0 && runnerPid > 0, `background pids: export ${pidLine}, step runner ${runnerPid}`);
  });
  after(async () => {
    await vm?.shutdown();
  });

  test('both edus are driverless and exported in vPCI mode as 00:00.0 and 00:01.0', () => {
    assert.equal(drivers, `${EDU} none\n${PERMISSIVE_EDU} none\n`, 'no driver bound to either edu');
    assert.equal(ready.mode, 'vpci');
    assert.deepEqual(ready.devices, [
      { host: STANDARD_DEVICES.edu, guest: `0000:${FRONT_EDU}` },
      { host: STANDARD_DEVICES.eduBehindBridge, guest: `0000:${FRONT_PERMISSIVE_EDU}` },
    ]);
  });

  test('the frontend cannot move BAR0 (lspci -v still shows the host address); sizing and write-back work, the hardware never changes', async () => {
    const [view, move, afterMove, sizing, whileLatched, writeBack, afterAll] = await run([
      xpci('setpci', '-s', FRONT_EDU, 'BASE_ADDRESS_0'),
      // A real xpci process: the refusal is its exit status.
      sh(`node dist/src/cli/main.js setpci --connect ${SOCKET} -s ${FRONT_EDU} BASE_ADDRESS_0=0xfe000000`),
      hardwareProbe(EDU),
      xpci('setpci', '-s', FRONT_EDU, 'BASE_ADDRESS_0=ffffffff', 'BASE_ADDRESS_0'),
      hardwareProbe(EDU),
      xpci('setpci', '-s', FRONT_EDU, 'BASE_ADDRESS_0={{0}}', 'BASE_ADDRESS_0'),
      hardwareProbe(EDU),
    ]);
    assertOk(view, 'reading BAR0');
    const address = parseInt(view.stdout, 16);
    assert.equal(address & 0xf, parseInt(edu.bar0, 16) & 0xf, 'the frontend sees the real type bits');
    assert.notEqual(address & ~0xf, parseInt(edu.bar0, 16) & ~0xf, 'vPCI does not reveal the host address');
    assert.match(edu.memoryAt, /^Memory at [0-9a-f]+$/);

    assertRefused(move, 'AccessDenied', /BASE_ADDRESS_0=0xfe000000 .*refused, nothing written: BAR0: the hardware BAR never moves/, 'moving BAR0');
    assert.deepEqual(parseHardware(afterMove), edu, 'lspci -v and setpci show the original BAR0 after the refused move');

    assertOk(sizing, 'sizing BAR0');
    assert.equal(sizing.stdout, `${EDU_SIZE_MASK}\n`, 'all-ones reads back the 1 MiB size mask');
    assert.deepEqual(parseHardware(whileLatched), edu, 'sizing never reaches the hardware');

    assertOk(writeBack, 'writing back the address read');
    assert.equal(writeBack.stdout, view.stdout, 'the write-back restores the frontend view');
    assert.deepEqual(parseHardware(afterAll), edu);
  });

  test('the frontend cannot turn memory decode off behind the backend: only its view loses decode, and with it BAR access', async () => {
    const hwAddress = `0x${edu.memoryAt.split(' ')[2]}`;
    const hardwareDecode = sh(`setpci -s ${EDU} COMMAND && devmem ${hwAddress} 32`);
    const [view, zero, afterZero, clear, whileOff, refusedBar, set, barAgain, afterSet] = await run([
      xpci('setpci', '-s', FRONT_EDU, 'COMMAND'),
      xpci('setpci', '-s', FRONT_EDU, 'COMMAND=0'),
      hardwareDecode,
      xpci('setpci', '-s', FRONT_EDU, 'COMMAND=0:2', 'COMMAND'),
      hardwareDecode,
      xpci('bar', '-s', FRONT_EDU, '0:0.l'),
      xpci('setpci', '-s', FRONT_EDU, 'COMMAND=2:2', 'COMMAND'),
      xpci('bar', '-s', FRONT_EDU, '0:0.l'),
      hardwareDecode,
    ]);
    const command = parseInt(edu.command, 16);
    assert.equal(command & 0x2, 0x2, `memory decode is on in the hardware at export time (${edu.command})`);
    assertOk(view, 'reading COMMAND');
    assert.equal(view.stdout, `${edu.command}\n`, 'the frontend starts from the hardware value');
    // The firmware sets SERR enable (bit 8): COMMAND=0 would clear a bit only --permissive may
    // touch, so the whole write is refused and nothing of it applied.
    assert.equal(command & 0x0100, 0x0100, `SERR enable set at export time (${edu.command})`);
    assertRefused(zero, 'AccessDenied', /COMMAND=0 .*refused, nothing written: Command \(bits 0x0100\)/, 'COMMAND=0');
    const decoding = `${edu.command}\n0x010000ED\n`;
    assert.deepEqual(afterZero, { status: 0, stdout: decoding, stderr: '' }, 'the hardware command register and BAR0 after COMMAND=0');

    assertOk(clear, 'clearing memory decode');
    assert.equal(clear.stdout, `${hex(command & ~0x2, 4)}\n`, 'the frontend sees memory decode off');
    assert.deepEqual(whileOff, { status: 0, stdout: decoding, stderr: '' }, 'the hardware still decodes BAR0 (devmem reads edu\'s identification)');
    assertRefused(refusedBar, 'AccessDenied', /BAR0 access: memory decode is off in the command register as the frontend set it/, 'BAR0 read with decode off');

    assertOk(set, 'setting memory decode');
    assert.equal(set.stdout, `${edu.command}\n`);
    assertOk(barAgain, 'BAR0 read with decode on again');
    assert.equal(barAgain.stdout, '0x010000ed\n');
    assert.deepEqual(afterSet, { status: 0, stdout: decoding, stderr: '' });
  });

  test('the frontend can write cache line size: the hardware holds it', async () => {
    const [view, hardware] = await run([
      xpci('setpci', '-s', FRONT_EDU, 'CACHE_LINE_SIZE', 'CACHE_LINE_SIZE=10', 'CACHE_LINE_SIZE'),
      sh(`setpci -s ${EDU} CACHE_LINE_SIZE`),
    ]);
    assertOk(view, 'writing CACHE_LINE_SIZE');
    assert.deepEqual(lines(view), [hex(presetCacheLine, 2), '10']);
    assert.deepEqual(hardware, { status: 0, stdout: '10\n', stderr: '' });
  });

  test('BAR ops inside BAR0\'s 1 MiB work; outside it, or on a BAR edu does not have, they are refused', async () => {
    const value = randomInt(0, 2 ** 32);
    const [inside, readPast, writePast, farPast, noBar] = await run([
      xpci('bar', '-s', FRONT_EDU, '0:0.l', `0:4.l=${hex(value, 8)}`, '0:4.l', '0:ffffc.l', '0:ffffc.l=0', '0:ffff8.q'),
      xpci('bar', '-s', FRONT_EDU, '0:0x100000.l'),
      xpci('bar', '-s', FRONT_EDU, '0:0x100000.l=0'),
      xpci('bar', '-s', FRONT_EDU, '0:fffffffc.l=0'),
      xpci('bar', '-s', FRONT_EDU, '1:0.l'),
    ]);
    assertOk(inside, 'BAR0 accesses inside its size');
    const [identification, liveness, lastDword, lastQword] = lines(inside);
    assert.equal(identification, '0x010000ed');
    assert.equal(liveness, `0x${hex(~value >>> 0, 8)}`, 'the liveness register reads back inverted');
    assert.match(lastDword, /^0x[0-9a-f]{8}$/);
    assert.match(lastQword, /^0x[0-9a-f]{16}$/);

    assertRefused(readPast, 'InvalidOffset', /BAR0 offset 0x100000 \(4 bytes\): InvalidOffset: .*past its size 0x100000/, 'a read at 1 MiB');
    assertRefused(writePast, 'InvalidOffset', /BAR0 offset 0x100000 \(4 bytes\): InvalidOffset: .*past its size 0x100000/, 'a write at 1 MiB');
    assertRefused(farPast, 'InvalidOffset', /BAR0 offset 0xfffffffc \(4 bytes\): InvalidOffset: .*past its size 0x100000/, 'a write at 4 GiB - 4');
    assertRefused(noBar, 'InvalidOffset', /BAR1 offset 0x0 \(4 bytes\): InvalidOffset/, 'BAR1');
  });

  test('an unlisted register (0x80) is refused by default and reaches the hardware from the permissive export; vendor id and decode stay protected there', async () => {
    const value = freshByte(parseInt(edu.unlisted, 16), parseInt(permissiveEdu.unlisted, 16));
    const [refused, defaultHardware, permitted, permissiveHardware, vendor, vendorHardware, commandZero, commandHardware] = await run([
      xpci('setpci', '-s', FRONT_EDU, `${hex(UNLISTED, 2)}.b=${hex(value, 2)}`),
      sh(`setpci -s ${EDU} ${hex(UNLISTED, 2)}.b`),
      xpci('setpci', '-s', FRONT_PERMISSIVE_EDU, `${hex(UNLISTED, 2)}.b=${hex(value, 2)}`, `${hex(UNLISTED, 2)}.b`),
      sh(`setpci -s ${PERMISSIVE_EDU} ${hex(UNLISTED, 2)}.b`),
      xpci('setpci', '-s', FRONT_PERMISSIVE_EDU, 'VENDOR_ID=1235'),
      sh(`setpci -s ${PERMISSIVE_EDU} VENDOR_ID`),
      xpci('setpci', '-s', FRONT_PERMISSIVE_EDU, 'COMMAND=0', 'COMMAND'),
      sh(`setpci -s ${PERMISSIVE_EDU} COMMAND`),
    ]);
    assertRefused(refused, 'AccessDenied', /refused, nothing written: register 0x80 \(unlisted\) .*only with --permissive/, 'the unlisted write without permissive');
    assert.deepEqual(defaultHardware, { status: 0, stdout: `${edu.unlisted}\n`, stderr: '' }, 'the hardware byte is unchanged');

    assertOk(permitted, 'the unlisted write with permissive');
    assert.equal(permitted.stdout, `${hex(value, 2)}\n`);
    assert.deepEqual(permissiveHardware, { status: 0, stdout: `${hex(value, 2)}\n`, stderr: '' }, 'QEMU\'s edu stored the byte');

    assertRefused(vendor, 'AccessDenied', /refused, nothing written: Vendor ID .*read-only/, 'writing the vendor id with permissive');
    assert.deepEqual(vendorHardware, { status: 0, stdout: `${permissiveEdu.vendor}\n`, stderr: '' });
    assert.equal(permissiveEdu.vendor, '1234');

    // Permissive passes the other command bits (SERR enable here) and bus master, but clearing
    // decode still only changes the frontend's view.
    assertOk(commandZero, 'COMMAND=0 with permissive');
    assert.equal(commandZero.stdout, '0000\n');
    const command = parseInt(permissiveEdu.command, 16);
    assert.equal(command & 0x2, 0x2, `memory decode is on in the hardware at export time (${permissiveEdu.command})`);
    assert.deepEqual(commandHardware, { status: 0, stdout: `${hex(command & 0x3, 4)}\n`, stderr: '' }, 'only the decode bits are left in the hardware');
  });

  test('SIGTERM: clean exit, every refusal counted, and the registers the frontend changed are restored', async () => {
    const r = await vm.execOk(`kill -TERM ${pid}; for i in $(seq 900); do test -s /tmp/xpci-export.status && break; sleep 0.1; done; ` +
      `echo "status=$(cat /tmp/xpci-export.status)"; test -e ${SOCKET} && echo socket-left; grep '^{"shutdown"' ${OUT}; ` +
      `(${hardwareProbe(EDU).sh}) && echo --- && (${hardwareProbe(PERMISSIVE_EDU).sh})`, { timeoutMs: 120_000 });
    const [head, permissiveAfter = ''] = r.split('---\n');
    const [status, summaryLine, ...eduAfter] = head.split('\n');
    assert.equal(status, 'status=0', r);
    assert.doesNotMatch(r, /socket-left/);
    const summary = JSON.parse(summaryLine) as { shutdown: string; devices: { host: string; permissive: boolean; denials: { register: string; count: number }[] }[] };
    assert.equal(summary.shutdown, 'received SIGTERM');
    assert.deepEqual(summary.devices.map((d) => ({ host: d.host, permissive: d.permissive, denials: d.denials.map((x) => [x.register, x.count]).sort((a, b) => (a[0] < b[0] ? -1 : 1)) })), [
      { host: STANDARD_DEVICES.edu, permissive: false, denials: [['BAR0', 1], ['BAR0 access', 1], ['Command', 1], ['register 0x80 (unlisted)', 1]] },
      { host: STANDARD_DEVICES.eduBehindBridge, permissive: true, denials: [['Vendor ID', 1]] },
    ]);

    // Everything as at export time: cache line size, the permissive byte and command register
    // restored; BAR0 and edu's command register never changed.
    assert.deepEqual(parseHardware({ status: 0, stdout: eduAfter.join('\n'), stderr: '' }), edu);
    assert.equal(edu.cacheLine, hex(presetCacheLine, 2));
    assert.deepEqual(parseHardware({ status: 0, stdout: permissiveAfter, stderr: '' }), permissiveEdu);
  });
});
