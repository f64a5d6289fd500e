/**
 * The guest's boot assets, built on demand and cached (see cache.ts):
 *   <cache>/<kernel package key>-<module list hash>/{vmlinux, lib/modules/<release>/…, kernel.json}
 *   <cache>/<busybox package key>/busybox
 *   <cache>/initramfs-<hash>.cpio   (busybox + init.sh + the module closure; hash of all inputs)
 * The whole build runs under one flock so parallel test files never race.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import createDebug from 'debug';
import { cacheDir, harnessSourceFile, withFileLock } from './cache.js';
import { encodeCpio, treeEntries, type CpioEntry } from './cpio.js';
import { downloadDeb, extractDeb, packageKey, PINNED_BUSYBOX, PINNED_KERNEL, resolvePackage, type DebianPackage } from './debian-packages.js';
import { moduleClosure, normalizeModuleName } from './kernel-modules.js';
import { runToolOrThrow } from './run-tool.js';

const debug = createDebug('xpci:vm');

/**
 * Modules the initramfs carries. The first five are the harness's own (9p root, overlay, agent
 * port); the rest are drivers tests may load with `modules: [...]`.
 */
export const GUEST_MODULES = [
  'virtio_pci', '9pnet_virtio', '9p', 'overlay', 'virtio_console',
  'e1000', 'e1000e', 'nvme', 'pci-stub', 'uio_pci_generic', 'vfio-pci',
  // vfio-pci's modules.dep closure lacks the type1 IOMMU back end (a soft dependency) and irqbypass
  'vfio', 'vfio_iommu_type1', 'irqbypass',
];

/**
 * The kernel folder in the cache: the package plus the module list, so a changed GUEST_MODULES builds
 * a folder of its own and never rewrites one that an older checkout (another branch) still uses.
 */
const kernelDirName = (p: DebianPackage): string =>
  `${packageKey(p)}-${createHash('sha256').update(GUEST_MODULES.map(normalizeModuleName).join(',')).digest('hex').slice(0, 8)}`;

export interface GuestAssets {
  vmlinux: string;
  initramfs: string;
  kernelRelease: string;
  kernelPackage: DebianPackage;
  busyboxPackage: DebianPackage;
  /** normalized names of the modules present in the initramfs (what `modules:` may ask for) */
  modules: string[];
}

interface KernelManifest {
  release: string;
  package: DebianPackage;
  modules: string[];
}

let assets: Promise<GuestAssets> | undefined;

/** Build (first call, under the lock) or reuse the cached guest assets. */
export function ensureGuestAssets(): Promise<GuestAssets> {
  assets ??= (async () => {
    const cache = cacheDir();
    return withFileLock(join(cache, 'lock'), () => buildAssets(cache));
  })();
  return assets;
}

async function buildAssets(cache: string): Promise<GuestAssets> {
  const busyboxPackage = existsSync(join(cache, packageKey(PINNED_BUSYBOX), 'busybox')) ? PINNED_BUSYBOX : await resolvePackage(PINNED_BUSYBOX);
  const busybox = await ensureBusybox(cache, busyboxPackage);
  const kernelPackage = existsSync(join(cache, kernelDirName(PINNED_KERNEL), 'kernel.json')) ? PINNED_KERNEL : await resolvePackage(PINNED_KERNEL);
  const kernelDir = await ensureKernel(cache, kernelPackage, busybox);
  const manifest = JSON.parse(readFileSync(join(kernelDir, 'kernel.json'), 'utf8')) as KernelManifest;
  const initramfs = ensureInitramfs(cache, kernelDir, manifest, busybox, busyboxPackage);
  return {
    vmlinux: join(kernelDir, 'vmlinux'),
    initramfs,
    kernelRelease: manifest.release,
    kernelPackage: manifest.package,
    busyboxPackage,
    modules: manifest.modules,
  };
}

/** Build into a temporary sibling, then rename: an interrupted build never looks complete. */
async function buildAtomically(target: string, build: (work: string, out: string) => Promise<void>): Promise<void> {
  const work = mkdtempSync(`${target}.build-`);
  try {
    const out = join(work, 'out');
    mkdirSync(out);
    await build(work, out);
    rmSync(target, { recursive: true, force: true });
    renameSync(out, target);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function ensureBusybox(cache: string, p: DebianPackage): Promise<string> {
  const dir = join(cache, packageKey(p));
  const binary = join(dir, 'busybox');
  if (existsSync(binary)) return binary;
  debug('building %s', dir);
  await buildAtomically(dir, async (work, out) => {
    const deb = await downloadDeb(p, work);
    await extractDeb(deb, join(work, 'root'));
    copyFileSync(join(work, 'root', 'bin', 'busybox'), join(out, 'busybox'));
    chmodSync(join(out, 'busybox'), 0o755);
  });
  return binary;
}

async function ensureKernel(cache: string, p: DebianPackage, busybox: string): Promise<string> {
  const dir = join(cache, kernelDirName(p));
  if (existsSync(join(dir, 'kernel.json'))) return dir;
  debug('building %s', dir);
  await buildAtomically(dir, async (work, out) => {
    const deb = await downloadDeb(p, work);
    const root = join(work, 'root');
    await extractDeb(deb, root);
    rmSync(deb);
    const vmlinuz = readdirSync(join(root, 'boot')).find((f) => f.startsWith('vmlinuz-'));
    if (!vmlinuz) throw new Error(`${p.name}: no boot/vmlinuz-* in the package`);
    const release = vmlinuz.slice('vmlinuz-'.length);
    await runToolOrThrow('python3', [harnessSourceFile('extract-vmlinux.py'), join(root, 'boot', vmlinuz), join(out, 'vmlinux')]);

    // Debian ships no modules.dep: busybox depmod computes it for the full tree, then for the subset.
    await runToolOrThrow(busybox, ['depmod', '-b', root, release]);
    const sourceDir = join(root, 'lib', 'modules', release);
    const targetDir = join(out, 'lib', 'modules', release);
    for (const path of moduleClosure(sourceDir, GUEST_MODULES)) {
      mkdirSync(dirname(join(targetDir, path)), { recursive: true });
      copyFileSync(join(sourceDir, path), join(targetDir, path));
    }
    for (const index of ['modules.builtin', 'modules.order']) copyFileSync(join(sourceDir, index), join(targetDir, index));
    await runToolOrThrow(busybox, ['depmod', '-b', out, release]);
    const manifest: KernelManifest = { release, package: p, modules: GUEST_MODULES.map(normalizeModuleName) };
    writeFileSync(join(out, 'kernel.json'), JSON.stringify(manifest, null, 2) + '\n');
  });
  return dir;
}

function ensureInitramfs(cache: string, kernelDir: string, manifest: KernelManifest, busybox: string, busyboxPackage: DebianPackage): string {
  const init = readFileSync(harnessSourceFile('init.sh'));
  const hash = createHash('sha256')
    .update(JSON.stringify({ format: 1, kernel: manifest, busybox: busyboxPackage }))
    .update(init)
    .digest('hex')
    .slice(0, 16);
  const target = join(cache, `initramfs-${hash}.cpio`);
  if (existsSync(target)) return target;
  debug('building %s', target);
  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'proc', 'sys', 'lib', 'lib/modules'].map((path): CpioEntry => ({ path, kind: 'dir', mode: 0o755 })),
    { path: 'dev/console', kind: 'chardev', mode: 0o600, major: 5, minor: 1 },
    { path: 'bin/busybox', kind: 'file', mode: 0o755, data: readFileSync(busybox) },
    { path: 'bin/sh', kind: 'symlink', target: 'busybox' },
    { path: 'init', kind: 'file', mode: 0o755, data: init },
    { path: `lib/modules/${manifest.release}`, kind: 'dir', mode: 0o755 },
    ...treeEntries(join(kernelDir, 'lib', 'modules', manifest.release), `lib/modules/${manifest.release}`),
  ];
  writeFileSync(`${target}.tmp`, encodeCpio(entries));
  renameSync(`${target}.tmp`, target);
  for (const stale of readdirSync(cache).filter((f) => /^initramfs-[0-9a-f]+\.cpio$/.test(f) && join(cache, f) !== target)) {
    rmSync(join(cache, stale), { force: true });
  }
  return target;
}
