/**
 * Per-device export locks: one backend at a time may own a device. A lock is a file
 * `<stateDir>/locks/<bdf>.lock` holding the owner's pid and start time. It is published with link(2),
 * which like O_EXCL fails if the name exists, but also makes the content appear atomically (a reader
 * never sees a half-written lock). A lock whose owner is gone (`kill -9`) or whose pid now belongs to
 * another process is stale: it is reported and cleared, so a crash never blocks the next export.
 */
import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { debugLog } from '../../diagnostics/debug-log.js';
import { formatAddress, parseAddress, type PciAddress } from '../../pci/address.js';
import { readDirIfExists, readFileIfExists } from './atomic-file.js';
import { LifecycleError } from './errors.js';
import { ensureStateDir, locksDir } from './state-dir.js';
import { processStartTime, processState } from './process-identity.js';

const debug = debugLog('xpci:lock');

export interface LockHolder {
  pid: number;
  /** /proc/<pid>/stat start time, or null where /proc was unreadable */
  startTime: string | null;
  /** command line of the holder, for the busy message */
  command: string;
  /** ISO time the lock was taken */
  since: string;
}

export interface DeviceLock {
  readonly bdf: string;
  readonly path: string;
  /** What was cleared to take this lock ("stale lock of pid 123 (process gone)"), or null. */
  readonly staleNote: string | null;
  readonly released: boolean;
  /** Remove the lock file if it is still this lock's. Idempotent. */
  release(): void;
}

/** The device is owned by a live process. */
export class DeviceBusyError extends LifecycleError {
  constructor(message: string, readonly holder: LockHolder) {
    super(message);
  }
}

export const deviceLockPath = (stateDir: string, bdf: string): string => join(locksDir(stateDir), `${bdf}.lock`);

const normalise = (device: string | PciAddress): string => formatAddress(typeof device === 'string' ? parseAddress(device) : device);

function parseHolder(text: string): LockHolder | null {
  try {
    const value = JSON.parse(text) as Partial<LockHolder>;
    if (!Number.isSafeInteger(value.pid) || (value.pid as number) <= 0) return null;
    return {
      pid: value.pid as number,
      startTime: typeof value.startTime === 'string' ? value.startTime : null,
      command: typeof value.command === 'string' ? value.command : '?',
      since: typeof value.since === 'string' ? value.since : '?',
    };
  } catch {
    return null;
  }
}

export interface LockInspection {
  holder: LockHolder | null;
  /** 'alive' | 'dead' | 'reused', or 'unreadable' for a lock file that does not parse */
  state: 'alive' | 'dead' | 'reused' | 'unreadable';
  /** the file's exact content: identifies this lock instance (inode numbers get reused) */
  raw: string;
}

/** Who holds the lock of `device`, without taking it; null when it is free. */
export function inspectDeviceLock(stateDir: string, device: string | PciAddress): LockInspection | null {
  const path = deviceLockPath(stateDir, normalise(device));
  const text = readFileIfExists(path);
  if (text === null) return null;
  const holder = parseHolder(text);
  if (!holder) return { holder: null, state: 'unreadable', raw: text };
  return { holder, state: processState(holder.pid, holder.startTime), raw: text };
}

/**
 * Take the exclusive lock of `device`. Throws DeviceBusyError naming the holder's pid when a live
 * process holds it; clears a stale lock (noted in `staleNote`).
 */
let lockSequence = 0;

export function acquireDeviceLock(stateDir: string, device: string | PciAddress): DeviceLock {
  const bdf = normalise(device);
  ensureStateDir(stateDir);
  const path = deviceLockPath(stateDir, bdf);
  const me: LockHolder = {
    pid: process.pid,
    startTime: processStartTime(process.pid),
    command: process.argv.slice(1).join(' '),
    since: new Date().toISOString(),
  };
  // The nonce makes the content unique to this lock instance, so release() and stale clearing can
  // tell it from a successor's lock by content alone: pid and start time name the process, the
  // sequence the instance within it (no crypto module needed for that).
  const nonce = `${process.pid}.${me.startTime}.${++lockSequence}.${process.hrtime.bigint()}`;
  const draft = join(locksDir(stateDir), `.${bdf}.${nonce}.tmp`);
  const content = JSON.stringify({ ...me, nonce }) + '\n';
  writeFileSync(draft, content, { mode: 0o600 });
  const notes: string[] = [];
  try {
    // Each pass either takes the lock, fails on a live holder, or clears one stale lock; a few
    // passes cover other processes racing to clear the same stale lock.
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        linkSync(draft, path);
        debug('locked %s (%s)', bdf, path);
        return makeLock(bdf, path, content, notes.length > 0 ? notes.join('; ') : null);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const found = inspectDeviceLock(stateDir, bdf);
      if (!found) continue;
      if (found.state === 'alive' && found.holder) {
        const h = found.holder;
        const who = h.pid === process.pid ? 'this process' : `pid ${h.pid}`;
        throw new DeviceBusyError(
          `${bdf} is already in use by ${who} (${h.command || '?'}, since ${h.since}); lock file ${path}`, h);
      }
      const why = found.state === 'unreadable' ? 'unreadable lock file'
        : found.state === 'dead' ? `stale lock of pid ${found.holder?.pid} (process gone)`
        : `stale lock of pid ${found.holder?.pid} (pid now belongs to another process)`;
      if (clearStaleLock(path, found.raw)) {
        debug('cleared %s: %s', path, why);
        notes.push(`cleared ${why}`);
      }
    }
    throw new LifecycleError(`could not take the lock ${path}: other processes keep racing for it`);
  } finally {
    unlinkSync(draft);
  }
}

/**
 * Remove the lock at `path` only if it is still the one judged stale: move it aside first, so a
 * fresh lock that another process published meanwhile is put back instead of deleted.
 */
function clearStaleLock(path: string, staleContent: string): boolean {
  const aside = `${path}.stale.${process.pid}`;
  try {
    renameSync(path, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  if (readFileSync(aside, 'utf8') === staleContent) {
    unlinkSync(aside);
    return true;
  }
  try {
    linkSync(aside, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  unlinkSync(aside);
  return false;
}

function makeLock(bdf: string, path: string, content: string, staleNote: string | null): DeviceLock {
  return heldLock({ bdf, path, staleNote }, () => {
    try {
      if (readFileSync(path, 'utf8') === content) unlinkSync(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    debug('released %s', bdf);
  });
}

/** A DeviceLock whose release runs `release` once, however often it is called. */
export function heldLock(fields: Pick<DeviceLock, 'bdf' | 'path' | 'staleNote'>, release: () => void): DeviceLock {
  let released = false;
  return {
    ...fields,
    get released() {
      return released;
    },
    release(): void {
      if (released) return;
      released = true;
      release();
    },
  };
}

/** Every lock file of `stateDir` with its holder, by device; no locks/ folder means none. */
export function listLocks(stateDir: string): (LockInspection & { bdf: string })[] {
  return readDirIfExists(locksDir(stateDir))
    .filter((name) => /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]\.lock$/.test(name))
    .sort()
    .flatMap((name) => {
      const bdf = name.slice(0, -'.lock'.length);
      const found = inspectDeviceLock(stateDir, bdf);
      return found ? [{ bdf, ...found }] : [];
    });
}
