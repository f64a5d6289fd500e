/**
 * Reading which driver owns a device and making sure the stub driver exists. Binding itself is a
 * sequence of sysfs writes done by assignable.ts through a SysfsWriter.
 */
import { existsSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { PciAddress } from '../../pci/address.js';
import { deviceDir, pciDriversDir } from '../../host/sysfs/paths.js';
import { LifecycleError } from './errors.js';

/** The driver xpci parks seized devices on: it binds, claims nothing and keeps host drivers off. */
export const STUB_DRIVER = 'pci-stub';

/**
 * Drivers that only hold a device for assignment: a device on one of them is not in host use, so it
 * does not make a sibling unsafe to separate.
 */
export const HOLDING_DRIVERS: readonly string[] = [STUB_DRIVER, 'vfio-pci', 'pciback', 'xen-pciback'];

/** Name of the bound driver from the `driver` link, or null when unbound. */
export function currentDriver(sysfsRoot: string, address: PciAddress): string | null {
  try {
    return basename(readlinkSync(join(deviceDir(sysfsRoot, address), 'driver')));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

export const driverOverridePath = (sysfsRoot: string, address: PciAddress): string => join(deviceDir(sysfsRoot, address), 'driver_override');
export const driverUnbindPath = (sysfsRoot: string, address: PciAddress): string => join(deviceDir(sysfsRoot, address), 'driver', 'unbind');
export const driversProbePath = (sysfsRoot: string): string => join(sysfsRoot, 'bus', 'pci', 'drivers_probe');

/** Loads a kernel module by name; injectable so fixture tests never run modprobe. */
export type ModuleLoader = (module: string) => void;

export const modprobe: ModuleLoader = (module) => {
  try {
    execFileSync('modprobe', [module], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const e = error as Error & { stderr?: Buffer };
    const detail = e.stderr?.toString().trim() || e.message.split('\n')[0];
    throw new LifecycleError(`modprobe ${module} failed: ${detail}`);
  }
};

/** Make sure `<root>/bus/pci/drivers/pci-stub` exists, loading the module if needed. */
export function ensureStubDriver(sysfsRoot: string, loadModule: ModuleLoader = modprobe): void {
  const dir = join(pciDriversDir(sysfsRoot), STUB_DRIVER);
  if (existsSync(dir)) return;
  loadModule(STUB_DRIVER);
  if (!existsSync(dir)) {
    throw new LifecycleError(`${STUB_DRIVER} is not available: ${dir} is still missing after loading the module (is CONFIG_PCI_STUB enabled?)`);
  }
}
