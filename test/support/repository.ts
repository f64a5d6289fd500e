/**
 * Paths inside the repository, for tests that read checked-in data (compiled tests run from
 * dist/test/…, three levels below the root).
 */
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPOSITORY_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** pciutils' test dumps, copied into test/fixtures (see the README there). */
export const PCIUTILS_DUMPS = join(REPOSITORY_ROOT, 'test', 'fixtures', 'pciutils-dumps');

/** The dump files (the README excluded), sorted. */
export const pciutilsDumpFiles = (): string[] =>
  readdirSync(PCIUTILS_DUMPS).filter((name) => name !== 'README.md').sort();
