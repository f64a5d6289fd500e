/**
 * The real host behind an export: discovery reads the device, the lifecycle helpers lock and
 * reset it, ExportedDevice serves it, SO_PEERCRED admits peers. Kept apart from the reconciler so
 * the export policy can be exercised on its own.
 */
import { parseAddress } from '../../pci/address.js';
import { readDevice } from '../../host/sysfs/discovery.js';
import type { ExportMode } from '../../protocol/ring/messages.js';
import { openExportedDevice, type ExportedDevice } from '../exported-device.js';
import { claimDevice } from '../lifecycle/device-claim.js';
import { checkPeer } from '../lifecycle/peer-access.js';
import { resetDevice } from '../lifecycle/reset.js';
import type { ExportHost } from './export-reconciler.js';
import type { Admission } from './peer-admission.js';
import type { SocketAccess } from './socket-file.js';

export interface HostSettings {
  sysfsRoot: string;
  stateDir: string;
  mode: ExportMode;
  readOnly: boolean;
  /** BAR registers take any address the guest writes (vfio-user) */
  guestAssignedBars?: boolean;
}

export function createExportHost(settings: HostSettings): ExportHost<ExportedDevice> {
  const { sysfsRoot, stateDir, mode, readOnly, guestAssignedBars } = settings;
  return {
    readDevice: (address) => readDevice(sysfsRoot, address),
    lock: (bdf) => claimDevice(sysfsRoot, stateDir, parseAddress(bdf), !readOnly),
    reset: (info) => resetDevice(sysfsRoot, info),
    open: (info, guest, permissive) => openExportedDevice({ sysfsRoot, info, guest, mode, readOnly, permissive, guestAssignedBars }),
  };
}

export function admitPeer(fd: number, access: SocketAccess): Admission {
  return checkPeer(fd, access);
}
