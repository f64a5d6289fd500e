/**
 * Permission failures explained: which file refused, its mode and owner, and what to run instead.
 * One line each, exit 1 (they are runtime failures, not usage).
 */
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { RuntimeError } from './errors.js';

const isPermissionError = (error: unknown): error is NodeJS.ErrnoException =>
  error instanceof Error && ['EACCES', 'EPERM'].includes((error as NodeJS.ErrnoException).code ?? '');

const ownerName = (uid: number): string => (uid === 0 ? 'root' : `uid ${uid}`);

/** "mode 0700, owner root" for the first of `paths` that can be stat'ed, else ''. */
export function describeOwnership(...paths: string[]): string {
  for (const path of paths) {
    try {
      const info = statSync(path);
      return `mode ${(info.mode & 0o7777).toString(8).padStart(4, '0')}, owner ${ownerName(info.uid)}`;
    } catch {
      // try the next one
    }
  }
  return '';
}

/** The state directory (or a file in it) could not be read or written. Other errors pass through. */
export function stateDirFailure(stateDir: string, error: unknown): Error {
  if (!isPermissionError(error)) return error instanceof Error ? error : new Error(String(error));
  const where = error.path ?? stateDir;
  const ownership = describeOwnership(where, stateDir, dirname(stateDir));
  return new RuntimeError(`permission denied on ${where}${ownership ? ` (${ownership})` : ''}: `
    + `the state directory ${stateDir} belongs to whoever runs the exports; run as root (or that user), or name another with --state-dir`);
}
