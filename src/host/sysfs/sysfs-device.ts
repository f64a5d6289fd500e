/**
 * The sysfs back end: config through the `config` file, BARs through `resourceN`. No interrupts, no
 * DMA: a device held by pci-stub (or a fixture tree under --sysfs-root) offers register access only.
 */
import { native, type RegisterFile } from '../../native/binding.js';
import type { PciDeviceInfo } from '../../pci/device-info.js';
import type { BarRegion, HostDevice, HostDeviceFeatures, HostDeviceMethod, OpenOptions } from '../device-access.js';
import { SysfsBarRegion } from './bar-region.js';
import { DevicePresence } from './device-presence.js';
import { configPath, resourcePath } from './paths.js';

const REGISTERS_ONLY: HostDeviceFeatures = Object.freeze({ interrupts: Object.freeze({}), dma: false, reset: false });

/** A BAR index the device lacks, or BAR access on a device opened read-only: a caller's bug. */
export function missingBar(info: PciDeviceInfo, index: number, writable: boolean): string | null {
  if (!writable) return `${info.bdf}: opened read-only, BAR ${index} is not accessible`;
  if (!info.bars.some((b) => b.index === index)) return `${info.bdf}: BAR ${index} does not exist`;
  return null;
}

class SysfsDevice implements HostDevice {
  readonly method = 'sysfs';
  readonly features = REGISTERS_ONLY;
  private readonly regions = new Map<number, SysfsBarRegion>();

  constructor(
    readonly info: PciDeviceInfo,
    readonly config: RegisterFile,
    private readonly sysfsRoot: string,
    private readonly options: OpenOptions,
    private readonly presence: DevicePresence,
  ) {}

  bar(index: number): BarRegion {
    let region = this.regions.get(index);
    if (region === undefined) {
      const problem = missingBar(this.info, index, this.options.writable);
      if (problem !== null) throw new Error(problem);
      const bar = this.info.bars.find((b) => b.index === index)!;
      region = new SysfsBarRegion(bar, resourcePath(this.sysfsRoot, this.info.address, index), () => this.presence.check());
      this.regions.set(index, region);
    }
    return region;
  }

  close(): void {
    try {
      for (const region of this.regions.values()) region.close();
      this.regions.clear();
    } finally {
      this.config.close();
    }
  }
}

export function sysfsMethod(sysfsRoot: string): HostDeviceMethod {
  return {
    name: 'sysfs',
    open(info: PciDeviceInfo, options: OpenOptions): HostDevice {
      const path = configPath(sysfsRoot, info.address);
      const config = native().openRegisterFile(path, options.writable);
      let presence: DevicePresence;
      try {
        presence = new DevicePresence(path);
      } catch (error) {
        config.close();
        throw error;
      }
      return new SysfsDevice(info, config, sysfsRoot, options, presence);
    },
  };
}
