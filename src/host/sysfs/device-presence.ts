/**
 * Whether a device is still the one an export opened. Linux does not take a BAR mapping away from
 * a device removed from the bus (`remove` in sysfs, a hot unplug): accesses through it keep reaching
 * the old address range, which a rescan may hand to another device. So before a BAR access, at most
 * once per CHECK_INTERVAL_MS, the device's `config` file is looked up again: a removed device has
 * none, a rescanned one a new inode. A device found gone stays gone.
 */
import { statSync } from 'node:fs';
import { constants } from 'node:os';
import { performance } from 'node:perf_hooks';

/** A lookup costs ~20 µs from Node; once per interval keeps it out of the BAR hot path. */
export const CHECK_INTERVAL_MS = 100;

export class DevicePresence {
  private readonly dev: number;
  private readonly ino: number;
  private checkedAt = performance.now();
  private gone: Error | null = null;

  /** `configPath`: the `config` file the device was opened through, looked up just after opening it. */
  constructor(private readonly configPath: string) {
    const { dev, ino } = statSync(configPath);
    this.dev = dev;
    this.ino = ino;
  }

  /** Throws an ENODEV error (shaped like the addon's) once the device is gone. */
  check(): void {
    if (this.gone !== null) throw this.gone;
    const now = performance.now();
    if (now - this.checkedAt < CHECK_INTERVAL_MS) return;
    this.checkedAt = now;
    const found = statSync(this.configPath, { throwIfNoEntry: false });
    if (found !== undefined && found.dev === this.dev && found.ino === this.ino) return;
    const why = found === undefined ? 'the device is no longer in sysfs' : 'another device took its place in sysfs';
    this.gone = Object.assign(new Error(`stat ${this.configPath}: ${why}`),
      { code: 'ENODEV', errno: constants.errno.ENODEV, syscall: 'stat', path: this.configPath });
    throw this.gone;
  }
}
