/**
 * Device selection exactly as pciutils filters (lib/filter.c): `-s [[[domain]:][bus]:][slot][.[func]]`
 * and `-d [vendor]:[device][:class[:prog-if]]`, hex fields, an empty field or `*` matches anything,
 * and in the class field an `x` digit matches any nibble (`-d ::02xx`).
 */
import type { PciAddress } from './address.js';

export class SelectorError extends Error {
  override readonly name = 'SelectorError';
  /** A malformed selector is bad command-line input: the CLI exits with status 2. */
  readonly exitStatus = 2;
}

/** null = any value */
export interface SlotFilter {
  domain: number | null;
  bus: number | null;
  device: number | null;
  function: number | null;
}

export interface IdFilter {
  vendor: number | null;
  device: number | null;
  /** 16-bit class (base << 8 | sub) compared under classMask */
  classValue: number | null;
  classMask: number;
  progIf: number | null;
}

/** What an id filter needs to know about a device. */
export interface DeviceIdentity {
  vendor: number;
  device: number;
  /** 24-bit class code (base, sub, prog-if) */
  classCode: number;
}

const SLOT_SYNTAX = '[[[domain]:][bus]:][slot][.[func]] (hex; empty or * = any), e.g. 0000:06:01.0, 06:, .2';
const ID_SYNTAX = '[vendor]:[device][:class[:prog-if]] (hex; empty or * = any), e.g. 8086:, 1af4:1041, ::0200';
// pciutils copies the argument into a 64-byte buffer
const MAX_EXPRESSION = 63;

const defined = (field: string | undefined): field is string => field !== undefined && field !== '' && field !== '*';

/** Split like pciutils: at most `count` fields, missing ones undefined. */
function splitFields(text: string, separator: string, count: number): (string | undefined)[] | null {
  const parts = text.split(separator);
  if (parts.length > count) return null;
  return Array.from({ length: count }, (_, i) => parts[i]);
}

/**
 * One hex field; `allowX` lets `x` stand for any nibble (class filter). Returns null when invalid.
 * The 16-bit mask starts all ones and shifts per digit, as pciutils does: "02" still compares all
 * 16 bits of the class, "x6xx" only the base-class low nibble.
 */
function parseHexField(field: string, max: number, allowX = false): { value: number; mask: number } | null {
  let value = 0;
  let mask = 0xffff;
  let bound = 0;
  for (const c of field) {
    if (allowX && (c === 'x' || c === 'X')) {
      value = value * 16;
      bound = bound * 16 + 1;
      mask = (mask << 4) & 0xffff;
    } else {
      const digit = /^[0-9a-fA-F]$/.test(c) ? parseInt(c, 16) : NaN;
      if (Number.isNaN(digit)) return null;
      value = value * 16 + digit;
      bound = bound * 16 + digit;
      mask = ((mask << 4) | 0xf) & 0xffff;
    }
    if (bound > max) return null;
  }
  return { value, mask };
}

function fail(option: string, text: string, problem: string, syntax: string): never {
  throw new SelectorError(`${option} '${text}': ${problem}; expected ${syntax}`);
}

export function parseSlotSelector(text: string): SlotFilter {
  const bad = (problem: string): never => fail('-s', text, problem, SLOT_SYNTAX);
  if (text.length > MAX_EXPRESSION) bad('expression too long');
  const fields = splitFields(text, ':', 3);
  if (!fields) return bad('too many fields');
  const filter: SlotFilter = { domain: null, bus: null, device: null, function: null };
  const field = (value: string | undefined, max: number, what: string): number | null => {
    if (!defined(value)) return null;
    const parsed = parseHexField(value, max);
    if (!parsed) bad(`invalid ${what} number '${value}'`);
    return parsed!.value;
  };
  let i = 0;
  if (fields[2] !== undefined) filter.domain = field(fields[i++], 0x7fffffff, 'domain');
  if (fields[i + 1] !== undefined) filter.bus = field(fields[i++], 0xff, 'bus');
  const slotFunction = fields[i];
  if (defined(slotFunction)) {
    const parts = splitFields(slotFunction, '.', 2);
    if (!parts) return bad(`invalid slot/function '${slotFunction}'`);
    filter.device = field(parts[0], 0x1f, 'slot');
    filter.function = field(parts[1], 7, 'function');
  }
  return filter;
}

export function parseIdSelector(text: string): IdFilter {
  const bad = (problem: string): never => fail('-d', text, problem, ID_SYNTAX);
  if (text.length > MAX_EXPRESSION) bad('expression too long');
  const fields = splitFields(text, ':', 4);
  if (!fields) return bad('too many fields');
  if (fields[1] === undefined) bad('at least two fields must be given');
  const filter: IdFilter = { vendor: null, device: null, classValue: null, classMask: 0xffff, progIf: null };
  const field = (value: string | undefined, max: number, what: string, allowX = false): { value: number; mask: number } | null => {
    if (!defined(value)) return null;
    const parsed = parseHexField(value, max, allowX);
    if (!parsed) bad(`invalid ${what} '${value}'`);
    return parsed;
  };
  filter.vendor = field(fields[0], 0xffff, 'vendor ID')?.value ?? null;
  filter.device = field(fields[1], 0xffff, 'device ID')?.value ?? null;
  const cls = field(fields[2], 0xffff, 'class code', true);
  if (cls) {
    filter.classValue = cls.value;
    filter.classMask = cls.mask;
  }
  filter.progIf = field(fields[3], 0xff, 'programming interface code')?.value ?? null;
  return filter;
}

export function matchesSlot(filter: SlotFilter, address: PciAddress): boolean {
  return (filter.domain === null || filter.domain === address.domain)
    && (filter.bus === null || filter.bus === address.bus)
    && (filter.device === null || filter.device === address.device)
    && (filter.function === null || filter.function === address.function);
}

export function matchesId(filter: IdFilter, identity: DeviceIdentity): boolean {
  if (filter.vendor !== null && filter.vendor !== identity.vendor) return false;
  if (filter.device !== null && filter.device !== identity.device) return false;
  if (filter.classValue !== null && ((filter.classValue ^ (identity.classCode >>> 8)) & filter.classMask) !== 0) return false;
  if (filter.progIf !== null && filter.progIf !== (identity.classCode & 0xff)) return false;
  return true;
}

/** Parse optional `-s` / `-d` texts into one predicate (undefined text = no filter). */
export function deviceSelector(slot?: string, id?: string): (address: PciAddress, identity: DeviceIdentity) => boolean {
  const slotFilter = slot === undefined ? null : parseSlotSelector(slot);
  const idFilter = id === undefined ? null : parseIdSelector(id);
  return (address, identity) => (!slotFilter || matchesSlot(slotFilter, address)) && (!idFilter || matchesId(idFilter, identity));
}
