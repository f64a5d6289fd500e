/**
 * Where things live under a sysfs root. `--sysfs-root DIR` names the folder that contains
 * `bus/pci/devices/`; the default is the real `/sys`.
 */
import { join } from 'node:path';
import { formatAddress, type PciAddress } from '../../pci/address.js';

export const DEFAULT_SYSFS_ROOT = '/sys';

export const pciDevicesDir = (sysfsRoot: string): string => join(sysfsRoot, 'bus', 'pci', 'devices');
export const pciDriversDir = (sysfsRoot: string): string => join(sysfsRoot, 'bus', 'pci', 'drivers');
export const deviceDir = (sysfsRoot: string, address: PciAddress): string => join(pciDevicesDir(sysfsRoot), formatAddress(address));
export const configPath = (sysfsRoot: string, address: PciAddress): string => join(deviceDir(sysfsRoot, address), 'config');
export const resourcePath = (sysfsRoot: string, address: PciAddress, bar: number): string =>
  join(deviceDir(sysfsRoot, address), `resource${bar}`);
