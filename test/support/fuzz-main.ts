/**
 * `npm run fuzz -- [--frames N] [--seed S] [--mode vpci|passthrough] [--no-idle] [--no-pin] [--json] [--vfio-user]`: the long
 * fuzz run of the backend (with --vfio-user: of the vfio-user server). Prints progress, frames/s and every finding; exits 1
 * when there is a finding. Replay a run with its seed.
 */
import { parseArgs } from 'node:util';
import { formatReport, runFuzz } from './fuzz.js';
import { seedFromEnv } from './fuzz-random.js';
import { runVfioUserFuzz } from './fuzz-vfio-user.js';

const USAGE = 'usage: npm run fuzz -- [--frames N (default 1000000)] [--seed S (default: $XPCI_SEED or the clock)] [--mode vpci|passthrough] [--no-idle] [--no-pin] [--json] [--vfio-user]\n  --vfio-user  fuzz the vfio-user server instead of the ring (N messages)\n  --no-idle  skip the 2 s idle-partial-frame check\n  --no-pin   do not pin the backend and the fuzzer to different CPUs with taskset';

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        frames: { type: 'string', default: '1000000' },
        seed: { type: 'string' },
        mode: { type: 'string', default: 'vpci' },
        'no-idle': { type: 'boolean', default: false },
        'no-pin': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        'vfio-user': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    process.stderr.write(`fuzz: ${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const frames = Number(values.frames);
  const seed = values.seed === undefined ? seedFromEnv() : Number(values.seed);
  if (!Number.isInteger(frames) || frames < 1) return usage(`--frames must be a positive integer, got '${values.frames}'`);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) return usage(`--seed must be an integer 0..4294967295, got '${values.seed}'`);
  if (values.mode !== 'vpci' && values.mode !== 'passthrough') return usage(`--mode must be vpci or passthrough, got '${values.mode}'`);
  const log = (line: string): void => void process.stderr.write(`fuzz: ${line}\n`);
  if (values['vfio-user']) {
    log(`seed ${seed}, ${frames} vfio-user messages (replay: npm run fuzz -- --vfio-user --seed ${seed} --frames ${frames})`);
    const report = await runVfioUserFuzz({ messages: frames, seed, progress: log });
    process.stdout.write((values.json ? JSON.stringify(report)
      : `vfio-user fuzz: ${report.messages} messages (${report.perSecond}/s), ${report.errors} error replies, ${report.reconnects} reconnects, ${report.findings.length} findings${report.findings.map((f) => `\n  ${f}`).join('')}`) + '\n');
    return report.findings.length === 0 ? 0 : 1;
  }
  log(`seed ${seed}, ${frames} frames, ${values.mode} (replay: npm run fuzz -- --seed ${seed} --frames ${frames} --mode ${values.mode})`);
  const report = await runFuzz({ frames, seed, mode: values.mode, idleCheck: !values['no-idle'], pin: !values['no-pin'], progress: log });
  process.stdout.write((values.json ? JSON.stringify(report) : formatReport(report)) + '\n');
  return report.findings.length === 0 ? 0 : 1;
}

function usage(message: string): number {
  process.stderr.write(`fuzz: ${message}\n${USAGE}\n`);
  return 2;
}

main().then((code) => {
  process.exitCode = code;
}, (error: unknown) => {
  process.stderr.write(`fuzz: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exitCode = 1;
});
