/**
 * The per-request trace of both sides (`--verbose-request`, or DEBUG=xpci:request): one line per
 * finished request naming id, device, op, BAR, offset, size, value and the result or the protocol
 * error with its errno. Both sides print the same format, so a frontend's line and the backend's
 * line for one request can be matched by id. The pciback lesson: filtered writes are only
 * debuggable when each one is visible.
 */
import { debugLog } from '../../diagnostics/debug-log.js';
import { formatAddress } from '../../pci/address.js';
import { errorCodeName, MessageType, type ErrorPayload, type Request } from './messages.js';
import { hex0x } from '../../pci/hex.js';

const requestDebug = debugLog('xpci:request');

/** A request as the trace sees it; frames that failed to decode carry only type and id. */
export type TracedRequest = Request | { readonly type: number; readonly id: number };

export function formatRequestTrace(request: TracedRequest, outcome: { result?: number | bigint; error?: ErrorPayload }): string {
  const parts: string[] = [`#${request.id}`];
  if ('address' in request) parts.push(formatAddress(request.address));
  parts.push(MessageType[request.type] ?? `type${request.type}`);
  if ('bar' in request) parts.push(`bar=${request.bar}`);
  if ('offset' in request) parts.push(`offset=${hex0x(request.offset)}`);
  if ('size' in request) parts.push(`size=${request.size}`);
  if ('length' in request) parts.push(`length=${request.length}`);
  if ('value' in request) parts.push(`value=${hex0x(request.value)}`);
  const { result, error } = outcome;
  if (error) parts.push(`-> error ${errorCodeName(error.code)}${error.errno ? ` (errno ${error.errno})` : ''}: ${error.message}`);
  else parts.push(`-> ${result === undefined ? 'ok' : hex0x(result)}`);
  return parts.join(' ');
}

/**
 * Where trace lines go: the xpci:request debug namespace, and `sink` when given. Callers test
 * `enabled` first so a quiet side formats nothing.
 */
export class RequestTrace {
  constructor(private readonly sink?: (line: string) => void) {}

  /** `verbose` turns the debug namespace on (the backend's --verbose-request); otherwise DEBUG decides. */
  static forBackend(verbose: boolean): RequestTrace {
    if (verbose) requestDebug.enabled = true;
    return new RequestTrace();
  }

  get enabled(): boolean {
    return this.sink !== undefined || requestDebug.enabled;
  }

  done(request: TracedRequest, result?: number | bigint): void {
    this.emit(formatRequestTrace(request, { result }));
  }

  failed(request: TracedRequest, error: ErrorPayload): void {
    this.emit(formatRequestTrace(request, { error }));
  }

  private emit(line: string): void {
    requestDebug(line);
    this.sink?.(line);
  }
}
