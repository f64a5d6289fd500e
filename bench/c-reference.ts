/**
 * The C reference of the genuine 1-in-flight figure (bench/c-reference.c): built with the system
 * compiler (the one node-gyp already needs) into a temporary directory and run in the same bench
 * run as the ring figures, so the target compares xpci against what C achieves here and now.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Sample } from './measure.js';

const SOURCE = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'c-reference.c');

/** The compiled reference in `dir`, or the reason it could not be built. */
export function buildCReference(dir: string): { binary: string } | { error: string } {
  const binary = join(dir, 'c-reference');
  const compiler = process.env.CC || 'cc';
  try {
    execFileSync(compiler, ['-O2', '-o', binary, SOURCE], { stdio: ['ignore', 'ignore', 'pipe'] });
    return { binary };
  } catch (error) {
    return { error: `${compiler} could not build ${SOURCE}: ${(error as Error).message.split('\n')[0]}` };
  }
}

/** `runs` samples of the reference reading `size` bytes at `offset` of `configPath` (read-only). */
export function runCReference(binary: string, configPath: string, register: { offset: number; size: number }, runMs: number, runs: number, pinCpu?: number): Sample[] {
  const args = [configPath, String(register.offset), String(register.size), String(runMs), String(runs)];
  const argv = pinCpu === undefined ? [binary, ...args] : ['taskset', '-c', String(pinCpu), binary, ...args];
  const run = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: (runs + 2) * runMs + 30_000 });
  if (run.status !== 0) throw new Error(`${argv.join(' ')} failed (status ${run.status}): ${run.stderr.trim()}`);
  return run.stdout.trim().split('\n').filter((line) => !line.startsWith('ready')).map((line) => {
    const [ops, seconds] = line.split(' ').map(Number);
    return { ops, seconds };
  });
}
