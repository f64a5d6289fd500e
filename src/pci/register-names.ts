/**
 * setpci's register vocabulary and its register syntax (`setpci --dumpregs`, setpci(8)):
 *   <base>[+<offset>][.(B|W|L)][@<number>][=<value>[:<mask>][,<value>...]]
 * where <base> is a hex offset, a register name (COMMAND, BASE_ADDRESS_0, ...), CAP_<name> / ECAP_<name>,
 * or CAP<hex id> / ECAP<hex id>; capability-relative registers resolve against a capability walk.
 */
import { findCapability, walkCapabilities, walkExtendedCapabilities, type CapabilityKind } from './capabilities.js';
import { PCI_CFG_SPACE_EXP_SIZE, PCI_HEADER_TYPE, PCI_HEADER_TYPE_MASK } from './config-header.js';
import { hex } from './hex.js';

export type RegisterWidth = 1 | 2 | 4;

export interface RegisterName {
  name: string;
  offset: number;
  width: RegisterWidth;
  /** header types that have it, as a bit mask (1 << type); 0 = every type */
  headerTypes: number;
}

export interface CapabilityRegisterName {
  name: string;
  kind: CapabilityKind;
  id: number;
}

export class RegisterSpecError extends Error {
  override readonly name = 'RegisterSpecError';
  /** A malformed register operation is bad command-line input: the CLI exits with status 2. */
  readonly exitStatus = 2;
}

const T0 = 1 << 0;
const T1 = 1 << 1;
const T2 = 1 << 2;

const reg = (name: string, offset: number, width: RegisterWidth, headerTypes = 0): RegisterName => ({ name, offset, width, headerTypes });

export const REGISTER_NAMES: readonly RegisterName[] = [
  reg('VENDOR_ID', 0x00, 2), reg('DEVICE_ID', 0x02, 2), reg('COMMAND', 0x04, 2), reg('STATUS', 0x06, 2),
  reg('REVISION', 0x08, 1), reg('CLASS_PROG', 0x09, 1), reg('CLASS_DEVICE', 0x0a, 2),
  reg('CACHE_LINE_SIZE', 0x0c, 1), reg('LATENCY_TIMER', 0x0d, 1), reg('HEADER_TYPE', 0x0e, 1), reg('BIST', 0x0f, 1),
  reg('BASE_ADDRESS_0', 0x10, 4, T0 | T1), reg('BASE_ADDRESS_1', 0x14, 4, T0 | T1),
  reg('BASE_ADDRESS_2', 0x18, 4, T0), reg('BASE_ADDRESS_3', 0x1c, 4, T0),
  reg('BASE_ADDRESS_4', 0x20, 4, T0), reg('BASE_ADDRESS_5', 0x24, 4, T0),
  reg('CARDBUS_CIS', 0x28, 4, T0), reg('SUBSYSTEM_VENDOR_ID', 0x2c, 2, T0), reg('SUBSYSTEM_ID', 0x2e, 2, T0),
  reg('ROM_ADDRESS', 0x30, 4, T0), reg('CAPABILITIES', 0x34, 1, T0 | T1), reg('CAPABILITY_LIST', 0x34, 1, T0 | T1),
  reg('INTERRUPT_LINE', 0x3c, 1, T0 | T1), reg('INTERRUPT_PIN', 0x3d, 1, T0 | T1),
  reg('MIN_GNT', 0x3e, 1, T0), reg('MAX_LAT', 0x3f, 1, T0),
  reg('PRIMARY_BUS', 0x18, 1, T1), reg('SECONDARY_BUS', 0x19, 1, T1), reg('SUBORDINATE_BUS', 0x1a, 1, T1),
  reg('SEC_LATENCY_TIMER', 0x1b, 1, T1), reg('IO_BASE', 0x1c, 1, T1), reg('IO_LIMIT', 0x1d, 1, T1),
  reg('SEC_STATUS', 0x1e, 2, T1), reg('MEMORY_BASE', 0x20, 2, T1), reg('MEMORY_LIMIT', 0x22, 2, T1),
  reg('PREF_MEMORY_BASE', 0x24, 2, T1), reg('PREF_MEMORY_LIMIT', 0x26, 2, T1),
  reg('PREF_BASE_UPPER32', 0x28, 4, T1), reg('PREF_LIMIT_UPPER32', 0x2c, 4, T1),
  reg('IO_BASE_UPPER16', 0x30, 2, T1), reg('IO_LIMIT_UPPER16', 0x32, 2, T1),
  reg('BRIDGE_ROM_ADDRESS', 0x38, 4, T1), reg('BRIDGE_CONTROL', 0x3e, 2, T1),
  reg('CB_CARDBUS_BASE', 0x10, 4, T2), reg('CB_CAPABILITIES', 0x14, 2, T2), reg('CB_SEC_STATUS', 0x16, 2, T2),
  reg('CB_BUS_NUMBER', 0x18, 1, T2), reg('CB_CARDBUS_NUMBER', 0x19, 1, T2), reg('CB_SUBORDINATE_BUS', 0x1a, 1, T2),
  reg('CB_CARDBUS_LATENCY', 0x1b, 1, T2), reg('CB_MEMORY_BASE_0', 0x1c, 4, T2), reg('CB_MEMORY_LIMIT_0', 0x20, 4, T2),
  reg('CB_MEMORY_BASE_1', 0x24, 4, T2), reg('CB_MEMORY_LIMIT_1', 0x28, 4, T2), reg('CB_IO_BASE_0', 0x2c, 2, T2),
  reg('CB_IO_BASE_0_HI', 0x2e, 2, T2), reg('CB_IO_LIMIT_0', 0x30, 2, T2), reg('CB_IO_LIMIT_0_HI', 0x32, 2, T2),
  reg('CB_IO_BASE_1', 0x34, 2, T2), reg('CB_IO_BASE_1_HI', 0x36, 2, T2), reg('CB_IO_LIMIT_1', 0x38, 2, T2),
  reg('CB_IO_LIMIT_1_HI', 0x3a, 2, T2), reg('CB_SUBSYSTEM_VENDOR_ID', 0x40, 2, T2), reg('CB_SUBSYSTEM_ID', 0x42, 2, T2),
  reg('CB_LEGACY_MODE_BASE', 0x44, 4, T2),
];

const cap = (name: string, id: number): CapabilityRegisterName => ({ name, kind: 'standard', id });
const ecap = (name: string, id: number): CapabilityRegisterName => ({ name, kind: 'extended', id });

export const CAPABILITY_REGISTER_NAMES: readonly CapabilityRegisterName[] = [
  cap('CAP_PM', 0x01), cap('CAP_AGP', 0x02), cap('CAP_VPD', 0x03), cap('CAP_SLOTID', 0x04), cap('CAP_MSI', 0x05),
  cap('CAP_CHSWP', 0x06), cap('CAP_PCIX', 0x07), cap('CAP_HT', 0x08), cap('CAP_VNDR', 0x09), cap('CAP_DBG', 0x0a),
  cap('CAP_CCRC', 0x0b), cap('CAP_HOTPLUG', 0x0c), cap('CAP_SSVID', 0x0d), cap('CAP_AGP3', 0x0e),
  cap('CAP_SECURE', 0x0f), cap('CAP_EXP', 0x10), cap('CAP_MSIX', 0x11), cap('CAP_SATA', 0x12), cap('CAP_AF', 0x13),
  cap('CAP_EA', 0x14),
  ecap('ECAP_AER', 0x01), ecap('ECAP_VC', 0x02), ecap('ECAP_DSN', 0x03), ecap('ECAP_PB', 0x04),
  ecap('ECAP_RCLINK', 0x05), ecap('ECAP_RCILINK', 0x06), ecap('ECAP_RCEC', 0x07), ecap('ECAP_MFVC', 0x08),
  ecap('ECAP_VC2', 0x09), ecap('ECAP_RBCB', 0x0a), ecap('ECAP_VNDR', 0x0b), ecap('ECAP_ACS', 0x0d),
  ecap('ECAP_ARI', 0x0e), ecap('ECAP_ATS', 0x0f), ecap('ECAP_SRIOV', 0x10), ecap('ECAP_MRIOV', 0x11),
  ecap('ECAP_MCAST', 0x12), ecap('ECAP_PRI', 0x13), ecap('ECAP_REBAR', 0x15), ecap('ECAP_DPA', 0x16),
  ecap('ECAP_TPH', 0x17), ecap('ECAP_LTR', 0x18), ecap('ECAP_SECPCI', 0x19), ecap('ECAP_PMUX', 0x1a),
  ecap('ECAP_PASID', 0x1b), ecap('ECAP_LNR', 0x1c), ecap('ECAP_DPC', 0x1d), ecap('ECAP_L1PM', 0x1e),
  ecap('ECAP_PTM', 0x1f), ecap('ECAP_M_PCIE', 0x20), ecap('ECAP_FRS', 0x21), ecap('ECAP_RTR', 0x22),
  ecap('ECAP_DVSEC', 0x23), ecap('ECAP_VF_REBAR', 0x24), ecap('ECAP_DLNK', 0x25), ecap('ECAP_16GT', 0x26),
  ecap('ECAP_LMR', 0x27), ecap('ECAP_HIER_ID', 0x28), ecap('ECAP_NPEM', 0x29), ecap('ECAP_32GT', 0x2a),
  ecap('ECAP_IDE', 0x30), ecap('ECAP_64GT', 0x31),
];

/** The name table as `setpci --dumpregs` prints it: `cap pos w name`, header names then capabilities. */
export function formatRegisterTable(): string {
  const lines = ['cap pos w name'];
  for (const r of REGISTER_NAMES) lines.push(`     ${r.offset.toString(16).padStart(2, '0')} ${'-BW?L'[r.width]} ${r.name}`);
  for (const c of CAPABILITY_REGISTER_NAMES) {
    const id = c.kind === 'extended' ? c.id.toString(16).padStart(4, '0') : `  ${c.id.toString(16).padStart(2, '0')}`;
    lines.push(`${id} 00 - ${c.name}`);
  }
  return lines.join('\n') + '\n';
}

export interface CapabilityRef {
  kind: CapabilityKind;
  id: number;
  /** which instance of that id (setpci `@n`), 0-based */
  instance: number;
}

export interface RegisterValue {
  /** already masked */
  value: number;
  /** bits to change; all ones (of the width) = plain write */
  mask: number;
}

export interface RegisterSpec {
  text: string;
  /** register name when given by name (canonical upper case), else null */
  name: string | null;
  /** set when the offset is relative to a capability */
  capability: CapabilityRef | null;
  /** absolute offset, or offset from the capability header */
  offset: number;
  width: RegisterWidth;
  /** header types that have the named register (bit mask); 0 = any */
  headerTypes: number;
  /** values to write in turn at offset, offset+width, ...; empty = read */
  values: RegisterValue[];
}

export interface ResolvedRegister {
  offset: number;
  width: RegisterWidth;
  name: string | null;
  values: RegisterValue[];
}

const WIDTH_MAX: Record<RegisterWidth, number> = { 1: 0xff, 2: 0xffff, 4: 0xffffffff };

/** Register value as setpci prints it: 2, 4 or 8 lowercase hex digits. */
export function formatRegisterValue(width: RegisterWidth, value: number): string {
  return hex(value >>> 0, width * 2);
}

/** Whole-string hex (as strtoul(…,16) with nothing left over), or null. */
function parseHex(text: string): number | null {
  if (!/^(0[xX])?[0-9a-fA-F]+$/.test(text)) return null;
  const value = parseInt(text, 16);
  return value <= 0xffffffff ? value : null;
}

function lookupName(base: string): RegisterName | CapabilityRegisterName | undefined {
  const upper = base.toUpperCase();
  return REGISTER_NAMES.find((r) => r.name === upper) ?? CAPABILITY_REGISTER_NAMES.find((r) => r.name === upper);
}

/** Parse one setpci register argument. Throws RegisterSpecError with setpci's wording. */
export function parseRegisterSpec(text: string): RegisterSpec {
  const bad = (problem: string): never => {
    throw new RegisterSpecError(`register '${text}': ${problem}`);
  };
  // Split like setpci: value at the first '=', then instance at '@', width at '.', offset at '+'.
  let rest = text;
  const cut = (separator: string): string | undefined => {
    const at = rest.indexOf(separator);
    if (at < 0) return undefined;
    const tail = rest.slice(at + 1);
    rest = rest.slice(0, at);
    return tail;
  };
  const valueText = cut('=');
  const numberText = cut('@');
  const widthText = cut('.');
  const offsetText = cut('+');
  const base = rest;

  let width: RegisterWidth | undefined;
  if (widthText !== undefined) {
    const w = ({ b: 1, w: 2, l: 4 } as const)[widthText.toLowerCase() as 'b' | 'w' | 'l'];
    if (widthText.length !== 1 || w === undefined) bad(`invalid width "${widthText}" (use .b, .w or .l)`);
    width = w;
  }

  let instance = 0;
  if (numberText !== undefined) {
    const n = parseHex(numberText);
    if (n === null || n > 0x7fffffff) bad(`invalid number "${numberText}"`);
    instance = n!;
  }

  let name: string | null = null;
  let capability: CapabilityRef | null = null;
  let offset = 0;
  let headerTypes = 0;
  const direct = parseHex(base);
  const named = direct === null ? lookupName(base) : undefined;
  if (direct !== null) {
    offset = direct;
  } else if (named && 'offset' in named) {
    name = named.name;
    offset = named.offset;
    headerTypes = named.headerTypes;
    width ??= named.width;
  } else if (named) {
    name = named.name;
    capability = { kind: named.kind, id: named.id, instance };
  } else {
    const numbered = /^(E?)CAP(.+)$/i.exec(base);
    const id = numbered ? parseHex(numbered[2]) : null;
    if (numbered && id !== null && id < (numbered[1] ? 0x1000 : 0x100)) {
      capability = { kind: numbered[1] ? 'extended' : 'standard', id, instance };
    } else {
      bad(`unknown register "${base}" (a hex offset, a name such as COMMAND, CAP_MSI or ECAP_AER, or CAP<id>/ECAP<id>)`);
    }
  }
  if (numberText !== undefined && !capability) bad('an instance number (@n) needs a capability register');
  if (width === undefined) return bad('missing width (add .b, .w or .l)');

  if (offsetText !== undefined) {
    const extra = parseHex(offsetText);
    if (extra === null || extra >= PCI_CFG_SPACE_EXP_SIZE) bad(`invalid offset "${offsetText}"`);
    offset += extra!;
  }

  const values: RegisterValue[] = [];
  if (valueText !== undefined) {
    if (valueText === '') bad('missing value');
    const limit = WIDTH_MAX[width];
    for (const item of valueText.split(',')) {
      const [valuePart, maskPart, ...extra] = item.split(':');
      const value = parseHex(valuePart);
      if (value === null || extra.length > 0) bad(`invalid value "${item}"`);
      if (value! > limit) bad(`value "${valuePart}" is out of range for width ${width}`);
      let mask = limit;
      if (maskPart !== undefined) {
        const m = parseHex(maskPart);
        if (m === null) bad(`invalid mask "${maskPart}"`);
        if (m! > limit) bad(`mask "${maskPart}" is out of range for width ${width}`);
        mask = m!;
      }
      values.push({ value: (value! & mask) >>> 0, mask });
    }
  }

  const span = width * Math.max(values.length, 1);
  if (offset >= PCI_CFG_SPACE_EXP_SIZE || offset + span > PCI_CFG_SPACE_EXP_SIZE) bad(`register number ${hex(offset, 2)} out of range`);
  if (offset % width !== 0) bad(`unaligned register address ${hex(offset, 2)}`);
  return { text, name, capability, offset, width, headerTypes, values };
}

/**
 * Turn a spec into an absolute offset for one device, given its config snapshot (the header, and
 * 4096 bytes when the spec names an extended capability). Errors name the device's problem.
 */
export function resolveRegister(spec: RegisterSpec, config: Uint8Array): ResolvedRegister {
  const bad = (problem: string): never => {
    throw new RegisterSpecError(`register '${spec.text}': ${problem}`);
  };
  if (spec.headerTypes !== 0) {
    const layout = config[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MASK;
    if (layout > 2 || !((1 << layout) & spec.headerTypes)) bad(`the device (header type ${layout}) does not have register ${spec.name}`);
  }
  let offset = spec.offset;
  if (spec.capability) {
    const { kind, id, instance } = spec.capability;
    const label = kind === 'standard' ? `capability ${hex(id, 2)}` : `extended capability ${hex(id, 4)}`;
    const found = findCapability(config, kind, id, instance);
    if (!found) {
      const count = countCapabilities(config, kind, id);
      bad(count === 0
        ? `instance #${instance} of ${label} not found: the device has no capability with that id`
        : `instance #${instance} of ${label} not found: the device has only ${count}`);
    }
    offset += found!.offset;
  }
  // Capability offsets are dword-aligned, so relocation keeps alignment; it can still run past 4 KiB.
  const span = spec.width * Math.max(spec.values.length, 1);
  if (offset + span > PCI_CFG_SPACE_EXP_SIZE) bad(`access of width ${spec.width} to register ${hex(offset, 4)} out of range`);
  return { offset, width: spec.width, name: spec.name, values: spec.values };
}

function countCapabilities(config: Uint8Array, kind: CapabilityKind, id: number): number {
  const walk = kind === 'standard' ? walkCapabilities(config) : walkExtendedCapabilities(config);
  return walk.capabilities.filter((c) => c.id === id).length;
}
