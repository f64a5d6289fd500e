/**
 * Guest-side step runner (runs inside the test VM) for test/vm/virtualization.test.ts: a list of
 * steps in ONE node process, because every `xpci` process start costs 5–10 s under TCG.
 *
 * A step is either
 * - `{ xpci: argv }`: the CLI's own `main(argv)` from dist/src/cli/main.js — the same yargs
 *   parsing, command code, one-line `xpci: …` error and exit status as `node dist/src/cli/main.js
 *   argv…`, minus the process start (stdout and stderr are captured around the call); or
 * - `{ sh: command }`: a bash command line (the guest's own lspci/setpci/devmem, or a real xpci process).
 * `{{n}}` in an argument or command is replaced by the trimmed stdout of step n (0-based), so a
 * later step can write back a value an earlier one read.
 *
 * Usage: virtualization-steps.js BASE64(JSON Step[]). Prints JSON: one { status, stdout, stderr }
 * per step, in order.
 */
import { spawnSync } from 'node:child_process';

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
    // main() reports a command that set process.exitCode itself; start every run from "unset".
    process.exitCode = undefined;
    return { status: await body(), stdout, stderr };
  } finally {
    process.stdout.write = realOut;
    process.stderr.write = realErr;
  }
}

const steps = JSON.parse(Buffer.from(process.argv[2] ?? '', 'base64').toString('utf8')) as Step[];
const results: StepResult[] = [];
const substitute = (text: string): string => text.replace(/\{\{(\d+)\}\}/g, (_, n: string) => results[Number(n)]?.stdout.trim() ?? '');

// Importing main.js runs the CLI once with process.argv: make that run a harmless --version.
process.argv = [process.argv[0], 'xpci', '--version'];
let cli: typeof import('../../../src/cli/main.js') | undefined;
await captured(async () => {
  cli = await import('../../../src/cli/main.js');
  return 0;
});

for (const step of steps) {
  if ('xpci' in step) {
    const argv = step.xpci.map(substitute);
    results.push(await captured(() => cli!.main(argv)));
  } else {
    const run = spawnSync('bash', ['-c', substitute(step.sh)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    results.push({ status: run.status ?? 128, stdout: run.stdout, stderr: run.stderr + (run.signal ? `killed by ${run.signal}\n` : '') });
  }
}
process.exitCode = 0;
process.stdout.write(JSON.stringify(results) + '\n');
