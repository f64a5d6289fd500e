/**
 * The cost of one CLI call, as a script pays it: wall time of `xpci setpci -s DEV COMMAND` (one
 * register read: Node start-up, module loading, handshake, one request) against `node -e 0` in the
 * same run, and the requests `xpci lspci -s DEV -x` puts on the wire (its --verbose-request lines:
 * one per request the frontend sent, Hello aside).
 */
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { CLI } from './backend.js';
import { median } from './measure.js';

export interface CliCallFigures {
  nodeMs: number;
  setpciMs: number;
  /** setpciMs / nodeMs */
  ratio: number;
  lspciRequests: number;
}

function wallMs(args: string[]): number {
  const start = performance.now();
  const run = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DEBUG: '' } });
  const elapsed = performance.now() - start;
  if (run.status !== 0) throw new Error(`node ${args.join(' ')}: exit ${run.status}: ${run.stderr}`);
  return elapsed;
}

export function measureCliCall(socket: string, device: string, runs: number): CliCallFigures {
  const setpci = [CLI, 'setpci', '--connect', socket, '-s', device, 'COMMAND'];
  wallMs(['-e', '0']);
  wallMs(setpci);
  const node: number[] = [];
  const call: number[] = [];
  // Interleaved, so that a slow moment of the machine weighs on both alike.
  for (let i = 0; i < runs; i++) {
    node.push(wallMs(['-e', '0']));
    call.push(wallMs(setpci));
  }
  const lspci = spawnSync(process.execPath, [CLI, 'lspci', '--connect', socket, '-s', device, '-x', '--verbose-request'], { encoding: 'utf8', env: { ...process.env, DEBUG: '' } });
  if (lspci.status !== 0) throw new Error(`xpci lspci -x: exit ${lspci.status}: ${lspci.stderr}`);
  const nodeMs = median(node);
  const setpciMs = median(call);
  return { nodeMs, setpciMs, ratio: setpciMs / nodeMs, lspciRequests: lspci.stderr.split('\n').filter((line) => line.startsWith('xpci:request ')).length };
}
