/**
 * lspci -v's capability lines (pciutils' ls-caps.c): one text per standard capability, the end of
 * a broken or looped chain, and the extended list (lspci-ecaps.ts) for PCI Express and PCI-X.
 */
import { walkCapabilities, walkExtendedCapabilities, type Capability, type CapabilityWalk } from './capabilities.js';
import { wordAt } from './config-fields.js';
import {
  PCI_CAP_ID_PM, PCI_CAP_ID_AGP, PCI_CAP_ID_VPD, PCI_CAP_ID_SLOTID, PCI_CAP_ID_MSI, PCI_CAP_ID_CHSWP, PCI_CAP_ID_PCIX, PCI_CAP_ID_HT, PCI_CAP_ID_VNDR, PCI_CAP_ID_DBG, PCI_CAP_ID_CCRC, PCI_CAP_ID_SHPC, PCI_CAP_ID_SSVID, PCI_CAP_ID_AGP3, PCI_CAP_ID_SECDEV, PCI_CAP_ID_EXP, PCI_CAP_ID_MSIX, PCI_CAP_ID_SATA, PCI_CAP_ID_AF, PCI_CAP_ID_EA,
  PCI_HEADER_TYPE, PCI_HEADER_TYPE_BRIDGE, PCI_HEADER_TYPE_MASK,
} from './config-header.js';
import { hex } from './hex.js';
import { extendedCapabilityText } from './lspci-ecaps.js';
import type { DeviceSummary } from './lspci-device-line.js';
import { subsystemText, type NameMode, type PciIds } from './pci-ids.js';

const flag = (value: number, bit: number): string => (value & bit ? '+' : '-');

const EXPRESS_TYPES: Record<number, string> = {
  0x0: 'Endpoint', 0x1: 'Legacy Endpoint', 0x4: 'Root Port', 0x5: 'Upstream Port', 0x6: 'Downstream Port',
  0x7: 'PCI-Express to PCI/PCI-X Bridge', 0x8: 'PCI/PCI-X to PCI-Express Bridge',
  0x9: 'Root Complex Integrated Endpoint', 0xa: 'Root Complex Event Collector',
};

const HT_TYPES: Record<number, string> = {
  0x4000: 'Switch', 0x8000: 'Interrupt Discovery and Configuration', 0x9000: 'UnitID Clumping',
  0x9800: 'Extended Configuration Space Access', 0xa000: 'Address Mapping', 0xb000: 'DirectRoute',
  0xb800: 'VCSet', 0xc000: 'Retry Mode', 0xc800: 'X86 (reserved)',
};

/** HyperTransport capabilities share one id; the command register's type field tells them apart. */
function hyperTransportText(command: number): string {
  if ((command & 0xe000) === 0x0000) return 'Slave or Primary Interface';
  if ((command & 0xe000) === 0x2000) return 'Host or Secondary Interface';
  const type = command & 0xf800;
  if (type === 0x8800) return `Revision ID: ${((command & 0xe0) >> 5).toString(16)}.${hex(command & 0x1f, 2)}`;
  if (type === 0xa800) return `MSI Mapping Enable${flag(command, 0x1)} Fixed${flag(command, 0x2)}`;
  return HT_TYPES[type] ?? `#${hex(type >> 11, 2)}`;
}

const VIRTIO_CFG_TYPES: Record<number, string> = { 1: 'CommonCfg', 2: 'Notify', 3: 'ISR', 4: 'DeviceCfg' };

/** lspci -v's one-line text for a standard capability. */
function capabilityText(cap: Capability, config: Uint8Array, identity: DeviceSummary, ids: PciIds, mode: NameMode): string {
  const at = cap.offset;
  const flags = wordAt(config, at + 2);
  switch (cap.id) {
    case PCI_CAP_ID_PM: return `Power Management version ${flags & 0x7}`;
    case PCI_CAP_ID_AGP: return `AGP version ${((flags >> 4) & 0xf).toString(16)}.${(flags & 0xf).toString(16)}`;
    case PCI_CAP_ID_VPD: return 'Vital Product Data';
    case PCI_CAP_ID_SLOTID: return `Slot ID: ${flags & 0x1f} slots, First${flag(flags, 0x20)}, chassis ${hex(flags >> 8, 2)}`;
    case PCI_CAP_ID_MSI: return `MSI: Enable${flag(flags, 0x1)} Count=${1 << ((flags & 0x70) >> 4)}/${1 << ((flags & 0x0e) >> 1)} Maskable${flag(flags, 0x100)} 64bit${flag(flags, 0x80)}`;
    case PCI_CAP_ID_CHSWP: return 'CompactPCI hot-swap <?>';
    case PCI_CAP_ID_PCIX: return (config[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MASK) === PCI_HEADER_TYPE_BRIDGE ? 'PCI-X bridge device' : 'PCI-X non-bridge device';
    case PCI_CAP_ID_HT: return `HyperTransport: ${hyperTransportText(flags)}`;
    case PCI_CAP_ID_VNDR: {
      if (identity.vendor === 0x1af4 && identity.device >= 0x1000 && identity.device <= 0x107f) {
        return `Vendor Specific Information: VirtIO: ${VIRTIO_CFG_TYPES[config[at + 3]] ?? '<unknown>'}`;
      }
      return `Vendor Specific Information: Len=${hex(config[at + 2], 2)} <?>`;
    }
    case PCI_CAP_ID_DBG: return `Debug port: BAR=${flags >> 13} offset=${hex(flags & 0x1fff, 4)}`;
    case PCI_CAP_ID_CCRC: return 'CompactPCI central resource control <?>';
    case PCI_CAP_ID_SHPC: return 'Hot-plug capable';
    case PCI_CAP_ID_SSVID: return `Subsystem: ${subsystemText(ids, identity.vendor, identity.device, wordAt(config, at + 4), wordAt(config, at + 6), mode)}`;
    case PCI_CAP_ID_AGP3: return 'AGP3 <?>';
    case PCI_CAP_ID_SECDEV: return 'Secure device <?>';
    case PCI_CAP_ID_EXP: {
      const type = (flags & 0xf0) >> 4;
      let name = EXPRESS_TYPES[type] ?? `Unknown type ${type}`;
      if (type === 0x4 || type === 0x6 || type === 0x8) name += ` (Slot${flag(flags, 0x100)})`;
      return `Express ${name}, MSI ${hex((flags & 0x3e00) >> 9, 2)}`;
    }
    case PCI_CAP_ID_MSIX: return `MSI-X: Enable${flag(flags, 0x8000)} Count=${(flags & 0x7ff) + 1} Masked${flag(flags, 0x4000)}`;
    case PCI_CAP_ID_SATA: return `SATA HBA v${(flags >> 4) & 0xf}.${flags & 0xf}`;
    case PCI_CAP_ID_AF: return 'PCI Advanced Features';
    case PCI_CAP_ID_EA: return `Enhanced Allocation (EA): NumEntries=${flags & 0x3f}`;
    default: return `#${hex(cap.id, 2)} [${hex(flags, 4)}]`;
  }
}

function walkEndLine(walk: CapabilityWalk): string[] {
  switch (walk.stop) {
    case 'looped': return [`\tCapabilities: [${hex(walk.stopOffset!, 2)}] <chain looped>`];
    case 'broken': return [`\tCapabilities: [${hex(walk.stopOffset!, 2)}] <chain broken>`];
    case 'truncated': return ['\tCapabilities: <access denied>'];
    default: return [];
  }
}

/** The `Capabilities:` lines of lspci -v: the standard list, then the extended one. */
export function capabilityLines(config: Uint8Array, identity: DeviceSummary, ids: PciIds, mode: NameMode): string[] {
  const walk = walkCapabilities(config);
  const lines = walk.capabilities.map((cap) => `\tCapabilities: [${hex(cap.offset, 2)}] ${capabilityText(cap, config, identity, ids, mode)}`);
  lines.push(...walkEndLine(walk));
  // As lspci: extended space is only looked at for PCI Express and PCI-X devices.
  if (walk.capabilities.some((cap) => cap.id === PCI_CAP_ID_EXP || cap.id === PCI_CAP_ID_PCIX)) {
    const extended = walkExtendedCapabilities(config);
    lines.push(...extended.capabilities.map((cap) => `\tCapabilities: [${hex(cap.offset, 3)}] ${extendedCapabilityText(cap, config)}`));
    if (extended.stop === 'looped') lines.push(`\tCapabilities: [${hex(extended.stopOffset!, 3)}] <chain looped>`);
  }
  return lines;
}
