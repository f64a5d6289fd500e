/**
 * The QEMU with a vfio-user client (>= 10.1; Debian 12 ships 7.2) that scripts/build-qemu-vfio-user.sh
 * builds into ~/.cache/xpci on its first run and reuses afterwards.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './cache.js';

/** The script's exit status when the source cannot be fetched at all (the only reason to skip). */
const SOURCE_UNAVAILABLE = 3;
export const VFIO_USER_QEMU_BUILD_TIMEOUT_MS = 90 * 60_000;

export interface VfioUserQemu {
  /** qemu-system-x86_64 of the build */
  binary: string;
  /** `-L DIR` for each firmware folder (the Debian source has its blobs stripped) */
  firmwareArgs: string[];
}

/** Build (first call) or find the vfio-user QEMU; `{ skip }` with a reason only when its source cannot be fetched. */
export function vfioUserQemu(): VfioUserQemu | { skip: string } {
  const build = spawnSync('bash', [join(repoRoot(), 'scripts', 'build-qemu-vfio-user.sh')],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: VFIO_USER_QEMU_BUILD_TIMEOUT_MS });
  if (build.status === SOURCE_UNAVAILABLE) return { skip: `QEMU >= 10.1 with vfio-user cannot be built here: ${build.stderr.trim().split('\n').pop()}` };
  if (build.status !== 0) throw new Error(`scripts/build-qemu-vfio-user.sh failed (status ${build.status}):\n${build.stderr.slice(-3000)}`);
  const dir = build.stdout.trim().split('\n').pop()!;
  return {
    binary: join(dir, 'bin', 'qemu-system-x86_64'),
    firmwareArgs: readFileSync(join(dir, 'firmware-dirs'), 'utf8').trim().split('\n').flatMap((d) => ['-L', d]),
  };
}
