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

/**
 * Where the processes of one figure ran: /proc is sampled every 10 ms while a run is
 * going (a migration in the middle of a run matters as much as one at its end), and the share of
 * samples with every process on the same CPU is what explains a slow 1-in-flight figure.
 */
export class PlacementLog {
  private readonly seen = new Map<string, Set<number>>();
  private samples = 0;
  private together = 0;
  private timer: NodeJS.Timeout | undefined;

  start(pids: Record<string, number>): void {
    this.sample(pids);
    this.timer = setInterval(() => this.sample(pids), 10);
  }

  stop(pids: Record<string, number>): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.sample(pids);
  }

  private sample(pids: Record<string, number>): void {
    const cpus: number[] = [];
    for (const [name, pid] of Object.entries(pids)) {
      const cpu = lastCpu(pid);
      if (cpu === undefined) continue;
      cpus.push(cpu);
      const set = this.seen.get(name) ?? new Set<number>();
      set.add(cpu);
      this.seen.set(name, set);
    }
    if (cpus.length > 1) {
      this.samples++;
      if (cpus.every((c) => c === cpus[0])) this.together++;
    }
  }

  /** Share of samples with every process on one CPU; undefined for a single process. */
  get sameCpuShare(): number | undefined {
    return this.samples === 0 ? undefined : this.together / this.samples;
  }

  /** "bench cpu0, backend cpu0/1; same CPU in 87% of samples". */
  describe(): string {
    const parts = [...this.seen.entries()].map(([name, cpus]) => `${name} cpu${[...cpus].sort().join('/')}`);
    const share = this.sameCpuShare;
    return parts.join(', ') + (share === undefined ? '' : `; same CPU in ${Math.round(share * 100)}% of samples`);
  }

  toJSON(): { cpus: Record<string, number[]>; sameCpuShare?: number } {
    const cpus = Object.fromEntries([...this.seen.entries()].map(([name, set]) => [name, [...set].sort()]));
    const share = this.sameCpuShare;
    return share === undefined ? { cpus } : { cpus, sameCpuShare: Math.round(share * 1000) / 1000 };
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
