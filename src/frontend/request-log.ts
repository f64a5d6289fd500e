/**
 * `--verbose-request` / DEBUG=xpci:request on the frontend side: one line per finished request
 * naming the id, device, op, offset, size, value and the result or protocol error. Same shape as
 * the backend's trace, so the two sides' lines can be matched by id.
 */
import createDebug from 'debug';
import { formatAddress, type PciAddress } from '../pci/address.js';
import { errorCodeName, MessageType, type XpciError } from '../protocol/ring/messages.js';

export const requestDebug = createDebug('xpci:request');

export interface RequestLogEntry {
  type: MessageType;
  address?: PciAddress;
  bar?: number;
  offset?: number | bigint;
  size?: number;
  /** The value written (writes). */
  value?: number | bigint;
}

const hex = (value: number | bigint): string => `0x${value.toString(16)}`;

export function formatRequestLog(id: number, entry: RequestLogEntry, outcome: { result?: number | bigint; error?: XpciError }): string {
  const parts: string[] = [`#${id}`];
  if (entry.address) parts.push(formatAddress(entry.address));
  parts.push(MessageType[entry.type] ?? `type${entry.type}`);
  if (entry.bar !== undefined) parts.push(`bar=${entry.bar}`);
  if (entry.offset !== undefined) parts.push(`offset=${hex(entry.offset)}`);
  if (entry.size !== undefined) parts.push(`size=${entry.size}`);
  if (entry.value !== undefined) parts.push(`value=${hex(entry.value)}`);
  if (outcome.error) {
    const errno = outcome.error.errno ? ` (errno ${outcome.error.errno})` : '';
    parts.push(`-> error ${errorCodeName(outcome.error.code)}${errno}: ${outcome.error.message}`);
  } else {
    parts.push(`-> ${outcome.result === undefined ? 'ok' : hex(outcome.result)}`);
  }
  return parts.join(' ');
}
