/**
 * The exclusive claim on a device for an export. The record in the state directory (device-lock.ts)
 * is per state directory, so two backends with different --state-dir would both take it; the claim
 * that decides is an flock on the device's own sysfs `config` file, which the kernel keeps per
 * device (on fixture trees: per fixture file) and drops when the holder dies, whatever kills it.
 * The record stays for the error message (who, since when) and for the tools that read it.
 */
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { native, isNativeError } from '../../native/binding.js';
import { formatAddress, type PciAddress } from '../../pci/address.js';
import { configPath } from '../../host/sysfs/paths.js';
import { acquireDeviceLock, DeviceBusyError, heldLock, type DeviceLock } from './device-lock.js';
import { recordRegisters, type RegisterRecord } from './register-record.js';

/** Pid holding an flock on the file with inode `inode`, from /proc/locks; null if not found. */
function flockHolder(inode: number): number | null {
  let table: string;
  try {
    table = readFileSync('/proc/locks', 'utf8');
  } catch {
    return null;
  }
  // "1: FLOCK  ADVISORY  WRITE 1234 00:1b:5678 0 EOF": pid, then major:minor:inode.
  for (const line of table.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields[1] !== 'FLOCK' || fields[3] !== 'WRITE') continue;
    if (Number(fields[5]?.split(':')[2]) === inode) return Number(fields[4]);
  }
  return null;
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((part) => part !== '').join(' ');
  } catch {
    return '?';
  }
}

/**
 * Claim `address` for this process: the device's flock, then the state-directory record; for a
 * writable export also the register record (register-record.ts), which repairs what a killed
 * predecessor left changed.
 */
export function claimDevice(sysfsRoot: string, stateDir: string, address: PciAddress, writable: boolean): DeviceLock {
  const bdf = formatAddress(address);
  const path = configPath(sysfsRoot, address);
  const fd = openSync(path, 'r');
  try {
    native().lockExclusive(fd);
  } catch (error) {
    closeSync(fd);
    if (!isNativeError(error, 'EWOULDBLOCK') && !isNativeError(error, 'EAGAIN')) throw error;
    const pid = flockHolder(statSync(path).ino);
    const who = pid === null ? 'another process' : pid === process.pid ? 'this process' : `pid ${pid} (${commandOf(pid)})`;
    throw new DeviceBusyError(`${bdf} is already in use by ${who}: it holds the device's lock on ${path}`,
      { pid: pid ?? 0, startTime: null, command: pid === null ? '?' : commandOf(pid), since: '?' });
  }
  let record: DeviceLock;
  let registers: RegisterRecord | null = null;
  try {
    record = acquireDeviceLock(stateDir, address);
    try {
      registers = writable ? recordRegisters(sysfsRoot, stateDir, address) : null;
    } catch (error) {
      record.release();
      throw error;
    }
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  const notes = [record.staleNote, registers?.repaired ? `restored registers a backend that died left changed: ${registers.repaired}` : null]
    .filter((note) => note !== null);
  return heldLock({ bdf: record.bdf, path: record.path, staleNote: notes.length > 0 ? notes.join('; ') : null }, () => {
    try {
      registers?.remove();
      record.release();
    } finally {
      closeSync(fd);
    }
  });
}
