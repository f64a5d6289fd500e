/**
 * VFIO's no-IOMMU mode for the guest. Debian builds vfio without CONFIG_VFIO_NOIOMMU, so a suite
 * that needs the mode loads a vfio.ko built here from Debian's own source for the guest's kernel,
 * with that one option on: its exported symbols and their CRCs are unchanged, so Debian's vfio-pci
 * and vfio_iommu_type1 load on top of it. Built once into the cache
 * (<cache>/<kernel package key>-vfio-noiommu/vfio.ko) from linux-source, linux-headers and
 * linux-kbuild fetched with apt-get download; needs make and the kernel's gcc on the host.
 *
 *   const vfio = await ensureNoIommuVfio();
 *   const vm = await Guest.boot({ shares: [vfio.dir] });
 *   await vm.execOk(`insmod ${vfio.module} enable_unsafe_noiommu_mode=1 && modprobe vfio_pci`);
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureGuestAssets } from './assets.js';
import { cacheDir, withFileLock } from './cache.js';
import { candidate, downloadDeb, extractDeb, packageKey, type DebianPackage } from './debian-packages.js';
import { GuestAssetsUnavailableError } from './errors.js';
import { runTool, runToolOrThrow } from './run-tool.js';

export interface NoIommuVfio {
  /** the folder to share with the guest */
  dir: string;
  /** vfio.ko with CONFIG_VFIO_NOIOMMU, for insmod in the guest */
  module: string;
}

const KBUILD = [
  '# VFIO core with the no-IOMMU mode compiled in (Debian leaves CONFIG_VFIO_NOIOMMU unset)',
  'ccflags-y += -DCONFIG_VFIO_NOIOMMU=1',
  'obj-m += vfio.o',
  'vfio-y += vfio_main.o iova_bitmap.o container.o',
  '',
].join('\n');
const SOURCES = ['vfio_main.c', 'iova_bitmap.c', 'container.c', 'vfio.h'];

async function required(name: string): Promise<DebianPackage> {
  const found = await candidate(name);
  if (found === null) throw new GuestAssetsUnavailableError(`apt knows no ${name} (needed to build vfio with CONFIG_VFIO_NOIOMMU for the guest)`);
  return found;
}

export async function ensureNoIommuVfio(): Promise<NoIommuVfio> {
  const assets = await ensureGuestAssets();
  const release = assets.kernelRelease;
  const dir = join(cacheDir(), `${packageKey(assets.kernelPackage)}-vfio-noiommu`);
  const module = join(dir, 'vfio.ko');
  return withFileLock(join(cacheDir(), 'lock'), async () => {
    if (existsSync(module)) return { dir, module };
    const series = release.match(/^(\d+\.\d+)\./)?.[1];
    if (series === undefined) throw new Error(`kernel release ${release}: no major.minor`);
    const version = assets.kernelPackage.version;
    const headers: DebianPackage = { name: `linux-headers-${release}`, version };
    const common: DebianPackage = { name: `linux-headers-${release.replace(/-[a-z0-9]+$/, '-common')}`, version };
    const packages = [headers, common, await required(`linux-kbuild-${series}`), await required(`linux-source-${series}`)];
    const work = `${dir}.build`;
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const root = join(work, 'root');
    for (const p of packages) await extractDeb(await downloadDeb(p, work), root);

    // The headers' Makefile includes the -common tree by its absolute /usr/src path: point it at ours.
    const headersDir = join(root, 'usr', 'src', headers.name);
    const makefile = join(headersDir, 'Makefile');
    writeFileSync(makefile, readFileSync(makefile, 'utf8').replaceAll(`/usr/src/${common.name}`, join(root, 'usr', 'src', common.name)));
    const tarball = join(root, 'usr', 'src', `linux-source-${series}.tar.xz`);
    const inTar = `linux-source-${series}/drivers/vfio`;
    await runToolOrThrow('tar', ['-xJf', tarball, '-C', work, ...SOURCES.map((f) => `${inTar}/${f}`)]);
    const src = join(work, 'vfio');
    mkdirSync(src, { recursive: true });
    for (const f of SOURCES) copyFileSync(join(work, inTar, f), join(src, f));
    writeFileSync(join(src, 'Kbuild'), KBUILD);
    const make = await runTool('make', ['-C', headersDir, `M=${src}`, 'modules']);
    if (make.code !== 0 || !existsSync(join(src, 'vfio.ko'))) {
      throw new Error(`building vfio.ko with CONFIG_VFIO_NOIOMMU for ${release} failed (exit ${make.code}): ${make.stderr.trim().split('\n').slice(-5).join(' | ')}`);
    }
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(src, 'vfio.ko'), `${module}.tmp`);
    renameSync(`${module}.tmp`, module);
    rmSync(work, { recursive: true, force: true });
    return { dir, module };
  });
}
