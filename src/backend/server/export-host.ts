/**
 * The real host behind an export: discovery reads the device, the lifecycle helpers lock and
 * reset it, ExportedDevice serves it, SO_PEERCRED admits peers. Kept apart from the reconciler so
 * the export policy can be exercised on its own.
 *
 * A device held by vfio-pci is opened through the VFIO back end (interrupts, DMA windows, reset);
 * anything else (pci-stub, a fixture tree) through sysfs.
 */
import { allocateDmaMemory } from '../../host/dma-memory.js';
import { readDevice } from '../../host/sysfs/discovery.js';
import { sysfsMethod } from '../../host/sysfs/sysfs-device.js';
import { VFIO_DRIVER, vfioMethod } from '../../host/vfio/vfio-device.js';
import { formatAddress, parseAddress } from '../../pci/address.js';
import type { PciDeviceInfo } from '../../pci/device-info.js';
import type { ExportMode } from '../../protocol/ring/messages.js';
import { DmaBudget } from '../dma/dma-windows.js';
import { openExportedDevice, type ExportedDevice } from '../exported-device.js';
import { claimDevice } from '../lifecycle/device-claim.js';
import { checkPeer } from '../lifecycle/peer-access.js';
import { resetDevice, type ResetResult } from '../lifecycle/reset.js';
import type { ExportHost } from './export-reconciler.js';
import type { Admission } from './peer-admission.js';
import type { SocketAccess } from './socket-file.js';

export interface HostSettings {
  sysfsRoot: string;
  stateDir: string;
  mode: ExportMode;
  readOnly: boolean;
  /** DMA memory the whole export may map (xpci export --dma-limit); DmaBudget's default when absent */
  dmaLimit?: number;
  /** devices in VFIO no-IOMMU groups are exported (xpci export --unsafe-noiommu): INTx and reset, never DMA */
  unsafeNoiommu?: boolean;
  /** BAR registers take any address the guest writes (vfio-user) */
  guestAssignedBars?: boolean;
  /** operator-facing warnings (a device found gone from the host) */
  warn?: (message: string) => void;
}

/** vfio-pci resets a device itself when it is opened and closed, whenever the kernel knows a reset for it. */
function vfioReset(info: PciDeviceInfo): ResetResult {
  const bdf = formatAddress(info.address);
  return info.hasReset
    ? { performed: true, message: `${bdf}: reset by vfio-pci when the device is opened and closed` }
    : { performed: false, message: `${bdf}: not reset: the kernel knows no FLR, PM or bus reset for it, so the next user gets it in whatever state it was left` };
}

export function createExportHost(settings: HostSettings): ExportHost<ExportedDevice> {
  const { sysfsRoot, stateDir, mode, readOnly, guestAssignedBars } = settings;
  const sysfs = sysfsMethod(sysfsRoot);
  const vfio = vfioMethod({ sysfsRoot, unsafeNoiommu: settings.unsafeNoiommu });
  const dma = { budget: new DmaBudget(settings.dmaLimit), allocate: allocateDmaMemory };
  const heldByVfio = (info: PciDeviceInfo): boolean => info.driver === VFIO_DRIVER;
  return {
    readDevice: (address) => readDevice(sysfsRoot, address),
    lock: (bdf) => claimDevice(sysfsRoot, stateDir, parseAddress(bdf), !readOnly),
    reset: (info) => (heldByVfio(info) ? vfioReset(info) : resetDevice(sysfsRoot, info)),
    open: (info, guest, permissive) => openExportedDevice({
      sysfsRoot, info, guest, mode, readOnly, permissive, guestAssignedBars,
      method: heldByVfio(info) ? vfio : sysfs,
      dma,
      onGone: settings.warn,
    }),
  };
}

export function admitPeer(fd: number, access: SocketAccess): Admission {
  return checkPeer(fd, access);
}
