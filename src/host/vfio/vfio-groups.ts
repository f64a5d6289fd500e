/**
 * VFIO groups and their containers (Documentation/driver-api/vfio.rst): a group's character device
 * can be opened once, so every device of a group shares one open group and one container. The group
 * must be viable (every device in it bound to vfio-pci or to no driver); the container gets the
 * type1 IOMMU, or, for a no-IOMMU group, the no-IOMMU "IOMMU" (unsafe: the device can DMA anywhere,
 * so no DMA is offered there).
 */
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../../native/binding.js';
import type { PciAddress } from '../../pci/address.js';
import { deviceDir } from '../sysfs/paths.js';

export const DEFAULT_VFIO_DIR = '/dev/vfio';

/**
 * The name vfio gives the fake IOMMU group it makes for a device bound to vfio-pci in no-IOMMU mode
 * (the vfio module's enable_unsafe_noiommu_mode); its character device is /dev/vfio/noiommu-N.
 */
export const NOIOMMU_GROUP_NAME = 'vfio-noiommu';

/** Whether the device's IOMMU group is one of vfio's no-IOMMU groups (no IOMMU behind it). */
export function inNoIommuGroup(sysfsRoot: string, address: PciAddress): boolean {
  try {
    return readFileSync(join(deviceDir(sysfsRoot, address), 'iommu_group', 'name'), 'utf8').trim() === NOIOMMU_GROUP_NAME;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

export interface VfioGroup {
  readonly number: number;
  readonly groupFd: number;
  readonly containerFd: number;
  /** true for a no-IOMMU container: interrupts and regions work, DMA mappings cannot */
  readonly noiommu: boolean;
}

interface OpenGroup extends VfioGroup {
  users: number;
}

export class VfioGroups {
  private readonly open = new Map<number, OpenGroup>();

  constructor(private readonly vfioDir: string) {}

  /**
   * The group, opened and attached to a container on first use; release() once per acquire().
   * `noiommu`: a no-IOMMU group (inNoIommuGroup), opened as such and given the no-IOMMU container.
   */
  acquire(number: number, noiommu: boolean): VfioGroup {
    let group = this.open.get(number);
    if (group === undefined) {
      group = this.attach(number, noiommu);
      this.open.set(number, group);
    }
    group.users++;
    return group;
  }

  release(group: VfioGroup): void {
    const open = this.open.get(group.number);
    if (open === undefined || --open.users > 0) return;
    this.open.delete(group.number);
    try {
      native().vfioGroupUnsetContainer(open.groupFd);
    } finally {
      closeSync(open.groupFd);
      closeSync(open.containerFd);
    }
  }

  private attach(number: number, noiommu: boolean): OpenGroup {
    const c = native().vfioConstants;
    const containerFd = openSync(join(this.vfioDir, 'vfio'), 'r+');
    let groupFd = -1;
    try {
      const version = native().vfioGetApiVersion(containerFd);
      if (version !== c.API_VERSION) throw new Error(`VFIO API version ${version}, expected ${c.API_VERSION}`);
      const iommu = noiommu ? c.NOIOMMU_IOMMU : this.type1(containerFd);
      const name = noiommu ? `noiommu-${number}` : String(number);
      groupFd = openSync(join(this.vfioDir, name), 'r+');
      const flags = native().vfioGroupGetStatus(groupFd);
      if ((flags & c.GROUP_FLAGS_VIABLE) === 0) {
        throw new Error(`IOMMU group ${number} is not viable: every device in it must be bound to vfio-pci (or to no driver)`);
      }
      native().vfioGroupSetContainer(groupFd, containerFd);
      native().vfioSetIommu(containerFd, iommu);
      return { number, groupFd, containerFd, noiommu, users: 0 };
    } catch (error) {
      if (groupFd >= 0) closeSync(groupFd);
      closeSync(containerFd);
      throw error;
    }
  }

  /** type1v2 where the kernel has it (unmap semantics without splitting), else type1. */
  private type1(containerFd: number): number {
    const c = native().vfioConstants;
    if (native().vfioCheckExtension(containerFd, c.TYPE1v2_IOMMU) > 0) return c.TYPE1v2_IOMMU;
    if (native().vfioCheckExtension(containerFd, c.TYPE1_IOMMU) > 0) return c.TYPE1_IOMMU;
    throw new Error('the VFIO container offers no type1 IOMMU (is vfio_iommu_type1 loaded?)');
  }
}
