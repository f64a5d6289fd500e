/**
 * Fuzz the real backend (`xpci export --sysfs-root <fixture>`, a child process) with random and
 * mutated frames over its socket, then prove it survived:
 * - it never exits and never reports an internal error (a bug answered OperationFailed);
 * - every frame gets exactly the reply docs/protocol.md demands, in order (fuzz-oracle.ts);
 * - no fixture byte changes outside what the register table lets a frontend write to the hardware
 *   (checked during the run, and after shutdown every changed register is restored);
 * - connection-level abuse (a second frontend, a garbage flood, a peer dying mid-frame, an idle
 *   partial frame) is handled as documented;
 * - afterwards a well-behaved frontend (src/frontend) still gets a handshake and correct reads.
 * Deterministic per seed; the seed is in every report.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { FrameReader, type Frame } from '../../src/protocol/ring/frame.js';
import { decodeErrorPayload, encodeRequest } from '../../src/protocol/ring/codec.js';
import { ErrorCode, HEADER_SIZE, MessageType, XpciError, errorCodeName, type ExportMode } from '../../src/protocol/ring/messages.js';
import { formatAddress, packAddress, parseAddress } from '../../src/pci/address.js';
import { walkCapabilities, walkExtendedCapabilities } from '../../src/pci/capabilities.js';
import { layoutConfigSpace } from '../../src/backend/config-policy/layout.js';
import { connect as connectFrontend } from '../../src/frontend/index.js';
import { Random } from './fuzz-random.js';
import { FrameGenerator, type FuzzTarget } from './fuzz-generator.js';
import { RawConnection } from './fuzz-connection.js';
import { Oracle, isGarbageReport, type OracleDevice } from './fuzz-oracle.js';
import { MAIN_DEVICE, SIBLINGS, createFuzzFixture, fuzzDeviceSpecs } from './fuzz-fixture.js';
import type { FixtureTree } from './fixture-sysfs.js';
import { MAX_GARBAGE } from '../../src/protocol/ring/limits.js';

export interface FuzzOptions {
  /** Generated items (frames, frame pairs or garbage bursts) to send. */
  frames: number;
  seed: number;
  mode?: ExportMode;
  /** Include the 2 s idle-partial-frame check (slow; the long run does it). */
  idleCheck?: boolean;
  /** Progress lines (the long run prints them). */
  progress?: (line: string) => void;
  /** Stop collecting after this many findings. */
  maxFindings?: number;
  /**
   * Put the backend on CPU 1 and this process on CPU 0 (taskset, when there are 2+ CPUs): the
   * scheduler otherwise tends to stack both on one CPU and they stop overlapping.
   */
  pin?: boolean;
}

export interface FuzzReport {
  seed: number;
  mode: ExportMode;
  /** Generated items sent. */
  frames: number;
  /** Frames the backend cut out of the stream (what it had to answer). */
  framesDecoded: number;
  bytes: number;
  seconds: number;
  framesPerSecond: number;
  reconnects: number;
  /** Reply outcomes by request type and error code. */
  outcomes: Record<string, number>;
  kinds: Record<string, number>;
  /** Empty when the backend behaved. */
  findings: string[];
}

const BATCH_TIMEOUT_MS = 15000;
/** Batches in flight before the oldest is checked. */
const PIPELINE_DEPTH = 4;
const here = dirname(fileURLToPath(import.meta.url));
const CLI = resolve(here, '..', '..', 'src', 'cli', 'main.js');

interface Backend {
  process: ChildProcess;
  socket: string;
  guests: Map<string, string>;
  stderr(): string;
  exited(): boolean;
  /** SIGTERM and wait; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** taskset, when installed and there are at least two CPUs to spread over. */
function canPin(): boolean {
  if (availableParallelism() < 2) return false;
  try {
    execFileSync('taskset', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function startBackend(fixture: FixtureTree, socket: string, stateDir: string, mode: ExportMode, pinCpu?: number): Promise<Backend> {
  const args = [CLI, 'export', '--json', '--mode', mode, '--sysfs-root', fixture.root, '--socket', socket, '--state-dir', stateDir,
    '--no-reset-on-export', '--no-reset-on-release', MAIN_DEVICE, SIBLINGS[0], `${SIBLINGS[1]}:permissive`];
  // XPCI_FUZZ_NODE_ARGS (e.g. "--cpu-prof") goes to the backend's node: profiling a finding.
  const nodeArgs = (process.env.XPCI_FUZZ_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const argv = [process.execPath, ...nodeArgs, ...args];
  if (pinCpu !== undefined) argv.unshift('taskset', '-c', String(pinCpu));
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBUG: '' } });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
  });
  const exit = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  const lines = createInterface({ input: child.stdout! });
  const ready = await new Promise<{ devices: { host: string; guest: string }[] }>((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new Error(`backend not ready after 15 s; stderr: ${stderr}`)), 15000);
    lines.on('line', (line) => {
      try {
        const value = JSON.parse(line) as { socket?: string; devices: { host: string; guest: string }[] };
        if (value.socket) {
          clearTimeout(timer);
          resolveReady(value);
        }
      } catch {
        // not the ready line
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`backend exited (${code}) before it was ready; stderr: ${stderr}`));
    });
  });
  return {
    process: child,
    socket,
    guests: new Map(ready.devices.map((d) => [d.host, d.guest])),
    stderr: () => stderr,
    exited: () => child.exitCode !== null || child.signalCode !== null,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
      const code = await exit;
      clearTimeout(timer);
      return code;
    },
  };
}

interface DeviceModel extends OracleDevice {
  host: string;
  permissive: boolean;
  /** Bits a frontend may change in the hardware, per byte; `decode` bits may only be set. */
  mayChange: Uint8Array;
  decode: Uint8Array;
  rw1c: Uint8Array;
  resourceSizes: Map<string, number>;
}

function modelDevices(fixture: FixtureTree, guests: Map<string, string>): DeviceModel[] {
  return fuzzDeviceSpecs().map((spec) => {
    const original = Buffer.from(spec.config);
    const permissive = spec.address === SIBLINGS[1];
    const layout = layoutConfigSpace(original.length, original);
    const m = layout.masks;
    const mayChange = new Uint8Array(original.length);
    const decode = new Uint8Array(original.length);
    for (let b = 0; b < original.length; b++) {
      const hide = m.hide[b];
      // What config-space.ts may put into the hardware: pass bits, permissive bits when granted,
      // decode bits (set only), and write-1-to-clear bits when a clear is granted (permissive).
      mayChange[b] = (m.pass[b] | m.decode[b] | (permissive ? m.permissive[b] | m.rw1c[b] : 0)) & ~hide & 0xff;
      decode[b] = m.decode[b] & ~hide;
    }
    const guestText = guests.get(spec.address);
    if (!guestText) throw new Error(`the backend did not export ${spec.address}`);
    const guest = parseAddress(guestText);
    const caps = [...walkCapabilities(original).capabilities, ...walkExtendedCapabilities(original).capabilities].map((c) => c.offset);
    const resourceSizes = new Map<string, number>();
    for (const bar of spec.bars ?? []) {
      const path = join(fixture.deviceDir(spec.address), `resource${bar.index}`);
      resourceSizes.set(path, statSync(path).size);
    }
    return {
      host: spec.address, permissive, original, guest, packed: packAddress(guest), configSize: original.length,
      bars: (spec.bars ?? []).map(({ index, kind, size, is64, prefetchable }) => ({ index, kind, size, is64: !!is64, prefetchable: !!prefetchable })),
      capabilities: caps, mayChange, decode, rw1c: m.rw1c, resourceSizes,
    };
  });
}

/** Fixture bytes against the register table: only grantable bits may differ from export time. */
function checkFixture(fixture: FixtureTree, devices: DeviceModel[], when: string, afterRelease = false): string[] {
  const findings: string[] = [];
  for (const d of devices) {
    const now = fixture.configBytes(d.host);
    if (now.length !== d.original.length) {
      findings.push(`${when}: ${d.host} config file is ${now.length} bytes, was ${d.original.length}`);
      continue;
    }
    for (let b = 0; b < now.length; b++) {
      const diff = now[b] ^ d.original[b];
      if (diff === 0) continue;
      // After release every changed register is restored. Write-1-to-clear bits may stay cleared;
      // in a permissive export a granted clear writes a 1, which a regular fixture file keeps.
      const allowed = afterRelease ? d.rw1c[b] & (d.permissive ? 0xff : d.original[b]) : d.mayChange[b];
      if (diff & ~allowed) {
        findings.push(`${when}: ${d.host} config byte 0x${b.toString(16)} is 0x${now[b].toString(16)}, was 0x${d.original[b].toString(16)} (bits 0x${(diff & ~allowed).toString(16)} are not writable by a frontend${afterRelease ? ' and were not restored' : ''})`);
      }
      if (!afterRelease && d.decode[b] & d.original[b] & ~now[b]) {
        findings.push(`${when}: ${d.host} config byte 0x${b.toString(16)}: a decode bit was cleared in the hardware (XSA-120)`);
      }
    }
    for (const [path, size] of d.resourceSizes) {
      const actual = statSync(path).size;
      if (actual !== size) findings.push(`${when}: ${path} is ${actual} bytes, was ${size} (a BAR access went past the BAR)`);
    }
  }
  return findings;
}

/** Split `bytes` into 1-4 writes at random points: the backend sees arbitrary fragmentation. */
function sendFragmented(conn: RawConnection, bytes: Buffer, rng: Random): void {
  let at = 0;
  const cuts = rng.int(0, 3);
  for (let i = 0; i < cuts && at < bytes.length; i++) {
    const n = rng.chance(0.3) ? rng.int(1, 17) : rng.int(1, bytes.length - at);
    conn.send(bytes.subarray(at, at + n));
    at += n;
  }
  if (at < bytes.length) conn.send(bytes.subarray(at));
}

/**
 * Connect and make sure this connection is the one being served: until the backend has seen the
 * previous connection close, a new one is answered Busy and closed. A probe request (answered
 * HelloRequired on a served connection) tells the two apart whatever the scheduling delay.
 */
async function openConnection(socket: string, timeoutMs = 10000): Promise<RawConnection> {
  const deadline = Date.now() + timeoutMs;
  for (let probeId = 0xfffffff0; ; probeId++) {
    const conn = await RawConnection.open(socket);
    conn.send(encodeRequest({ type: MessageType.Ping, id: probeId, payload: Buffer.alloc(0) }));
    const index = await conn.indexOf((f) => f.id === probeId || (f.id === 0 && decodeErrorSafe(f)?.code === ErrorCode.Busy), 5000);
    if (index >= 0 && conn.frames[index].id === probeId) {
      conn.take();
      return conn;
    }
    conn.destroy();
    if (Date.now() > deadline) throw new Error('the backend stayed busy after the previous connection closed');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function decodeErrorSafe(frame: Frame): { code: ErrorCode; message: string } | undefined {
  try {
    return decodeErrorPayload(frame.payload);
  } catch {
    return undefined;
  }
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const mode = options.mode ?? 'vpci';
  const rng = new Random(options.seed);
  const work = mkdtempSync(join(tmpdir(), 'xpci-fuzz-'));
  const fixture = createFuzzFixture(join(work, 'sysfs'));
  const socket = join(work, 'ring.sock');
  const pin = options.pin === true && canPin();
  if (pin) execFileSync('taskset', ['-cp', '0', String(process.pid)], { stdio: 'ignore' });
  const backend = await startBackend(fixture, socket, join(work, 'state'), mode, pin ? 1 : undefined);
  // The oracle decodes every frame again and throws for the malformed ones; their stack traces
  // are never looked at and cost more than the rest of the check.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  const devices = modelDevices(fixture, backend.guests);
  const targets: FuzzTarget[] = devices;
  const oracle = new Oracle(devices, mode, options.maxFindings ?? 50);
  const generator = new FrameGenerator(rng, targets);
  const started = performance.now();
  let frames = 0;
  let framesDecoded = 0;
  let bytes = 0;
  let reconnects = 0;
  let seconds = 0;
  let conn: RawConnection | undefined;
  let model = new FrameReader();
  /** The last bytes sent: all the model may still hold after a batch (a possible split magic). */
  let tail = Buffer.alloc(0);

  const reconnect = async (): Promise<void> => {
    conn?.destroy();
    conn = await openConnection(socket);
    model = new FrameReader();
    tail = Buffer.alloc(0);
    oracle.reset();
    reconnects++;
  };

  /** Batches sent and not yet checked, oldest first: a few in flight keep both processes busy. */
  const inFlight: { conn: RawConnection; sent: Frame[]; syncId: number }[] = [];

  /** Send one batch, padded so no frame is left half-sent and closed by a sync Ping. */
  const send = (items: Buffer[]): void => {
    const parts: Buffer[] = [];
    const sent: Frame[] = [];
    const feed = (b: Buffer): void => {
      parts.push(b);
      for (const item of model.push(b)) if (item.frame) sent.push(item.frame);
    };
    for (const item of items) feed(item);
    // A frame the model still holds would swallow the next batch: complete it with zeros. The
    // held bytes are the end of the stream; they may start in the previous batch's 3-byte tail.
    let stream = Buffer.concat([tail, ...parts]);
    while (model.pending >= 4) {
      const pending = stream.subarray(stream.length - model.pending);
      const need = model.pending < HEADER_SIZE ? HEADER_SIZE - model.pending : pending.readUInt32LE(4) - model.pending;
      const filler = Buffer.alloc(Math.max(1, need));
      feed(filler);
      stream = Buffer.concat([stream, filler]);
    }
    let syncId = rng.int(1, 0xffffffff);
    while (sent.some((f) => f.id === syncId)) syncId = rng.int(1, 0xffffffff);
    feed(encodeRequest({ type: MessageType.Ping, id: syncId, payload: Buffer.from('sync') }));
    const out = Buffer.concat(parts);
    tail = Buffer.from(out.subarray(Math.max(0, out.length - 3)));
    bytes += out.length;
    framesDecoded += sent.length;
    sendFragmented(conn!, out, rng);
    inFlight.push({ conn: conn!, sent, syncId });
  };

  /** Wait for the oldest batch's replies and check them; false when the stream is out of step. */
  const settle = async (): Promise<boolean> => {
    const { conn: c, sent, syncId } = inFlight.shift()!;
    const index = await c.indexOf((f) => f.id === syncId && f.type === MessageType.Ping && !isGarbageReport(f), BATCH_TIMEOUT_MS);
    if (c.faultBytes > 0) {
      oracle.finding(`the backend sent ${c.faultBytes} bytes that are not valid frames`);
      c.faultBytes = 0;
    }
    if (index < 0) {
      oracle.finding(c.closed ? 'the backend closed the stream in the middle of a batch' : `no reply to a batch's closing Ping within ${BATCH_TIMEOUT_MS} ms`);
      return false;
    }
    return oracle.check(sent, c.take(index + 1));
  };

  /** Check every batch in flight; on a stream out of step, start over on a new connection. */
  const drain = async (): Promise<void> => {
    while (inFlight.length > 0) {
      if (!(await settle())) {
        inFlight.length = 0;
        await reconnect();
      }
    }
  };

  /** A second frontend while one is connected: Busy, then closed; the first is undisturbed. */
  const busyProbe = async (): Promise<void> => {
    const second = await RawConnection.open(socket);
    await second.until((f) => f.length > 0 && second.closed, 10000);
    const error = second.frames[0] ? decodeErrorSafe(second.frames[0]) : undefined;
    if (error?.code !== ErrorCode.Busy) oracle.finding(`a second frontend got ${error ? errorCodeName(error.code) : 'no error reply'} instead of Busy`);
    if (!second.closed) oracle.finding('a second frontend was not disconnected');
    second.destroy();
  };

  /** More than MAX_GARBAGE bytes without a valid frame: the backend must close that stream. */
  const flood = async (): Promise<void> => {
    conn?.destroy();
    const c = await openConnection(socket);
    const chunk = rng.bytes(64 * 1024);
    for (let i = 0; i < chunk.length; i++) if (chunk[i] === 0x58) chunk[i] = 0x57;
    for (let sent = 0; sent <= MAX_GARBAGE + chunk.length && !c.closed; sent += chunk.length) {
      c.send(chunk);
      bytes += chunk.length;
      await new Promise((r) => setImmediate(r));
    }
    await c.until(() => c.closed, 5000);
    if (!c.closed) oracle.finding(`the backend kept a stream open after ${MAX_GARBAGE} bytes of garbage`);
    if (c.frames.some((f) => !isGarbageReport(f))) oracle.finding('a garbage-only stream got a reply other than garbage reports');
    c.destroy();
    await reconnect();
  };

  /** A peer dies mid-frame on a stream that stays open (virtio-serial): after 2 s the tail is dropped. */
  const idlePartial = async (): Promise<void> => {
    const c = conn!;
    const partial = encodeRequest({ type: MessageType.Ping, id: 1, payload: Buffer.alloc(200) }).subarray(0, 100);
    c.send(partial);
    bytes += partial.length;
    await new Promise((r) => setTimeout(r, 2300));
    model.discardPartial();
    tail = Buffer.alloc(0);
    const hello = generator.hello();
    c.send(hello);
    bytes += hello.length;
    const ok = await c.until((frames) => frames.some((f) => f.type === MessageType.Hello), 3000);
    if (!ok) oracle.finding('a Hello sent 2.3 s after a dead partial frame got no reply (idle partial frame not discarded)');
    c.take();
    oracle.established = ok;
  };

  try {
    await reconnect();
    send([generator.hello()]);
    if (!(await settle())) throw new Error(`the first Hello failed: ${oracle.findings.join('; ')}`);
    let nextProgress = performance.now() + 5000;
    const probes = { busy: Math.floor(options.frames * 0.3), flood: Math.floor(options.frames * 0.6), idle: Math.floor(options.frames * 0.8) };
    while (frames < options.frames && oracle.findings.length < (options.maxFindings ?? 50)) {
      if (backend.exited()) {
        oracle.finding(`the backend exited (code ${backend.process.exitCode}, signal ${backend.process.signalCode})`);
        break;
      }
      const items: Buffer[] = [];
      // Keep sessions mostly established so requests reach the devices.
      if (!oracle.established || rng.chance(0.01)) items.push(generator.hello());
      for (let n = rng.int(1, 120); n > 0 && frames < options.frames; n--, frames++) items.push(generator.next().bytes);
      send(items);
      if (inFlight.length >= PIPELINE_DEPTH && !(await settle())) {
        inFlight.length = 0;
        await reconnect();
      }

      if (frames >= probes.busy && probes.busy >= 0) {
        probes.busy = -1;
        await drain();
        await busyProbe();
      }
      if (frames >= probes.flood && probes.flood >= 0) {
        probes.flood = -1;
        await drain();
        await flood();
      }
      if (options.idleCheck && frames >= probes.idle && probes.idle >= 0) {
        probes.idle = -1;
        await drain();
        await idlePartial();
      }
      if (rng.chance(0.01)) {
        // A frontend that dies mid-frame; the next one must be served.
        await drain();
        const cut = generator.hello();
        conn!.send(cut.subarray(0, rng.int(1, cut.length - 1)));
        await reconnect();
      }
      if (rng.chance(0.02)) for (const f of checkFixture(fixture, devices, `after ${frames} frames`)) oracle.finding(f);
      if (options.progress && performance.now() >= nextProgress) {
        nextProgress += 5000;
        const s = (performance.now() - started) / 1000;
        options.progress(`${frames} frames, ${Math.round(frames / s)} frames/s, ${oracle.findings.length} findings`);
      }
    }
    await drain();
    conn?.destroy();
    conn = undefined;

    if (backend.exited()) oracle.finding(`the backend exited (code ${backend.process.exitCode}, signal ${backend.process.signalCode})`);
    for (const f of checkFixture(fixture, devices, 'end of the run')) oracle.finding(f);
    if (!backend.exited()) await checkFrontend(socket, devices, oracle);
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
    conn?.destroy();
    seconds = (performance.now() - started) / 1000;
    const code = await backend.stop();
    if (code !== 0) oracle.finding(`the backend's exit status after SIGTERM was ${code}`);
    for (const line of backend.stderr().split('\n')) {
      if (/internal error|TypeError|RangeError|ReferenceError|at .*\.js:\d+/.test(line)) oracle.finding(`backend stderr: ${line.slice(0, 300)}`);
    }
    for (const f of checkFixture(fixture, devices, 'after shutdown', true)) oracle.finding(f);
    rmSync(work, { recursive: true, force: true });
  }
  return {
    seed: options.seed, mode, frames, framesDecoded, bytes, seconds, framesPerSecond: Math.round(frames / seconds), reconnects,
    outcomes: Object.fromEntries([...oracle.outcomes.entries()].sort()),
    kinds: Object.fromEntries([...generator.counts.entries()].sort()),
    findings: oracle.findings,
  };
}

/** After the fuzz: a well-behaved frontend connects, sees every device and reads all of config space. */
async function checkFrontend(socket: string, devices: DeviceModel[], oracle: Oracle): Promise<void> {
  let client;
  // The backend may not have noticed the fuzzer's connection close yet: Busy is then the right answer.
  for (const deadline = Date.now() + 5000; !client;) {
    try {
      client = await connectFrontend(socket, { requestTimeoutMs: 10000, helloTimeoutsMs: [3000], client: 'fuzz-check' });
    } catch (error) {
      if (error instanceof XpciError && error.code === ErrorCode.Busy && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      oracle.finding(`a valid frontend could not connect after the fuzz run: ${(error as Error).message}`);
      return;
    }
  }
  try {
    const seen = client.devices().map((d) => d.address).sort().join(' ');
    const want = devices.map((d) => formatAddress(d.guest)).sort().join(' ');
    if (seen !== want) oracle.finding(`after the run the frontend sees ${seen}, expected ${want}`);
    for (const d of devices) {
      const reads = await Promise.all(Array.from({ length: d.configSize / 4 }, (_, i) => client.configRead(d.guest, i * 4, 4)));
      const id = reads[0];
      if (id !== d.original.readUInt32LE(0)) oracle.finding(`after the run ${formatAddress(d.guest)} reads id 0x${id.toString(16)}`);
      if (reads[2] !== d.original.readUInt32LE(8)) oracle.finding(`after the run ${formatAddress(d.guest)} reads class/revision 0x${reads[2].toString(16)}`);
    }
    const echo = await client.ping(Buffer.from('still alive'));
    if (echo.toString() !== 'still alive') oracle.finding('after the run a Ping was not echoed');
  } catch (error) {
    oracle.finding(`a valid frontend failed after the fuzz run: ${(error as Error).message}`);
  } finally {
    await client.close();
  }
}

export function formatReport(r: FuzzReport): string {
  const lines = [
    `seed ${r.seed} (${r.mode}): ${r.frames} frames (${r.framesDecoded} framed requests, ${(r.bytes / 1e6).toFixed(1)} MB) in ${r.seconds.toFixed(1)} s = ${r.framesPerSecond} frames/s, ${r.reconnects} connections`,
    `outcomes: ${Object.entries(r.outcomes).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    r.findings.length === 0 ? 'findings: none' : `findings (${r.findings.length}):\n  ${r.findings.join('\n  ')}`,
  ];
  return lines.join('\n');
}
