/**
 * `xpci export` as the benchmark runs it: a child process (the real CLI), ready once its --json
 * line says the socket listens. Against this machine's devices it is ALWAYS --read-only: the bench
 * never writes to real hardware (config writes and BAR access are refused by such an export).
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnReady, type Child } from './children.js';

const here = dirname(fileURLToPath(import.meta.url));
export const CLI = resolve(here, '..', 'src', 'cli', 'main.js');

export interface BackendChild {
  child: Child;
  socket: string;
  devices: { host: string; guest: string }[];
  /** Devices the backend would not export, with its reason. */
  refused: { bdf: string; reason: string }[];
}

export interface BackendSpec {
  devices: string[];
  socket: string;
  stateDir: string;
  mode: 'vpci' | 'passthrough';
  /** Required for this machine's devices; a fixture tree may be exported writable. */
  readOnly: boolean;
  sysfsRoot?: string;
  pinCpu?: number;
}

export async function startBackend(spec: BackendSpec): Promise<BackendChild> {
  const args = [CLI, 'export', '--json', '--mode', spec.mode, '--socket', spec.socket, '--state-dir', spec.stateDir];
  if (spec.readOnly) args.push('--read-only');
  if (spec.sysfsRoot) args.push('--sysfs-root', spec.sysfsRoot, '--no-reset-on-export', '--no-reset-on-release');
  args.push(...spec.devices);
  // The node flags of the CLI's shebang, as `xpci export` runs; XPCI_BENCH_NODE_ARGS (e.g.
  // "--cpu-prof --cpu-prof-dir=/tmp/prof") goes to the backend's node too: profiling the hot path.
  const nodeArgs = [...shebangNodeFlags(CLI), ...(process.env.XPCI_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean)];
  const { child, ready } = await spawnReady(process.execPath, [...nodeArgs, ...args], {
    pinCpu: spec.pinCpu,
    env: { ...process.env, DEBUG: '' },
    ready: (line) => {
      try {
        const value = JSON.parse(line) as { socket?: string; devices?: { host: string; guest: string }[] };
        return value.socket ? value : undefined;
      } catch {
        return undefined;
      }
    },
  });
  const { devices, refused } = ready as { devices: BackendChild['devices']; refused?: BackendChild['refused'] };
  return { child, socket: spec.socket, devices, refused: refused ?? [] };
}

/** `#!/usr/bin/env -S node FLAG...`: the FLAGs. */
function shebangNodeFlags(script: string): string[] {
  const first = readFileSync(script, 'utf8').split('\n', 1)[0];
  const words = first.startsWith('#!') ? first.slice(2).trim().split(/\s+/) : [];
  return words.slice(words.findIndex((word) => word === 'node' || word.endsWith('/node')) + 1);
}

/** Device locks are per BDF: each backend gets its own state directory (a fixture may reuse a host BDF). */
export const stateDirFor = (work: string, name: string): string => join(work, `state-${name}`);
