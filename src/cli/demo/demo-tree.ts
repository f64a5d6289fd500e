/**
 * The snapshot tree `xpci demo` exports: fixtures/demo/ in the package (three QEMU devices taken
 * with `xpci snapshot --with-bars` in the test guest), copied to a private directory because an
 * export writes config space. The package stores BAR and ROM files trimmed to their non-zero start
 * (fixtures/demo/README.md); the copy grows each back to the size its `resource` line gives, since
 * the backend maps the whole BAR and a mapping past the end of a file faults.
 */
import { cpSync, readdirSync, readFileSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAddress, type PciAddress } from '../../pci/address.js';

/** fixtures/demo/ from dist/src/cli/demo/ (compiled) — the package ships both. */
export const BUNDLED_DEMO_TREE = fileURLToPath(new URL('../../../../fixtures/demo/', import.meta.url));

/** The kernel's `resource` file: one line per region, BARs 0-5 then the ROM at index 6. */
const ROM_RESOURCE_INDEX = 6;

function regionSizes(resourceFile: string): number[] {
  return readFileSync(resourceFile, 'utf8').trim().split('\n').map((line) => {
    const [start, end] = line.trim().split(/\s+/).map((field) => BigInt(field));
    return end > start ? Number(end - start + 1n) : 0;
  });
}

/** Copy the bundled tree to `target` (its sysfs root) and return the devices it holds. */
export function materializeDemoTree(target: string, source: string = BUNDLED_DEMO_TREE): PciAddress[] {
  cpSync(source, target, { recursive: true, verbatimSymlinks: true, filter: (path) => !path.endsWith('README.md') });
  const devicesDir = join(target, 'bus', 'pci', 'devices');
  const bdfs = readdirSync(devicesDir).sort();
  for (const bdf of bdfs) {
    const dir = join(devicesDir, bdf);
    regionSizes(join(dir, 'resource')).forEach((size, index) => {
      const file = join(dir, index === ROM_RESOURCE_INDEX ? 'rom' : `resource${index}`);
      let stored: number;
      try {
        stored = statSync(file).size;
      } catch {
        return;
      }
      if (size > stored) truncateSync(file, size);
    });
  }
  return bdfs.map((bdf) => parseAddress(bdf));
}
