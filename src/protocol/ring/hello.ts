/**
 * The frontend's check of what a backend announces (the Hello reply, ListDevices replies and
 * DeviceAdded events) before any of it is used: a hostile or broken backend must not make the
 * frontend allocate by its numbers (configSize 2^30), crash on them, or print its strings raw.
 * Every field is checked against what the protocol allows (docs/protocol.md §14); a violation is
 * a Malformed error naming the field.
 */
import { parseAddress } from '../../pci/address.js';
import {
  ErrorCode,
  HEADER_SIZE,
  MAX_FRAME,
  MAX_RING_DEPTH,
  MIN_RING_DEPTH,
  SUPPORTED_VERSIONS,
  XpciError,
  type BarDescriptor,
  type DeviceDescriptor,
  type HelloReply,
} from './messages.js';
import { printablePeerText } from './peer-text.js';

/** Devices (and roots) in one announcement: far more than a vPCI bus (256 functions) holds. */
export const MAX_ANNOUNCED_DEVICES = 1024;
/** The backend's self-description (`server`) and any address string. */
export const MAX_ANNOUNCED_NAME = 256;
/** Config space sizes a function can have: conventional PCI and PCI Express. */
export const CONFIG_SIZES: readonly number[] = [256, 4096];
/** A type-0 header has six BAR registers. */
const MAX_BARS = 6;

export interface DeviceList {
  devices: DeviceDescriptor[];
  roots: string[];
}

const malformed = (what: string): XpciError => new XpciError(ErrorCode.Malformed, what);

const shown = (value: unknown): string =>
  printablePeerText(typeof value === 'string' ? JSON.stringify(value) : String(value), 64);

function integerIn(value: unknown, min: number, max: number, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw malformed(`${what} ${shown(value)} is not an integer in ${min}..${max}`);
  }
  return value;
}

function boolean(value: unknown, what: string): boolean {
  if (typeof value !== 'boolean') throw malformed(`${what} must be true or false, got ${shown(value)}`);
  return value;
}

function address(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length > MAX_ANNOUNCED_NAME) throw malformed(`${what} must be a PCI address string`);
  try {
    parseAddress(value);
  } catch {
    throw malformed(`${what} ${shown(value)} is not a PCI address`);
  }
  return value;
}

function list(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw malformed(`${what} must be an array`);
  if (value.length > MAX_ANNOUNCED_DEVICES) throw malformed(`${what}: ${value.length} devices, more than ${MAX_ANNOUNCED_DEVICES}`);
  return value;
}

function validateBar(bar: unknown, where: string): BarDescriptor {
  if (typeof bar !== 'object' || bar === null) throw malformed(`${where}: a BAR must be an object`);
  const b = bar as Record<string, unknown>;
  const index = integerIn(b.index, 0, MAX_BARS - 1, `${where}: BAR index`);
  if (b.kind !== 'mem' && b.kind !== 'io') throw malformed(`${where}: BAR ${index} kind ${shown(b.kind)} is not mem or io`);
  boolean(b.is64, `${where}: BAR ${index} is64`);
  boolean(b.prefetchable, `${where}: BAR ${index} prefetchable`);
  integerIn(b.size, 1, Number.MAX_SAFE_INTEGER, `${where}: BAR ${index} size`);
  return bar as BarDescriptor;
}

export function validateDescriptor(device: unknown): DeviceDescriptor {
  if (typeof device !== 'object' || device === null) throw malformed('a device descriptor must be an object');
  const d = device as Record<string, unknown>;
  const where = `device ${shown(address(d.address, 'device descriptor address'))}`;
  integerIn(d.vendor, 0, 0xffff, `${where}: vendor`);
  integerIn(d.device, 0, 0xffff, `${where}: device`);
  integerIn(d.classCode, 0, 0xffffff, `${where}: classCode`);
  integerIn(d.revision, 0, 0xff, `${where}: revision`);
  integerIn(d.headerType, 0, 0xff, `${where}: headerType`);
  if (!CONFIG_SIZES.includes(d.configSize as number)) {
    throw malformed(`${where}: configSize ${shown(d.configSize)} must be ${CONFIG_SIZES.join(' or ')}`);
  }
  boolean(d.readOnly, `${where}: readOnly`);
  boolean(d.permissive, `${where}: permissive`);
  if (!Array.isArray(d.bars) || d.bars.length > MAX_BARS) throw malformed(`${where}: bars must be an array of at most ${MAX_BARS}`);
  d.bars.forEach((bar) => validateBar(bar, where));
  if (d.hostAddress !== undefined) address(d.hostAddress, `${where}: hostAddress`);
  return device as DeviceDescriptor;
}

export function validateDeviceList<T extends DeviceList>(value: T): T {
  if (typeof value !== 'object' || value === null) throw malformed('a device list must be an object');
  for (const root of list(value.roots, 'roots')) {
    if (typeof root !== 'string' || !/^[0-9a-f]{4}:[0-9a-f]{2}$/i.test(root)) throw malformed(`root ${shown(root)} is not a "DDDD:BB" string`);
  }
  list(value.devices, 'devices').forEach(validateDescriptor);
  return value;
}

/** Checks a Hello reply in place; fills in what version 1 lets a backend omit (maxFrame). */
export function validateHelloReply(reply: HelloReply): HelloReply {
  if (typeof reply !== 'object' || reply === null) throw malformed('the Hello reply must be an object');
  if (!SUPPORTED_VERSIONS.includes(reply.version)) {
    throw new XpciError(ErrorCode.VersionMismatch, `backend chose protocol version ${shown(reply.version)}, which this frontend does not speak`);
  }
  integerIn(reply.ringDepth, MIN_RING_DEPTH, MAX_RING_DEPTH, 'Hello reply ring depth');
  if (reply.maxFrame === undefined) reply.maxFrame = MAX_FRAME;
  integerIn(reply.maxFrame, HEADER_SIZE, MAX_FRAME, 'Hello reply maxFrame');
  if (reply.mode !== 'vpci' && reply.mode !== 'passthrough') throw malformed(`Hello reply mode ${shown(reply.mode)} is not vpci or passthrough`);
  if (reply.server !== undefined) {
    if (typeof reply.server !== 'string' || reply.server.length > MAX_ANNOUNCED_NAME) {
      throw malformed(`Hello reply server must be a string of at most ${MAX_ANNOUNCED_NAME} characters`);
    }
    reply.server = printablePeerText(reply.server, MAX_ANNOUNCED_NAME * 4);
  }
  validateDeviceList(reply);
  return reply;
}
