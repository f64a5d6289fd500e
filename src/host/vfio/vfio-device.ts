/**
 * The VFIO back end: a device bound to vfio-pci, opened through its group and container. Config
 * space stays on the sysfs `config` file (one policy for both back ends); BARs are VFIO regions;
 * interrupts, DMA and reset are VFIO's. close() undoes everything in reverse: interrupts off, DMA
 * unmapped, regions unmapped, device fd closed (vfio-pci then disables and resets the device), group
 * released, config closed.
 */
import { native, type RegisterFile } from '../../native/binding.js';
import type { PciDeviceInfo } from '../../pci/device-info.js';
import type { BarRegion, HostDevice, HostDeviceFeatures, HostDeviceMethod, InterruptKind, OpenOptions } from '../device-access.js';
import { configPath, DEFAULT_SYSFS_ROOT } from '../sysfs/paths.js';
import { missingBar } from '../sysfs/sysfs-device.js';
import { VfioBarRegion } from './vfio-bar-region.js';
import { VfioDma } from './vfio-dma.js';
import { DEFAULT_VFIO_DIR, inNoIommuGroup, NOIOMMU_GROUP_NAME, VfioGroups, type VfioGroup } from './vfio-groups.js';
import { irqIndex, VfioInterrupts } from './vfio-interrupts.js';

export const VFIO_DRIVER = 'vfio-pci';

export interface VfioMethodOptions {
  sysfsRoot?: string;
  /** where the VFIO character devices are (default /dev/vfio) */
  vfioDir?: string;
  /**
   * Devices in vfio's no-IOMMU groups are opened (interrupts, regions and reset, never DMA: nothing
   * isolates them); without it they are refused. Devices behind an IOMMU get type1 either way.
   */
  unsafeNoiommu?: boolean;
}

const KINDS: readonly InterruptKind[] = ['intx', 'msi', 'msix'];

/**
 * Without an IOMMU (`dma` false) only INTx is offered: MSI and MSI-X are memory writes by the device,
 * which need bus mastering, and the policy keeps bus mastering off where nothing confines DMA.
 */
function probeFeatures(deviceFd: number, dma: boolean): HostDeviceFeatures {
  const c = native().vfioConstants;
  const info = native().vfioDeviceGetInfo(deviceFd);
  const interrupts: Partial<Record<InterruptKind, number>> = {};
  for (const kind of dma ? KINDS : KINDS.filter((k) => k === 'intx')) {
    if (irqIndex(kind) >= info.numIrqs) continue;
    const irq = native().vfioDeviceGetIrqInfo(deviceFd, irqIndex(kind));
    if (irq.count > 0 && (irq.flags & c.IRQ_INFO_EVENTFD) !== 0) interrupts[kind] = irq.count;
  }
  return { interrupts, dma, reset: (info.flags & c.DEVICE_FLAGS_RESET) !== 0 };
}

class VfioDevice implements HostDevice {
  readonly method = 'vfio';
  readonly features: HostDeviceFeatures;
  readonly interrupts?: VfioInterrupts;
  readonly dma?: VfioDma;
  readonly reset?: () => void;
  private readonly regions = new Map<number, VfioBarRegion>();
  private closed = false;

  constructor(
    readonly info: PciDeviceInfo,
    readonly config: RegisterFile,
    private readonly deviceFd: number,
    private readonly group: VfioGroup,
    private readonly groups: VfioGroups,
    private readonly options: OpenOptions,
  ) {
    this.features = probeFeatures(deviceFd, !group.noiommu);
    if (Object.keys(this.features.interrupts).length > 0) this.interrupts = new VfioInterrupts(deviceFd, this.features.interrupts);
    if (this.features.dma) this.dma = new VfioDma(group.containerFd);
    if (this.features.reset) this.reset = () => native().vfioDeviceReset(this.deviceFd);
  }

  bar(index: number): BarRegion {
    if (this.closed) throw new Error(`${this.info.bdf}: the VFIO device is closed`);
    let region = this.regions.get(index);
    if (region === undefined) {
      const problem = missingBar(this.info, index, this.options.writable);
      if (problem !== null) throw new Error(problem);
      const bar = this.info.bars.find((b) => b.index === index)!;
      const c = native().vfioConstants;
      const info = native().vfioDeviceGetRegionInfo(this.deviceFd, c.PCI_BAR0_REGION_INDEX + index);
      region = new VfioBarRegion(bar, this.deviceFd, info, this.info.bdf);
      this.regions.set(index, region);
    }
    return region;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const failures: unknown[] = [];
    const attempt = (step: () => void): void => {
      try { step(); } catch (error) { failures.push(error); }
    };
    attempt(() => this.interrupts?.disableAll());
    attempt(() => this.dma?.unmapAll());
    for (const region of this.regions.values()) attempt(() => region.close());
    this.regions.clear();
    attempt(() => native().closeFd(this.deviceFd));
    attempt(() => this.groups.release(this.group));
    attempt(() => this.config.close());
    if (failures.length > 0) throw failures[0];
  }
}

/** One instance per process: devices of one IOMMU group share its open group and container. */
export function vfioMethod(options: VfioMethodOptions = {}): HostDeviceMethod {
  const sysfsRoot = options.sysfsRoot ?? DEFAULT_SYSFS_ROOT;
  const groups = new VfioGroups(options.vfioDir ?? DEFAULT_VFIO_DIR);
  return {
    name: 'vfio',
    open(info: PciDeviceInfo, openOptions: OpenOptions): HostDevice {
      if (info.driver !== VFIO_DRIVER) throw new Error(`${info.bdf} is bound to ${info.driver ?? 'no driver'}, not ${VFIO_DRIVER}`);
      if (info.iommuGroup === null) throw new Error(`${info.bdf} has no IOMMU group`);
      const noiommu = inNoIommuGroup(sysfsRoot, info.address);
      if (noiommu && !options.unsafeNoiommu) {
        throw new Error(`${info.bdf} is held by vfio-pci in VFIO's no-IOMMU mode (IOMMU group ${info.iommuGroup} is '${NOIOMMU_GROUP_NAME}'): `
          + 'no IOMMU confines its DMA, so it is exported only with --unsafe-noiommu (interrupts and reset, never DMA)');
      }
      const config = native().openRegisterFile(configPath(sysfsRoot, info.address), openOptions.writable);
      let group: VfioGroup | undefined;
      try {
        group = groups.acquire(info.iommuGroup, noiommu);
        const deviceFd = native().vfioGroupGetDeviceFd(group.groupFd, info.bdf);
        try {
          return new VfioDevice(info, config, deviceFd, group, groups, openOptions);
        } catch (error) {
          native().closeFd(deviceFd);
          throw error;
        }
      } catch (error) {
        if (group !== undefined) groups.release(group);
        config.close();
        throw error;
      }
    },
  };
}
