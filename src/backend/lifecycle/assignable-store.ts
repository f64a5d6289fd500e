/**
 * What `assignable-add` remembers per seized device (like libxl's /libxl/pci/<BDF>/driver_path):
 * the driver it came from. One JSON file per device in `<stateDir>/assignable/`, written atomically
 * before the device is touched, so a crash between unbind and bind never loses the original driver.
 */
import { readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { parseAddress, formatAddress } from '../../pci/address.js';
import { readDirIfExists, readFileIfExists, writeFileAtomic, syncDirectory } from './atomic-file.js';
import { LifecycleError } from './errors.js';
import { assignableDir, ensureStateDir } from './state-dir.js';

export interface AssignableRecord {
  bdf: string;
  /** driver bound before xpci seized it; null when it had none or it is unknown */
  originalDriver: string | null;
  /** sysfs root the device was seized under (informational) */
  sysfsRoot: string;
  /** ISO time of the seize */
  since: string;
}

const RECORD_SUFFIX = '.json';

export const recordPath = (stateDir: string, bdf: string): string => join(assignableDir(stateDir), bdf + RECORD_SUFFIX);

function parseRecord(path: string, text: string): AssignableRecord {
  let value: Partial<AssignableRecord>;
  try {
    value = JSON.parse(text) as Partial<AssignableRecord>;
  } catch {
    throw new LifecycleError(`assignable record ${path} is not valid JSON; inspect it, then delete it to forget the device`);
  }
  if (typeof value.bdf !== 'string' || !(typeof value.originalDriver === 'string' || value.originalDriver === null)) {
    throw new LifecycleError(`assignable record ${path} lacks bdf/originalDriver; inspect it, then delete it to forget the device`);
  }
  let bdf: string;
  try {
    bdf = formatAddress(parseAddress(value.bdf));
  } catch {
    throw new LifecycleError(`assignable record ${path} names an invalid address ${JSON.stringify(value.bdf)}; delete it`);
  }
  return {
    bdf,
    originalDriver: value.originalDriver,
    sysfsRoot: typeof value.sysfsRoot === 'string' ? value.sysfsRoot : '?',
    since: typeof value.since === 'string' ? value.since : '?',
  };
}

export function readRecord(stateDir: string, bdf: string): AssignableRecord | null {
  const path = recordPath(stateDir, bdf);
  const text = readFileIfExists(path);
  if (text === null) return null;
  return parseRecord(path, text);
}

export function writeRecord(stateDir: string, record: AssignableRecord): void {
  ensureStateDir(stateDir);
  writeFileAtomic(recordPath(stateDir, record.bdf), JSON.stringify(record, null, 2) + '\n');
}

export function forgetRecord(stateDir: string, bdf: string): void {
  try {
    unlinkSync(recordPath(stateDir, bdf));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  syncDirectory(assignableDir(stateDir));
}

/** All records, sorted by address; an absent state directory means none. */
export function listRecords(stateDir: string): AssignableRecord[] {
  const dir = assignableDir(stateDir);
  return readDirIfExists(dir)
    .filter((name) => name.endsWith(RECORD_SUFFIX) && !name.startsWith('.'))
    .map((name) => parseRecord(join(dir, name), readFileSync(join(dir, name), 'utf8')))
    .sort((a, b) => a.bdf.localeCompare(b.bdf));
}
