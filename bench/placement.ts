/**
 * CPU placement of the benchmark's processes. On this VM a wake-up across vCPUs costs ~40 µs each
 * way (haltpoll with polling disabled), more than a whole same-CPU round trip, so every latency
 * figure is reported with where its processes ran.
 */
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

/** The CPU a process last ran on: field 39 ("processor") of /proc/<pid>/stat. */
export function lastCpu(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) is parenthesised and may hold spaces: count fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpu = Number(fields[39 - 3]);
    return Number.isInteger(cpu) ? cpu : undefined;
  } catch {
    return undefined;
  }
}

/** Resident set size of a process in KiB (VmRSS). */
export function rssKiB(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Records the CPUs each named process was seen on, sampled after every measured run. */
export class PlacementLog {
  private readonly seen = new Map<string, Set<number>>();

  sample(pids: Record<string, number>): void {
    for (const [name, pid] of Object.entries(pids)) {
      const cpu = lastCpu(pid);
      if (cpu === undefined) continue;
      const set = this.seen.get(name) ?? new Set<number>();
      set.add(cpu);
      this.seen.set(name, set);
    }
  }

  /** "client cpu0, server cpu0 (same CPU)" or with several CPUs when the scheduler moved them. */
  describe(): string {
    const parts = [...this.seen.entries()].map(([name, cpus]) => `${name} cpu${[...cpus].sort().join('/')}`);
    const sets = [...this.seen.values()];
    const same = sets.length > 1 && sets.every((s) => s.size === 1) && new Set(sets.map((s) => [...s][0])).size === 1;
    const split = sets.length > 1 && sets.every((s) => s.size === 1) && !same;
    return parts.join(', ') + (same ? ' (same CPU)' : split ? ' (cross CPU)' : sets.length > 1 ? ' (moved)' : '');
  }

  toJSON(): Record<string, number[]> {
    return Object.fromEntries([...this.seen.entries()].map(([name, cpus]) => [name, [...cpus].sort()]));
  }
}

/** taskset(1) when installed: `--pin` uses it to put every process on one CPU. */
export function tasksetAvailable(): boolean {
  try {
    execFileSync('taskset', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Pin an already running process (this one, typically) to `cpu`. */
export function pinProcess(pid: number, cpu: number): void {
  execFileSync('taskset', ['-cp', String(cpu), String(pid)], { stdio: 'ignore' });
}
