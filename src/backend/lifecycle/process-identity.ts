/**
 * Is the process that wrote a lock still the same process? A pid alone is not enough: pids are
 * reused, so a lock also records the process start time (field 22 of /proc/<pid>/stat, clock ticks
 * since boot), which differs for any later process that gets the same pid. A zombie (exited, not yet
 * reaped by its parent) answers kill(pid, 0) but will never release anything: it counts as dead.
 */
import { readFileSync } from 'node:fs';

/** Fields 3.. of /proc/<pid>/stat, or null if the process does not exist (or no /proc). */
function statFields(pid: number): string[] | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm (field 2) may contain spaces and parentheses: fields 3.. follow the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** Start time of `pid` as the kernel reports it, or null if the process does not exist (or no /proc). */
export function processStartTime(pid: number): string | null {
  return statFields(pid)?.[22 - 3] ?? null;
}

/** Z (zombie) or X (being reaped): the process has exited; only its pid entry remains. */
function hasExited(pid: number): boolean {
  const state = statFields(pid)?.[0];
  return state === 'Z' || state === 'X';
}

export type ProcessState = 'alive' | 'dead' | 'reused';

/** Whether the process (pid, startTime) recorded earlier still runs. */
export function processState(pid: number, startTime: string | null): ProcessState {
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: it exists but belongs to someone else, which still makes it alive.
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return 'dead';
  }
  if (hasExited(pid)) return 'dead';
  if (startTime === null) return 'alive';
  const now = processStartTime(pid);
  if (now === null) return 'alive';
  return now === startTime ? 'alive' : 'reused';
}
