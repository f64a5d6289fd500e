/**
 * Executes one decoded device request against the mapping table and encodes its reply. Runs
 * synchronously: a genuine config access is one pread of exactly the requested width (the fastest
 * and steadiest path measured on this machine), and keeping it synchronous is what lets the session
 * answer a whole received chunk with one write. Validation and virtualization belong to the device;
 * this layer only finds it. Errors are thrown as XpciError and become error replies in the session.
 */
import { formatAddress, packAddress } from '../../pci/address.js';
import {
  encodeBarReadReply,
  encodeConfigReadReply,
  encodeEmptyReply,
} from '../../protocol/codec.js';
import { ErrorCode, MessageType, XpciError, type DeviceDescriptor, type Request } from '../../protocol/messages.js';
import type { DeviceTable } from './device-table.js';
import type { RequestLog } from './request-log.js';

/** What the server needs of an exported device (src/backend/exported-device.ts provides it). */
export interface DeviceEndpoint {
  descriptor(): DeviceDescriptor;
  configRead(offset: number, size: number): number;
  configWrite(offset: number, size: number, value: number): void;
  barRead(bar: number, offset: bigint, size: number): bigint;
  barWrite(bar: number, offset: bigint, size: number, value: bigint): void;
}

export type DeviceRequest = Extract<Request, { address: unknown }>;

export function isDeviceRequest(request: Request): request is DeviceRequest {
  return 'address' in request;
}

export function executeDeviceRequest(request: DeviceRequest, table: DeviceTable<DeviceEndpoint>, log: RequestLog): Buffer {
  const device = table.lookup(packAddress(request.address));
  if (device === undefined) {
    throw new XpciError(ErrorCode.DeviceNotFound, `no device is exported at ${formatAddress(request.address)}`);
  }
  switch (request.type) {
    case MessageType.ConfigRead: {
      const value = device.configRead(request.offset, request.size);
      if (log.enabled) log.done(request, value);
      return encodeConfigReadReply(request.id, value);
    }
    case MessageType.ConfigWrite:
      device.configWrite(request.offset, request.size, request.value);
      if (log.enabled) log.done(request);
      return encodeEmptyReply(MessageType.ConfigWrite, request.id);
    case MessageType.BarRead: {
      const value = device.barRead(request.bar, request.offset, request.size);
      if (log.enabled) log.done(request, value);
      return encodeBarReadReply(request.id, value);
    }
    case MessageType.BarWrite:
      device.barWrite(request.bar, request.offset, request.size, request.value);
      if (log.enabled) log.done(request);
      return encodeEmptyReply(MessageType.BarWrite, request.id);
  }
}
