/**
 * The state directory (default /run/xpci): assignable records and export locks live here so that a
 * crash or `kill -9` leaves enough behind for the next xpci process to recover. On tmpfs /run it is
 * forgotten at reboot, which is right: after a reboot no device is seized and no export runs.
 */
import { chmodSync, lstatSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LifecycleError } from './errors.js';

export const DEFAULT_STATE_DIR = '/run/xpci';

/** `--state-dir` wins, then $XPCI_STATE_DIR, then /run/xpci. */
export function resolveStateDir(option?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (option !== undefined && option !== '') return option;
  const fromEnv = env.XPCI_STATE_DIR;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_STATE_DIR;
}

/**
 * Where a non-root user's export of a fixture tree keeps its state and socket when none is named:
 * $XDG_RUNTIME_DIR/xpci (private to the user), else <tmpdir>/xpci-<uid>. ensureDirectory refuses
 * it if another user created it first.
 */
export function userRuntimeDir(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0): string {
  const runtime = env.XDG_RUNTIME_DIR;
  return runtime !== undefined && runtime !== '' ? join(runtime, 'xpci') : join(tmpdir(), `xpci-${uid}`);
}

export const assignableDir = (stateDir: string): string => join(stateDir, 'assignable');
export const locksDir = (stateDir: string): string => join(stateDir, 'locks');

/**
 * Create `dir` (and missing parents) with `mode`, or check an existing one. Mode 0700 by default; a
 * backend whose ring socket lives here and that admits non-root peers asks for 0711 so they can
 * reach the socket without listing the directory; search permission granted that way is kept by
 * later 0700 calls. Refuses a symlink or a directory owned by another user (who could plant records
 * or locks); removes group/other read and write permission (writing would allow the same).
 */
export function ensureDirectory(dir: string, mode = 0o700): void {
  mkdirSync(dir, { recursive: true, mode });
  const stat = lstatSync(dir);
  if (!stat.isDirectory()) throw new LifecycleError(`state directory ${dir} is not a directory (a symlink or file is refused)`);
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid) {
    throw new LifecycleError(`state directory ${dir} is owned by uid ${stat.uid}, not by this process (uid ${uid}); refusing to trust it`);
  }
  const current = stat.mode & 0o777;
  const wanted = (current & 0o711) | (mode & 0o011) | 0o700;
  if (wanted !== current) chmodSync(dir, wanted);
}

/**
 * The state directory with its `assignable/` and `locks/` subdirectories (always 0700), all created
 * if missing. `mode` applies to the state directory itself (0711: see ensureDirectory).
 */
export function ensureStateDir(stateDir: string, mode = 0o700): string {
  ensureDirectory(stateDir, mode);
  ensureDirectory(assignableDir(stateDir));
  ensureDirectory(locksDir(stateDir));
  return stateDir;
}
