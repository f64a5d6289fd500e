/**
 * Every sysfs write the lifecycle code makes (driver_override, unbind, bind, drivers_probe, reset)
 * goes through a SysfsWriter, so tests can observe the sequence and simulate the kernel on a fixture
 * tree, and so there is one place to log what xpci did to the host.
 */
import { writeFileSync } from 'node:fs';
import { debugLog } from '../../diagnostics/debug-log.js';
import { LifecycleError } from './errors.js';

const debug = debugLog('xpci:sysfs-write');

export interface SysfsWriter {
  /** Write `value` to the attribute at `path` in one write(2), as `echo value > path` does. */
  write(path: string, value: string): void;
}

/** The real writer: on sysfs a failed write carries the driver's errno (EBUSY, ENODEV, EINVAL...). */
export const fileSysfsWriter: SysfsWriter = {
  write(path: string, value: string): void {
    debug('%s <- %j', path, value);
    try {
      writeFileSync(path, value);
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      throw new LifecycleError(`writing ${JSON.stringify(value.trimEnd())} to ${path} failed: ${e.code ?? e.message}`);
    }
  },
};
