/**
 * Per-request trace (`--verbose-request`, or DEBUG=xpci:request): device, op, offset, size, value
 * and result of every request. The pciback lesson: filtered writes are only debuggable when each
 * one is visible. Callers test `enabled` first so a quiet backend formats nothing.
 */
import createDebug from 'debug';
import { formatAddress } from '../../pci/address.js';
import { errorCodeName, MessageType, type Request } from '../../protocol/ring/messages.js';

const trace = createDebug('xpci:request');

export interface RequestLog {
  readonly enabled: boolean;
  done(request: Request, result?: number | bigint): void;
  failed(request: Request | { type: number; id: number }, code: number, message: string): void;
}

const hex = (value: number | bigint): string => `0x${value.toString(16)}`;

function describe(request: Request | { type: number; id: number }): string {
  const name = MessageType[request.type] ?? `type${request.type}`;
  // Frames that failed to decode carry only type and id.
  if (!('address' in request)) return `#${request.id} ${name}`;
  const r = request as Request;
  switch (r.type) {
    case MessageType.ConfigRead:
      return `#${r.id} ${formatAddress(r.address)} ${name} offset=${hex(r.offset)} size=${r.size}`;
    case MessageType.ConfigWrite:
      return `#${r.id} ${formatAddress(r.address)} ${name} offset=${hex(r.offset)} size=${r.size} value=${hex(r.value)}`;
    case MessageType.BarRead:
      return `#${r.id} ${formatAddress(r.address)} ${name} bar=${r.bar} offset=${hex(r.offset)} size=${r.size}`;
    case MessageType.BarWrite:
      return `#${r.id} ${formatAddress(r.address)} ${name} bar=${r.bar} offset=${hex(r.offset)} size=${r.size} value=${hex(r.value)}`;
    default:
      return `#${request.id} ${name}`;
  }
}

/** `verbose` forces the trace on; otherwise DEBUG decides, as for every other xpci namespace. */
export function createRequestLog(verbose: boolean): RequestLog {
  if (verbose) trace.enabled = true;
  return {
    get enabled() {
      return trace.enabled;
    },
    done(request, result) {
      trace('%s -> %s', describe(request), result === undefined ? 'ok' : hex(result));
    },
    failed(request, code, message) {
      trace('%s -> error %s: %s', describe(request), errorCodeName(code), message);
    },
  };
}
