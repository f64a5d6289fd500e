/**
 * The guest's kernel and busybox come from Debian's archive through apt: `apt-get download` into
 * the cache and `dpkg-deb -x` there. Nothing is installed on the host.
 *
 * Versions are pinned for reproducibility. Debian's security archive drops a kernel ABI when the
 * next one ships, so when the pin has left the apt index the harness falls back, loudly, to the
 * ABI that `linux-image-amd64` currently depends on (the cache is keyed by the version actually used).
 */
import { mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import createDebug from 'debug';
import { GuestAssetsUnavailableError } from './errors.js';
import { runTool, runToolOrThrow } from './run-tool.js';

const debug = createDebug('xpci:vm');

export interface DebianPackage {
  name: string;
  version: string;
}

/** -amd64 flavour: -cloud-amd64 has no 9p (CONFIG_NET_9P unset). */
export const PINNED_KERNEL: DebianPackage = { name: 'linux-image-6.1.0-56-amd64', version: '6.1.192-2' };
export const PINNED_BUSYBOX: DebianPackage = { name: 'busybox-static', version: '1:1.35.0-4+deb12u1+b1' };

/** A file-system-safe form of name and version, used as cache key. */
export const packageKey = (p: DebianPackage): string => `${p.name}_${p.version.replace(/^\d+:/, '')}`;

/** What apt said last when something was missing: quoted in GuestAssetsUnavailableError. */
const aptComplaints: string[] = [];
let indexRefreshed = false;

/** apt's error lines (E:/Err:/W:), else its whole stderr. */
const aptErrors = (stderr: string): string =>
  stderr.split('\n').filter((line) => /^(E|Err|W):|cannot run/.test(line)).join(' ').trim() || stderr.trim();

async function inAptIndex(p: DebianPackage): Promise<boolean> {
  const result = await runTool('apt-cache', ['show', '--no-all-versions', `${p.name}=${p.version}`])
    .catch((error: Error) => ({ code: null, stdout: '', stderr: error.message }));
  const found = result.code === 0 && result.stdout.includes(`Package: ${p.name}`);
  if (!found) aptComplaints.push(`apt-cache show ${p.name}=${p.version}: ${aptErrors(result.stderr) || 'not found'}`);
  return found;
}

/** `apt-get update` at most once per process, and only as root (apt's lists are root's). */
async function refreshAptIndex(): Promise<void> {
  if (indexRefreshed || process.getuid?.() !== 0) return;
  indexRefreshed = true;
  debug('apt-get update');
  const result = await runTool('apt-get', ['update']).catch((error: Error) => ({ code: null, stderr: error.message }));
  if (result.code !== 0) aptComplaints.push(`apt-get update (exit ${result.code}): ${aptErrors(result.stderr)}`);
}

/** The candidate version of `name`, or null when apt knows none. */
export async function candidate(name: string): Promise<DebianPackage | null> {
  const policy = await runTool('apt-cache', ['policy', name]).catch(() => null);
  const version = policy?.stdout.match(/Candidate: (\S+)/)?.[1];
  return version && version !== '(none)' ? { name, version } : null;
}

/** The kernel package `linux-image-amd64` depends on now (never -cloud), with its candidate version. */
async function currentKernelPackage(): Promise<DebianPackage | null> {
  const depends = await runTool('apt-cache', ['depends', 'linux-image-amd64']).catch(() => null);
  const name = depends?.stdout.match(/Depends: (linux-image-[0-9.]+-[0-9]+-amd64)\b/)?.[1];
  return name ? candidate(name) : null;
}

/** The pinned package if apt can fetch it, else the current one (with a warning), else a clear error. */
export async function resolvePackage(pinned: DebianPackage): Promise<DebianPackage> {
  if (await inAptIndex(pinned)) return pinned;
  await refreshAptIndex();
  if (await inAptIndex(pinned)) return pinned;
  const current = pinned === PINNED_KERNEL ? await currentKernelPackage() : await candidate(pinned.name);
  if (current && (await inAptIndex(current))) {
    console.warn(
      `\n*** xpci test bed: pinned ${pinned.name}=${pinned.version} is no longer in the apt index; ` +
        `using ${current.name}=${current.version}. Update the pin in test/vm/harness/debian-packages.ts. ***\n`,
    );
    return current;
  }
  throw new GuestAssetsUnavailableError(
    `${pinned.name}=${pinned.version} is not in the apt index and apt offers no replacement` +
      (process.getuid?.() === 0 ? '' : ' (not root: run apt-get update as root first)') +
      `. apt said: ${aptComplaints.join('; ')}. The guest kernel and busybox come from the Debian archive (docs/testing.md).`,
  );
}

/** apt-get download into a fresh directory under `dir`, returning the .deb path. */
export async function downloadDeb(p: DebianPackage, dir: string): Promise<string> {
  const work = mkdtempSync(join(dir, 'download-'));
  try {
    const result = await runTool('apt-get', ['download', `${p.name}=${p.version}`], { cwd: work }).catch((error: Error) => ({
      code: null,
      stdout: '',
      stderr: error.message,
    }));
    const deb = readdirSync(work).find((f) => f.startsWith(`${p.name}_`) && f.endsWith('.deb'));
    if (result.code !== 0 || !deb) {
      const why = aptErrors(result.stderr);
      throw new GuestAssetsUnavailableError(
        `apt-get download ${p.name}=${p.version} failed (exit ${result.code}): ${why || 'no .deb was written'}. ` +
          'It needs a current apt index (apt-get update) and access to the Debian mirror.',
      );
    }
    const target = join(dir, `${packageKey(p)}.deb`);
    renameSync(join(work, deb), target);
    return target;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export async function extractDeb(deb: string, into: string): Promise<void> {
  await runToolOrThrow('dpkg-deb', ['-x', deb, into]);
}
