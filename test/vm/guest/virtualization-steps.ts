/**
 * Guest-side step runner (runs inside the test VM) for test/vm/virtualization.test.ts. One node
 * process serves every batch of the suite, because each node start costs seconds under TCG and an
 * `xpci` process 5–10 s.
 *
 * Usage: virtualization-steps.js DIR. The test writes batch n as DIR/<n>.in (JSON Step[], written
 * elsewhere and renamed into place); the runner runs its steps in order and writes DIR/<n>.out
 * the same way: JSON, one StepResult per step, or { error } if the batch itself could not run.
 * It serves batches 0, 1, 2, … until it is killed.
 *
 * A step is either
 * - `{ xpci: argv }`: the CLI's own `runCli(argv)` from dist/src/cli/program.js — the same
 *   parsing, command code, one-line `xpci: …` error and exit status as `node dist/src/cli/main.js
 *   argv…`, minus the process start (stdout and stderr are captured around the call); or
 * - `{ sh: command }`: a bash command line (the guest's own lspci/setpci/devmem, or a real xpci process).
 * `{{k}}` in an argument or command is replaced by the trimmed stdout of step k (0-based) of the
 * same batch, so a later step can write back a value an earlier one read.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCli } from '../../../src/cli/program.js';

export type Step = { xpci: string[] } | { sh: string };
export interface StepResult {
  status: number;
  stdout: string;
  stderr: string;
}

type Write = typeof process.stdout.write;

/** Run `body` with process.stdout/stderr writes collected instead of printed. */
async function captured(body: () => Promise<number>): Promise<StepResult> {
  const realOut = process.stdout.write;
  const realErr = process.stderr.write;
  let stdout = '';
  let stderr = '';
  const text = (chunk: string | Uint8Array): string => (typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
  process.stdout.write = ((chunk: string | Uint8Array) => ((stdout += text(chunk)), true)) as Write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += text(chunk)), true)) as Write;
  try {
    // main() reports a command that set process.exitCode itself: start every run from "unset".
    process.exitCode = undefined;
    return { status: await body(), stdout, stderr };
  } finally {
    process.stdout.write = realOut;
    process.stderr.write = realErr;
  }
}

async function runBatch(steps: Step[]): Promise<StepResult[]> {
  const results: StepResult[] = [];
  const substitute = (text: string): string => text.replace(/\{\{(\d+)\}\}/g, (_, k: string) => results[Number(k)]?.stdout.trim() ?? '');
  for (const step of steps) {
    if ('xpci' in step) {
      const argv = step.xpci.map(substitute);
      results.push(await captured(() => runCli(argv)));
    } else {
      const run = spawnSync('bash', ['-c', substitute(step.sh)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      results.push({ status: run.status ?? 128, stdout: run.stdout, stderr: run.stderr + (run.signal ? `killed by ${run.signal}\n` : '') });
    }
  }
  return results;
}

const dir = process.argv[2];
if (!dir) throw new Error('usage: virtualization-steps.js DIR');


for (let n = 0; ; n++) {
  const input = join(dir, `${n}.in`);
  while (!existsSync(input)) await sleep(50);
  let output: unknown;
  try {
    output = await runBatch(JSON.parse(readFileSync(input, 'utf8')) as Step[]);
  } catch (error) {
    output = { error: (error as Error).stack ?? String(error) };
  }
  writeFileSync(join(dir, `${n}.tmp`), JSON.stringify(output));
  renameSync(join(dir, `${n}.tmp`), join(dir, `${n}.out`));
}
