/**
 * Message encoding and decoding for both sides. Decoders copy every field out of the frame into
 * plain values once and validate shape (not policy): the backend never looks at the frame again.
 */
import { packAddress, unpackAddress, type PciAddress } from '../../pci/address.js';
import { parseJsonObject } from '../json-object.js';
import { readU32, writeU16, writeU32 } from './bytes.js';
import { checkDeviceOpRequest, decodeDeviceOpRequest, deviceOpPayloadLength, DMA_TRANSFER, writeDeviceOpPayload, writeDmaTransferFields } from './device-ops-codec.js';
import { encodeFrame, storeHeader, writeHeader, type Frame } from './frame.js';
import {
  BAR_READ_LENGTH,
  BAR_READ_REPLY_LENGTH,
  BAR_TARGET,
  BAR_WRITE_LENGTH,
  CONFIG_BLOCK,
  CONFIG_BLOCK_LENGTH,
  CONFIG_READ_LENGTH,
  CONFIG_READ_REPLY_FRAME,
  CONFIG_READ_REPLY_LENGTH,
  CONFIG_TARGET,
  CONFIG_WRITE_LENGTH,
  DEVICE_REMOVED_LENGTH,
  ERROR_PAYLOAD,
} from './layout.js';
import { MAX_CONFIG_BLOCK, MAX_ERROR_MESSAGE } from './limits.js';
import { printablePeerText } from './peer-text.js';
import {
  ErrorCode,
  FrameFlags,
  HEADER_SIZE,
  MAX_FRAME,
  MessageType,
  XpciError,
  type ErrorPayload,
  type HelloRequest,
  type Request,
} from './messages.js';

// ---------------------------------------------------------------- requests (frontend → backend)

/** The requests writeRequest writes: all but Hello (its JSON is encoded once by encodeRequest). */
export type StreamRequest = Exclude<Request, { type: MessageType.Hello }>;

/**
 * What the wire format cannot carry (the frontend refuses it before anything is sent); the backend
 * judges everything else.
 */
export function checkRequest(request: Request): XpciError | undefined {
  switch (request.type) {
    case MessageType.InterruptUnmask:
    case MessageType.DmaMap:
    case MessageType.DmaUnmap:
    case MessageType.DmaRead:
    case MessageType.DmaWrite:
    case MessageType.ResetDevice:
      return checkDeviceOpRequest(request);
    case MessageType.ConfigReadBlock: {
      const { offset, length } = request;
      if (!Number.isInteger(offset) || offset < 0 || offset > 0xffff) return new XpciError(ErrorCode.InvalidOffset, `config offset ${offset} is outside 0..0xffff`);
      if (!Number.isInteger(length) || length < 1 || length > MAX_CONFIG_BLOCK) return new XpciError(ErrorCode.InvalidSize, `config block of ${length} bytes: 1..${MAX_CONFIG_BLOCK}`);
      return undefined;
    }
  }
  if (request.type !== MessageType.ConfigRead && request.type !== MessageType.ConfigWrite &&
      request.type !== MessageType.BarRead && request.type !== MessageType.BarWrite) return undefined;
  const { offset, size } = request;
  if (request.type === MessageType.ConfigRead || request.type === MessageType.ConfigWrite) {
    if (!Number.isInteger(offset) || offset < 0 || offset > 0xffff) return new XpciError(ErrorCode.InvalidOffset, `config offset ${offset} is outside 0..0xffff`);
    if (!Number.isInteger(size) || size < 0 || size > 0xff) return new XpciError(ErrorCode.InvalidSize, `config access size ${size} is outside 0..255`);
    if (request.type === MessageType.ConfigWrite && !(Number.isInteger(request.value) && request.value >= 0 && request.value <= 0xffffffff)) {
      return malformed(`config write value ${request.value} is not a 32-bit unsigned integer`);
    }
    return undefined;
  }
  const { bar } = request;
  if (!Number.isInteger(bar) || bar < 0 || bar > 0xff) return malformed(`BAR index ${bar} is invalid`);
  if (offset < 0n || offset > U64_MAX) return new XpciError(ErrorCode.InvalidOffset, `BAR offset ${offset} is outside 64 bits`);
  if (!Number.isInteger(size) || size < 0 || size > 0xff) return new XpciError(ErrorCode.InvalidSize, `BAR access size ${size} is outside 0..255`);
  if (request.type === MessageType.BarWrite && !(request.value >= 0n && request.value <= U64_MAX)) {
    return malformed(`BAR write value ${request.value} is not a 64-bit unsigned integer`);
  }
  return undefined;
}

const U64_MAX = 0xffffffffffffffffn;

/** Bytes of the frame writeRequest writes for `request`. */
export function requestLength(request: StreamRequest): number {
  switch (request.type) {
    case MessageType.ConfigRead: return HEADER_SIZE + CONFIG_READ_LENGTH;
    case MessageType.ConfigWrite: return HEADER_SIZE + CONFIG_WRITE_LENGTH;
    case MessageType.BarRead: return HEADER_SIZE + BAR_READ_LENGTH;
    case MessageType.BarWrite: return HEADER_SIZE + BAR_WRITE_LENGTH;
    case MessageType.ConfigReadBlock: return HEADER_SIZE + CONFIG_BLOCK_LENGTH;
    case MessageType.ListDevices: return HEADER_SIZE;
    case MessageType.Ping: return HEADER_SIZE + request.payload.length;
    default: return HEADER_SIZE + deviceOpPayloadLength(request);
  }
}

/**
 * The one writer of every request but Hello: the frame of `request` at `at` in `target`, which has
 * requestLength(request) bytes free there and whose fields passed checkRequest. Returns the end.
 * The frontend writes all requests of one flush into one buffer with it; encodeRequest uses it too.
 */
export function writeRequest(target: Buffer, at: number, request: StreamRequest): number {
  const length = requestLength(request);
  if (!(Number.isInteger(at) && at >= 0 && at + length <= target.length)) {
    throw new RangeError(`no room for a ${length}-byte request at ${at} in ${target.length} bytes`);
  }
  // Once per request: unchecked stores after the one bounds check above.
  storeHeader(target, at, length, request.type, FrameFlags.None, request.id);
  const p = at + HEADER_SIZE;
  switch (request.type) {
    case MessageType.ConfigRead:
    case MessageType.ConfigWrite:
      writeU32(target, p + CONFIG_TARGET.address, packAddress(request.address));
      writeU16(target, p + CONFIG_TARGET.offset, request.offset);
      target[p + CONFIG_TARGET.size] = request.size;
      target[p + CONFIG_TARGET.reserved] = 0;
      if (request.type === MessageType.ConfigWrite) writeU32(target, p + CONFIG_TARGET.value, request.value);
      break;
    case MessageType.BarRead:
    case MessageType.BarWrite:
      writeU32(target, p + BAR_TARGET.address, packAddress(request.address));
      target[p + BAR_TARGET.bar] = request.bar;
      target[p + BAR_TARGET.size] = request.size;
      writeU16(target, p + BAR_TARGET.reserved, 0);
      target.writeBigUInt64LE(request.offset, p + BAR_TARGET.offset);
      if (request.type === MessageType.BarWrite) target.writeBigUInt64LE(request.value, p + BAR_TARGET.value);
      break;
    case MessageType.ConfigReadBlock:
      writeU32(target, p + CONFIG_BLOCK.address, packAddress(request.address));
      writeU16(target, p + CONFIG_BLOCK.offset, request.offset);
      writeU16(target, p + CONFIG_BLOCK.length, request.length);
      break;
    case MessageType.ListDevices:
      break;
    case MessageType.Ping:
      target.set(request.payload, p);
      break;
    default:
      writeDeviceOpPayload(target.subarray(p, at + length), request);
  }
  return at + length;
}

/** Bytes of a DmaWrite frame before its data: what writeDmaWriteHead writes. */
export const DMA_WRITE_HEAD = HEADER_SIZE + DMA_TRANSFER.data;

/**
 * A DmaWrite's frame up to its data (DMA_WRITE_HEAD bytes at `at`; the header's length counts the
 * data, which must follow on the stream): the frontend sends large data from the caller's buffer
 * instead of copying it into the flush buffer. Same preconditions as writeRequest. Returns the end.
 */
export function writeDmaWriteHead(target: Buffer, at: number, request: Extract<StreamRequest, { type: MessageType.DmaWrite }>): number {
  if (!(Number.isInteger(at) && at >= 0 && at + DMA_WRITE_HEAD <= target.length)) {
    throw new RangeError(`no room for a ${DMA_WRITE_HEAD}-byte DmaWrite head at ${at} in ${target.length} bytes`);
  }
  storeHeader(target, at, requestLength(request), request.type, FrameFlags.None, request.id);
  writeDmaTransferFields(target.subarray(at + HEADER_SIZE, at + DMA_WRITE_HEAD), request);
  return at + DMA_WRITE_HEAD;
}

/** Throws the XpciError of checkRequest for fields the wire cannot carry, RangeError beyond MAX_FRAME. */
export function encodeRequest(request: Request): Buffer {
  switch (request.type) {
    case MessageType.Hello:
      return encodeFrame(request.type, FrameFlags.None, request.id, Buffer.from(JSON.stringify(request.hello), 'utf8'));
  }
  const invalid = checkRequest(request);
  if (invalid) throw invalid;
  const length = requestLength(request);
  if (length > MAX_FRAME) throw new RangeError(`frame of ${length} bytes exceeds the ${MAX_FRAME}-byte limit`);
  const frame = Buffer.allocUnsafe(length);
  writeRequest(frame, 0, request);
  return frame;
}

const malformed = (what: string): XpciError => new XpciError(ErrorCode.Malformed, what);

function expectLength(frame: Frame, length: number, name: string): void {
  if (frame.payload.length !== length) {
    throw malformed(`${name} payload must be ${length} bytes, got ${frame.payload.length}`);
  }
}

/** The fields a config read and write share (their layout: CONFIG_TARGET). */
const configTarget = (payload: Buffer) => ({
  address: unpackAddress(payload.readUInt32LE(CONFIG_TARGET.address)),
  offset: payload.readUInt16LE(CONFIG_TARGET.offset),
  size: payload.readUInt8(CONFIG_TARGET.size),
});

/** The fields a BAR read and write share (their layout: BAR_TARGET). */
const barTarget = (payload: Buffer) => ({
  address: unpackAddress(payload.readUInt32LE(BAR_TARGET.address)),
  bar: payload.readUInt8(BAR_TARGET.bar),
  size: payload.readUInt8(BAR_TARGET.size),
  offset: payload.readBigUInt64LE(BAR_TARGET.offset),
});

/** Backend side. Throws XpciError (Malformed / NotImplemented) for anything it cannot decode. */
export function decodeRequest(frame: Frame): Request {
  const { id, payload } = frame;
  if (frame.flags !== FrameFlags.None) throw malformed(`request flags must be 0, got 0x${frame.flags.toString(16)}`);
  switch (frame.type) {
    case MessageType.Hello:
      return { type: MessageType.Hello, id, hello: decodeHello(payload) };
    case MessageType.ConfigRead: {
      expectLength(frame, CONFIG_READ_LENGTH, 'ConfigRead');
      return { type: MessageType.ConfigRead, id, ...configTarget(payload) };
    }
    case MessageType.ConfigWrite: {
      expectLength(frame, CONFIG_WRITE_LENGTH, 'ConfigWrite');
      return { type: MessageType.ConfigWrite, id, ...configTarget(payload), value: payload.readUInt32LE(CONFIG_TARGET.value) };
    }
    case MessageType.BarRead: {
      expectLength(frame, BAR_READ_LENGTH, 'BarRead');
      return { type: MessageType.BarRead, id, ...barTarget(payload) };
    }
    case MessageType.BarWrite: {
      expectLength(frame, BAR_WRITE_LENGTH, 'BarWrite');
      return { type: MessageType.BarWrite, id, ...barTarget(payload), value: payload.readBigUInt64LE(BAR_TARGET.value) };
    }
    case MessageType.ConfigReadBlock:
      expectLength(frame, CONFIG_BLOCK_LENGTH, 'ConfigReadBlock');
      return {
        type: MessageType.ConfigReadBlock, id, address: unpackAddress(payload.readUInt32LE(CONFIG_BLOCK.address)),
        offset: payload.readUInt16LE(CONFIG_BLOCK.offset), length: payload.readUInt16LE(CONFIG_BLOCK.length),
      };
    case MessageType.ListDevices:
      expectLength(frame, 0, 'ListDevices');
      return { type: MessageType.ListDevices, id };
    case MessageType.Ping:
      return { type: MessageType.Ping, id, payload: Buffer.from(payload) };
    default: {
      const request = decodeDeviceOpRequest(frame);
      if (request === undefined) throw new XpciError(ErrorCode.NotImplemented, `unknown request type ${frame.type}`);
      return request;
    }
  }
}

function decodeHello(payload: Buffer): HelloRequest {
  const body = jsonObject(payload, 'Hello');
  const { versions, ringDepth, client } = body;
  if (!Array.isArray(versions) || versions.length === 0 || versions.length > 64 ||
      !versions.every((v) => Number.isInteger(v) && v > 0 && v < 0x10000)) {
    throw malformed('Hello.versions must be a non-empty array of protocol versions (integers 1..65535)');
  }
  if (!Number.isInteger(ringDepth) || (ringDepth as number) < 1 || (ringDepth as number) > 0xffff) {
    throw malformed('Hello.ringDepth must be an integer 1..65535');
  }
  if (client !== undefined && (typeof client !== 'string' || client.length > 256)) {
    throw malformed('Hello.client must be a string of at most 256 characters');
  }
  return { versions: versions as number[], ringDepth: ringDepth as number, ...(client === undefined ? {} : { client }) };
}

const jsonObject = (payload: Buffer, name: string): Record<string, unknown> => parseJsonObject(payload.toString('utf8'), (problem) =>
  malformed(problem === 'not-json' ? `${name} payload is not valid JSON` : `${name} payload must be a JSON object`));

// ---------------------------------------------------------------- replies and events (backend → frontend)

/** A ConfigReadBlock reply: the bytes read. */
export function encodeConfigReadBlockReply(id: number, bytes: Uint8Array): Buffer {
  return encodeFrame(MessageType.ConfigReadBlock, FrameFlags.Reply, id, bytes);
}

export function encodeConfigReadReply(id: number, value: number): Buffer {
  const frame = Buffer.allocUnsafe(CONFIG_READ_REPLY_FRAME.frameLength);
  writeConfigReadReply(frame, 0, id, value);
  return frame;
}

/** The one writer of a ConfigRead reply, at `at` in `target` (CONFIG_READ_REPLY_FRAME.frameLength bytes): replies batched in one buffer. */
export function writeConfigReadReply(target: Buffer, at: number, id: number, value: number): void {
  const length = CONFIG_READ_REPLY_FRAME.frameLength;
  if (!(Number.isInteger(at) && at >= 0 && at + length <= target.length)) {
    throw new RangeError(`no room for a ConfigRead reply at ${at} in ${target.length} bytes`);
  }
  // Once per config read: unchecked stores after the one bounds check above.
  storeHeader(target, at, length, MessageType.ConfigRead, FrameFlags.Reply, id);
  writeU32(target, at + CONFIG_READ_REPLY_FRAME.value, value);
}

export function encodeBarReadReply(id: number, value: bigint): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_SIZE + BAR_READ_REPLY_LENGTH);
  writeHeader(frame, 0, frame.length, MessageType.BarRead, FrameFlags.Reply, id);
  frame.writeBigUInt64LE(value, HEADER_SIZE);
  return frame;
}

export function encodeEmptyReply(type: MessageType, id: number): Buffer {
  return encodeFrame(type, FrameFlags.Reply, id);
}

export function encodeJsonReply(type: MessageType, id: number, body: unknown): Buffer {
  return encodeFrame(type, FrameFlags.Reply, id, Buffer.from(JSON.stringify(body), 'utf8'));
}

export function encodePingReply(id: number, payload: Buffer): Buffer {
  return encodeFrame(MessageType.Ping, FrameFlags.Reply, id, payload);
}

/** `type` echoes the request's type (0 when the request could not be framed at all). */
export function encodeErrorReply(type: number, id: number, error: ErrorPayload): Buffer {
  const text = truncateUtf8(Buffer.from(error.message, 'utf8'), MAX_ERROR_MESSAGE);
  const payload = Buffer.allocUnsafe(ERROR_PAYLOAD.message + text.length);
  payload.writeUInt16LE(error.code, ERROR_PAYLOAD.code);
  payload.writeUInt16LE(0, ERROR_PAYLOAD.reserved);
  payload.writeInt32LE(error.errno | 0, ERROR_PAYLOAD.errno);
  text.copy(payload, ERROR_PAYLOAD.message);
  return encodeFrame(type, FrameFlags.Reply | FrameFlags.Error, id, payload);
}

/** Cut at most `limit` bytes without splitting a multi-byte character. */
function truncateUtf8(text: Buffer, limit: number): Buffer {
  if (text.length <= limit) return text;
  let end = limit;
  while (end > 0 && (text[end] & 0xc0) === 0x80) end--;
  return text.subarray(0, end);
}

export function encodeEvent(type: MessageType, body: unknown): Buffer {
  const payload = type === MessageType.DeviceRemoved ? packedAddressPayload(body as PciAddress) : Buffer.from(JSON.stringify(body), 'utf8');
  return encodeFrame(type, FrameFlags.Event, 0, payload);
}

function packedAddressPayload(address: PciAddress): Buffer {
  const payload = Buffer.allocUnsafe(DEVICE_REMOVED_LENGTH);
  payload.writeUInt32LE(packAddress(address), 0);
  return payload;
}

// ---------------------------------------------------------------- reply decoding (frontend side)

export function isErrorReply(frame: Frame): boolean {
  return (frame.flags & FrameFlags.Error) !== 0;
}

export function decodeErrorPayload(payload: Buffer): ErrorPayload {
  if (payload.length < ERROR_PAYLOAD.message) throw malformed(`error payload of ${payload.length} bytes is shorter than ${ERROR_PAYLOAD.message}`);
  return {
    code: payload.readUInt16LE(ERROR_PAYLOAD.code) as ErrorCode,
    errno: payload.readInt32LE(ERROR_PAYLOAD.errno),
    // Untrusted text: whoever prints it gets it cut at the limit and with control characters escaped.
    message: printablePeerText(payload.subarray(ERROR_PAYLOAD.message).toString('utf8'), MAX_ERROR_MESSAGE),
  };
}

/** Turn an error reply into the XpciError it stands for. */
export function errorFromReply(frame: Frame): XpciError {
  const e = decodeErrorPayload(frame.payload);
  return new XpciError(e.code, e.message, e.errno);
}

export function decodeConfigReadReply(frame: Frame): number {
  expectLength(frame, CONFIG_READ_REPLY_LENGTH, 'ConfigRead reply');
  return readU32(frame.payload, 0);
}

export function decodeBarReadReply(frame: Frame): bigint {
  expectLength(frame, BAR_READ_REPLY_LENGTH, 'BarRead reply');
  return frame.payload.readBigUInt64LE(0);
}

export function decodeJsonPayload<T>(frame: Frame, name: string): T {
  return jsonObject(frame.payload, name) as T;
}

export function decodeDeviceRemoved(frame: Frame): PciAddress {
  expectLength(frame, DEVICE_REMOVED_LENGTH, 'DeviceRemoved event');
  return unpackAddress(frame.payload.readUInt32LE(0));
}
