/**
 * Running the xpci CLI as a child process (dist/src/cli/main.js): one-shot commands, and
 * `xpci export --json` as a long-running backend for tests that need the real one.
 * Asynchronous on purpose: a test may serve a backend in its own event loop meanwhile.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';

export const XPCI_MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/**
 * The node flags of the CLI's shebang (`#!/usr/bin/env -S node FLAG...`): a backend under test runs
 * as `xpci export` runs, with the small young generation its memory figures depend on.
 */
export const XPCI_NODE_FLAGS: readonly string[] = (() => {
  const first = readFileSync(XPCI_MAIN, 'utf8').split('\n', 1)[0];
  const words = first.startsWith('#!') ? first.slice(2).trim().split(/\s+/) : [];
  return words.slice(words.findIndex((word) => word === 'node' || word.endsWith('/node')) + 1);
})();

export interface XpciResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Run any program to its end and collect its output (stdin closed); `as`: as this uid/gid (the test must be root), no supplementary groups. */
export async function runProcess(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; as?: { uid: number; gid: number } } = {}): Promise<XpciResult> {
  const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'], ...options.as });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => { stdout += text; });
  child.stderr.setEncoding('utf8').on('data', (text: string) => { stderr += text; });
  const [status] = await once(child, 'close');
  return { status: status as number | null, stdout, stderr };
}

export function runXpci(args: string[], env: NodeJS.ProcessEnv = {}, as?: { uid: number; gid: number }): Promise<XpciResult> {
  return runProcess(process.execPath, [XPCI_MAIN, ...args], { env: { ...process.env, DEBUG: '', ...env }, as });
}

export interface RunningExport {
  socket: string;
  /** the bound tls://HOST:PORT, with --listen */
  listen?: string;
  mode: string;
  devices: { host: string; guest: string }[];
  process: ChildProcess;
  stderr(): string;
  /** SIGTERM and wait for the exit status. */
  stop(): Promise<number | null>;
}

/** Start `xpci export --json ARGS` and resolve once its ready line says the socket listens. */
export async function startExport(args: string[], env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []): Promise<RunningExport> {
  const child = spawn(process.execPath, [...XPCI_NODE_FLAGS, ...nodeArgs, XPCI_MAIN, 'export', '--json', ...args], { env: { ...process.env, DEBUG: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => { stderr += text; });
  const exited = once(child, 'exit');
  const lines = createInterface({ input: child.stdout! });
  const ready = new Promise<{ socket: string; mode: string; devices: { host: string; guest: string }[] }>((resolve, reject) => {
    lines.on('line', (line) => {
      try {
        const parsed = JSON.parse(line) as { socket?: string };
        if (parsed.socket) resolve(parsed as { socket: string; mode: string; devices: { host: string; guest: string }[] });
      } catch {
        // not the JSON line
      }
    });
    void exited.then(([code]) => reject(new Error(`xpci export exited with ${String(code)} before it was ready: ${stderr.trim()}`)));
  });
  const info = await ready;
  return {
    ...info,
    process: child,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const [code] = await exited;
      return code as number | null;
    },
  };
}
