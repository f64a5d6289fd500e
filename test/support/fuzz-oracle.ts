/**
 * The fuzzer's model of the backend, written from docs/protocol.md alone: the fuzzer runs its own
 * FrameReader over the bytes it sends, so it knows every frame the backend will cut out of the
 * stream, and for each one which reply the protocol demands (one reply per frame, in order, same
 * type and id; validation errors in the documented order; identity registers unchanged; pings
 * echoed). Replies the model cannot predict exactly (AccessDenied from the policy, LimitExceeded
 * from batching) are accepted where the doc allows them, and nowhere else.
 */
import { type Frame } from '../../src/protocol/ring/frame.js';
import { decodeErrorPayload, decodeRequest } from '../../src/protocol/ring/codec.js';
import {
  ErrorCode,
  FrameFlags,
  MAX_FRAME,
  MAX_RING_DEPTH,
  MIN_RING_DEPTH,
  MessageType,
  SUPPORTED_VERSIONS,
  XpciError,
  errorCodeName,
  type ErrorPayload,
  type ExportMode,
  type HelloReply,
  type Request,
} from '../../src/protocol/ring/messages.js';
import { formatAddress, packAddress } from '../../src/pci/address.js';
import type { FuzzTarget } from './fuzz-generator.js';

export interface OracleDevice extends FuzzTarget {
  /** Config bytes at export time (identity registers must read back unchanged). */
  original: Buffer;
}

/** A backend report of skipped garbage: not a reply to any frame. */
export function isGarbageReport(frame: Frame): boolean {
  if (frame.type !== 0 || frame.id !== 0 || frame.flags !== (FrameFlags.Reply | FrameFlags.Error)) return false;
  try {
    const e = decodeErrorPayload(frame.payload);
    return e.code === ErrorCode.Malformed && e.message.startsWith('skipped ');
  } catch {
    return false;
  }
}

type Outcome = { ok: true; frame: Frame } | { ok: false; error: ErrorPayload; frame: Frame };

const hex = (n: number | bigint): string => `0x${n.toString(16)}`;

export class Oracle {
  /** Whether the backend's session is established (a Hello with a common version was answered). */
  established = false;
  private ringDepth = 0;
  readonly outcomes = new Map<string, number>();
  readonly findings: string[] = [];
  private readonly byPacked = new Map<number, OracleDevice>();

  constructor(private readonly devices: OracleDevice[], private readonly mode: ExportMode, private readonly maxFindings = 50) {
    for (const d of devices) this.byPacked.set(d.packed, d);
  }

  /** A new connection: a new session. */
  reset(): void {
    this.established = false;
  }

  finding(text: string): void {
    if (this.findings.length < this.maxFindings) this.findings.push(text);
    else if (this.findings.length === this.maxFindings) this.findings.push('(more findings not recorded)');
  }

  /**
   * Check the replies to one batch. `sent`: the frames the backend cut from the stream, in order.
   * Returns false when the reply stream is out of step (the caller then reconnects).
   */
  check(sent: Frame[], replies: Frame[]): boolean {
    const answers = replies.filter((r) => !isGarbageReport(r));
    const events = answers.filter((r) => r.flags & FrameFlags.Event);
    for (const e of events) this.finding(`unexpected event of type ${e.type} (no hot-plug during the fuzz run)`);
    const real = answers.filter((r) => !(r.flags & FrameFlags.Event));
    if (real.length !== sent.length) {
      this.finding(`${sent.length} frames sent, ${real.length} replies received`);
      return false;
    }
    for (let i = 0; i < sent.length; i++) {
      const request = sent[i];
      const reply = real[i];
      if (reply.type !== request.type || reply.id !== request.id) {
        this.finding(`reply ${i} has type ${reply.type} id ${reply.id}, expected the reply to type ${request.type} id ${request.id} (replies must come in request order)`);
        return false;
      }
      this.checkOne(request, reply);
    }
    return true;
  }

  private count(what: string): void {
    this.outcomes.set(what, (this.outcomes.get(what) ?? 0) + 1);
  }

  private outcome(reply: Frame, label: string): Outcome | undefined {
    if (reply.flags === FrameFlags.Reply) return { ok: true, frame: reply };
    if (reply.flags !== (FrameFlags.Reply | FrameFlags.Error)) {
      this.finding(`${label}: reply flags 0x${reply.flags.toString(16)} are neither Reply nor Reply|Error`);
      return undefined;
    }
    try {
      const error = decodeErrorPayload(reply.payload);
      if (ErrorCode[error.code] === undefined) this.finding(`${label}: unknown error code ${error.code}`);
      if (Buffer.byteLength(error.message) > 1024) this.finding(`${label}: error text of ${Buffer.byteLength(error.message)} bytes exceeds 1024`);
      return { ok: false, error, frame: reply };
    } catch (e) {
      this.finding(`${label}: undecodable error payload: ${(e as Error).message}`);
      return undefined;
    }
  }

  private expectError(outcome: Outcome, codes: ErrorCode[], label: string): void {
    if (outcome.ok) this.finding(`${label}: succeeded, expected ${codes.map(errorCodeName).join(' or ')}`);
    else if (!codes.includes(outcome.error.code)) {
      this.finding(`${label}: got ${errorCodeName(outcome.error.code)} (${outcome.error.message}), expected ${codes.map(errorCodeName).join(' or ')}`);
    }
  }

  private checkOne(frame: Frame, reply: Frame): void {
    let request: Request;
    try {
      request = decodeRequest(frame);
    } catch (error) {
      const code = error instanceof XpciError ? error.code : ErrorCode.OperationFailed;
      const outcome = this.outcome(reply, `undecodable frame type ${frame.type} id ${frame.id}`);
      this.count(`decode error ${errorCodeName(code)}`);
      if (outcome) this.expectError(outcome, [code], `undecodable frame type ${frame.type} id ${frame.id}`);
      return;
    }
    const label = describe(request);
    const outcome = this.outcome(reply, label);
    if (!outcome) return;
    this.count(`${MessageType[request.type]} ${outcome.ok ? 'ok' : errorCodeName(outcome.error.code)}`);

    if (request.type === MessageType.Hello) {
      this.checkHello(request, outcome, label);
      return;
    }
    if (!this.established) {
      this.expectError(outcome, [ErrorCode.HelloRequired], label);
      return;
    }
    // Batching decides this one; the doc allows it for any request beyond the ring depth.
    if (!outcome.ok && outcome.error.code === ErrorCode.LimitExceeded) return;

    switch (request.type) {
      case MessageType.ConfigRead:
      case MessageType.ConfigWrite:
        this.checkConfig(request, outcome, label);
        return;
      case MessageType.BarRead:
      case MessageType.BarWrite:
        this.checkBar(request, outcome, label);
        return;
      case MessageType.ConfigReadBlock:
        this.checkConfigBlock(request, outcome, label);
        return;
      case MessageType.ListDevices:
        if (!outcome.ok) this.finding(`${label}: failed with ${errorCodeName(outcome.error.code)}`);
        else this.checkDeviceList(outcome.frame, label);
        return;
      case MessageType.Ping:
        if (!outcome.ok) this.finding(`${label}: failed with ${errorCodeName(outcome.error.code)}`);
        else if (!outcome.frame.payload.equals(request.payload)) this.finding(`${label}: the echo differs from the payload`);
        return;
    }
  }

  private checkHello(request: Extract<Request, { type: MessageType.Hello }>, outcome: Outcome, label: string): void {
    // Only the first Hello of a batch is answered (docs/protocol.md §7); the others leave the session as it was.
    if (!outcome.ok && outcome.error.code === ErrorCode.LimitExceeded) return;
    const common = request.hello.versions.filter((v) => SUPPORTED_VERSIONS.includes(v));
    if (common.length === 0) {
      this.expectError(outcome, [ErrorCode.VersionMismatch], label);
      this.established = false;
      return;
    }
    if (!outcome.ok) {
      this.finding(`${label}: failed with ${errorCodeName(outcome.error.code)}: ${outcome.error.message}`);
      this.established = false;
      return;
    }
    this.established = true;
    this.ringDepth = Math.min(MAX_RING_DEPTH, Math.max(MIN_RING_DEPTH, request.hello.ringDepth));
    let body: HelloReply;
    try {
      body = JSON.parse(outcome.frame.payload.toString('utf8')) as HelloReply;
    } catch {
      this.finding(`${label}: the Hello reply is not JSON`);
      return;
    }
    if (body.version !== Math.max(...common)) this.finding(`${label}: version ${body.version}, expected ${Math.max(...common)}`);
    if (body.ringDepth !== this.ringDepth) this.finding(`${label}: ring depth ${body.ringDepth}, expected ${this.ringDepth}`);
    if (body.maxFrame !== MAX_FRAME) this.finding(`${label}: maxFrame ${body.maxFrame}`);
    if (body.mode !== this.mode) this.finding(`${label}: mode ${body.mode}, expected ${this.mode}`);
    this.checkDevices(body.devices, body.roots, label);
  }

  private checkDeviceList(frame: Frame, label: string): void {
    try {
      const body = JSON.parse(frame.payload.toString('utf8')) as { devices: HelloReply['devices']; roots: string[] };
      this.checkDevices(body.devices, body.roots, label);
    } catch {
      this.finding(`${label}: the reply is not JSON`);
    }
  }

  private checkDevices(devices: HelloReply['devices'], roots: string[], label: string): void {
    const want = this.devices.map((d) => formatAddress(d.guest)).sort();
    const got = (devices ?? []).map((d) => d.address).sort();
    if (want.join() !== got.join()) this.finding(`${label}: devices ${got.join(' ')}, expected ${want.join(' ')}`);
    if (this.mode === 'vpci') {
      if (roots?.join() !== '0000:00') this.finding(`${label}: vPCI roots ${roots?.join(' ')}`);
      if ((devices ?? []).some((d) => d.hostAddress !== undefined)) this.finding(`${label}: a vPCI descriptor reveals a host address`);
    } else {
      const buses = [...new Set(want.map((a) => a.slice(0, 7)))].sort();
      if ([...(roots ?? [])].sort().join() !== buses.join()) this.finding(`${label}: passthrough roots ${roots?.join(' ')}, expected ${buses.join(' ')}`);
      for (const d of devices ?? []) if (d.hostAddress !== d.address) this.finding(`${label}: passthrough descriptor ${d.address} has hostAddress ${d.hostAddress}`);
    }
  }

  /** Validation errors, in the documented order (docs/protocol.md §4.2). */
  private checkConfigBlock(request: Extract<Request, { type: MessageType.ConfigReadBlock }>, outcome: Outcome, label: string): void {
    const device = this.byPacked.get(packAddress(request.address));
    const { offset, length } = request;
    const expected = device === undefined ? ErrorCode.DeviceNotFound : offset + length > device.configSize ? ErrorCode.InvalidOffset : undefined;
    if (expected !== undefined) {
      this.expectError(outcome, [expected], label);
      return;
    }
    if (!outcome.ok) {
      this.finding(`${label}: a valid block read failed with ${errorCodeName(outcome.error.code)} (${outcome.error.message})`);
      return;
    }
    if (outcome.frame.payload.length !== length) {
      this.finding(`${label}: reply payload of ${outcome.frame.payload.length} bytes for ${length}`);
      return;
    }
    for (let at = offset; at < offset + length; at++) {
      const identity = at < 0x04 || (at >= 0x08 && at < 0x0c) || at === 0x0e;
      if (identity && outcome.frame.payload[at - offset] !== device!.original[at]) {
        this.finding(`${label}: identity byte ${hex(at)} reads ${hex(outcome.frame.payload[at - offset])}, the device has ${hex(device!.original[at])}`);
      }
    }
  }

  private checkConfig(request: Extract<Request, { type: MessageType.ConfigRead | MessageType.ConfigWrite }>, outcome: Outcome, label: string): void {
    const device = this.byPacked.get(packAddress(request.address));
    const { offset, size } = request;
    const expected = device === undefined ? ErrorCode.DeviceNotFound
      : ![1, 2, 4].includes(size) ? ErrorCode.InvalidSize
      : offset % size !== 0 ? ErrorCode.Misaligned
      : offset + size > device.configSize ? ErrorCode.InvalidOffset
      : undefined;
    if (expected !== undefined) {
      this.expectError(outcome, [expected], label);
      return;
    }
    if (request.type === MessageType.ConfigWrite) {
      if (!outcome.ok && outcome.error.code !== ErrorCode.AccessDenied) {
        this.finding(`${label}: failed with ${errorCodeName(outcome.error.code)} (${outcome.error.message}); a valid write either succeeds or is AccessDenied`);
      }
      return;
    }
    if (!outcome.ok) {
      this.finding(`${label}: a valid read failed with ${errorCodeName(outcome.error.code)} (${outcome.error.message})`);
      return;
    }
    if (outcome.frame.payload.length !== 4) {
      this.finding(`${label}: reply payload of ${outcome.frame.payload.length} bytes`);
      return;
    }
    const value = outcome.frame.payload.readUInt32LE(0);
    if (size < 4 && value >>> (8 * size) !== 0) this.finding(`${label}: value ${hex(value)} has bits above ${size} bytes`);
    // Identity registers (vendor, device, revision/class, header type) never change.
    for (let i = 0; i < size; i++) {
      const at = offset + i;
      if ((at < 0x04 || (at >= 0x08 && at < 0x0c) || at === 0x0e) && ((value >>> (8 * i)) & 0xff) !== device!.original[at]) {
        this.finding(`${label}: identity byte ${hex(at)} reads ${hex((value >>> (8 * i)) & 0xff)}, the device has ${hex(device!.original[at])}`);
      }
    }
  }

  /** docs/protocol.md §4.4: existence, size, alignment, range, then policy. */
  private checkBar(request: Extract<Request, { type: MessageType.BarRead | MessageType.BarWrite }>, outcome: Outcome, label: string): void {
    const device = this.byPacked.get(packAddress(request.address));
    const bar = device?.bars.find((b) => b.index === request.bar);
    const sizes = bar?.kind === 'io' ? [1, 2, 4] : [1, 2, 4, 8];
    const expected = device === undefined ? ErrorCode.DeviceNotFound
      : bar === undefined ? ErrorCode.InvalidOffset
      : !sizes.includes(request.size) ? ErrorCode.InvalidSize
      : request.offset % BigInt(request.size) !== 0n ? ErrorCode.Misaligned
      : request.offset + BigInt(request.size) > BigInt(bar.size) ? ErrorCode.InvalidOffset
      : undefined;
    if (expected !== undefined) {
      this.expectError(outcome, [expected], label);
      return;
    }
    if (!outcome.ok) {
      // Decode off as the frontend sees it is the one refusal a valid BAR op may get here.
      if (outcome.error.code !== ErrorCode.AccessDenied) this.finding(`${label}: failed with ${errorCodeName(outcome.error.code)} (${outcome.error.message})`);
      return;
    }
    if (request.type === MessageType.BarRead) {
      if (outcome.frame.payload.length !== 8) this.finding(`${label}: reply payload of ${outcome.frame.payload.length} bytes`);
      else if (request.size < 8 && outcome.frame.payload.readBigUInt64LE(0) >> BigInt(8 * request.size) !== 0n) this.finding(`${label}: value has bits above ${request.size} bytes`);
    }
  }
}

function describe(request: Request): string {
  const id = `id ${request.id}`;
  switch (request.type) {
    case MessageType.ConfigRead:
    case MessageType.ConfigWrite:
      return `${MessageType[request.type]} ${formatAddress(request.address)} ${hex(request.offset)}/${request.size}${request.type === MessageType.ConfigWrite ? `=${hex(request.value)}` : ''} (${id})`;
    case MessageType.BarRead:
    case MessageType.BarWrite:
      return `${MessageType[request.type]} ${formatAddress(request.address)} BAR${request.bar} ${hex(request.offset)}/${request.size} (${id})`;
    default:
      return `${MessageType[request.type]} (${id})`;
  }
}
