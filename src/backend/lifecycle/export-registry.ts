/**
 * Which exports run on this machine: each listening backend leaves one record in
 * `<stateDir>/exports/<pid>.json` (its pid and start time, socket, control socket, mode) and removes
 * it when it ends, so `xpci status` can find every export that shares the state directory and ask
 * each over its control socket. A record whose process is gone (`kill -9`) is reported as stale.
 */
import { readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { ExportMode } from '../../protocol/ring/messages.js';
import { readDirIfExists, writeFileAtomic } from './atomic-file.js';
import { ensureDirectory, ensureStateDir } from './state-dir.js';
import { processStartTime, processState, type ProcessState } from './process-identity.js';

export interface ExportRecord {
  pid: number;
  /** /proc start time, to tell a reused pid from the backend */
  startTime: string | null;
  socket: string;
  control: string;
  mode: ExportMode;
  readOnly: boolean;
  /** ISO time the export started listening */
  since: string;
}

export const exportsDir = (stateDir: string): string => join(stateDir, 'exports');

const recordFile = (stateDir: string, pid: number): string => join(exportsDir(stateDir), `${pid}.json`);

/** Publish this process's export; returns the function that withdraws it. */
export function registerExport(stateDir: string, entry: Omit<ExportRecord, 'pid' | 'startTime' | 'since'>): () => void {
  ensureStateDir(stateDir);
  ensureDirectory(exportsDir(stateDir));
  const record: ExportRecord = { pid: process.pid, startTime: processStartTime(process.pid), ...entry, since: new Date().toISOString() };
  const path = recordFile(stateDir, process.pid);
  writeFileAtomic(path, JSON.stringify(record) + '\n');
  return () => {
    try {
      unlinkSync(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  };
}

function parseRecord(text: string): ExportRecord | null {
  try {
    const value = JSON.parse(text) as Partial<ExportRecord>;
    if (!Number.isSafeInteger(value.pid) || typeof value.socket !== 'string' || typeof value.control !== 'string') return null;
    return {
      pid: value.pid as number,
      startTime: typeof value.startTime === 'string' ? value.startTime : null,
      socket: value.socket,
      control: value.control,
      mode: value.mode === 'passthrough' ? 'passthrough' : 'vpci',
      readOnly: value.readOnly === true,
      since: typeof value.since === 'string' ? value.since : '?',
    };
  } catch {
    return null;
  }
}

/**
 * The export records of `stateDir`, each with whether its process still runs. No exports/ folder
 * means none; an unreadable folder throws (EACCES: the caller names the fix).
 */
export function listExports(stateDir: string): (ExportRecord & { state: ProcessState })[] {
  return readDirIfExists(exportsDir(stateDir))
    .filter((name) => /^\d+\.json$/.test(name))
    .map((name) => parseRecord(readFileSync(join(exportsDir(stateDir), name), 'utf8')))
    .filter((record): record is ExportRecord => record !== null)
    .map((record) => ({ ...record, state: processState(record.pid, record.startTime) }))
    .sort((a, b) => a.pid - b.pid);
}
