/**
 * Refused accesses of one exported device: counted per register for the `--json` shutdown summary
 * and logged once per register (DEBUG=xpci:policy), so a frontend hammering a refused register
 * cannot flood the host's log (the XSA-157 log-spam lesson).
 */
import { debugLog } from '../../diagnostics/debug-log.js';

const log = debugLog('xpci:policy');

export interface DenialRecord {
  register: string;
  offset: number;
  size: number;
  count: number;
  reason: string;
}

export class DenialLog {
  private readonly records = new Map<string, DenialRecord>();

  /** `device`: how host-side log lines name the device (the host address is fine here). */
  constructor(private readonly device: string) {}

  record(register: string, offset: number, size: number, reason: string): void {
    let record = this.records.get(register);
    if (record === undefined) {
      record = { register, offset, size, count: 0, reason };
      this.records.set(register, record);
      log('%s: access to %s (0x%s) denied: %s (logged once per register)', this.device, register, offset.toString(16), reason);
    }
    record.count++;
  }

  list(): DenialRecord[] {
    return [...this.records.values()].map((record) => ({ ...record }));
  }
}
