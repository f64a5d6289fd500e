/**
 * Encoding and strict decoding of vfio-user messages. The decoder takes a complete message (the
 * stream reader has checked the header's size against MAX_MESSAGE_SIZE) and either returns a typed
 * request or throws a VfioUserError carrying the errno of the error reply: a wrong payload length,
 * argsz, flag, index, range or fd count is refused, never guessed at. Replies are built here too,
 * and the client side (requests out, replies in) for the test client and the fuzz oracle.
 */
import { constants } from 'node:os';
import {
  Command,
  DmaMapFlags,
  DmaUnmapFlags,
  HEADER,
  HEADER_SIZE,
  IRQ_SET_ACTION_MASK,
  IRQ_SET_DATA_MASK,
  IrqSetFlags,
  LIMITS,
  MessageFlags,
  PAYLOAD,
  PCI_IRQ_COUNT,
  PCI_REGION_COUNT,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  RESERVED_FLAG_BITS,
  RegionFlags,
  SPARSE_MMAP,
  VfioUserError,
  type Capabilities,
  type MessageHeader,
  type RegionInfo,
  type Request,
} from './messages.js';

export const errno = constants.errno;
const U64_MAX = (1n << 64n) - 1n;

export function decodeHeader(buffer: Buffer, at = 0): MessageHeader {
  return {
    id: buffer.readUInt16LE(at + HEADER.id),
    command: buffer.readUInt16LE(at + HEADER.command),
    size: buffer.readUInt32LE(at + HEADER.size),
    flags: buffer.readUInt32LE(at + HEADER.flags),
    error: buffer.readUInt32LE(at + HEADER.error),
  };
}

/** A whole message: header (size computed) + payload. */
export function encodeMessage(id: number, command: number, flags: number, payload: Buffer = Buffer.alloc(0), error = 0): Buffer {
  const message = Buffer.alloc(HEADER_SIZE + payload.length);
  message.writeUInt16LE(id & 0xffff, HEADER.id);
  message.writeUInt16LE(command, HEADER.command);
  message.writeUInt32LE(message.length, HEADER.size);
  message.writeUInt32LE(flags, HEADER.flags);
  message.writeUInt32LE(error, HEADER.error);
  payload.copy(message, HEADER_SIZE);
  return message;
}

export const encodeReply = (id: number, command: number, payload?: Buffer): Buffer => encodeMessage(id, command, MessageFlags.reply, payload);

/** "If an error occurs, the reply message must only include the reply header." */
export const encodeErrorReply = (id: number, command: number, code: number): Buffer =>
  encodeMessage(id, command, MessageFlags.reply | MessageFlags.error, undefined, code);

const fail = (code: number, message: string): never => {
  throw new VfioUserError(code, message);
};

function expectLength(payload: Buffer, length: number, what: string): void {
  if (payload.length !== length) fail(errno.EINVAL, `${what}: payload of ${payload.length} bytes, expected ${length}`);
}

function expectNoFds(fds: readonly number[], what: string): void {
  if (fds.length > 0) fail(errno.EINVAL, `${what} carries no file descriptors (got ${fds.length})`);
}

function expectArgsz(argsz: number, minimum: number, what: string, maximum = Number.MAX_SAFE_INTEGER): void {
  if (argsz < minimum) fail(errno.EINVAL, `${what}: argsz ${argsz} is smaller than ${minimum}`);
  if (argsz > maximum) fail(errno.E2BIG, `${what}: argsz ${argsz} is larger than ${maximum}`);
}

function expectPageAligned(value: bigint, what: string): void {
  if (value % BigInt(LIMITS.pageSize) !== 0n) fail(errno.EINVAL, `${what} 0x${value.toString(16)} is not a multiple of the page size ${LIMITS.pageSize}`);
}

/** Capabilities the client proposes: only known keys with the right types are kept; bad types are refused. */
function decodeCapabilities(data: Buffer): Capabilities {
  if (data.length === 0) return {};
  if (data.length > LIMITS.maxVersionData) fail(errno.E2BIG, `VERSION: capabilities of ${data.length} bytes (limit ${LIMITS.maxVersionData})`);
  if (data[data.length - 1] !== 0) fail(errno.EINVAL, 'VERSION: capabilities are not NUL-terminated');
  const text = data.subarray(0, data.length - 1);
  if (text.includes(0)) fail(errno.EINVAL, 'VERSION: NUL inside the capabilities');
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(text));
  } catch {
    return fail(errno.EINVAL, 'VERSION: capabilities are not UTF-8 JSON');
  }
  if (!isObject(parsed)) return fail(errno.EINVAL, 'VERSION: capabilities are not a JSON object');
  const caps = parsed.capabilities;
  if (caps === undefined) return {};
  if (!isObject(caps)) return fail(errno.EINVAL, 'VERSION: "capabilities" is not an object');
  const result: Capabilities = {};
  const count = (key: string): number | undefined => {
    const value = caps[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) fail(errno.EINVAL, `VERSION: "${key}" is not a non-negative integer`);
    return value as number;
  };
  result.maxMessageFds = count('max_msg_fds');
  result.maxDataTransfer = count('max_data_xfer_size');
  result.maxDmaMaps = count('max_dma_maps');
  result.pgsizes = count('pgsizes');
  if (caps.write_multiple !== undefined) {
    if (typeof caps.write_multiple !== 'boolean') fail(errno.EINVAL, 'VERSION: "write_multiple" is not a boolean');
    result.writeMultiple = caps.write_multiple as boolean;
  }
  for (const key of ['migration', 'twin_socket']) {
    if (caps[key] !== undefined && !isObject(caps[key])) fail(errno.EINVAL, `VERSION: "${key}" is not an object`);
  }
  for (const key of Object.keys(result) as (keyof Capabilities)[]) if (result[key] === undefined) delete result[key];
  return result;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Decode a client-to-server command. `fds` are the descriptors that came with the message; the
 * caller keeps ownership (closes them when this throws or the request does not take them).
 */
export function decodeRequest(header: MessageHeader, payload: Buffer, fds: readonly number[]): Request {
  if ((header.flags & RESERVED_FLAG_BITS) !== 0) fail(errno.EINVAL, `reserved header flag bits 0x${(header.flags & RESERVED_FLAG_BITS).toString(16)} set`);
  if ((header.flags & MessageFlags.typeMask) !== MessageFlags.request) fail(errno.EINVAL, `message type ${header.flags & MessageFlags.typeMask} is not a command`);
  if ((header.flags & MessageFlags.error) !== 0) fail(errno.EINVAL, 'a command with the Error flag');
  if (header.error !== 0) fail(errno.EINVAL, 'a command with a non-zero error field (reserved)');
  switch (header.command) {
    case Command.Version: {
      if (payload.length < PAYLOAD.versionFixed) fail(errno.EINVAL, `VERSION: payload of ${payload.length} bytes, at least 4 expected`);
      expectNoFds(fds, 'VERSION');
      const major = payload.readUInt16LE(0);
      if (major !== PROTOCOL_MAJOR) fail(errno.ENOTSUP, `VERSION: major ${major} is not supported (only ${PROTOCOL_MAJOR})`);
      return { command: Command.Version, major, minor: payload.readUInt16LE(2), capabilities: decodeCapabilities(payload.subarray(4)) };
    }
    case Command.DmaMap: {
      expectLength(payload, PAYLOAD.dmaMap, 'DMA_MAP');
      const argsz = payload.readUInt32LE(0);
      if (argsz !== PAYLOAD.dmaMap) fail(errno.EINVAL, `DMA_MAP: argsz ${argsz}, expected ${PAYLOAD.dmaMap}`);
      const flags = payload.readUInt32LE(4);
      if ((flags & ~(DmaMapFlags.read | DmaMapFlags.write)) !== 0) fail(errno.EINVAL, `DMA_MAP: unknown flags 0x${flags.toString(16)}`);
      if (fds.length > 1) fail(errno.EINVAL, `DMA_MAP takes at most one file descriptor (got ${fds.length})`);
      const offset = payload.readBigUInt64LE(8);
      const address = payload.readBigUInt64LE(16);
      const size = payload.readBigUInt64LE(24);
      if (size === 0n) fail(errno.EINVAL, 'DMA_MAP: size 0');
      if (address + size - 1n > U64_MAX) fail(errno.EINVAL, 'DMA_MAP: address + size wraps around');
      expectPageAligned(address, 'DMA_MAP address');
      expectPageAligned(size, 'DMA_MAP size');
      if (fds.length === 1) {
        expectPageAligned(offset, 'DMA_MAP file offset');
        if (offset + size - 1n > U64_MAX) fail(errno.EINVAL, 'DMA_MAP: offset + size wraps around');
      }
      return { command: Command.DmaMap, flags, offset, address, size, fd: fds.length === 1 ? fds[0] : null };
    }
    case Command.DmaUnmap: {
      expectLength(payload, PAYLOAD.dmaUnmap, 'DMA_UNMAP');
      expectNoFds(fds, 'DMA_UNMAP');
      expectArgsz(payload.readUInt32LE(0), PAYLOAD.dmaUnmap, 'DMA_UNMAP', LIMITS.maxRegionInfo);
      const flags = payload.readUInt32LE(4);
      if ((flags & ~DmaUnmapFlags.all) !== 0) fail(errno.EINVAL, `DMA_UNMAP: unknown flags 0x${flags.toString(16)}`);
      const address = payload.readBigUInt64LE(8);
      const size = payload.readBigUInt64LE(16);
      if (flags & DmaUnmapFlags.all) {
        if (address !== 0n || size !== 0n) fail(errno.EINVAL, 'DMA_UNMAP: unmap-all with a non-zero address or size');
      } else if (size === 0n) {
        fail(errno.EINVAL, 'DMA_UNMAP: size 0');
      }
      return { command: Command.DmaUnmap, flags, address, size };
    }
    case Command.DeviceGetInfo: {
      expectLength(payload, PAYLOAD.deviceInfo, 'DEVICE_GET_INFO');
      expectNoFds(fds, 'DEVICE_GET_INFO');
      const argsz = payload.readUInt32LE(0);
      expectArgsz(argsz, PAYLOAD.deviceInfo, 'DEVICE_GET_INFO', LIMITS.maxRegionInfo);
      return { command: Command.DeviceGetInfo, argsz };
    }
    case Command.DeviceGetRegionInfo: {
      // The request's payload is the fixed structure; argsz says how much reply the client can take.
      expectLength(payload, PAYLOAD.regionInfo, 'DEVICE_GET_REGION_INFO');
      expectNoFds(fds, 'DEVICE_GET_REGION_INFO');
      const argsz = payload.readUInt32LE(0);
      expectArgsz(argsz, PAYLOAD.regionInfo, 'DEVICE_GET_REGION_INFO', LIMITS.maxRegionInfo);
      const index = payload.readUInt32LE(8);
      if (index >= PCI_REGION_COUNT) fail(errno.EINVAL, `DEVICE_GET_REGION_INFO: region ${index} does not exist (0-${PCI_REGION_COUNT - 1})`);
      return { command: Command.DeviceGetRegionInfo, argsz, index };
    }
    case Command.DeviceGetIrqInfo: {
      expectLength(payload, PAYLOAD.irqInfo, 'DEVICE_GET_IRQ_INFO');
      expectNoFds(fds, 'DEVICE_GET_IRQ_INFO');
      const argsz = payload.readUInt32LE(0);
      expectArgsz(argsz, PAYLOAD.irqInfo, 'DEVICE_GET_IRQ_INFO', LIMITS.maxRegionInfo);
      const index = payload.readUInt32LE(8);
      if (index >= PCI_IRQ_COUNT) fail(errno.EINVAL, `DEVICE_GET_IRQ_INFO: interrupt index ${index} does not exist (0-${PCI_IRQ_COUNT - 1})`);
      return { command: Command.DeviceGetIrqInfo, argsz, index };
    }
    case Command.DeviceSetIrqs:
      return decodeSetIrqs(payload, fds);
    case Command.RegionRead: {
      expectLength(payload, PAYLOAD.regionAccess, 'REGION_READ');
      expectNoFds(fds, 'REGION_READ');
      const { region, offset, count } = regionAccess(payload, 'REGION_READ');
      return { command: Command.RegionRead, region, offset, count };
    }
    case Command.RegionWrite: {
      if (payload.length < PAYLOAD.regionAccess) fail(errno.EINVAL, `REGION_WRITE: payload of ${payload.length} bytes`);
      expectNoFds(fds, 'REGION_WRITE');
      const { region, offset, count } = regionAccess(payload, 'REGION_WRITE');
      expectLength(payload, PAYLOAD.regionAccess + count, 'REGION_WRITE');
      return { command: Command.RegionWrite, region, offset, count, data: Buffer.from(payload.subarray(PAYLOAD.regionAccess)) };
    }
    case Command.DeviceReset:
      expectLength(payload, 0, 'DEVICE_RESET');
      expectNoFds(fds, 'DEVICE_RESET');
      return { command: Command.DeviceReset };
    case Command.DeviceGetRegionIoFds:
    case Command.RegionWriteMulti:
    case Command.DeviceFeature:
    case Command.MigDataRead:
    case Command.MigDataWrite:
      return fail(errno.ENOTSUP, `${Command[header.command]} is not supported by this server`);
    case Command.DmaRead:
    case Command.DmaWrite:
      return fail(errno.EINVAL, `${Command[header.command]} is a server-to-client command`);
    default:
      return fail(errno.ENOSYS, `unknown command ${header.command}`);
  }
}

function regionAccess(payload: Buffer, what: string): { region: number; offset: bigint; count: number } {
  const offset = payload.readBigUInt64LE(0);
  const region = payload.readUInt32LE(8);
  const count = payload.readUInt32LE(12);
  if (region >= PCI_REGION_COUNT) fail(errno.EINVAL, `${what}: region ${region} does not exist`);
  if (count === 0) fail(errno.EINVAL, `${what}: count 0`);
  if (count > LIMITS.maxDataTransfer) fail(errno.E2BIG, `${what}: count ${count} exceeds max_data_xfer_size ${LIMITS.maxDataTransfer}`);
  if (offset + BigInt(count) - 1n > U64_MAX) fail(errno.EINVAL, `${what}: offset + count wraps around`);
  return { region, offset, count };
}

function decodeSetIrqs(payload: Buffer, fds: readonly number[]): Request {
  if (payload.length < PAYLOAD.irqSet) fail(errno.EINVAL, `DEVICE_SET_IRQS: payload of ${payload.length} bytes, at least ${PAYLOAD.irqSet} expected`);
  const argsz = payload.readUInt32LE(0);
  const flags = payload.readUInt32LE(4);
  const index = payload.readUInt32LE(8);
  const start = payload.readUInt32LE(12);
  const count = payload.readUInt32LE(16);
  if ((flags & ~(IRQ_SET_DATA_MASK | IRQ_SET_ACTION_MASK)) !== 0) fail(errno.EINVAL, `DEVICE_SET_IRQS: unknown flags 0x${flags.toString(16)}`);
  const data = flags & IRQ_SET_DATA_MASK;
  const action = flags & IRQ_SET_ACTION_MASK;
  const single = (bits: number): boolean => bits !== 0 && (bits & (bits - 1)) === 0;
  if (!single(data) || !single(action)) fail(errno.EINVAL, 'DEVICE_SET_IRQS: exactly one DATA and one ACTION flag');
  if (index >= PCI_IRQ_COUNT) fail(errno.EINVAL, `DEVICE_SET_IRQS: interrupt index ${index} does not exist`);
  if (start + count > 0xffffffff) fail(errno.EINVAL, 'DEVICE_SET_IRQS: start + count wraps around');
  if (count > 2048) fail(errno.EINVAL, `DEVICE_SET_IRQS: count ${count} exceeds the 2048 vectors PCI allows`);
  let bools: Buffer | null = null;
  if (data === IrqSetFlags.dataBool) {
    expectLength(payload, PAYLOAD.irqSet + count, 'DEVICE_SET_IRQS (bool data)');
    if (argsz !== PAYLOAD.irqSet + count) fail(errno.EINVAL, `DEVICE_SET_IRQS: argsz ${argsz}, expected ${PAYLOAD.irqSet + count}`);
    expectNoFds(fds, 'DEVICE_SET_IRQS with bool data');
    bools = Buffer.from(payload.subarray(PAYLOAD.irqSet));
    for (const value of bools) if (value > 1) fail(errno.EINVAL, 'DEVICE_SET_IRQS: a bool that is neither 0 nor 1');
  } else {
    expectLength(payload, PAYLOAD.irqSet, 'DEVICE_SET_IRQS');
    if (argsz < PAYLOAD.irqSet) fail(errno.EINVAL, `DEVICE_SET_IRQS: argsz ${argsz}`);
    if (data === IrqSetFlags.dataNone) {
      expectNoFds(fds, 'DEVICE_SET_IRQS with no data');
    } else if (fds.length !== 0 && fds.length !== count) {
      fail(errno.EINVAL, `DEVICE_SET_IRQS: ${fds.length} eventfds for ${count} vectors`);
    }
  }
  return { command: Command.DeviceSetIrqs, flags, index, start, count, bools, fds: [...fds] };
}

/** The server's capabilities JSON (NUL-terminated), from LIMITS. */
export function serverCapabilities(): Buffer {
  const json = JSON.stringify({
    capabilities: {
      max_msg_fds: LIMITS.maxMessageFds,
      max_data_xfer_size: LIMITS.maxDataTransfer,
      max_dma_maps: LIMITS.maxDmaMaps,
      pgsizes: LIMITS.pageSize,
    },
  });
  return Buffer.concat([Buffer.from(json, 'utf8'), Buffer.from([0])]);
}

/** Little-endian fields laid end to end (every vfio-user structure is packed that way), then `tail`. */
type Field = readonly [2 | 4 | 8, number | bigint];
function pack(fields: readonly Field[], tail?: Buffer): Buffer {
  const size = fields.reduce((sum, [width]) => sum + width, 0);
  const payload = Buffer.alloc(size + (tail?.length ?? 0));
  let at = 0;
  for (const [width, value] of fields) {
    if (width === 8) payload.writeBigUInt64LE(BigInt(value), at);
    else if (width === 4) payload.writeUInt32LE(Number(value), at);
    else payload.writeUInt16LE(Number(value), at);
    at += width;
  }
  tail?.copy(payload, at);
  return payload;
}

export const encodeVersion = (major: number, minor: number, capabilities: Buffer): Buffer => pack([[2, major], [2, minor]], capabilities);

export const encodeDeviceInfo = (flags: number, regions: number, irqs: number): Buffer =>
  pack([[4, PAYLOAD.deviceInfo], [4, flags], [4, regions], [4, irqs]]);

/**
 * vfio_region_info (+ the sparse mmap capability). As the kernel does: when `argsz` is too small
 * for the capability, the reply is the fixed structure with argsz set to the size needed and
 * cap_offset 0, and the client asks again.
 */
export function encodeRegionInfo(argsz: number, info: RegionInfo): Buffer {
  const sparse = info.sparse ?? null;
  const needed = PAYLOAD.regionInfo + (sparse ? SPARSE_MMAP.headerSize + sparse.length * SPARSE_MMAP.areaSize : 0);
  const fits = argsz >= needed;
  const payload = Buffer.alloc(fits ? needed : PAYLOAD.regionInfo);
  payload.writeUInt32LE(needed, 0);
  payload.writeUInt32LE(info.flags | (sparse ? RegionFlags.caps : 0), 4);
  payload.writeUInt32LE(info.index, 8);
  payload.writeUInt32LE(sparse && fits ? PAYLOAD.regionInfo : 0, 12);
  payload.writeBigUInt64LE(info.size, 16);
  payload.writeBigUInt64LE(info.offset, 24);
  if (sparse && fits) {
    let at = PAYLOAD.regionInfo;
    payload.writeUInt16LE(SPARSE_MMAP.id, at);
    payload.writeUInt16LE(SPARSE_MMAP.version, at + 2);
    payload.writeUInt32LE(0, at + 4); // next: none
    payload.writeUInt32LE(sparse.length, at + 8);
    at += SPARSE_MMAP.headerSize;
    for (const area of sparse) {
      payload.writeBigUInt64LE(area.offset, at);
      payload.writeBigUInt64LE(area.size, at + 8);
      at += SPARSE_MMAP.areaSize;
    }
  }
  return payload;
}

/** vfio_region_info as a client reads it back (caps resolved into `sparse`). Throws on inconsistency. */
export function decodeRegionInfo(payload: Buffer): RegionInfo & { argsz: number } {
  if (payload.length < PAYLOAD.regionInfo) throw new Error(`region info of ${payload.length} bytes`);
  const argsz = payload.readUInt32LE(0);
  const info: RegionInfo & { argsz: number } = {
    argsz,
    flags: payload.readUInt32LE(4),
    index: payload.readUInt32LE(8),
    size: payload.readBigUInt64LE(16),
    offset: payload.readBigUInt64LE(24),
  };
  let capOffset = payload.readUInt32LE(12);
  if ((info.flags & RegionFlags.caps) && capOffset !== 0) {
    while (capOffset !== 0) {
      if (capOffset < PAYLOAD.regionInfo || capOffset + 8 > payload.length) throw new Error(`capability offset ${capOffset} outside the reply`);
      const id = payload.readUInt16LE(capOffset);
      const next = payload.readUInt32LE(capOffset + 4);
      if (id === SPARSE_MMAP.id) {
        const areas = payload.readUInt32LE(capOffset + 8);
        if (capOffset + SPARSE_MMAP.headerSize + areas * SPARSE_MMAP.areaSize > payload.length) throw new Error('sparse mmap areas outside the reply');
        info.sparse = [];
        for (let i = 0; i < areas; i++) {
          const at = capOffset + SPARSE_MMAP.headerSize + i * SPARSE_MMAP.areaSize;
          info.sparse.push({ offset: payload.readBigUInt64LE(at), size: payload.readBigUInt64LE(at + 8) });
        }
      }
      if (next !== 0 && next <= capOffset) throw new Error('capability chain goes backwards');
      capOffset = next;
    }
  }
  return info;
}

export const encodeIrqInfo = (index: number, flags: number, count: number): Buffer =>
  pack([[4, PAYLOAD.irqInfo], [4, flags], [4, index], [4, count]]);

/** REGION_READ/WRITE request and reply head: offset, region, count (+ data). */
export const encodeRegionAccess = (region: number, offset: bigint, count: number, data?: Buffer): Buffer =>
  pack([[8, offset], [4, region], [4, count]], data);

/** DMA_MAP payload (client side). */
export const encodeDmaMap = (flags: number, offset: bigint, address: bigint, size: bigint): Buffer =>
  pack([[4, PAYLOAD.dmaMap], [4, flags], [8, offset], [8, address], [8, size]]);

/** DMA_UNMAP payload (request, and the reply that echoes it). */
export const encodeDmaUnmap = (flags: number, address: bigint, size: bigint): Buffer =>
  pack([[4, PAYLOAD.dmaUnmap], [4, flags], [8, address], [8, size]]);

/** DEVICE_SET_IRQS payload (client side); eventfds travel as SCM_RIGHTS. */
export const encodeSetIrqs = (flags: number, index: number, start: number, count: number, bools?: Buffer): Buffer =>
  pack([[4, PAYLOAD.irqSet + (bools?.length ?? 0)], [4, flags], [4, index], [4, start], [4, count]], bools);

/** DMA_READ/DMA_WRITE request (server to client): address, count (u64, per the spec) + data. */
export const encodeDmaAccess = (address: bigint, count: number, data?: Buffer): Buffer => pack([[8, address], [8, count]], data);
