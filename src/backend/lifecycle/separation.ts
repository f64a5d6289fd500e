/**
 * May these devices be taken from the host without taking something else with them? A bridge
 * controls every device behind it (xen-pciback.md §2.4). Devices in one IOMMU group can reach each
 * other by peer-to-peer DMA, so a group goes to the backend whole or not at all (as VFIO requires),
 * bridges in the group excepted. Without IOMMU groups nothing shows that functions of one slot are
 * isolated (they share the slot's reset and may share resources), so the slot is the unit, as libxl
 * does for multi-function passthrough.
 */
import { sameAddress, sameSlot, formatAddress } from '../../pci/address.js';
import type { PciDeviceInfo } from '../../pci/device-info.js';
import { HOLDING_DRIVERS } from './driver-binding.js';
import { hex } from '../../pci/hex.js';


const isHeld = (d: PciDeviceInfo): boolean => d.driver !== null && HOLDING_DRIVERS.includes(d.driver);

const describe = (d: PciDeviceInfo): string => `${d.bdf} (${d.driver === null ? 'no driver' : `driver ${d.driver}`})`;

/**
 * One message per problem; empty when `requested` may be seized. `all` is every device under the
 * sysfs root (it must contain the requested ones).
 */
export function findSeparationProblems(all: readonly PciDeviceInfo[], requested: readonly PciDeviceInfo[]): string[] {
  const problems: string[] = [];
  const isRequested = (d: PciDeviceInfo): boolean => requested.some((r) => sameAddress(r.address, d.address));
  for (const device of requested) {
    if (device.isBridge) {
      problems.push(`${device.bdf} is a bridge (class ${hex(device.classCode, 6)}): its owner controls bus numbers, windows and resets of every device behind it; bridges are never made assignable`);
      continue;
    }
    const others = all.filter((d) => !sameAddress(d.address, device.address) && !isRequested(d) && !isHeld(d));
    if (device.iommuGroup !== null) {
      const blocking = others.filter((d) => d.iommuGroup === device.iommuGroup && !d.isBridge);
      if (blocking.length > 0) {
        problems.push(`${device.bdf} shares IOMMU group ${device.iommuGroup} with ${blocking.map(describe).join(', ')}, not being added: devices of one group can reach each other by DMA, so add them in the same command`);
      }
    } else {
      const blocking = others.filter((d) => sameSlot(d.address, device.address));
      if (blocking.length > 0) {
        const slot = formatAddress(device.address).slice(0, -2);
        problems.push(`${device.bdf} is one function of slot ${slot}, whose ${blocking.map(describe).join(', ')} ${blocking.length > 1 ? 'are' : 'is'} not being added: without IOMMU groups the functions of a slot cannot be shown to be isolated (shared reset and resources), so add all functions of ${slot} together`);
      }
    }
  }
  return problems;
}
