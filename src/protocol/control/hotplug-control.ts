/**
 * The hot-plug control channel: a second Unix socket beside the ring socket (`<ring>.ctl`, mode
 * 0600, root only) carrying newline-delimited JSON, one request per line, one reply line each:
 *
 *   {"op":"attach","device":"0000:06:01.0","permissive":false}  ->  {"ok":true,"host":"0000:06:01.0","guest":"0000:00:01.0"}
 *   {"op":"detach","device":"00:01.0"}                           ->  {"ok":true,"host":"0000:06:01.0","guest":"0000:00:01.0"}
 *   {"op":"status","device":"06:01.0"}                           ->  {"ok":false,"error":"... not exported ..."}
 *   {"op":"export-status"}                                       ->  {"ok":true,"export":{pid, socket, mode, ...}}
 *
 * attach/detach change the backend's desired device set; the backend reconciles and announces the
 * change to the frontend with DeviceAdded/DeviceRemoved. Both are idempotent. `device` is a host
 * address, or the frontend address of a device the backend serves; the reply names both. Parsing is strict
 * and bounded: a malformed line gets {"ok":false,"error":...} and the connection stays usable.
 */
import { StringDecoder } from 'node:string_decoder';
import type { Socket } from 'node:net';
import { formatAddress, parseAddress } from '../../pci/address.js';
import { parseJsonObject } from '../json-object.js';

export type ControlOp = 'attach' | 'detach' | 'status' | 'export-status';

export interface ControlRequest {
  op: ControlOp;
  /** normalised "0000:06:01.0"; absent for export-status only */
  device?: string;
  /** attach only; absent: the backend's global --permissive */
  permissive?: boolean;
}

export interface ControlReply {
  ok: boolean;
  /** the host address of the device acted on (the request may have named its frontend address) */
  host?: string;
  /** the device's frontend address, when it is (or was, for detach) exported */
  guest?: string;
  error?: string;
  /** export-status only: the whole export as the backend sees it */
  export?: ExportStatus;
}

/** What `xpci status` shows of one running export. */
export interface ExportStatus {
  pid: number;
  socket: string;
  mode: string;
  readOnly: boolean;
  /**
   * The connected frontend, or null when none is: its SO_PEERCRED credentials on the Unix socket,
   * its address and certificate subject over TLS.
   */
  peer: { pid: number; uid: number; gid: number } | { remote: string; subject: string } | null;
  /** `denied`: how many accesses the policy refused (the shutdown summary's `denials` lists them) */
  devices: { host: string; guest: string; permissive: boolean; denied: number }[];
}

/** A request line longer than this is refused and the connection closed (the stream is not trusted). */
export const MAX_CONTROL_LINE = 4096;

export const CONTROL_SUFFIX = '.ctl';

/** The control socket of the backend listening on `ringSocket`. */
export const controlSocketPath = (ringSocket: string): string => ringSocket + CONTROL_SUFFIX;

export class ControlProtocolError extends Error {
  override readonly name = 'ControlProtocolError';
}

const OPS: readonly ControlOp[] = ['attach', 'detach', 'status', 'export-status'];
const REQUEST_KEYS = ['op', 'device', 'permissive'];

const jsonObject = (line: string, what: string): Record<string, unknown> => parseJsonObject(line, (problem) =>
  new ControlProtocolError(`malformed ${what}: ${problem === 'not-json' ? 'not JSON' : 'expected a JSON object'}`));

export function encodeControlRequest(request: ControlRequest): string {
  return JSON.stringify(request) + '\n';
}

/** Validate one request line (without its newline). Throws ControlProtocolError with the reason. */
export function parseControlRequest(line: string): ControlRequest {
  const value = jsonObject(line, 'request');
  const unknown = Object.keys(value).filter((key) => !REQUEST_KEYS.includes(key));
  if (unknown.length > 0) throw new ControlProtocolError(`malformed request: unknown key ${unknown.map((k) => JSON.stringify(k)).join(', ')}`);
  if (!OPS.includes(value.op as ControlOp)) throw new ControlProtocolError(`malformed request: op must be one of ${OPS.join(', ')}, got ${JSON.stringify(value.op)}`);
  const op = value.op as ControlOp;
  if (op === 'export-status') {
    if (value.device !== undefined || value.permissive !== undefined) throw new ControlProtocolError('malformed request: export-status takes no device');
    return { op };
  }
  if (typeof value.device !== 'string') throw new ControlProtocolError('malformed request: device must be a PCI address string');
  let device: string;
  try {
    device = formatAddress(parseAddress(value.device));
  } catch (error) {
    throw new ControlProtocolError(`malformed request: ${(error as Error).message}`);
  }
  if (value.permissive !== undefined) {
    if (op !== 'attach') throw new ControlProtocolError(`malformed request: permissive is only valid for attach`);
    if (typeof value.permissive !== 'boolean') throw new ControlProtocolError('malformed request: permissive must be true or false');
    return { op, device, permissive: value.permissive };
  }
  return { op, device };
}

export function encodeControlReply(reply: ControlReply): string {
  const clean: ControlReply = { ok: reply.ok };
  if (reply.host !== undefined) clean.host = reply.host;
  if (reply.guest !== undefined) clean.guest = reply.guest;
  if (reply.error !== undefined) clean.error = reply.error.split('\n')[0];
  if (reply.export !== undefined) clean.export = reply.export;
  return JSON.stringify(clean) + '\n';
}

export function parseControlReply(line: string): ControlReply {
  const value = jsonObject(line, 'reply');
  if (typeof value.ok !== 'boolean') throw new ControlProtocolError('malformed reply: ok must be true or false');
  for (const key of ['host', 'guest'] as const) {
    if (value[key] !== undefined && typeof value[key] !== 'string') throw new ControlProtocolError(`malformed reply: ${key} must be a string`);
  }
  if (value.error !== undefined && typeof value.error !== 'string') throw new ControlProtocolError('malformed reply: error must be a string');
  if (!value.ok && value.error === undefined) throw new ControlProtocolError('malformed reply: a failure must carry an error');
  return {
    ok: value.ok,
    ...(value.host === undefined ? {} : { host: value.host as string }),
    ...(value.guest === undefined ? {} : { guest: value.guest as string }),
    ...(value.error === undefined ? {} : { error: value.error as string }),
    ...(typeof value.export === 'object' && value.export !== null ? { export: value.export as ExportStatus } : {}),
  };
}

/**
 * Splits a byte stream into lines. `push` returns the complete lines so far; a line longer than
 * MAX_CONTROL_LINE throws ControlProtocolError (the peer is not speaking this protocol).
 */
export class ControlLineReader {
  private pending = '';
  private readonly decoder = new StringDecoder('utf8');

  push(chunk: Buffer | string): string[] {
    this.pending += typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    const lines = this.pending.split('\n');
    this.pending = lines.pop() ?? '';
    if (this.pending.length > MAX_CONTROL_LINE || lines.some((line) => line.length > MAX_CONTROL_LINE)) {
      throw new ControlProtocolError(`control line longer than ${MAX_CONTROL_LINE} bytes`);
    }
    return lines.filter((line) => line.trim() !== '');
  }
}

export type ControlHandler = (request: ControlRequest) => ControlReply | Promise<ControlReply>;

/**
 * Serve one accepted control connection: requests are handled one at a time, in order, each answered
 * with one reply line. A malformed line is answered {ok:false} and the connection stays open; an
 * oversized one is answered and the connection closed. The listening side (the backend) checks the
 * peer's credentials before calling this.
 */
export function serveControlConnection(socket: Socket, handle: ControlHandler): void {
  const reader = new ControlLineReader();
  let queue = Promise.resolve();
  const answer = (reply: ControlReply): void => {
    if (!socket.destroyed) socket.write(encodeControlReply(reply));
  };
  socket.on('data', (chunk: Buffer) => {
    let lines: string[];
    try {
      lines = reader.push(chunk);
    } catch (error) {
      socket.end(encodeControlReply({ ok: false, error: (error as Error).message }));
      socket.removeAllListeners('data');
      return;
    }
    for (const line of lines) {
      queue = queue.then(async () => {
        let request: ControlRequest;
        try {
          request = parseControlRequest(line);
        } catch (error) {
          answer({ ok: false, error: (error as Error).message });
          return;
        }
        try {
          answer(await handle(request));
        } catch (error) {
          answer({ ok: false, error: error instanceof Error ? error.message : String(error) });
        }
      });
    }
  });
  socket.on('error', () => socket.destroy());
}
