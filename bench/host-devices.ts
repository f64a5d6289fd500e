/**
 * This machine's PCI functions the bench may export read-only: everything but bridges (class
 * 0x06xx, which xpci never exports). Only sysfs attribute files are read here.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const DEVICES = '/sys/bus/pci/devices';

export interface HostDevice {
  bdf: string;
  vendor: string;
  configPath: string;
}

export function exportableHostDevices(): HostDevice[] {
  if (!existsSync(DEVICES)) return [];
  return readdirSync(DEVICES).sort().flatMap((bdf) => {
    try {
      const classCode = parseInt(readFileSync(join(DEVICES, bdf, 'class'), 'utf8'), 16);
      if (classCode >>> 16 === 0x06) return [];
      const vendor = readFileSync(join(DEVICES, bdf, 'vendor'), 'utf8').trim().replace(/^0x/, '');
      return [{ bdf, vendor, configPath: join(DEVICES, bdf, 'config') }];
    } catch {
      return [];
    }
  });
}
