/**
 * Executes one decoded device request against the mapping table and writes its reply into the
 * chunk's reply batch. Runs synchronously: a genuine config access is one pread of exactly the
 * requested width (the fastest and steadiest path measured on this machine), and keeping it
 * synchronous is what lets the session answer a whole received chunk with one write. Validation
 * and virtualization belong to the device; this layer only finds it. Errors are thrown as
 * XpciError and become error replies in the session.
 */
import { formatAddress, packAddress, unpackAddress, type PciAddress } from '../../pci/address.js';
import { naturalWidth } from '../../pci/config-reader.js';
import { encodeBarReadReply, encodeConfigReadBlockReply, encodeEmptyReply } from '../../protocol/ring/codec.js';
import type { DeviceOpRequest } from '../../protocol/ring/device-ops-codec.js';
import { ErrorCode, MessageType, XpciError, type DeviceDescriptor, type Request } from '../../protocol/ring/messages.js';
import type { DeviceTable } from './device-table.js';
import type { ReplyBatch } from './reply-batch.js';
import type { RequestTrace } from '../../protocol/ring/request-trace.js';

/** What the server needs of an exported device (src/backend/exported-device.ts provides it). */
export interface DeviceEndpoint {
  descriptor(): DeviceDescriptor;
  configRead(offset: number, size: number): number;
  configWrite(offset: number, size: number, value: number): void;
  barRead(bar: number, offset: bigint, size: number): bigint;
  barWrite(bar: number, offset: bigint, size: number, value: bigint): void;
  /** Interrupts, DMA windows and reset: the reply frame. Absent: the device offers none of them. */
  serveDeviceOp?(request: DeviceOpRequest): Buffer;
}

export type DeviceRequest = Extract<Request, { address: unknown }>;
export type ConfigReadRequest = Extract<Request, { type: MessageType.ConfigRead }>;

export function isDeviceRequest(request: Request): request is DeviceRequest {
  return 'address' in request;
}

/** The Request a ConfigRead served from plain values stands for (logs and error reports only). */
export function configReadRequest(id: number, packedAddress: number, offset: number, size: number): ConfigReadRequest {
  return { type: MessageType.ConfigRead, id, address: unpackAddress(packedAddress), offset, size };
}

const notExported = (address: PciAddress): XpciError =>
  new XpciError(ErrorCode.DeviceNotFound, `no device is exported at ${formatAddress(address)}`);

/**
 * The hot path: a ConfigRead from the frame's fields, answered in place in the batch; no Request
 * object unless `log` (the request log, passed only while it is on) needs one.
 */
export function serveConfigRead(
  table: DeviceTable<DeviceEndpoint>, log: RequestTrace | undefined, replies: ReplyBatch,
  id: number, packedAddress: number, offset: number, size: number,
): void {
  // The table is keyed by the wire form of the frontend's address: no unpacking on the way in.
  const device = table.lookup(packedAddress);
  if (device === undefined) throw notExported(unpackAddress(packedAddress));
  const value = device.configRead(offset, size);
  if (log) log.done(configReadRequest(id, packedAddress, offset, size), value);
  replies.configReadReply(id, value);
}

/**
 * A block of config space as the ConfigReads of its naturally aligned pieces would read it (the
 * widest the alignment allows), so the policy's view, the emulated registers and every refusal are
 * the same; any piece's error fails the whole block.
 */
function readConfigBlock(device: DeviceEndpoint, offset: number, length: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  for (let at = offset; at < offset + length;) {
    const width = naturalWidth(at, offset + length - at);
    const value = device.configRead(at, width);
    bytes.writeUIntLE(value, at - offset, width);
    at += width;
  }
  return bytes;
}

/** Any device request; `log` as for serveConfigRead. */
export function executeDeviceRequest(request: DeviceRequest, table: DeviceTable<DeviceEndpoint>, log: RequestTrace | undefined, replies: ReplyBatch): void {
  if (request.type === MessageType.ConfigRead) {
    serveConfigRead(table, log, replies, request.id, packAddress(request.address), request.offset, request.size);
    return;
  }
  const device = table.lookup(packAddress(request.address));
  if (device === undefined) throw notExported(request.address);
  switch (request.type) {
    case MessageType.ConfigWrite:
      device.configWrite(request.offset, request.size, request.value);
      log?.done(request);
      replies.append(encodeEmptyReply(MessageType.ConfigWrite, request.id));
      return;
    case MessageType.ConfigReadBlock: {
      const bytes = readConfigBlock(device, request.offset, request.length);
      log?.done(request);
      replies.append(encodeConfigReadBlockReply(request.id, bytes));
      return;
    }
    case MessageType.BarRead: {
      const value = device.barRead(request.bar, request.offset, request.size);
      log?.done(request, value);
      replies.append(encodeBarReadReply(request.id, value));
      return;
    }
    case MessageType.BarWrite:
      device.barWrite(request.bar, request.offset, request.size, request.value);
      log?.done(request);
      replies.append(encodeEmptyReply(MessageType.BarWrite, request.id));
      return;
    default: {
      if (!device.serveDeviceOp) throw new XpciError(ErrorCode.NotImplemented, `${formatAddress(request.address)} offers no interrupts, DMA or reset`);
      const reply = device.serveDeviceOp(request);
      log?.done(request);
      replies.append(reply);
    }
  }
}
