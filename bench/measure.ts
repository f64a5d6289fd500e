/**
 * Timing primitives: each figure is the median over several short runs of a fixed duration, so a
 * run disturbed by a scheduler decision (a cross-CPU wake-up costs ~40 µs each way on this VM)
 * moves the median little. Nothing here asserts: the bench reports, targets are compared in main.
 */
import { performance } from 'node:perf_hooks';

export interface Sample {
  ops: number;
  seconds: number;
}

export interface Figure {
  /** Median over the runs. */
  usPerOp: number;
  opsPerSec: number;
  /** µs/op of every run, in run order. */
  runs: number[];
  /** Operations in flight while measuring. */
  depth: number;
}

export function figure(samples: Sample[], depth: number): Figure {
  const runs = samples.map((s) => (s.seconds * 1e6) / Math.max(1, s.ops));
  const usPerOp = median(runs);
  return { usPerOp, opsPerSec: 1e6 / usPerOp, runs, depth };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Keep `depth` operations in flight for `durationMs`; each completion issues the next. */
export function pipelined(depth: number, durationMs: number, issue: () => Promise<unknown>): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const end = start + durationMs;
    let ops = 0;
    let active = 0;
    let failed = false;
    const done = (): void => resolve({ ops, seconds: (performance.now() - start) / 1000 });
    const onDone = (): void => {
      ops++;
      active--;
      if (performance.now() < end) launch();
      else if (active === 0) done();
    };
    const onError = (error: unknown): void => {
      if (!failed) {
        failed = true;
        reject(error);
      }
    };
    const launch = (): void => {
      while (!failed && active < depth) {
        active++;
        issue().then(onDone, onError);
      }
    };
    launch();
  });
}

/** A synchronous operation in a tight loop (direct pread). */
export function loop(durationMs: number, op: () => void): Sample {
  const start = performance.now();
  const end = start + durationMs;
  let ops = 0;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 16; i++) op();
    ops += 16;
    now = performance.now();
  }
  return { ops, seconds: (now - start) / 1000 };
}

export async function repeat(runs: number, run: () => Promise<Sample> | Sample): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (let i = 0; i < runs; i++) samples.push(await run());
  return samples;
}
