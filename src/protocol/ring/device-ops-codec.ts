/**
 * Wire layouts of the whole-device messages (interrupts, DMA windows, reset): one field-offset
 * table per message, used by the encoder and the decoder alike (docs/protocol.md §4.7-4.12 and §11
 * state the same tables; the doc test compares them byte for byte).
 */
import { packAddress, unpackAddress, type PciAddress } from '../../pci/address.js';
import { encodeFrame, writeHeader, type Frame } from './frame.js';
import {
  DMA_MAP_FIXED_IOVA,
  ErrorCode,
  FrameFlags,
  HEADER_SIZE,
  INTERRUPT_KINDS,
  MAX_FRAME,
  MessageType,
  XpciError,
  type InterruptKind,
  type InterruptRecord,
  type Request,
} from './messages.js';

export const INTERRUPT_UNMASK = { address: 0, kind: 4, reserved: 5, vector: 6, length: 8 } as const;
export const DMA_MAP = { address: 0, flags: 4, size: 8, iova: 16, length: 24 } as const;
export const DMA_MAP_REPLY = { iova: 0, length: 8 } as const;
export const DMA_UNMAP = { address: 0, reserved: 4, iova: 8, length: 16 } as const;
/** DmaRead's payload; DmaWrite's is the same followed by the `length` data bytes. */
export const DMA_TRANSFER = { address: 0, length: 4, iova: 8, offset: 16, data: 24 } as const;
export const RESET_DEVICE = { address: 0, length: 4 } as const;
export const INTERRUPT_EVENT = { address: 0, kind: 4, reserved: 5, vector: 6, count: 8, length: 12 } as const;
export const DEVICE_RESET_EVENT = { address: 0, length: 4 } as const;

/** Largest DmaRead/DmaWrite: a DmaWrite of this many bytes is exactly one MAX_FRAME frame. */
export const MAX_DMA_TRANSFER = MAX_FRAME - HEADER_SIZE - DMA_TRANSFER.data;

export type DeviceOpRequest = Extract<Request, {
  type: MessageType.InterruptUnmask | MessageType.DmaMap | MessageType.DmaUnmap | MessageType.DmaRead | MessageType.DmaWrite | MessageType.ResetDevice;
}>;

const malformed = (what: string): XpciError => new XpciError(ErrorCode.Malformed, what);

function kindCode(kind: InterruptKind): number {
  const code = INTERRUPT_KINDS.indexOf(kind);
  if (code < 0) throw new RangeError(`unknown interrupt kind ${String(kind)}`);
  return code;
}

function kindOf(code: number, what: string): InterruptKind {
  const kind = INTERRUPT_KINDS[code];
  if (kind === undefined) throw malformed(`${what}: interrupt kind ${code} is not 0 (intx), 1 (msi) or 2 (msix)`);
  return kind;
}

/** Payload bytes of `request`. */
export function deviceOpPayloadLength(request: DeviceOpRequest): number {
  switch (request.type) {
    case MessageType.InterruptUnmask: return INTERRUPT_UNMASK.length;
    case MessageType.DmaMap: return DMA_MAP.length;
    case MessageType.DmaUnmap: return DMA_UNMAP.length;
    case MessageType.DmaRead: return DMA_TRANSFER.data;
    case MessageType.DmaWrite: return DMA_TRANSFER.data + request.data.length;
    case MessageType.ResetDevice: return RESET_DEVICE.length;
  }
}

const U64_MAX = 0xffffffffffffffffn;
const fitsU64 = (value: bigint): boolean => typeof value === 'bigint' && value >= 0n && value <= U64_MAX;

/** What the wire cannot carry (the frontend refuses it before sending); the backend judges the rest. */
export function checkDeviceOpRequest(request: DeviceOpRequest): XpciError | undefined {
  switch (request.type) {
    case MessageType.InterruptUnmask:
      if (!INTERRUPT_KINDS.includes(request.kind)) return malformed(`interrupt kind ${String(request.kind)} is not intx, msi or msix`);
      if (!Number.isInteger(request.vector) || request.vector < 0 || request.vector > 0xffff) return new XpciError(ErrorCode.InvalidOffset, `vector ${request.vector} is outside 0..65535`);
      return undefined;
    case MessageType.DmaMap:
      if (!fitsU64(request.size)) return new XpciError(ErrorCode.InvalidSize, `DMA window size ${request.size} is outside 64 bits`);
      if (request.iova !== undefined && !fitsU64(request.iova)) return new XpciError(ErrorCode.InvalidOffset, `IOVA ${request.iova} is outside 64 bits`);
      return undefined;
    case MessageType.DmaUnmap:
      return fitsU64(request.iova) ? undefined : new XpciError(ErrorCode.InvalidOffset, `IOVA ${request.iova} is outside 64 bits`);
    case MessageType.DmaRead:
    case MessageType.DmaWrite: {
      if (!fitsU64(request.iova) || !fitsU64(request.offset)) return new XpciError(ErrorCode.InvalidOffset, 'DMA IOVA or offset outside 64 bits');
      const length = request.type === MessageType.DmaRead ? request.length : request.data.length;
      if (!Number.isInteger(length) || length < 0 || length > MAX_DMA_TRANSFER) {
        return new XpciError(ErrorCode.InvalidSize, `DMA transfer of ${length} bytes: at most ${MAX_DMA_TRANSFER}`);
      }
      return undefined;
    }
    case MessageType.ResetDevice:
      return undefined;
  }
}

/** The payload of `request` into `payload` (deviceOpPayloadLength bytes); fields passed checkDeviceOpRequest. */
export function writeDeviceOpPayload(payload: Buffer, request: DeviceOpRequest): void {
  payload.writeUInt32LE(packAddress(request.address), 0);
  switch (request.type) {
    case MessageType.InterruptUnmask:
      payload[INTERRUPT_UNMASK.kind] = INTERRUPT_KINDS.indexOf(request.kind);
      payload[INTERRUPT_UNMASK.reserved] = 0;
      payload.writeUInt16LE(request.vector, INTERRUPT_UNMASK.vector);
      return;
    case MessageType.DmaMap:
      payload.writeUInt32LE(request.iova === undefined ? 0 : DMA_MAP_FIXED_IOVA, DMA_MAP.flags);
      payload.writeBigUInt64LE(request.size, DMA_MAP.size);
      payload.writeBigUInt64LE(request.iova ?? 0n, DMA_MAP.iova);
      return;
    case MessageType.DmaUnmap:
      payload.writeUInt32LE(0, DMA_UNMAP.reserved);
      payload.writeBigUInt64LE(request.iova, DMA_UNMAP.iova);
      return;
    case MessageType.DmaRead:
    case MessageType.DmaWrite:
      writeDmaTransferFields(payload, request);
      if (request.type === MessageType.DmaWrite) payload.set(request.data, DMA_TRANSFER.data);
      return;
    case MessageType.ResetDevice:
      return;
  }
}

export type DmaTransferRequest = Extract<DeviceOpRequest, { type: MessageType.DmaRead | MessageType.DmaWrite }>;

/** DmaRead's payload, and what precedes a DmaWrite's data: address, length, IOVA, offset. */
export function writeDmaTransferFields(payload: Buffer, request: DmaTransferRequest): void {
  payload.writeUInt32LE(packAddress(request.address), DMA_TRANSFER.address);
  payload.writeUInt32LE(request.type === MessageType.DmaWrite ? request.data.length : request.length, DMA_TRANSFER.length);
  payload.writeBigUInt64LE(request.iova, DMA_TRANSFER.iova);
  payload.writeBigUInt64LE(request.offset, DMA_TRANSFER.offset);
}

export function encodeDeviceOpRequest(request: DeviceOpRequest): Buffer {
  const invalid = checkDeviceOpRequest(request);
  if (invalid) throw invalid;
  const frame = Buffer.alloc(HEADER_SIZE + deviceOpPayloadLength(request));
  writeHeader(frame, 0, frame.length, request.type, FrameFlags.None, request.id);
  writeDeviceOpPayload(frame.subarray(HEADER_SIZE), request);
  return frame;
}

function expectPayload(frame: Frame, length: number, name: string): Buffer {
  if (frame.payload.length !== length) throw malformed(`${name} payload must be ${length} bytes, got ${frame.payload.length}`);
  return frame.payload;
}

/** The decoder's half for the message types above; undefined for any other type. */
export function decodeDeviceOpRequest(frame: Frame): DeviceOpRequest | undefined {
  const { id } = frame;
  const address = (payload: Buffer): PciAddress => unpackAddress(payload.readUInt32LE(0));
  switch (frame.type) {
    case MessageType.InterruptUnmask: {
      const p = expectPayload(frame, INTERRUPT_UNMASK.length, 'InterruptUnmask');
      return {
        type: MessageType.InterruptUnmask, id, address: address(p),
        kind: kindOf(p.readUInt8(INTERRUPT_UNMASK.kind), 'InterruptUnmask'),
        vector: p.readUInt16LE(INTERRUPT_UNMASK.vector),
      };
    }
    case MessageType.DmaMap: {
      const p = expectPayload(frame, DMA_MAP.length, 'DmaMap');
      const flags = p.readUInt32LE(DMA_MAP.flags);
      if ((flags & ~DMA_MAP_FIXED_IOVA) !== 0) throw malformed(`DmaMap flags 0x${flags.toString(16)} has unknown bits`);
      const request: DeviceOpRequest = { type: MessageType.DmaMap, id, address: address(p), size: p.readBigUInt64LE(DMA_MAP.size) };
      if (flags & DMA_MAP_FIXED_IOVA) request.iova = p.readBigUInt64LE(DMA_MAP.iova);
      return request;
    }
    case MessageType.DmaUnmap: {
      const p = expectPayload(frame, DMA_UNMAP.length, 'DmaUnmap');
      return { type: MessageType.DmaUnmap, id, address: address(p), iova: p.readBigUInt64LE(DMA_UNMAP.iova) };
    }
    case MessageType.DmaRead: {
      const p = expectPayload(frame, DMA_TRANSFER.data, 'DmaRead');
      return {
        type: MessageType.DmaRead, id, address: address(p), length: p.readUInt32LE(DMA_TRANSFER.length),
        iova: p.readBigUInt64LE(DMA_TRANSFER.iova), offset: p.readBigUInt64LE(DMA_TRANSFER.offset),
      };
    }
    case MessageType.DmaWrite: {
      const p = frame.payload;
      if (p.length < DMA_TRANSFER.data) throw malformed(`DmaWrite payload must be at least ${DMA_TRANSFER.data} bytes, got ${p.length}`);
      const length = p.readUInt32LE(DMA_TRANSFER.length);
      if (p.length !== DMA_TRANSFER.data + length) {
        throw malformed(`DmaWrite payload of ${p.length} bytes does not hold ${DMA_TRANSFER.data} + length ${length} bytes`);
      }
      return {
        type: MessageType.DmaWrite, id, address: address(p),
        iova: p.readBigUInt64LE(DMA_TRANSFER.iova), offset: p.readBigUInt64LE(DMA_TRANSFER.offset),
        // A view, not a copy: FrameReader never writes over bytes it handed out.
        data: p.subarray(DMA_TRANSFER.data),
      };
    }
    case MessageType.ResetDevice: {
      const p = expectPayload(frame, RESET_DEVICE.length, 'ResetDevice');
      return { type: MessageType.ResetDevice, id, address: address(p) };
    }
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------- replies and events

export function encodeDmaMapReply(id: number, iova: bigint): Buffer {
  const payload = Buffer.alloc(DMA_MAP_REPLY.length);
  payload.writeBigUInt64LE(iova, DMA_MAP_REPLY.iova);
  return encodeFrame(MessageType.DmaMap, FrameFlags.Reply, id, payload);
}

export function decodeDmaMapReply(frame: Frame): bigint {
  return expectPayload(frame, DMA_MAP_REPLY.length, 'DmaMap reply').readBigUInt64LE(DMA_MAP_REPLY.iova);
}

export function encodeDmaReadReply(id: number, data: Uint8Array): Buffer {
  return encodeFrame(MessageType.DmaRead, FrameFlags.Reply, id, data);
}

export function encodeInterruptEvent(address: PciAddress, record: InterruptRecord): Buffer {
  const payload = Buffer.alloc(INTERRUPT_EVENT.length);
  payload.writeUInt32LE(packAddress(address), INTERRUPT_EVENT.address);
  payload.writeUInt8(kindCode(record.kind), INTERRUPT_EVENT.kind);
  payload.writeUInt16LE(record.vector, INTERRUPT_EVENT.vector);
  payload.writeUInt32LE(Math.min(record.count, 0xffffffff), INTERRUPT_EVENT.count);
  return encodeFrame(MessageType.Interrupt, FrameFlags.Event, 0, payload);
}

export function decodeInterruptEvent(frame: Frame): { address: PciAddress; record: InterruptRecord } {
  const p = expectPayload(frame, INTERRUPT_EVENT.length, 'Interrupt event');
  return {
    address: unpackAddress(p.readUInt32LE(INTERRUPT_EVENT.address)),
    record: {
      kind: kindOf(p.readUInt8(INTERRUPT_EVENT.kind), 'Interrupt event'),
      vector: p.readUInt16LE(INTERRUPT_EVENT.vector),
      count: p.readUInt32LE(INTERRUPT_EVENT.count),
    },
  };
}

export function encodeDeviceResetEvent(address: PciAddress): Buffer {
  const payload = Buffer.alloc(DEVICE_RESET_EVENT.length);
  payload.writeUInt32LE(packAddress(address), DEVICE_RESET_EVENT.address);
  return encodeFrame(MessageType.DeviceReset, FrameFlags.Event, 0, payload);
}

export function decodeDeviceResetEvent(frame: Frame): PciAddress {
  return unpackAddress(expectPayload(frame, DEVICE_RESET_EVENT.length, 'DeviceReset event').readUInt32LE(DEVICE_RESET_EVENT.address));
}
