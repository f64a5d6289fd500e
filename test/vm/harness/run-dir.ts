/**
 * Each guest's host-side files (agent and xpci.0 sockets, console log) live in a short
 * /tmp/xpci-vm-XXXXXX directory (Unix socket paths must stay under 108 bytes), next to its ivshmem
 * file in /dev/shm. A test process killed with SIGKILL cannot clean up, so every boot first removes
 * the leftovers of processes that no longer exist (QEMU itself powers off when its host goes away).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

const RUN_DIR_PREFIX = 'xpci-vm-';
const OWNER_FILE = 'owner.pid';

export const ivshmemPathFor = (runDir: string): string => `/dev/shm/xpci-ivshmem-${basename(runDir)}`;

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function removeStaleRunDirs(): void {
  for (const name of readdirSync('/tmp').filter((n) => n.startsWith(RUN_DIR_PREFIX))) {
    const dir = join('/tmp', name);
    const ownerFile = join(dir, OWNER_FILE);
    if (!existsSync(ownerFile)) continue;
    const owner = Number(readFileSync(ownerFile, 'utf8'));
    if (owner > 0 && !processExists(owner)) {
      rmSync(dir, { recursive: true, force: true });
      rmSync(ivshmemPathFor(dir), { force: true });
    }
  }
}

export function createRunDir(): string {
  removeStaleRunDirs();
  const dir = mkdtempSync(join('/tmp', RUN_DIR_PREFIX));
  writeFileSync(join(dir, OWNER_FILE), String(process.pid));
  return dir;
}
