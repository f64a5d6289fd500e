/**
 * Child processes of the benchmark (the bare ping-pong server, `xpci export`), started with an
 * optional CPU pin, waited on until they say they are ready, and stopped by their own pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface Child {
  readonly pid: number;
  readonly process: ChildProcess;
  /** Everything the child wrote to stderr so far (for error messages). */
  stderr(): string;
  stop(): Promise<void>;
}

export interface SpawnOptions {
  /** Run under `taskset -c CPU`. */
  pinCpu?: number;
  /** Resolve once a stdout line satisfies this; its value is returned by `spawnReady`. */
  ready: (line: string) => unknown;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** fds of this process the child gets as its fds 3, 4, … (an eventfd it waits on) */
  inheritFds?: number[];
}

export async function spawnReady(command: string, args: string[], options: SpawnOptions): Promise<{ child: Child; ready: unknown }> {
  const argv = options.pinCpu === undefined ? [command, ...args] : ['taskset', '-c', String(options.pinCpu), command, ...args];
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe', ...(options.inheritFds ?? [])], env: options.env ?? process.env });
  let stderr = '';
  proc.stderr?.setEncoding('utf8').on('data', (text: string) => {
    stderr = (stderr + text).slice(-8000);
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const child: Child = {
    get pid() {
      return proc.pid ?? -1;
    },
    process: proc,
    stderr: () => stderr,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
  const lines = createInterface({ input: proc.stdout! });
  const ready = await new Promise<unknown>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`timed out waiting for ${argv.join(' ')} to be ready`)), options.timeoutMs ?? 15000);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      lines.close();
      void child.stop();
      reject(new Error(`${error.message}${stderr ? `; stderr: ${stderr.trim()}` : ''}`));
    };
    lines.on('line', (line) => {
      const value = options.ready(line);
      if (value !== undefined && value !== false) {
        clearTimeout(timer);
        resolve(value);
      }
    });
    proc.once('exit', (code, signal) => fail(new Error(`${argv.join(' ')} exited (${signal ?? code}) before it was ready`)));
    proc.once('error', (error) => fail(error));
  });
  // Keep draining stdout so the child never blocks on a full pipe.
  proc.stdout?.resume();
  return { child, ready };
}
