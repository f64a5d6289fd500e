/**
 * Capability list walking on a config-space snapshot. Both walks are bounded and loop-safe because
 * the chains come from devices (or remote peers) we do not trust: a visited set catches cycles and
 * an entry bound catches anything else, as the kernel's pci_find_next_cap_ttl() does.
 */
import {
  PCI_CAPABILITY_LIST, PCI_CB_CAPABILITY_LIST, PCI_CFG_SPACE_SIZE, PCI_HEADER_TYPE, PCI_HEADER_TYPE_CARDBUS,
  PCI_HEADER_TYPE_MASK, PCI_STATUS, PCI_STATUS_CAP_LIST, PCI_STD_HEADER_SIZE,
} from './config-header.js';
import { hex } from './hex.js';

export type CapabilityKind = 'standard' | 'extended';

export interface Capability {
  kind: CapabilityKind;
  id: number;
  /** offset of the capability header in config space */
  offset: number;
  /** extended capabilities only: the 4-bit version */
  version?: number;
  /** short name, e.g. 'MSI-X', 'AER'; `#xx` / `ECAP xxxx` when unknown */
  name: string;
}

/** Why a walk ended early, or null when the chain ended normally. */
export type WalkStop = null | 'looped' | 'broken' | 'truncated' | 'too-long' | 'into-header';

export interface CapabilityWalk {
  capabilities: Capability[];
  stop: WalkStop;
  /** offset at which the walk stopped early */
  stopOffset?: number;
}

/** Standard capability ids (PCI Code and ID Assignment spec), short names. */
export const CAPABILITY_NAMES: Readonly<Record<number, string>> = {
  0x01: 'PM', 0x02: 'AGP', 0x03: 'VPD', 0x04: 'SlotID', 0x05: 'MSI', 0x06: 'CHSWP', 0x07: 'PCI-X',
  0x08: 'HT', 0x09: 'Vendor', 0x0a: 'Debug', 0x0b: 'CCRC', 0x0c: 'HotPlug', 0x0d: 'SSVID', 0x0e: 'AGP3',
  0x0f: 'SecDev', 0x10: 'PCIe', 0x11: 'MSI-X', 0x12: 'SATA', 0x13: 'AF', 0x14: 'EA', 0x15: 'FPB',
};

/** Extended capability ids, short names. */
export const EXTENDED_CAPABILITY_NAMES: Readonly<Record<number, string>> = {
  0x00: 'Null', 0x01: 'AER', 0x02: 'VC', 0x03: 'DSN', 0x04: 'PB', 0x05: 'RCLINK', 0x06: 'RCILINK',
  0x07: 'RCEC', 0x08: 'MFVC', 0x09: 'VC2', 0x0a: 'RCRB', 0x0b: 'Vendor', 0x0c: 'CAC', 0x0d: 'ACS',
  0x0e: 'ARI', 0x0f: 'ATS', 0x10: 'SR-IOV', 0x11: 'MR-IOV', 0x12: 'Multicast', 0x13: 'PRI',
  0x15: 'REBAR', 0x16: 'DPA', 0x17: 'TPH', 0x18: 'LTR', 0x19: 'SecPCIe', 0x1a: 'PMUX', 0x1b: 'PASID',
  0x1c: 'LNR', 0x1d: 'DPC', 0x1e: 'L1PM', 0x1f: 'PTM', 0x20: 'M-PCIe', 0x21: 'FRS', 0x22: 'RTR',
  0x23: 'DVSEC', 0x24: 'VF-REBAR', 0x25: 'DLNK', 0x26: '16GT', 0x27: 'LMR', 0x28: 'HierID', 0x29: 'NPEM',
  0x2a: '32GT', 0x2b: 'AltProto', 0x2c: 'SFI', 0x2e: 'DOE', 0x30: 'IDE', 0x31: '64GT',
};


export const capabilityName = (id: number): string => CAPABILITY_NAMES[id] ?? `#${hex(id, 2)}`;
export const extendedCapabilityName = (id: number): string => EXTENDED_CAPABILITY_NAMES[id] ?? `ECAP ${hex(id, 4)}`;

// A capability is at least 4 bytes, so 48 entries cover the 192 bytes above the header.
const MAX_STANDARD_CAPABILITIES = 48;
// The kernel's bound for the extended chain: (4096 - 256) / 8.
const MAX_EXTENDED_CAPABILITIES = 480;

const word = (config: Uint8Array, offset: number): number => config[offset] | (config[offset + 1] << 8);
const dword = (config: Uint8Array, offset: number): number =>
  (config[offset] | (config[offset + 1] << 8) | (config[offset + 2] << 16) | (config[offset + 3] << 24)) >>> 0;

/** Walk the standard list: pointer at 0x34 (0x14 for CardBus), only when status bit 4 says it exists. */
export function walkCapabilities(config: Uint8Array): CapabilityWalk {
  const capabilities: Capability[] = [];
  if (config.length < PCI_STD_HEADER_SIZE || !(word(config, PCI_STATUS) & PCI_STATUS_CAP_LIST)) return { capabilities, stop: null };
  const layout = config[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MASK;
  const pointer = layout === PCI_HEADER_TYPE_CARDBUS ? PCI_CB_CAPABILITY_LIST : PCI_CAPABILITY_LIST;
  const visited = new Set<number>();
  let offset = config[pointer] & 0xfc;
  while (offset !== 0) {
    if (offset < PCI_STD_HEADER_SIZE) return { capabilities, stop: 'into-header', stopOffset: offset };
    if (offset + 2 > config.length) return { capabilities, stop: 'truncated', stopOffset: offset };
    if (visited.has(offset)) return { capabilities, stop: 'looped', stopOffset: offset };
    if (visited.size >= MAX_STANDARD_CAPABILITIES) return { capabilities, stop: 'too-long', stopOffset: offset };
    visited.add(offset);
    const id = config[offset];
    if (id === 0xff) return { capabilities, stop: 'broken', stopOffset: offset };
    capabilities.push({ kind: 'standard', id, offset, name: capabilityName(id) });
    offset = config[offset + 1] & 0xfc;
  }
  return { capabilities, stop: null };
}

/** Walk the extended list from 0x100; needs a snapshot that covers extended space. */
export function walkExtendedCapabilities(config: Uint8Array): CapabilityWalk {
  const capabilities: Capability[] = [];
  const visited = new Set<number>();
  let offset = PCI_CFG_SPACE_SIZE;
  while (true) {
    if (offset + 4 > config.length) {
      return offset === PCI_CFG_SPACE_SIZE ? { capabilities, stop: null } : { capabilities, stop: 'truncated', stopOffset: offset };
    }
    const header = dword(config, offset);
    // 0: no (more) capabilities; all ones: nothing answers there (conventional device behind ECAM)
    if (header === 0 || header === 0xffffffff) return { capabilities, stop: null };
    if (visited.has(offset)) return { capabilities, stop: 'looped', stopOffset: offset };
    if (visited.size >= MAX_EXTENDED_CAPABILITIES) return { capabilities, stop: 'too-long', stopOffset: offset };
    visited.add(offset);
    const id = header & 0xffff;
    capabilities.push({ kind: 'extended', id, offset, version: (header >>> 16) & 0xf, name: extendedCapabilityName(id) });
    const next = (header >>> 20) & 0xffc;
    if (next === 0) return { capabilities, stop: null };
    if (next < PCI_CFG_SPACE_SIZE) return { capabilities, stop: 'into-header', stopOffset: next };
    offset = next;
  }
}

/** The `instance`-th (0-based) capability with this id, as setpci's `CAP_xx@n` selects it. */
export function findCapability(config: Uint8Array, kind: CapabilityKind, id: number, instance = 0): Capability | undefined {
  const walk = kind === 'standard' ? walkCapabilities(config) : walkExtendedCapabilities(config);
  return walk.capabilities.filter((cap) => cap.id === id)[instance];
}
