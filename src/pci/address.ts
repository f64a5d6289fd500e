/**
 * PCI function addresses ("BDF"): parsing, formatting and the packed form used on the wire.
 * Accepted input: `BB:DD.F`, `DDDD:BB:DD.F` (hex). Domain is 16 bits, as in sysfs on x86.
 */
import { hex } from './hex.js';

export interface PciAddress {
  readonly domain: number;
  readonly bus: number;
  readonly device: number;
  readonly function: number;
}

export class AddressError extends Error {
  override readonly name = 'AddressError';
  /** A malformed address is bad command-line input: the CLI exits with status 2. */
  readonly exitStatus = 2;
}

const BDF_PATTERN = /^(?:([0-9a-fA-F]{1,4}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$/;

/** Parse `06:01.0` or `0000:06:01.0`. Throws AddressError with the offending text. */
export function parseAddress(text: string): PciAddress {
  const m = BDF_PATTERN.exec(text.trim());
  if (!m) throw new AddressError(`invalid PCI address '${text}': expected [DDDD:]BB:DD.F (hex), e.g. 0000:06:01.0`);
  const address = {
    domain: m[1] === undefined ? 0 : parseInt(m[1], 16),
    bus: parseInt(m[2], 16),
    device: parseInt(m[3], 16),
    function: parseInt(m[4], 16),
  };
  if (address.device > 0x1f) throw new AddressError(`invalid PCI address '${text}': device ${m[3]} is above 1f`);
  return address;
}


/** `0000:06:01.0`: the sysfs directory name. */
export function formatAddress(a: PciAddress): string {
  return `${hex(a.domain, 4)}:${hex(a.bus, 2)}:${hex(a.device, 2)}.${a.function}`;
}

/** `06:01.0`, or the full form when the domain is not 0 (as lspci prints without -D). */
export function formatShortAddress(a: PciAddress): string {
  return a.domain === 0 ? `${hex(a.bus, 2)}:${hex(a.device, 2)}.${a.function}` : formatAddress(a);
}

/** `0000:06`: a root bus as published in the handshake. */
export function formatBus(domain: number, bus: number): string {
  return `${hex(domain, 4)}:${hex(bus, 2)}`;
}

/** devfn as the PCI core packs it: slot << 3 | function. */
export function devfn(a: PciAddress): number {
  return (a.device << 3) | a.function;
}

/** Wire form: domain << 16 | bus << 8 | devfn. */
export function packAddress(a: PciAddress): number {
  return ((a.domain << 16) | (a.bus << 8) | devfn(a)) >>> 0;
}

export function unpackAddress(packed: number): PciAddress {
  return {
    domain: (packed >>> 16) & 0xffff,
    bus: (packed >>> 8) & 0xff,
    device: (packed >>> 3) & 0x1f,
    function: packed & 0x7,
  };
}

export function sameAddress(a: PciAddress, b: PciAddress): boolean {
  return packAddress(a) === packAddress(b);
}

/** Same physical slot (domain, bus, device): functions that must travel together. */
export function sameSlot(a: PciAddress, b: PciAddress): boolean {
  return a.domain === b.domain && a.bus === b.bus && a.device === b.device;
}

export function compareAddresses(a: PciAddress, b: PciAddress): number {
  return packAddress(a) - packAddress(b);
}
