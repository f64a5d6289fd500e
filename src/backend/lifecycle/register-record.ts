/**
 * The host's values of the registers a frontend may change in hardware, recorded in the state
 * directory when a writable export claims a device, so that even a backend killed with SIGKILL
 * (which restores nothing) is repaired: the next export of the device finds the record of a
 * holder that is gone and writes the values back before doing anything else, and so does
 * `xpci assignable-remove` before it hands the device back to the host. A clean release restores
 * the registers itself and removes the record.
 */
import { mkdirSync, unlinkSync } from 'node:fs';
import type { RegisterFile } from '../../native/binding.js';
import { join } from 'node:path';
import { native } from '../../native/binding.js';
import { formatAddress, type PciAddress } from '../../pci/address.js';
import { configPath } from '../../host/sysfs/paths.js';
import { readFileIfExists, writeFileAtomic } from './atomic-file.js';

/** Command, cache line size, interrupt line: what the restore on release covers, by offset and width. */
export const RECORDED_REGISTERS: readonly { name: string; offset: number; width: 1 | 2 }[] = [
  { name: 'command', offset: 0x04, width: 2 },
  { name: 'cache line size', offset: 0x0c, width: 1 },
  { name: 'interrupt line', offset: 0x3c, width: 1 },
];

const recordPath = (stateDir: string, address: PciAddress): string => join(stateDir, 'registers', `${formatAddress(address)}.json`);

export interface RegisterRecord {
  /** What was repaired from a record left by a backend that died ("cache line size 0x20 → 0x10"), or null. */
  readonly repaired: string | null;
  /** Remove the record (after the registers were restored). Idempotent. */
  remove(): void;
}

/** Write back what `left` (a record's text) holds wherever the device differs; what changed, e.g. "cache line size 0x20 → 0x10". */
function repair(file: RegisterFile, left: string): string[] {
  let values: Record<string, number> = {};
  try {
    values = JSON.parse(left) as Record<string, number>;
  } catch {
    // An unreadable record cannot be trusted: nothing to repair from.
  }
  const repairs: string[] = [];
  for (const register of RECORDED_REGISTERS) {
    const value = values[register.name];
    if (!Number.isInteger(value) || value < 0 || value >= 2 ** (8 * register.width)) continue;
    const now = file.read(register.offset, register.width);
    if (now === value) continue;
    file.write(register.offset, register.width, value);
    repairs.push(`${register.name} 0x${now.toString(16)} → 0x${value.toString(16)}`);
  }
  return repairs;
}

function removeRecord(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

/**
 * Call with the device claimed. Repairs the registers from a record left by a dead holder, then
 * records their current values.
 */
export function recordRegisters(sysfsRoot: string, stateDir: string, address: PciAddress): RegisterRecord {
  const path = recordPath(stateDir, address);
  const file = native().openRegisterFile(configPath(sysfsRoot, address), true);
  let repairs: string[] = [];
  try {
    const left = readFileIfExists(path);
    if (left !== null) repairs = repair(file, left);
    const record = Object.fromEntries(RECORDED_REGISTERS.map((r) => [r.name, file.read(r.offset, r.width)]));
    mkdirSync(join(stateDir, 'registers'), { recursive: true, mode: 0o700 });
    writeFileAtomic(path, JSON.stringify(record) + '\n');
  } finally {
    file.close();
  }
  let removed = false;
  return {
    repaired: repairs.length > 0 ? repairs.join(', ') : null,
    remove(): void {
      if (removed) return;
      removed = true;
      removeRecord(path);
    },
  };
}

/** Whether a backend left a register record for `address` (it was killed before its release). */
export function hasRegisterRecord(stateDir: string, address: PciAddress): boolean {
  return readFileIfExists(recordPath(stateDir, address)) !== null;
}

/**
 * Call with the device claimed, when no export will follow (assignable-remove): repair the
 * registers from a record left by a dead holder and remove the record. What was repaired, or null
 * (no record, or nothing differed).
 */
export function repairFromRecord(sysfsRoot: string, stateDir: string, address: PciAddress): string | null {
  const path = recordPath(stateDir, address);
  const left = readFileIfExists(path);
  if (left === null) return null;
  const file = native().openRegisterFile(configPath(sysfsRoot, address), true);
  let repairs: string[];
  try {
    repairs = repair(file, left);
  } finally {
    file.close();
  }
  removeRecord(path);
  return repairs.length > 0 ? repairs.join(', ') : null;
}
