/**
 * A SysfsWriter that plays the kernel's PCI driver core on a fixture tree: writes land in the
 * regular files (so tests can read them) and are logged, and unbind / bind / drivers_probe move the
 * device's `driver` link as the kernel would. It refuses any path outside the fixture root, so a
 * test can never reach the real /sys through it.
 */
import { existsSync, readFileSync, readlinkSync, realpathSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, join, relative, sep } from 'node:path';
import type { SysfsWriter } from '../../src/backend/lifecycle/sysfs-writer.js';

export interface SysfsWrite {
  /** path relative to the fixture root, e.g. "bus/pci/drivers_probe" */
  path: string;
  value: string;
}

export class SimulatedKernel implements SysfsWriter {
  readonly writes: SysfsWrite[] = [];

  /**
   * `naturalDrivers`: which driver claims each device on a probe without driver_override (the
   * driver must also exist as bus/pci/drivers/<name>, i.e. its module is "loaded").
   */
  constructor(readonly root: string, readonly naturalDrivers: Record<string, string> = {}) {}

  write(path: string, value: string): void {
    const rel = relative(this.root, path);
    if (rel.startsWith('..') || rel.startsWith(sep)) throw new Error(`simulated kernel: write outside the fixture root refused: ${path}`);
    this.writes.push({ path: rel, value });
    writeFileSync(path, value);
    const bdf = value.trim();
    let m: RegExpExecArray | null;
    if ((m = /^bus\/pci\/devices\/([^/]+)\/driver\/unbind$/.exec(rel))) {
      if (m[1] !== bdf) throw Object.assign(new Error(`ENODEV: unbind of ${bdf} through ${m[1]}`), { code: 'ENODEV' });
      this.unbind(bdf);
    } else if ((m = /^bus\/pci\/drivers\/([^/]+)\/unbind$/.exec(rel))) {
      if (this.driverOf(bdf) !== m[1]) throw Object.assign(new Error(`ENODEV: ${bdf} is not bound to ${m[1]}`), { code: 'ENODEV' });
      this.unbind(bdf);
    } else if ((m = /^bus\/pci\/drivers\/([^/]+)\/bind$/.exec(rel))) {
      this.bind(bdf, m[1]);
    } else if (rel === 'bus/pci/drivers_probe') {
      if (this.driverOf(bdf) !== null) return;
      const override = readFileSync(join(this.deviceDir(bdf), 'driver_override'), 'utf8').trim();
      const target = override !== '' ? override : this.naturalDrivers[bdf];
      if (target !== undefined && existsSync(join(this.root, 'bus', 'pci', 'drivers', target))) this.bind(bdf, target);
    }
  }

  /** Writes whose path ends with `suffix`, in order. */
  writesTo(suffix: string): string[] {
    return this.writes.filter((w) => w.path.endsWith(suffix)).map((w) => w.value);
  }

  driverOf(bdf: string): string | null {
    try {
      return basename(readlinkSync(join(this.deviceDir(bdf), 'driver')));
    } catch {
      return null;
    }
  }

  private deviceDir(bdf: string): string {
    return realpathSync(join(this.root, 'bus', 'pci', 'devices', bdf));
  }

  private unbind(bdf: string): void {
    unlinkSync(join(this.deviceDir(bdf), 'driver'));
  }

  private bind(bdf: string, driver: string): void {
    const dir = this.deviceDir(bdf);
    if (this.driverOf(bdf) !== null) throw Object.assign(new Error(`EBUSY: ${bdf} already bound`), { code: 'EBUSY' });
    symlinkSync(relative(dir, join(realpathSync(this.root), 'bus', 'pci', 'drivers', driver)), join(dir, 'driver'));
  }
}
