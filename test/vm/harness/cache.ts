/**
 * Where the test bed keeps what it downloads and builds: `$XPCI_VM_CACHE`, else
 * `$XDG_CACHE_HOME/xpci/vm` (default `~/.cache/xpci/vm`), outside the checkout so that every clone on
 * a machine — CI's fresh clone included — reuses one download. Entries are keyed by pinned versions
 * and content hashes, so a second run reuses them.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: the first directory above this module that holds package.json. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`test bed: no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
  return dir;
}

/** Source files of the harness that are used at run time (init.sh, extract-vmlinux.py). */
export const harnessSourceFile = (name: string): string => join(repoRoot(), 'test', 'vm', 'harness', name);

export function cacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  const dir = process.env.XPCI_VM_CACHE ? resolve(process.env.XPCI_VM_CACHE) : join(base, 'xpci', 'vm');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * Run `fn` while holding an exclusive flock(1) on `lockPath`, so parallel test files build the
 * assets once. The lock lives in a child `flock … cat` that exits when its stdin closes, which also
 * happens if this process dies: a crashed builder never leaves a stale lock behind.
 */
export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>): Promise<T> {
  const holder = spawn('flock', ['--exclusive', lockPath, '--command', 'echo locked; exec cat'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  holder.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await new Promise<void>((resolveLocked, reject) => {
    holder.once('error', (error) => reject(new Error(`test bed: cannot run flock(1) for ${lockPath}: ${error.message}`)));
    holder.once('exit', (code) => reject(new Error(`test bed: flock ${lockPath} exited with ${code}: ${stderr.trim()}`)));
    holder.stdout.once('data', () => resolveLocked());
  });
  holder.removeAllListeners('exit');
  try {
    return await fn();
  } finally {
    holder.stdin.end();
    await new Promise((done) => (holder.exitCode !== null ? done(undefined) : holder.once('exit', done)));
  }
}
