/**
 * Guest-side driver (runs inside the test VM) for the deaths test of test/vm/faults.test.ts: runs
 * `xpci export` of one device as a child and 50 frontend sessions against it, each writing the
 * command register (memory decode), cache line size and interrupt line through the ring and reading
 * back; at random points of some sessions the backend is killed (each of SIGKILL, SIGHUP, SIGTERM,
 * SIGINT in turn) and the next export started. One process for everything: Node starts slowly
 * under TCG.
 *
 * Usage: fault-sessions.js BDF SOCKET STATE_DIR SEED. Prints one JSON object (FaultReport).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { FrontendClient, parseAddress } from '../../../src/frontend/index.js';
import { Random } from '../../support/fuzz-random.js';

const [bdf, socket, stateDir, seedText] = process.argv.slice(2);
if (seedText === undefined) throw new Error('usage: fault-sessions.js BDF SOCKET STATE_DIR SEED');
const random = new Random(Number(seedText));
const SESSIONS = 50;
const SIGNALS: NodeJS.Signals[] = ['SIGKILL', 'SIGHUP', 'SIGTERM', 'SIGINT'];
const CLI = new URL('../../../src/cli/main.js', import.meta.url).pathname;

export interface Registers { command: number; cacheLineSize: number; interruptLine: number }
/** What is left in the state directory and beside the socket. */
export interface Leftovers { locks: string[]; records: string[]; socket: boolean }
export interface Kill {
  session: number;
  signal: NodeJS.Signals;
  /** the signal went out before ring operation `killPoint` of the session (of `planned`) */
  killPoint: number;
  planned: number;
  /** operations the backend answered in that session */
  answered: number;
  exit: { code: number | null; signal: string | null };
  /** as the dead backend left them */
  registersAfterDeath: Registers;
  leftoversAfterDeath: Leftovers;
  /** the next export's stderr up to its ready line (stale lock and register repair notes) */
  restartNotes: string;
  /** once the next export is ready */
  registersAfterRestart: Registers;
}
export interface FaultReport {
  seed: number;
  original: Registers;
  sessions: number;
  ops: number;
  kills: Kill[];
  /** after a final SIGTERM */
  final: { exit: { code: number | null; signal: string | null }; registers: Registers; leftovers: Leftovers };
}

function registers(): Registers {
  const config = readFileSync(`/sys/bus/pci/devices/${bdf}/config`);
  return { command: config.readUInt16LE(0x04), cacheLineSize: config[0x0c], interruptLine: config[0x3c] };
}

/** The device's own files only: the state directory is shared with the other stories of the suite. */
function leftovers(): Leftovers {
  const list = (dir: string): string[] => (existsSync(join(stateDir, dir)) ? readdirSync(join(stateDir, dir)).filter((name) => name.startsWith(bdf)) : []);
  return { locks: list('locks'), records: list('registers'), socket: existsSync(socket) };
}

interface Backend { child: ChildProcess; notes: string; exited: Promise<{ code: number | null; signal: string | null }> }

/** Start `xpci export` and wait for its ready line; its stderr so far comes back as notes. */
async function startBackend(): Promise<Backend> {
  const child = spawn(process.execPath, [CLI, 'export', '--json', '--socket', socket, '--state-dir', stateDir, bdf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let notes = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => { notes += text; });
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const lines = createInterface({ input: child.stdout! });
  const ready = await new Promise<boolean>((resolve) => {
    lines.on('line', (line) => { if (line.startsWith('{"socket"')) resolve(true); });
    void exited.then(() => resolve(false));
  });
  if (!ready) throw new Error(`xpci export did not start: ${notes}`);
  child.stdout!.resume();
  return { child, notes, exited };
}

/** The session's ring operations: the three registers written (in random order) and read back, a BAR read. */
function sessionOps(client: FrontendClient): (() => Promise<unknown>)[] {
  const address = parseAddress(client.devices()[0].address);
  const writes = [
    () => client.configWrite(address, 0x04, 2, 0x0002),
    () => client.configWrite(address, 0x0c, 1, random.int(1, 0xff)),
    () => client.configWrite(address, 0x3c, 1, random.int(0, 0xff)),
  ].sort(() => random.below(3) - 1);
  const reads = [
    () => client.configRead(address, 0x04, 2),
    () => client.configRead(address, 0x0c, 1),
    () => client.configRead(address, 0x3c, 1),
    () => client.barRead(address, 0, 0, 4),
  ];
  return [...writes, ...Array.from({ length: random.int(2, 8) }, () => reads[random.below(reads.length)])];
}

const original = registers();
// Which sessions end in a kill: each signal once, at random sessions (every export start costs
// 5–10 s of guest time).
const killAt = new Map<number, NodeJS.Signals>();
for (const signal of SIGNALS) {
  let session: number;
  do session = random.below(SESSIONS); while (killAt.has(session));
  killAt.set(session, signal);
}

const kills: Kill[] = [];
let ops = 0;
let backend = await startBackend();
for (let session = 0; session < SESSIONS; session++) {
  const client = await FrontendClient.connect(socket, { requestTimeoutMs: 20_000 });
  const plan = sessionOps(client);
  const signal = killAt.get(session);
  // SIGKILL lands after the three writes, so that the repair by the next export always runs.
  const killPoint = signal === undefined ? -1 : signal === 'SIGKILL' ? random.int(3, plan.length) : random.below(plan.length + 1);
  let answered = 0;
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < plan.length; i++) {
    if (i === killPoint) backend.child.kill(signal);
    const op = plan[i]().then(() => { answered++; }, () => undefined);
    // Up to the kill point one at a time; from there on pipelined into the dying backend.
    if (killPoint === -1 || i < killPoint) await op;
    else pending.push(op);
  }
  if (killPoint === plan.length) backend.child.kill(signal);
  await Promise.all(pending);
  ops += answered;
  await client.close().catch(() => undefined);
  if (signal === undefined) continue;

  const exit = await backend.exited;
  const registersAfterDeath = registers();
  const leftoversAfterDeath = leftovers();
  backend = await startBackend();
  kills.push({ session, signal, killPoint, planned: plan.length, answered, exit, registersAfterDeath, leftoversAfterDeath, restartNotes: backend.notes, registersAfterRestart: registers() });
}
backend.child.kill('SIGTERM');
const exit = await backend.exited;
const report: FaultReport = { seed: random.seed, original, sessions: SESSIONS, ops, kills, final: { exit, registers: registers(), leftovers: leftovers() } };
process.stdout.write(JSON.stringify(report) + '\n');
