/**
 * Message encoding and decoding for both sides. Decoders copy every field out of the frame into
 * plain values once and validate shape (not policy): the backend never looks at the frame again.
 */
import { packAddress, unpackAddress, type PciAddress } from '../../pci/address.js';
import { readU32, writeU16, writeU32 } from './bytes.js';
import { decodeDeviceOpRequest, encodeDeviceOpRequest } from './device-ops-codec.js';
import { encodeFrame, writeHeader, type Frame } from './frame.js';
import {
  ErrorCode,
  FrameFlags,
  HEADER_SIZE,
  MAGIC,
  MessageType,
  XpciError,
  type ErrorPayload,
  type HelloRequest,
  type Request,
} from './messages.js';
import { printablePeerText } from './peer-text.js';

const CONFIG_READ_LEN = 8;
/** Payload layout shared by ConfigRead and ConfigWrite (docs/protocol.md): the one place it is stated. */
const CONFIG_TARGET = { address: 0, offset: 4, size: 6, reserved: 7, value: 8 } as const;
/**
 * Where decodeRequest finds a ConfigRead's fields, counted from the start of the frame: the
 * backend's hot path reads them in place from a frame of exactly `frameLength` bytes with flags 0
 * (what decodeRequest accepts) instead of decoding a Request object.
 */
export const CONFIG_READ_FRAME = {
  frameLength: HEADER_SIZE + CONFIG_READ_LEN,
  address: HEADER_SIZE + CONFIG_TARGET.address,
  offset: HEADER_SIZE + CONFIG_TARGET.offset,
  size: HEADER_SIZE + CONFIG_TARGET.size,
} as const;
/** Bytes of a ConfigRead reply frame. */
export const CONFIG_READ_REPLY_LENGTH = HEADER_SIZE + 4;
const CONFIG_WRITE_LEN = 12;
const BAR_READ_LEN = 16;
const BAR_WRITE_LEN = 24;
const ERROR_FIXED_LEN = 8;
/** Longest error text in UTF-8 bytes: error texts are diagnostics, not a data channel. */
export const MAX_ERROR_MESSAGE = 1024;

// ---------------------------------------------------------------- requests (frontend → backend)

export function encodeRequest(request: Request): Buffer {
  switch (request.type) {
    case MessageType.Hello:
      return encodeFrame(request.type, FrameFlags.None, request.id, Buffer.from(JSON.stringify(request.hello), 'utf8'));
    case MessageType.ConfigRead: {
      const frame = Buffer.allocUnsafe(HEADER_SIZE + CONFIG_READ_LEN);
      const { offset, size } = request;
      if (offset >= 0 && offset <= 0xffff && size >= 0 && size <= 0xff) {
        // The frontend's per-request path: unchecked stores once the values are known to fit.
        writeU32(frame, 0, MAGIC);
        writeU32(frame, 4, frame.length);
        writeU16(frame, 8, MessageType.ConfigRead);
        writeU16(frame, 10, FrameFlags.None);
        writeU32(frame, 12, request.id);
        writeU32(frame, CONFIG_READ_FRAME.address, packAddress(request.address));
        writeU16(frame, CONFIG_READ_FRAME.offset, offset);
        frame[CONFIG_READ_FRAME.size] = size;
        frame[HEADER_SIZE + 7] = 0;
        return frame;
      }
      // Out-of-range values: Buffer's checked writers throw their RangeError.
      writeHeader(frame, 0, frame.length, request.type, FrameFlags.None, request.id);
      writeConfigTarget(frame, request.address, offset, size);
      return frame;
    }
    case MessageType.ConfigWrite: {
      const frame = Buffer.allocUnsafe(HEADER_SIZE + CONFIG_WRITE_LEN);
      writeHeader(frame, 0, frame.length, request.type, FrameFlags.None, request.id);
      writeConfigTarget(frame, request.address, request.offset, request.size);
      frame.writeUInt32LE(request.value >>> 0, HEADER_SIZE + CONFIG_TARGET.value);
      return frame;
    }
    case MessageType.BarRead:
    case MessageType.BarWrite: {
      const len = request.type === MessageType.BarRead ? BAR_READ_LEN : BAR_WRITE_LEN;
      const frame = Buffer.allocUnsafe(HEADER_SIZE + len);
      writeHeader(frame, 0, frame.length, request.type, FrameFlags.None, request.id);
      frame.writeUInt32LE(packAddress(request.address), HEADER_SIZE);
      frame.writeUInt8(request.bar, HEADER_SIZE + 4);
      frame.writeUInt8(request.size, HEADER_SIZE + 5);
      frame.writeUInt16LE(0, HEADER_SIZE + 6);
      frame.writeBigUInt64LE(request.offset, HEADER_SIZE + 8);
      if (request.type === MessageType.BarWrite) frame.writeBigUInt64LE(request.value, HEADER_SIZE + 16);
      return frame;
    }
    case MessageType.ListDevices:
      return encodeFrame(request.type, FrameFlags.None, request.id);
    case MessageType.Ping:
      return encodeFrame(request.type, FrameFlags.None, request.id, request.payload);
    default:
      return encodeDeviceOpRequest(request);
  }
}

function writeConfigTarget(frame: Buffer, address: PciAddress, offset: number, size: number): void {
  frame.writeUInt32LE(packAddress(address), HEADER_SIZE + CONFIG_TARGET.address);
  frame.writeUInt16LE(offset, HEADER_SIZE + CONFIG_TARGET.offset);
  frame.writeUInt8(size, HEADER_SIZE + CONFIG_TARGET.size);
  frame.writeUInt8(0, HEADER_SIZE + CONFIG_TARGET.reserved);
}

const malformed = (what: string): XpciError => new XpciError(ErrorCode.Malformed, what);

function expectLength(frame: Frame, length: number, name: string): void {
  if (frame.payload.length !== length) {
    throw malformed(`${name} payload must be ${length} bytes, got ${frame.payload.length}`);
  }
}

/** Backend side. Throws XpciError (Malformed / NotImplemented) for anything it cannot decode. */
export function decodeRequest(frame: Frame): Request {
  const { id, payload } = frame;
  if (frame.flags !== FrameFlags.None) throw malformed(`request flags must be 0, got 0x${frame.flags.toString(16)}`);
  switch (frame.type) {
    case MessageType.Hello:
      return { type: MessageType.Hello, id, hello: decodeHello(payload) };
    case MessageType.ConfigRead: {
      expectLength(frame, CONFIG_READ_LEN, 'ConfigRead');
      return {
        type: MessageType.ConfigRead, id,
        address: unpackAddress(payload.readUInt32LE(CONFIG_TARGET.address)),
        offset: payload.readUInt16LE(CONFIG_TARGET.offset),
        size: payload.readUInt8(CONFIG_TARGET.size),
      };
    }
    case MessageType.ConfigWrite: {
      expectLength(frame, CONFIG_WRITE_LEN, 'ConfigWrite');
      return {
        type: MessageType.ConfigWrite, id,
        address: unpackAddress(payload.readUInt32LE(CONFIG_TARGET.address)),
        offset: payload.readUInt16LE(CONFIG_TARGET.offset),
        size: payload.readUInt8(CONFIG_TARGET.size),
        value: payload.readUInt32LE(CONFIG_TARGET.value),
      };
    }
    case MessageType.BarRead: {
      expectLength(frame, BAR_READ_LEN, 'BarRead');
      return {
        type: MessageType.BarRead, id,
        address: unpackAddress(payload.readUInt32LE(0)),
        bar: payload.readUInt8(4),
        size: payload.readUInt8(5),
        offset: payload.readBigUInt64LE(8),
      };
    }
    case MessageType.BarWrite: {
      expectLength(frame, BAR_WRITE_LEN, 'BarWrite');
      return {
        type: MessageType.BarWrite, id,
        address: unpackAddress(payload.readUInt32LE(0)),
        bar: payload.readUInt8(4),
        size: payload.readUInt8(5),
        offset: payload.readBigUInt64LE(8),
        value: payload.readBigUInt64LE(16),
      };
    }
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
  const body = parseJsonObject(payload, 'Hello');
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

function parseJsonObject(payload: Buffer, name: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    throw malformed(`${name} payload is not valid JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed(`${name} payload must be a JSON object`);
  return value as Record<string, unknown>;
}

// ---------------------------------------------------------------- replies and events (backend → frontend)

export function encodeConfigReadReply(id: number, value: number): Buffer {
  const frame = Buffer.allocUnsafe(CONFIG_READ_REPLY_LENGTH);
  writeConfigReadReply(frame, 0, id, value);
  return frame;
}

/** encodeConfigReadReply into `target` at `at` (CONFIG_READ_REPLY_LENGTH bytes): replies batched in one buffer. */
export function writeConfigReadReply(target: Buffer, at: number, id: number, value: number): void {
  if (!(Number.isInteger(at) && at >= 0 && at + CONFIG_READ_REPLY_LENGTH <= target.length)) {
    throw new RangeError(`no room for a ConfigRead reply at ${at} in ${target.length} bytes`);
  }
  // Once per config read: unchecked stores after the one bounds check above.
  writeU32(target, at, MAGIC);
  writeU32(target, at + 4, CONFIG_READ_REPLY_LENGTH);
  writeU16(target, at + 8, MessageType.ConfigRead);
  writeU16(target, at + 10, FrameFlags.Reply);
  writeU32(target, at + 12, id);
  writeU32(target, at + HEADER_SIZE, value);
}

export function encodeBarReadReply(id: number, value: bigint): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_SIZE + 8);
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
  const payload = Buffer.allocUnsafe(ERROR_FIXED_LEN + text.length);
  payload.writeUInt16LE(error.code, 0);
  payload.writeUInt16LE(0, 2);
  payload.writeInt32LE(error.errno | 0, 4);
  text.copy(payload, ERROR_FIXED_LEN);
  return encodeFrame(type, FrameFlags.Reply | FrameFlags.Error, id, payload);
}

/** Cut at most `limit` bytes without splitting a multi-byte character. */
function truncateUtf8(text: Buffer, limit: number): Buffer {
  if (text.length <= limit) return text;
  let end = limit;
  while (end > 0 && (text[end] & 0xc0) === 0x80) end--;
  return text.subarray(0, end);
}

/** The JSON events (DeviceAdded, Shutdown) and DeviceRemoved; device-ops-codec.ts encodes the rest. */
export function encodeEvent(type: MessageType, body: unknown): Buffer {
  const payload = type === MessageType.DeviceRemoved ? packedAddressPayload(body as PciAddress) : Buffer.from(JSON.stringify(body), 'utf8');
  return encodeFrame(type, FrameFlags.Event, 0, payload);
}

function packedAddressPayload(address: PciAddress): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32LE(packAddress(address), 0);
  return payload;
}

// ---------------------------------------------------------------- reply decoding (frontend side)

export function isErrorReply(frame: Frame): boolean {
  return (frame.flags & FrameFlags.Error) !== 0;
}

export function decodeErrorPayload(payload: Buffer): ErrorPayload {
  if (payload.length < ERROR_FIXED_LEN) throw malformed(`error payload of ${payload.length} bytes is shorter than ${ERROR_FIXED_LEN}`);
  return {
    code: payload.readUInt16LE(0) as ErrorCode,
    errno: payload.readInt32LE(4),
    // Untrusted text: whoever prints it gets it cut at the limit and with control characters escaped.
    message: printablePeerText(payload.subarray(ERROR_FIXED_LEN).toString('utf8'), MAX_ERROR_MESSAGE),
  };
}

/** Turn an error reply into the XpciError it stands for. */
export function errorFromReply(frame: Frame): XpciError {
  const e = decodeErrorPayload(frame.payload);
  return new XpciError(e.code, e.message, e.errno);
}

export function decodeConfigReadReply(frame: Frame): number {
  expectLength(frame, 4, 'ConfigRead reply');
  return readU32(frame.payload, 0);
}

export function decodeBarReadReply(frame: Frame): bigint {
  expectLength(frame, 8, 'BarRead reply');
  return frame.payload.readBigUInt64LE(0);
}

export function decodeJsonPayload<T>(frame: Frame, name: string): T {
  return parseJsonObject(frame.payload, name) as T;
}

export function decodeDeviceRemoved(frame: Frame): PciAddress {
  expectLength(frame, 4, 'DeviceRemoved event');
  return unpackAddress(frame.payload.readUInt32LE(0));
}
