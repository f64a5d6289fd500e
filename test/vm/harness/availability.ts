/**
 * Whether VM suites can run here. Only two things justify skipping: no QEMU binary, or guest
 * assets that cannot be downloaded. Anything else (a harness bug, a broken initramfs) must fail.
 */
import { spawnSync } from 'node:child_process';
import { ensureGuestAssets } from './assets.js';
import { GuestAssetsUnavailableError } from './errors.js';
import { QEMU_BINARY } from './guest.js';

/** null when guests can boot; otherwise why not (for a loud skip). */
export async function qemuAvailable(): Promise<string | null> {
  const probe = spawnSync(QEMU_BINARY, ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    return `${QEMU_BINARY} cannot run (${probe.error?.message ?? probe.stderr.trim()}); install the Debian package qemu-system-x86`;
  }
  try {
    await ensureGuestAssets();
  } catch (error) {
    if (error instanceof GuestAssetsUnavailableError) return `guest assets unavailable: ${error.message}`;
    throw error;
  }
  return null;
}

/** Print a banner nobody can miss in the test log, then return `reason` for node:test's `skip`. */
export function announceSkip(suite: string, reason: string): string {
  const line = '*'.repeat(100);
  console.warn(`\n${line}\n*** VM SUITE SKIPPED: ${suite}\n*** ${reason}\n${line}\n`);
  return reason;
}
