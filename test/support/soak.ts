/**
 * The soak run (`npm run soak -- --minutes N`, default 10): a real `xpci export` on fixture devices
 * under mixed load until the time is up: frontend sessions doing config and BAR traffic that end
 * normally, frontends in child processes killed with SIGKILL at random points, attach/detach
 * rounds on the control socket and bursts of garbage. At the end the backend gets SIGTERM, and the
 * run checks that every fixture config file is byte-identical to what it was before the export
 * (the backend restored it), that no lock or socket file is left, and that the backend's RSS and
 * fd count at the end are within 10 % of their level after warm-up. It prints its figures.
 * Both RSS figures are taken just after a full garbage collection (test/support/gc-on-signal.ts):
 * between collections V8's old generation climbs by several MiB a minute under this load and drops
 * back at the next mark-compact, so an uncollected sample says when it was taken, not whether
 * memory leaks.
 */
import { spawn } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type FrontendClient } from '../../src/frontend/index.js';
import { parseAddress } from '../../src/pci/address.js';
import { sendControlRequest } from '../../src/cli/control-client.js';
import { controlSocketPath } from '../../src/protocol/control/hotplug-control.js';
import { buildConfigImage, createFixtureTree, type FixtureDeviceSpec } from './fixture-sysfs.js';
import { startExport } from './xpci-process.js';

export interface SoakFigures {
  minutes: number;
  sessions: number;
  ops: number;
  kills: number;
  hotplugRounds: number;
  garbageBursts: number;
  failedOps: number;
  rss: { start: number; warm: number; end: number };
  fds: { start: number; warm: number; end: number };
  problems: string[];
}

const bar = (start: number) => ({ index: 0, kind: 'mem' as const, size: 4096, start });
const device = (address: string, vendor: number, start: number): FixtureDeviceSpec => {
  const b = bar(start);
  return {
    address,
    config: buildConfigImage({ vendor, device: 0x11e8, classCode: 0x00ff00, command: 0x0002, cacheLineSize: 0x10, interruptLine: 0x0b, interruptPin: 1, bars: [b] }),
    bars: [b],
  };
};

const SPECS = [device('0000:00:05.0', 0x1234, 0xfe000000), device('0000:00:06.0', 0x1235, 0xfe001000), device('0000:00:07.0', 0x1236, 0xfe002000)];
/** Attached and detached in rounds; the others stay exported. */
const HOTPLUGGED = '0000:00:07.0';

const GC_ON_SIGNAL = fileURLToPath(new URL('./gc-on-signal.js', import.meta.url));

/** The figures just after a full collection in the backend. */
async function collectedFigures(pid: number): Promise<{ rss: number; fds: number }> {
  process.kill(pid, 'SIGUSR2');
  await sleep(500);
  return processFigures(pid);
}

function processFigures(pid: number): { rss: number; fds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN) * 1024;
  return { rss, fds: readdirSync(`/proc/${pid}/fd`).length };
}

const random = (n: number): number => Math.floor(Math.random() * n);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Mixed config and BAR traffic on every device the session sees. */
async function traffic(client: FrontendClient, count: number): Promise<{ ops: number; failed: number }> {
  let ops = 0;
  let failed = 0;
  const devices = client.devices().map((d) => parseAddress(d.address));
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < count && devices.length > 0; i++) {
    const address = devices[random(devices.length)];
    const op = random(6);
    const request = op === 0 ? client.configWrite(address, 0x0c, 1, random(256)) // cache line size: to hardware
      : op === 1 ? client.configWrite(address, 0x3c, 1, random(256)) // interrupt line: emulated
      : op === 2 ? client.barWrite(address, 0, 4 * random(1024), 4, random(2 ** 32))
      : op === 3 ? client.barRead(address, 0, 4 * random(1024), 4)
      : client.configRead(address, 4 * random(64), 4);
    ops++;
    // A device detached meanwhile answers DeviceNotFound: counted, not a failure of the run.
    pending.push(request.catch(() => { failed++; }));
  }
  await Promise.all(pending);
  return { ops, failed };
}

/** A frontend in a child process that hammers the backend until it is killed. */
function killedFrontend(socket: string): Promise<void> {
  const client = fileURLToPath(new URL('../../src/frontend/index.js', import.meta.url));
  const pci = fileURLToPath(new URL('../../src/pci/address.js', import.meta.url));
  const script = `const { connect } = await import(${JSON.stringify(client)});
const { parseAddress } = await import(${JSON.stringify(pci)});
const c = await connect(process.argv[1]).catch(() => process.exit(0));
const all = c.devices().map((d) => parseAddress(d.address));
for (;;) { await Promise.all(all.map((a) => c.configRead(a, 0, 4).catch(() => 0))); if (all[0]) await c.configWrite(all[0], 0x0c, 1, 0x20).catch(() => 0); }`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, socket], { stdio: 'ignore' });
  return new Promise((resolve) => {
    setTimeout(() => child.kill('SIGKILL'), 50 + random(400));
    child.once('exit', () => resolve());
  });
}

async function garbage(socket: string): Promise<void> {
  const stream = netConnect(socket);
  stream.on('error', () => undefined);
  stream.resume();
  await new Promise((resolve) => stream.once('connect', resolve).once('error', resolve));
  stream.end(Buffer.from(Array.from({ length: 1024 + random(64 * 1024) }, () => random(256))));
  await new Promise((resolve) => stream.once('close', resolve));
}

export async function soak(minutes: number, log: (line: string) => void = console.log): Promise<SoakFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'xpci-soak-'));
  const problems: string[] = [];
  try {
    const tree = createFixtureTree(SPECS, join(dir, 'sysfs'));
    const before = new Map(SPECS.map((s) => [s.address, tree.configBytes(s.address)]));
    const socket = join(dir, 'run', 'xpci.sock');
    const stateDir = join(dir, 'state');
    const backend = await startExport(['--sysfs-root', tree.root, '--state-dir', stateDir, '--socket', socket, ...SPECS.map((s) => s.address)], {}, ['--expose-gc', '--import', GC_ON_SIGNAL]);
    const pid = backend.process.pid!;
    const start = processFigures(pid);
    const figures: SoakFigures = {
      minutes, sessions: 0, ops: 0, kills: 0, hotplugRounds: 0, garbageBursts: 0, failedOps: 0,
      rss: { start: start.rss, warm: 0, end: 0 }, fds: { start: start.fds, warm: 0, end: 0 }, problems,
    };
    const endAt = Date.now() + minutes * 60_000;
    const warmAt = Date.now() + Math.min(30_000, minutes * 60_000 * 0.2);
    let attached = true;
    let attachedAtWarm = true;
    // The hot-plugged device holds its own fds (config, BARs) while attached.
    const hotplug = async (op: 'attach' | 'detach'): Promise<void> => {
      const reply = await sendControlRequest(controlSocketPath(socket), { op, device: HOTPLUGGED } as Parameters<typeof sendControlRequest>[1]);
      if (!reply.ok) problems.push(`${op} ${HOTPLUGGED}: ${reply.error}`);
      attached = op === 'attach';
      figures.hotplugRounds++;
    };
    while (Date.now() < endAt) {
      if (figures.rss.warm === 0 && Date.now() >= warmAt) {
        attachedAtWarm = attached;
        const warm = await collectedFigures(pid);
        figures.rss.warm = warm.rss;
        figures.fds.warm = warm.fds;
      }
      const action = random(10);
      try {
        if (action < 5) {
          const client = await connect(socket, { client: 'soak' });
          figures.sessions++;
          const { ops, failed } = await traffic(client, 50 + random(500));
          figures.ops += ops;
          figures.failedOps += failed;
          await client.close();
        } else if (action < 7) {
          await killedFrontend(socket);
          figures.kills++;
        } else if (action < 9) {
          await hotplug(attached ? 'detach' : 'attach');
        } else {
          await garbage(socket);
          figures.garbageBursts++;
        }
      } catch (error) {
        // A session can meet Busy right after a killed predecessor: retried by the next round.
        if (!/Busy|already serves/.test(String(error))) problems.push(`round failed: ${(error as Error).message}`);
      }
      await sleep(random(5));
    }
    // Like with like: the fds are compared with the hot-plugged device as it was at warm-up.
    if (attached !== attachedAtWarm) await hotplug(attachedAtWarm ? 'attach' : 'detach');
    const end = await collectedFigures(pid);
    // A connection the backend is still closing holds an fd for a moment; a leaked one stays.
    for (let wait = 0; wait < 10 && end.fds > figures.fds.warm; wait++) {
      await sleep(200);
      end.fds = processFigures(pid).fds;
    }
    figures.rss.end = end.rss;
    figures.fds.end = end.fds;
    if (figures.rss.warm === 0) { figures.rss.warm = end.rss; figures.fds.warm = end.fds; }
    const status = await backend.stop();
    if (process.env.XPCI_GC_REPORT) for (const line of backend.stderr().split('\n').filter((l) => l.startsWith('gc-report'))) log(line);
    if (status !== 0) problems.push(`the backend exited with ${String(status)}: ${backend.stderr().trim().split('\n').slice(-3).join(' / ')}`);
    for (const [address, bytes] of before) {
      if (!tree.configBytes(address).equals(bytes)) problems.push(`${address}: config not restored`);
    }
    const locks = existsSync(join(stateDir, 'locks')) ? readdirSync(join(stateDir, 'locks')) : [];
    if (locks.length > 0) problems.push(`locks left: ${locks.join(', ')}`);
    if (existsSync(socket) || existsSync(controlSocketPath(socket))) problems.push('a socket file was left');
    if (figures.rss.end > figures.rss.warm * 1.1) problems.push(`RSS grew from ${figures.rss.warm} to ${figures.rss.end} bytes after warm-up`);
    if (figures.fds.end > Math.ceil(figures.fds.warm * 1.1)) problems.push(`fds grew from ${figures.fds.warm} to ${figures.fds.end} after warm-up`);
    const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
    log(`soak: ${minutes} min, ${figures.sessions} sessions, ${figures.ops} ops (${figures.failedOps} refused or failed), ${figures.kills} frontends killed, `
      + `${figures.hotplugRounds} attach/detach rounds, ${figures.garbageBursts} garbage bursts`);
    log(`soak: backend RSS ${mb(figures.rss.start)} MiB at start, ${mb(figures.rss.warm)} MiB after warm-up, ${mb(figures.rss.end)} MiB at the end (each after a full GC); `
      + `fds ${figures.fds.start} / ${figures.fds.warm} / ${figures.fds.end}`);
    log(problems.length === 0 ? 'soak: passed (configs restored, no lock or socket left, RSS and fds within 10 % of warm-up)' : `soak: FAILED:\n  ${problems.join('\n  ')}`);
    return figures;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
