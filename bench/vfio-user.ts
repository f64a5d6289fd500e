/**
 * vfio-user figures for `npm run bench`: the same client (the TypeScript one in test/support) reads
 * the same config dword (region 7, offset 0, 4 bytes) from xpci's vfio-user server (a fixture device,
 * `xpci export --vfio-user`) and from libvfio-user's gpio-pci-idio-16 sample, at 1 and 64 in flight.
 * The sample comes from scripts/build-qemu-vfio-user.sh's cache (or $XPCI_VFIO_USER_SAMPLE); without
 * it the libvfio-user side is left out with a note.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { PciRegion } from '../src/protocol/vfio-user/messages.js';
import { VfioUserClient } from '../test/support/vfio-user-client.js';
import { CLI } from './backend.js';
import { spawnReady, type Child } from './children.js';
import { pipelined, type Sample } from './measure.js';

export interface VfioUserBench {
  readonly notes: string[];
  readonly options: { runMs: number };
  track(child: Child): void;
  measure(name: string, depth: number, pids: Record<string, number>, run: () => Promise<Sample>): Promise<{ usPerOp: number; opsPerSec: number }>;
}

export interface VfioUserTarget { name: string; measured: number | null; relation: '<=' | '>='; goal: number; unit: 'x'; pass: boolean | null }

function findSample(): string | null {
  const override = process.env.XPCI_VFIO_USER_SAMPLE;
  if (override) return existsSync(override) ? override : null;
  const cache = join(process.env.XPCI_CACHE ?? join(homedir(), '.cache', 'xpci'));
  if (!existsSync(cache)) return null;
  const builds = readdirSync(cache).filter((name) => /^qemu-\d/.test(name) && existsSync(join(cache, name, 'complete'))).sort();
  const sample = builds.length > 0 ? join(cache, builds[builds.length - 1], 'bin', 'gpio-pci-idio-16') : null;
  return sample && existsSync(sample) ? sample : null;
}

async function waitForSocket(path: string, child: Child): Promise<void> {
  for (let i = 0; i < 200 && !existsSync(path); i++) {
    if (child.process.exitCode !== null) throw new Error(`the libvfio-user sample exited: ${child.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function readFigures(bench: VfioUserBench, name: string, socket: string, server: number): Promise<void> {
  const client = VfioUserClient.connect(socket);
  try {
    await client.version();
    const read = (): Promise<unknown> => client.regionRead(PciRegion.config, 0n, 4);
    const pids = { bench: process.pid, server };
    await bench.measure(`${name}1`, 1, pids, () => pipelined(1, bench.options.runMs, read));
    await bench.measure(`${name}64`, 64, pids, () => pipelined(64, bench.options.runMs, read));
  } finally {
    client.close();
  }
}

/** Measures both servers; returns the targets (per op at 1 in flight, throughput at 64). */
export async function benchVfioUser(bench: VfioUserBench, work: string, fixture: { sysfsRoot: string; device: string }, pinCpu?: number): Promise<VfioUserTarget[]> {
  const figures = new Map<string, { usPerOp: number; opsPerSec: number }>();
  const measure: VfioUserBench['measure'] = async (name, depth, pids, run) => {
    const figure = await bench.measure(name, depth, pids, run);
    figures.set(name, figure);
    return figure;
  };
  const local: VfioUserBench = { notes: bench.notes, options: bench.options, track: (c) => bench.track(c), measure };
  const dir = join(work, 'vfio-user');
  const { child: xpci, sockets } = await spawnReady(process.execPath, [CLI, 'export', '--json', '--no-ring', '--vfio-user', dir, '--sysfs-root', fixture.sysfsRoot,
    // --socket names the control socket too (SOCKET.ctl): never the default one another backend may hold.
    '--state-dir', join(work, 'state-vfio-user'), '--socket', join(work, 'vfio-user-ring.sock'), '--no-reset-on-export', '--no-reset-on-release', fixture.device], {
    env: { ...process.env, DEBUG: '' },
    pinCpu,
    ready: (line) => {
      try {
        return (JSON.parse(line) as { vfioUser?: string[] }).vfioUser;
      } catch {
        return undefined;
      }
    },
  }).then(({ child, ready }) => ({ child, sockets: ready as string[] }));
  bench.track(xpci);
  await readFigures(local, 'vfioUserXpci', sockets[0], xpci.pid);

  const sample = findSample();
  if (sample === null) {
    bench.notes.push('vfio-user: libvfio-user sample not built (scripts/build-qemu-vfio-user.sh or $XPCI_VFIO_USER_SAMPLE); its side is left out');
  } else {
    const socket = join(work, 'gpio.sock');
    const gpio = startSample(sample, socket, pinCpu);
    bench.track(gpio);
    await waitForSocket(socket, gpio);
    await readFigures(local, 'vfioUserLibvfioUser', socket, gpio.pid);
  }
  const f = (name: string) => figures.get(name);
  const ratio = (a: number | undefined, b: number | undefined): number | null => (a === undefined || b === undefined ? null : a / b);
  const target = (name: string, measured: number | null, relation: '<=' | '>=', goal: number): VfioUserTarget => ({
    name, measured, relation, goal, unit: 'x', pass: measured === null ? null : relation === '<=' ? measured <= goal : measured >= goal,
  });
  return [
    target('vfio-user config read, 1 in flight: xpci vs libvfio-user time per op', ratio(f('vfioUserXpci1')?.usPerOp, f('vfioUserLibvfioUser1')?.usPerOp), '<=', 1.25),
    target('vfio-user config reads, 64 in flight: xpci vs libvfio-user throughput', ratio(f('vfioUserXpci64')?.opsPerSec, f('vfioUserLibvfioUser64')?.opsPerSec), '>=', 1.0),
  ];
}

/** The sample prints nothing when ready: start it and let waitForSocket watch its socket appear. */
function startSample(sample: string, socket: string, pinCpu?: number): Child {
  const argv = pinCpu === undefined ? [sample, socket] : ['taskset', '-c', String(pinCpu), sample, socket];
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.setEncoding('utf8').on('data', (text: string) => { stderr = (stderr + text).slice(-4000); });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    get pid() {
      return proc.pid ?? -1;
    },
    process: proc,
    stderr: () => stderr,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}
