/**
 * `npm run bench [-- --json] [--pin] [--device BDF] [--runs N] [--run-ms MS]`: the performance
 * figures, all measured in one run, printed as one table (or one JSON object):
 * - genuine config reads through the ring (1 and 64 in flight) of a real device of this machine,
 *   exported --read-only, against a direct pread of the same register (the addon's RegisterFile)
 *   and against a C reference built in the same run (bench/c-reference.c: a socketpair ping-pong
 *   around the same pread);
 * - the same reads against a fixture-backed device (a regular file: the transport cost alone);
 * - a full `-xxx` dump of every exported device against `lspci -xxx -s` of the same devices;
 * - backend RSS with eight exported fixture devices;
 * - the transport floor: a bare Node-to-Node Unix-socket ping-pong with the same frame sizes;
 * - interrupt delivery and DMA window writes through the ring, on fixture means (an eventfd the
 *   bench signals, memfd windows without an IOMMU; bench/interrupts-dma.ts), against bare Node.
 * Targets are compared to the measured ratios and reported PASS/MISS: this is a report, not a test.
 * It never writes to a real device: this machine's devices are only exported read-only and only read.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connect, type FrontendClient } from '../src/frontend/index.js';
import { native } from '../src/native/binding.js';
import { formatAddress, parseAddress, type PciAddress } from '../src/pci/address.js';
import { encodeRequest } from '../src/protocol/ring/codec.js';
import { MessageType } from '../src/protocol/ring/messages.js';
import { startBackend, stateDirFor, type BackendChild } from './backend.js';
import { buildCReference, runCReference } from './c-reference.js';
import { createBenchFixture, FIXTURE_DEVICE_COUNT, MAIN_DEVICE } from './fixture.js';
import { spawnReady, type Child } from './children.js';
import { exportableHostDevices } from './host-devices.js';
import { lspciAvailable, measureDumps, type DumpFigures } from './dumps.js';
import { figure, loop, pipelined, repeat, type Figure, type Sample } from './measure.js';
import { PlacementLog, pinProcess, rssKiB, tasksetAvailable } from './placement.js';
import { BareClient, REPLY_BYTES, REQUEST_BYTES } from './pingpong.js';
import { measureTls } from './tls.js';
import { measureCliCall, type CliCallFigures } from './cli-call.js';
import { benchVfioUser } from './vfio-user.js';
import { benchInterruptsDma } from './interrupts-dma.js';

const USAGE = `usage: npm run bench -- [--json] [--pin] [--device BDF] [--runs N] [--run-ms MS]
  --json       one JSON object instead of the table
  --pin        run every process on CPU 0 (taskset): no cross-CPU wake-ups (~40 us each way on this VM)
  --device     the host device whose register is read (default: the first non-bridge device)
  --runs       runs per figure, the median is reported (default 5)
  --run-ms     length of one run in ms (default 300)`;

/** The register read everywhere: the vendor/device dword, side-effect free on every device. */
const REGISTER = { offset: 0x00, size: 4 } as const;
const FLOOR = 'floor';

interface Measured extends Figure {
  placement: ReturnType<PlacementLog['toJSON']>;
  placementText: string;
}

interface Target {
  name: string;
  measured: number | null;
  /** "<=" or ">=" */
  relation: '<=' | '>=';
  goal: number;
  unit: 'x' | 'ops/s' | 'MiB' | 'requests';
  pass: boolean | null;
}

interface Options {
  json: boolean;
  pin: boolean;
  device?: string;
  runs: number;
  runMs: number;
}

function parseOptions(): Options | string {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        json: { type: 'boolean', default: false },
        pin: { type: 'boolean', default: false },
        device: { type: 'string' },
        runs: { type: 'string', default: '5' },
        'run-ms': { type: 'string', default: '300' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    return (error as Error).message;
  }
  if (values.help) return '';
  const runs = Number(values.runs);
  const runMs = Number(values['run-ms']);
  if (!Number.isInteger(runs) || runs < 1 || runs > 50) return `--runs must be 1..50, got '${values.runs}'`;
  if (!Number.isFinite(runMs) || runMs < 20 || runMs > 10000) return `--run-ms must be 20..10000, got '${values['run-ms']}'`;
  return { json: values.json, pin: values.pin, device: values.device, runs, runMs };
}

const here = dirname(fileURLToPath(import.meta.url));
const PINGPONG_SERVER = resolve(here, 'pingpong-server.js');
/** Counted before --pin narrows this process's affinity to one CPU. */
const CPU_COUNT = cpus().length;

class Bench {
  readonly figures = new Map<string, Measured>();
  readonly notes: string[] = [];
  private readonly children: Child[] = [];

  constructor(readonly options: Options) {}

  track(child: Child): void {
    this.children.push(child);
  }

  async measure(name: string, depth: number, pids: Record<string, number>, run: () => Promise<Sample> | Sample): Promise<Measured> {
    const log = new PlacementLog();
    // Warm-up: the JIT of both processes, caches, connections (the first runs are visibly slower).
    await run();
    await run();
    const samples = await repeat(this.options.runs, async () => {
      log.start(pids);
      try {
        return await run();
      } finally {
        log.stop(pids);
      }
    });
    const measured: Measured = { ...figure(samples, depth), placement: log.toJSON(), placementText: log.describe() };
    this.figures.set(name, measured);
    return measured;
  }

  /** A figure measured outside `measure` (the C reference times its own runs). */
  record(name: string, measured: Measured): void {
    this.figures.set(name, measured);
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.children.map((c) => c.stop()));
  }
}

async function ringReads(bench: Bench, name: string, client: FrontendClient, address: PciAddress, server: number): Promise<void> {
  const pids = { bench: process.pid, backend: server };
  const read = (): Promise<number> => client.configRead(address, REGISTER.offset, REGISTER.size);
  await bench.measure(`${name}1`, 1, pids, () => pipelined(1, bench.options.runMs, read));
  await bench.measure(`${name}64`, 64, pids, () => pipelined(64, bench.options.runMs, read));
}

async function main(): Promise<number> {
  const parsed = parseOptions();
  if (typeof parsed === 'string') {
    if (parsed === '') {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    process.stderr.write(`bench: ${parsed}\n${USAGE}\n`);
    return 2;
  }
  const options = parsed;
  let pinCpu: number | undefined;
  if (options.pin) {
    if (!tasksetAvailable()) {
      process.stderr.write('bench: --pin needs taskset (util-linux)\n');
      return 2;
    }
    pinCpu = 0;
    pinProcess(process.pid, pinCpu);
  }
  const bench = new Bench(options);
  const work = mkdtempSync(join(tmpdir(), 'xpci-bench-'));
  const { tree: fixture, devices: fixtureDevices } = createBenchFixture(join(work, 'sysfs'));
  const clients: FrontendClient[] = [];
  let fixtureBackend: BackendChild | undefined;
  let genuineBackend: BackendChild | undefined;
  let dumps: DumpFigures | undefined;
  let cliCall: CliCallFigures | undefined;
  let vfioUserTargets: Target[] = [];
  let interruptsDmaTargets: Target[] = [];
  const rss: Record<string, number | undefined> = {};
  const started = Date.now();
  try {
    // 1. Transport floor: bare ping-pong between two Node processes.
    const floorSocket = join(work, 'floor.sock');
    const { child: floorServer } = await spawnReady(process.execPath, [PINGPONG_SERVER, floorSocket, String(REQUEST_BYTES), String(REPLY_BYTES)], {
      pinCpu, ready: (line) => line === 'ready',
    });
    bench.track(floorServer);
    const bare = await BareClient.connect(floorSocket);
    const floorPids = { bench: process.pid, server: floorServer.pid };
    await bench.measure(`${FLOOR}1`, 1, floorPids, () => bare.run(1, options.runMs));
    await bench.measure(`${FLOOR}64`, 64, floorPids, () => bare.run(64, options.runMs));
    bare.close();
    await floorServer.stop();

    // 2. Fixture-backed device: the ring's own cost (config reads of a regular file).
    fixtureBackend = await startBackend({
      devices: fixtureDevices, socket: join(work, 'fixture.sock'), stateDir: stateDirFor(work, 'fixture'), mode: 'vpci',
      readOnly: false, sysfsRoot: fixture.root, pinCpu,
    });
    bench.track(fixtureBackend.child);
    const fixtureClient = await connect(fixtureBackend.socket, { client: 'xpci bench' });
    clients.push(fixtureClient);
    if (fixtureBackend.devices.length !== FIXTURE_DEVICE_COUNT) throw new Error(`the fixture backend exported ${fixtureBackend.devices.length} of ${FIXTURE_DEVICE_COUNT} devices`);
    const fixtureAddress = parseAddress(fixtureBackend.devices.find((d) => d.host === MAIN_DEVICE)!.guest);
    await ringReads(bench, 'fixture', fixtureClient, fixtureAddress, fixtureBackend.child.pid);
    // The same reads from a bare client (no frontend library): what the backend alone costs.
    await fixtureClient.close();
    clients.pop();
    const raw = await BareClient.connect(fixtureBackend.socket, {
      hello: encodeRequest({ type: MessageType.Hello, id: 1, hello: { versions: [1], ringDepth: 64 } }),
      request: encodeRequest({ type: MessageType.ConfigRead, id: 2, address: fixtureAddress, offset: REGISTER.offset, size: REGISTER.size }),
    });
    const rawPids = { bench: process.pid, backend: fixtureBackend.child.pid };
    await bench.measure('fixtureRaw1', 1, rawPids, () => raw.run(1, options.runMs));
    await bench.measure('fixtureRaw64', 64, rawPids, () => raw.run(64, options.runMs));
    raw.close();
    // One frontend at a time: the CLI calls come once the bench's own clients have gone.
    cliCall = measureCliCall(fixtureBackend.socket, formatAddress(fixtureAddress), Math.max(5, options.runs));
    const fixtureFile = native().openRegisterFile(join(fixture.deviceDir(MAIN_DEVICE), 'config'), false);
    await bench.measure('fixturePread', 1, { bench: process.pid }, () => loop(options.runMs, () => fixtureFile.read(REGISTER.offset, REGISTER.size)));
    fixtureFile.close();
    rss.fixtureBackend = rssKiB(fixtureBackend.child.pid);
    // Trees of their own: the fixture backend still holds its devices (one writable export per device).
    const ownFixture = (name: string): string => createBenchFixture(join(work, `sysfs-${name}`)).tree.root;
    vfioUserTargets = await benchVfioUser(bench, work, { sysfsRoot: ownFixture('vfio-user'), device: MAIN_DEVICE }, pinCpu);
    interruptsDmaTargets = await benchInterruptsDma(bench, work, pinCpu);

    // 2b. The same round trip from a frontend on another host: TLS on loopback vs the Unix socket.
    await measureTls({
      work, sysfsRoot: ownFixture('tls'), device: MAIN_DEVICE, runMs: options.runMs, pinCpu,
      track: (child) => bench.track(child), measure: (name, depth, pids, run) => bench.measure(name, depth, pids, run),
    });

    // 3. Genuine reads of this machine's devices, exported read-only, against direct pread.
    const host = exportableHostDevices();
    const target = options.device === undefined ? host[0] : host.find((d) => d.bdf === options.device || d.bdf.endsWith(options.device!));
    if (!target) {
      bench.notes.push(host.length === 0
        ? 'no exportable PCI device on this machine: the genuine figures are skipped'
        : `--device ${options.device} is not an exportable device of this machine (${host.map((d) => d.bdf).join(', ')})`);
    } else {
      const file = native().openRegisterFile(target.configPath, false);
      try {
        await bench.measure('pread', 1, { bench: process.pid }, () => loop(options.runMs, () => file.read(REGISTER.offset, REGISTER.size)));
      } finally {
        file.close();
      }
      const reference = buildCReference(work);
      if ('error' in reference) {
        bench.notes.push(`no C reference: ${reference.error}`);
      } else {
        const samples = runCReference(reference.binary, target.configPath, REGISTER, options.runMs, options.runs, pinCpu);
        bench.record('cReference1', { ...figure(samples, 1), placement: { cpus: {} }, placementText: pinCpu === undefined ? 'unpinned' : `pinned to CPU ${pinCpu}` });
      }
      genuineBackend = await startBackend({
        devices: host.map((d) => d.bdf), socket: join(work, 'genuine.sock'), stateDir: stateDirFor(work, 'genuine'), mode: 'passthrough',
        readOnly: true, pinCpu,
      });
      bench.track(genuineBackend.child);
      for (const r of genuineBackend.refused) bench.notes.push(`not exported: ${r.bdf}: ${r.reason}`);
      const genuineClient = await connect(genuineBackend.socket, { client: 'xpci bench' });
      clients.push(genuineClient);
      await ringReads(bench, 'genuine', genuineClient, parseAddress(target.bdf), genuineBackend.child.pid);
      const exported = genuineBackend.devices.map((d) => d.host);
      const withLspci = await lspciAvailable();
      if (!withLspci) bench.notes.push('lspci is not installed: the lspci dump figure is skipped');
      dumps = await measureDumps({
        socket: genuineBackend.socket, client: genuineClient, hostDevices: exported, runs: options.runs, pinCpu, withLspci,
      });
      rss.genuineBackend = rssKiB(genuineBackend.child.pid);
      bench.notes.push(`genuine register: ${target.bdf} config offset 0x${REGISTER.offset.toString(16)}, ${REGISTER.size} bytes; exported read-only: ${exported.join(' ')}`);
    }
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await bench.stopAll();
    rmSync(work, { recursive: true, force: true });
  }

  const f = (name: string): Measured | undefined => bench.figures.get(name);
  const ratio = (a: number | undefined, b: number | undefined): number | null => (a === undefined || b === undefined ? null : a / b);
  const targets: Target[] = [
    target('genuine read through the ring (1 in flight) vs the C reference', ratio(f('genuine1')?.usPerOp, f('cReference1')?.usPerOp), '<=', 1.3, 'x'),
    target('genuine reads, 64 in flight: throughput vs direct pread', ratio(f('genuine64')?.opsPerSec, f('pread')?.opsPerSec), '>=', 0.9, 'x'),
    target('fixture round trip (1 in flight) vs bare ping-pong', ratio(f('fixture1')?.usPerOp, f(`${FLOOR}1`)?.usPerOp), '<=', 1.25, 'x'),
    target('fixture reads, 64 in flight', f('fixture64')?.opsPerSec ?? null, '>=', 300_000, 'ops/s'),
    ...vfioUserTargets,
    ...interruptsDmaTargets,
    target(`backend RSS with ${FIXTURE_DEVICE_COUNT} exported fixture devices`, rss.fixtureBackend === undefined ? null : rss.fixtureBackend / 1024, '<=', 64, 'MiB'),
    target('fixture round trip over TLS (loopback) vs Unix socket, 1 in flight', ratio(f('tls1')?.usPerOp, f('unix1')?.usPerOp), '<=', 2, 'x'),
    target('one xpci setpci register read vs node -e 0 (wall time)', cliCall?.ratio ?? null, '<=', 2, 'x'),
    target('requests on the wire for xpci lspci -s DEV -x', cliCall?.lspciRequests ?? null, '<=', 10, 'requests'),
  ];
  // A ring read is at least a pread plus a socket round trip: the best ratio this run allows.
  const floorRatio = ratio(sum(f('pread')?.usPerOp, f(`${FLOOR}1`)?.usPerOp), f('pread')?.usPerOp);
  const result = {
    node: process.version,
    cpus: CPU_COUNT,
    pinned: pinCpu !== undefined,
    runs: options.runs,
    runMs: options.runMs,
    seconds: (Date.now() - started) / 1000,
    figures: Object.fromEntries([...bench.figures.entries()].map(([k, v]) => [k, {
      usPerOp: round(v.usPerOp), opsPerSec: Math.round(v.opsPerSec), depth: v.depth, runsUsPerOp: v.runs.map(round), placement: v.placement,
    }])),
    dumps,
    cliCall: cliCall && { nodeMs: round(cliCall.nodeMs), setpciMs: round(cliCall.setpciMs), ratio: round(cliCall.ratio), lspciRequests: cliCall.lspciRequests },
    rssKiB: rss,
    targets,
    bounds: { genuineRingVsPread: floorRatio === null ? null : round(floorRatio) },
    notes: bench.notes,
  };
  process.stdout.write(options.json ? JSON.stringify(result) + '\n' : renderTable(bench, dumps, cliCall, rss, targets, floorRatio, result.seconds, pinCpu) + '\n');
  return 0;
}

const sum = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined || b === undefined ? undefined : a + b);

function target(name: string, measured: number | null, relation: '<=' | '>=', goal: number, unit: Target['unit']): Target {
  const pass = measured === null ? null : relation === '<=' ? measured <= goal : measured >= goal;
  return { name, measured: measured === null ? null : round(measured), relation, goal, unit, pass };
}

const round = (n: number): number => Math.round(n * 1000) / 1000;
const pad = (text: string, width: number): string => text.padEnd(width);
const lpad = (text: string, width: number): string => text.padStart(width);
const us = (n: number): string => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const ops = (n: number): string => Math.round(n).toLocaleString('en-US');

function renderTable(bench: Bench, dumps: DumpFigures | undefined, cliCall: CliCallFigures | undefined, rss: Record<string, number | undefined>, targets: Target[], floorRatio: number | null, seconds: number, pinCpu: number | undefined): string {
  const rows: [string, string][] = [
    [`${FLOOR}1`, 'transport floor: bare Node ping-pong, 24/20-byte frames, 1 in flight'],
    [`${FLOOR}64`, 'transport floor: bare Node ping-pong, 64 in flight'],
    ['fixturePread', 'fixture config file: direct pread (addon RegisterFile)'],
    ['fixture1', 'fixture device: ConfigRead through the ring, 1 in flight'],
    ['fixture64', 'fixture device: ConfigRead through the ring, 64 in flight'],
    ['fixtureRaw1', '  same, bare client instead of the frontend library, 1 in flight'],
    ['fixtureRaw64', '  same, bare client instead of the frontend library, 64 in flight'],
    ['irqBare1', 'eventfd signalled → bare Node wakes, 28-byte frame back'],
    ['irqRing1', 'eventfd → Interrupt event → frontend callback (fixture backend)'],
    ['streamBare64k', 'bare Unix-socket stream, 64 KiB messages acked, 8 in flight'],
    ['dmaWrite64k', 'ring DmaWrite 64 KiB, 8 in flight (memfd window, no IOMMU)'],
    ['unix1', 'fixture device, frontend library over the Unix socket, 1 in flight'],
    ['tls1', '  same backend, frontend over mutual TLS on loopback, 1 in flight'],
    ['pread', 'genuine register: direct pread (addon RegisterFile)'],
    ['cReference1', 'genuine register: C socketpair ping-pong around the same pread'],
    ['genuine1', 'genuine register: ConfigRead through the ring, 1 in flight'],
    ['genuine64', 'genuine register: ConfigRead through the ring, 64 in flight'],
  ];
  const out: string[] = [];
  const placement = pinCpu === undefined ? 'unpinned (use --pin to run every process on one CPU)' : `every process pinned to CPU ${pinCpu}`;
  out.push(`xpci bench: node ${process.version}, ${CPU_COUNT} CPUs, ${placement}; median of ${bench.options.runs} runs of ${bench.options.runMs} ms; ${seconds.toFixed(1)} s`);
  out.push('');
  const w = 66;
  out.push(`${pad('measurement', w)} ${lpad('us/op', 9)} ${lpad('ops/s', 12)}   placement (CPU each process ran on)`);
  for (const [key, label] of rows) {
    const m = bench.figures.get(key);
    if (!m) continue;
    out.push(`${pad(label, w)} ${lpad(us(m.usPerOp), 9)} ${lpad(ops(m.opsPerSec), 12)}   ${m.placementText}`);
  }
  if (dumps) {
    out.push('');
    out.push(`${pad(`-xxx dump of ${dumps.devices} exported devices`, w)} ${lpad('ms', 9)}`);
    out.push(`${pad('  xpci lspci -xxx (one process: Node start-up, scan, dumps)', w)} ${lpad(dumps.xpciProcessMs.toFixed(1), 9)}`);
    out.push(`${pad('  frontend library in this process (scan + 256 B per device)', w)} ${lpad(dumps.xpciLibraryMs.toFixed(1), 9)}`);
    if (dumps.lspciMs !== undefined) out.push(`${pad(`  lspci -xxx -s BDF, once per device (${dumps.devices} processes, summed)`, w)} ${lpad(dumps.lspciMs.toFixed(1), 9)}`);
    if (dumps.differences) {
      out.push(`  dump bytes: ${dumps.differences.length === 0 ? 'identical to lspci -xxx' : `${dumps.differences.length} differ (virtualized registers, docs/protocol.md §13): ${dumps.differences.slice(0, 12).join(' ')}${dumps.differences.length > 12 ? ' ...' : ''}`}`);
    }
  }
  if (cliCall) {
    out.push('');
    out.push(`${pad('one CLI call (median, interleaved runs)', w)} ${lpad('ms', 9)}`);
    out.push(`${pad('  node -e 0', w)} ${lpad(cliCall.nodeMs.toFixed(1), 9)}`);
    out.push(`${pad('  xpci setpci -s DEV COMMAND (fixture export)', w)} ${lpad(cliCall.setpciMs.toFixed(1), 9)}`);
  }
  out.push('');
  const mib = (k: number | undefined): string => (k === undefined ? 'n/a' : `${(k / 1024).toFixed(1)} MiB`);
  out.push(`backend RSS: fixture export of ${FIXTURE_DEVICE_COUNT} devices ${mib(rss.fixtureBackend)}, read-only export of this machine's devices ${mib(rss.genuineBackend)}`);
  out.push('');
  out.push(`${pad('target', w)} ${lpad('measured', 12)} ${lpad('target', 12)}   result`);
  for (const t of targets) {
    const fmt = (n: number): string => (t.unit === 'x' ? `${n.toFixed(2)}x` : t.unit === 'MiB' ? `${n.toFixed(1)} MiB` : t.unit === 'requests' ? String(n) : ops(n));
    out.push(`${pad(t.name, w)} ${lpad(t.measured === null ? 'n/a' : fmt(t.measured), 12)} ${lpad(`${t.relation === '<=' ? '<=' : '>='} ${fmt(t.goal)}`, 12)}   ${t.pass === null ? 'n/a' : t.pass ? 'PASS' : 'MISS'}`);
  }
  if (floorRatio !== null) {
    out.push(`(a ring read costs at least a pread plus a bare round trip: (pread + ping-pong) / pread = ${floorRatio.toFixed(2)}x in this run)`);
  }
  out.push('');
  out.push('Placement matters on this VM: a wake-up across vCPUs costs ~40 us each way (haltpoll without polling), more');
  out.push('than a same-CPU round trip; a 1-in-flight figure whose processes ran on different CPUs pays it twice per op.');
  for (const note of bench.notes) out.push(`note: ${note}`);
  return out.join('\n');
}

main().then((code) => {
  process.exitCode = code;
}, (error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exitCode = 1;
});
