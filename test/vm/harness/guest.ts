/**
 * A persistent test guest: boot once per suite file, exec any number of commands, shut down.
 *
 *   const vm = await Guest.boot({ modules: ['e1000'] });
 *   const { exitCode, stdout } = await vm.exec('lspci -nn');
 *   await vm.shutdown();
 *
 * Commands run as root through /bin/bash in the guest, in the repository root (shared read-write
 * at the same absolute path), with the host's / read-only underneath a tmpfs overlay. A command
 * that exits non-zero resolves normally; only "no result" throws (GuestTimeoutError,
 * GuestCrashedError), so an exit status is never confused with a harness failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, ftruncateSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import createDebug from 'debug';
import { AgentChannel, type AgentResult } from './agent-channel.js';
import { ensureGuestAssets } from './assets.js';
import { repoRoot } from './cache.js';
import { DEFAULT_IVSHMEM_SIZE, type DeviceSet } from './devices.js';
import { GuestCrashedError, GuestTimeoutError } from './errors.js';
import { normalizeModuleName } from './kernel-modules.js';
import { qemuCommand } from './qemu-command.js';
import { createRunDir, ivshmemPathFor } from './run-dir.js';

const debug = createDebug('xpci:vm');

export const QEMU_BINARY = 'qemu-system-x86_64';

export interface BootOptions {
  devices?: DeviceSet;
  /** kernel modules to load at boot (e.g. ['e1000'] binds 00:05.x); default none: devices stay driverless */
  modules?: string[];
  /** more host directories shared read-write at the same absolute path (the repo always is) */
  shares?: string[];
  /** deadline for QEMU start to agent ready (default 60 s) */
  timeoutMs?: number;
  /** guest RAM (default 512 MiB) */
  memoryMiB?: number;
  /** how long past an exec's deadline the agent may stay silent before the guest counts as hung (default 15 s) */
  hangGraceMs?: number;
  /** an emulated Intel IOMMU (`-device intel-iommu`, `intel_iommu=on`) for VFIO suites (default off) */
  iommu?: boolean;
  /** another QEMU binary (e.g. the vfio-user build) and arguments appended to the command line */
  qemu?: { binary: string; extraArgs?: string[] };
}

export interface ExecOptions {
  /** the guest kills the command's process group after this (default 60 s) */
  timeoutMs?: number;
  /** absolute guest directory (default: the repository root) */
  cwd?: string;
  env?: Record<string, string>;
  /** send stderr into stdout, interleaved as written */
  mergeStderr?: boolean;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

const DEFAULT_BOOT_TIMEOUT_MS = 60_000;
const DEFAULT_EXEC_TIMEOUT_MS = 60_000;
const DEFAULT_HANG_GRACE_MS = 15_000;
const CONSOLE_HEADLINE = /Kernel panic|XPCI-FATAL|BUG:|Oops|general protection|Out of memory/;
const SHUTDOWN_GRACE_MS = 15_000;

const liveQemus = new Set<ChildProcess>();
let exitHookInstalled = false;

/** A test process that dies must not leave guests behind (the agent also powers off on EOF). */
function trackQemu(child: ChildProcess): void {
  liveQemus.add(child);
  child.once('exit', () => liveQemus.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const qemu of liveQemus) qemu.kill('SIGKILL');
  });
}

const shellQuote = (text: string): string => `'${text.replace(/'/g, `'\\''`)}'`;

export class Guest {
  readonly repoRoot: string;
  /** Host file behind ivshmem-plain's BAR2 (read/write it to check guest BAR accesses); null without standard devices. */
  readonly ivshmemPath: string | null;
  /** Host Unix socket of the xpci.0 port: QEMU's listening socket (server mode) or the test's (client mode). */
  readonly xpciSocketPath: string | null;
  /** Kernel release the guest reported. */
  kernelRelease = '';
  /** Milliseconds from QEMU start to agent ready. */
  bootMs = 0;

  private qemuExit: { code: number | null; signal: string | null } | null = null;
  private qemuStderr = '';
  private spawnError: string | null = null;
  private agent: AgentChannel | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private shutdownPromise: Promise<void> | null = null;
  private readonly exited: Promise<void>;

  private constructor(
    private readonly options: BootOptions,
    private readonly runDir: string,
    private readonly qemu: ChildProcess,
    private readonly agentServer: Server,
    ivshmemPath: string | null,
    xpciSocketPath: string | null,
  ) {
    this.repoRoot = repoRoot();
    this.ivshmemPath = ivshmemPath;
    this.xpciSocketPath = xpciSocketPath;
    qemu.stderr?.setEncoding('utf8');
    qemu.stderr?.on('data', (text: string) => (this.qemuStderr = (this.qemuStderr + text).slice(-8192)));
    this.exited = new Promise((resolve) => {
      qemu.once('error', (error) => {
        this.spawnError = `cannot run ${QEMU_BINARY}: ${error.message}`;
        this.qemuExit ??= { code: null, signal: null };
        resolve();
      });
      qemu.once('exit', (code, signal) => {
        this.qemuExit = { code, signal };
        debug('qemu exited: code %s signal %s', code, signal);
        this.agent?.close();
        resolve();
      });
    });
  }

  /** Start QEMU and wait until the guest's agent answers. */
  static async boot(options: BootOptions = {}): Promise<Guest> {
    const assets = await ensureGuestAssets();
    const modules = (options.modules ?? []).map(normalizeModuleName);
    const missing = modules.filter((m) => !assets.modules.includes(m));
    if (missing.length > 0) {
      throw new Error(`test bed: module(s) ${missing.join(', ')} are not in the initramfs; add them to GUEST_MODULES in test/vm/harness/assets.ts`);
    }
    const devices = options.devices ?? {};
    const standard = devices.standard ?? true;
    const runDir = createRunDir();
    const ivshmemPath = standard ? ivshmemPathFor(runDir) : null;
    const ivshmemSize = devices.ivshmemSize ?? DEFAULT_IVSHMEM_SIZE;
    if (ivshmemPath) {
      const fd = openSync(ivshmemPath, 'w+', 0o600);
      ftruncateSync(fd, ivshmemSize);
      closeSync(fd);
    }
    const port = devices.xpciPort === false ? null : devices.xpciPort ?? { mode: 'server' as const };
    const xpciPort = port && { mode: port.mode, path: port.mode === 'client' ? port.path : join(runDir, 'xpci.0.sock') };

    const agentSocketPath = join(runDir, 'agent.sock');
    const agentServer = createServer();
    const connection = new Promise<Socket>((resolve) => agentServer.once('connection', resolve));
    await new Promise<void>((resolve, reject) => {
      agentServer.once('error', reject);
      agentServer.listen(agentSocketPath, resolve);
    });
    agentServer.unref();

    const args = qemuCommand({
      vmlinux: assets.vmlinux,
      initramfs: assets.initramfs,
      memoryMiB: options.memoryMiB ?? 512,
      consoleLogPath: join(runDir, 'console.log'),
      agentSocketPath,
      rwShares: [repoRoot(), ...(options.shares ?? [])],
      modules,
      ivshmem: ivshmemPath ? { path: ivshmemPath, size: ivshmemSize } : null,
      xpciPort,
      extraDevices: devices.extraDevices ?? [],
      iommu: options.iommu ?? false,
    });
    args.push(...(options.qemu?.extraArgs ?? []));
    const binary = options.qemu?.binary ?? QEMU_BINARY;
    debug('%s %s', binary, args.join(' '));
    const started = Date.now();
    const qemu = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    trackQemu(qemu);
    // Idle guests must not hold the test process open; the exit hook kills what is left.
    qemu.unref();
    (qemu.stderr as Socket | null)?.unref();
    const guest = new Guest(options, runDir, qemu, agentServer, ivshmemPath, xpciPort?.path ?? null);

    const timeoutMs = options.timeoutMs ?? DEFAULT_BOOT_TIMEOUT_MS;
    try {
      const ready = (async () => {
        const socket = await connection;
        socket.unref();
        guest.agent = new AgentChannel(socket);
        return guest.agent.ready;
      })();
      guest.kernelRelease = await guest.raceWithQemu(ready, timeoutMs, 'boot');
    } catch (error) {
      await guest.kill();
      throw error;
    }
    guest.bootMs = Date.now() - started;
    debug('guest ready in %d ms (kernel %s, run dir %s)', guest.bootMs, guest.kernelRelease, runDir);
    return guest;
  }

  /** The last 8 KiB QEMU wrote on stderr (its error reports). */
  get qemuStderrTail(): string {
    return this.qemuStderr;
  }

  /** QEMU's process id on the host. */
  get qemuPid(): number | undefined {
    return this.qemu.pid;
  }

  get alive(): boolean {
    return this.qemuExit === null && this.shutdownPromise === null;
  }

  /** Boot a fresh guest with the same options (after a crash or a hung guest). */
  restart(): Promise<Guest> {
    return Guest.boot(this.options);
  }

  /** Run `command` with /bin/bash in the guest. Calls are serialized. */
  exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    const run = this.queue.then(() => this.execNow(command, options));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** exec, and reject unless the command exits 0 (the error names the command, its status and stderr). */
  async execOk(command: string, options: ExecOptions = {}): Promise<string> {
    const result = await this.exec(command, options);
    if (result.exitCode !== 0) {
      throw new Error(`guest command exited with ${result.exitCode}: ${command}\n--- stderr ---\n${result.stderr.trim()}\n--- stdout ---\n${result.stdout.trim()}`);
    }
    return result.stdout;
  }

  private async execNow(command: string, options: ExecOptions): Promise<ExecResult> {
    if (!this.alive || !this.agent) {
      throw new GuestCrashedError('test bed: the guest is not running', this.qemuExit?.code ?? null, this.qemuExit?.signal ?? null, this.diagnostics());
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    const script = [
      `cd -- ${shellQuote(options.cwd ?? this.repoRoot)} || exit 1`,
      ...Object.entries(options.env ?? {}).map(([name, value]) => `export ${name}=${shellQuote(value)}`),
      command,
      '',
    ].join('\n');
    const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
    const request = this.agent.request(script, seconds, options.mergeStderr ?? false);
    const hangGraceMs = this.options.hangGraceMs ?? DEFAULT_HANG_GRACE_MS;
    const result: AgentResult = await this.raceWithQemu(request, seconds * 1000 + hangGraceMs, 'exec');
    if (result.status === 'timeout') {
      throw new GuestTimeoutError(
        `test bed: command timed out after ${seconds} s and was killed: ${command.slice(0, 200)}`,
        'exec', false, result.stdout, result.stderr, '',
      );
    }
    return { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr };
  }

  /**
   * `work`, unless QEMU exits first or the agent channel breaks (GuestCrashedError), or the
   * deadline passes (QEMU killed, GuestTimeoutError).
   */
  private async raceWithQemu<T>(work: Promise<T>, deadlineMs: number, phase: 'boot' | 'exec'): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => (timer = setTimeout(() => resolve('deadline'), deadlineMs)));
    const exited = this.exited.then(() => 'exited' as const);
    try {
      const outcome = await Promise.race([work.then((value) => ({ value }), (error: Error) => ({ error })), deadline, exited]);
      if (outcome === 'deadline') {
        const diagnostics = this.diagnostics();
        await this.kill();
        throw new GuestTimeoutError(
          `test bed: the guest gave no answer within ${deadlineMs} ms (${phase}); QEMU was killed`,
          phase, true, '', '', diagnostics,
        );
      }
      if (outcome !== 'exited' && 'value' in outcome) return outcome.value;
      // The channel closes a moment before QEMU's exit is reported: give the exit a chance to explain it.
      const cause = outcome === 'exited' ? 'QEMU exited' : outcome.error.message;
      if (outcome !== 'exited') await settlesWithin(this.exited, 2000);
      const diagnostics = this.diagnostics();
      const exit = this.qemuExit;
      if (!exit) await this.kill();
      throw new GuestCrashedError(
        `test bed: guest lost during ${phase}: ${cause}` +
          (exit ? ` (QEMU exit code ${exit.code}, signal ${exit.signal})` : '; QEMU was killed') +
          (this.spawnError ? ` (${this.spawnError})` : ''),
        exit?.code ?? null, exit?.signal ?? null, diagnostics,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /** The serial console (kernel messages, init's XPCI-FATAL) and QEMU's stderr, last lines of each. */
  diagnostics(): string {
    const path = join(this.runDir, 'console.log');
    const lines = existsSync(path) ? readFileSync(path, 'utf8').replace(/\r/g, '').split('\n') : [];
    // A panic's headline sits above its long stack dump: quote it even when it left the tail.
    const tailStart = Math.max(0, lines.length - 40);
    const headlines = lines.slice(0, tailStart).filter((line) => CONSOLE_HEADLINE.test(line));
    const console = [...headlines, ...(headlines.length ? ['[…]'] : []), ...lines.slice(tailStart)].join('\n').trim();
    return [console && `console:\n${console}`, this.qemuStderr.trim() && `qemu stderr:\n${this.qemuStderr.trim()}`].filter(Boolean).join('\n');
  }

  /** Power the guest off (SIGKILL if it does not stop) and remove its run directory and ivshmem file. Idempotent. */
  shutdown(): Promise<void> {
    this.shutdownPromise ??= (async () => {
      await this.queue;
      if (this.qemuExit === null) {
        this.agent?.shutdown();
        if (!(await settlesWithin(this.exited, SHUTDOWN_GRACE_MS))) await this.kill();
      }
      this.cleanup();
    })();
    return this.shutdownPromise;
  }

  private async kill(): Promise<void> {
    if (this.qemuExit === null) {
      // The child is unref'd while idle (a forgotten guest must not hold the test process open);
      // here its exit is the only thing left to wait for.
      this.qemu.ref();
      this.qemu.kill('SIGKILL');
      await this.exited;
    }
    this.cleanup();
  }

  private cleanup(): void {
    this.agent?.close();
    this.agentServer.close();
    if (this.ivshmemPath) rmSync(this.ivshmemPath, { force: true });
    rmSync(this.runDir, { recursive: true, force: true });
  }
}

/** true if `promise` settles within `ms`; the timer never outlives it (it would hold the process open). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true, () => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}
