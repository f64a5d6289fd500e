/**
 * The state of one frontend stream, independent of the socket it arrives on: Hello first, then
 * requests; a new Hello on the live stream resets the session (a frontend restarted behind a
 * virtio-serial port that stayed open). Each received chunk is answered with ONE buffer holding
 * every reply it produced: batching replies is what makes a Node backend fast (one write per
 * chunk instead of one per request). The replies are written into that buffer as they are made,
 * and a ConfigRead (what a frontend sends most) is served from the frame's bytes in place: no
 * per-request object, Buffer or closure, and no request-log work while the log is off.
 *
 * A stream the backend cannot trust any more (more than MAX_GARBAGE bytes without a valid frame)
 * is closed; nothing a peer sends can make the session throw.
 */
import { debugLog } from '../../diagnostics/debug-log.js';
import { readU16, readU32 } from '../../protocol/ring/bytes.js';
import { FrameReader, type Frame, type FrameFault, type FrameVisitor } from '../../protocol/ring/frame.js';
import { decodeRequest, encodeErrorReply, encodeJsonReply, encodePingReply } from '../../protocol/ring/codec.js';
import { CONFIG_READ_FRAME } from '../../protocol/ring/layout.js';
import { MAX_GARBAGE } from '../../protocol/ring/limits.js';
import {
  ErrorCode,
  FrameFlags,
  HEADER_SIZE,
  MAX_FRAME,
  MAX_RING_DEPTH,
  MIN_RING_DEPTH,
  MessageType,
  SUPPORTED_VERSIONS,
  XpciError,
  type ExportMode,
  type HelloReply,
  type Request,
} from '../../protocol/ring/messages.js';
import type { DeviceTable } from './device-table.js';
import { configReadRequest, executeDeviceRequest, isDeviceRequest, serveConfigRead, type DeviceEndpoint } from './dispatcher.js';
import { ReplyBatch } from './reply-batch.js';
import type { RequestTrace } from '../../protocol/ring/request-trace.js';

const debug = debugLog('xpci:server');


export interface SessionContext {
  readonly mode: ExportMode;
  readonly table: DeviceTable<DeviceEndpoint>;
  readonly requestLog: RequestTrace;
  /** A non-XpciError thrown while serving is a bug: it is reported here and answered OperationFailed. */
  reportBug(error: unknown, request: Request): void;
  /** A new Hello ended an established session: what the previous frontend held goes (DMA windows, interrupts). */
  sessionRestarted?(): void;
}

export interface SessionOutput {
  /** Every reply produced by the chunk, concatenated; null when there is nothing to send. */
  reply: Buffer | null;
  /** Set when the stream must be closed after sending `reply`. */
  closeReason: string | null;
}

function clampRingDepth(requested: number): number {
  return Math.min(MAX_RING_DEPTH, Math.max(MIN_RING_DEPTH, requested));
}

const errorReply = (type: number, id: number, code: ErrorCode, message: string, errno = 0): Buffer =>
  encodeErrorReply(type, id, { code, errno, message });

export class FrontendSession {
  private readonly reader = new FrameReader();
  private established = false;
  private depth = 0;
  private garbage = 0;
  // State of the chunk being received (receive() runs synchronously).
  private readonly replies = new ReplyBatch();
  private inFlight = 0;
  private helloInBatch = false;
  private faultReported = false;
  /** The request log while it is on, read once per chunk: a quiet backend pays nothing per request. */
  private log: RequestTrace | undefined;
  private readonly visitor: FrameVisitor = {
    frame: (buffer, at, length, type, flags, id) => this.onFrame(buffer, at, length, type, flags, id),
    fault: (fault) => this.onFault(fault),
  };

  constructor(private readonly context: SessionContext) {}

  /** True once a Hello succeeded: events may be sent. */
  get ready(): boolean {
    return this.established;
  }

  get ringDepth(): number {
    return this.depth;
  }

  /** Bytes of a frame that has not fully arrived. */
  get pendingBytes(): number {
    return this.reader.pending;
  }

  /** Drop a partial frame that stayed incomplete too long (a frontend that died mid-frame). */
  discardPartial(): number {
    return this.reader.discardPartial();
  }

  receive(chunk: Buffer): SessionOutput {
    this.replies.begin(this.reader.pending + chunk.length);
    this.inFlight = 0;
    this.helloInBatch = false;
    this.faultReported = false;
    this.log = this.context.requestLog.enabled ? this.context.requestLog : undefined;
    this.reader.scan(chunk, this.visitor);
    const closeReason = this.garbage > MAX_GARBAGE
      ? `more than ${MAX_GARBAGE} bytes of garbage without a valid frame; closing the stream`
      : null;
    return { reply: this.replies.take(), closeReason };
  }

  private onFault(fault: FrameFault): void {
    this.garbage += fault.skipped;
    if (!this.faultReported) {
      this.faultReported = true;
      this.replies.append(errorReply(0, 0, ErrorCode.Malformed, `skipped ${fault.skipped} bytes: ${fault.detail}`));
    }
  }

  private onFrame(buffer: Buffer, at: number, length: number, type: number, flags: number, id: number): void {
    if (type === MessageType.ConfigRead && flags === FrameFlags.None && length === CONFIG_READ_FRAME.frameLength &&
        this.established && this.inFlight < this.depth) {
      // The hot path: a ConfigRead that decodes and is within the ring depth, read in place. Same
      // decisions and replies as onRequest below, without a Frame or Request object.
      this.garbage = 0;
      this.inFlight++;
      this.configRead(id, readU32(buffer, at + CONFIG_READ_FRAME.address), readU16(buffer, at + CONFIG_READ_FRAME.offset),
        buffer[at + CONFIG_READ_FRAME.size]);
      return;
    }
    this.onRequest({ type, flags, id, payload: buffer.subarray(at + HEADER_SIZE, at + length) });
  }

  private configRead(id: number, packedAddress: number, offset: number, size: number): void {
    try {
      serveConfigRead(this.context.table, this.log, this.replies, id, packedAddress, offset, size);
    } catch (error) {
      const request = configReadRequest(id, packedAddress, offset, size);
      if (!(error instanceof XpciError)) this.context.reportBug(error, request);
      this.replies.append(this.failure(request, error));
    }
  }

  private onRequest(frame: Frame): void {
    let request: Request;
    try {
      request = decodeRequest(frame);
    } catch (error) {
      this.replies.append(this.failure(frame, error));
      return;
    }
    this.garbage = 0;
    if (request.type === MessageType.Hello) {
      // A Hello reply carries the whole device list: answering many per read would let a peer
      // turn a few bytes into megabytes. One per batch, counted in flight like any request.
      if (this.helloInBatch) {
        this.replies.append(this.failure(request, new XpciError(ErrorCode.LimitExceeded, 'more than one Hello in one batch')));
        return;
      }
      this.helloInBatch = true;
      this.inFlight++;
      this.guarded(request);
    } else if (!this.established) {
      this.replies.append(this.failure(request, new XpciError(ErrorCode.HelloRequired, `${MessageType[request.type]} before Hello: send Hello first`)));
    } else if (++this.inFlight > this.depth) {
      this.replies.append(this.failure(request, new XpciError(ErrorCode.LimitExceeded, `more than the negotiated ring depth of ${this.depth} requests in flight`)));
    } else {
      this.guarded(request);
    }
  }

  private hello(request: Extract<Request, { type: MessageType.Hello }>): Buffer {
    const { versions, ringDepth, client } = request.hello;
    const common = versions.filter((v) => SUPPORTED_VERSIONS.includes(v));
    if (this.established) this.context.sessionRestarted?.();
    this.established = false;
    if (common.length === 0) {
      throw new XpciError(ErrorCode.VersionMismatch,
        `no common protocol version: frontend speaks ${versions.join(', ')}, backend speaks ${SUPPORTED_VERSIONS.join(', ')}`);
    }
    const { table, mode } = this.context;
    this.depth = clampRingDepth(ringDepth);
    this.established = true;
    debug('Hello from %s: ring depth %d (asked %d)', client ?? 'an unnamed frontend', this.depth, ringDepth);
    const body: HelloReply = {
      version: Math.max(...common),
      ringDepth: this.depth,
      maxFrame: MAX_FRAME,
      mode,
      roots: table.roots(),
      devices: table.entries().map((entry) => entry.device.descriptor()),
      server: `xpci backend (pid ${process.pid})`,
    };
    return encodeJsonReply(MessageType.Hello, request.id, body);
  }

  /** Serve `request` into the batch; an XpciError becomes its error reply, anything else is a reported bug. */
  private guarded(request: Request): void {
    try {
      if (isDeviceRequest(request)) {
        // Device requests log their value in the dispatcher; the rest are logged here.
        executeDeviceRequest(request, this.context.table, this.log, this.replies);
        return;
      }
      this.replies.append(this.serve(request));
      if (this.context.requestLog.enabled) this.context.requestLog.done(request);
    } catch (error) {
      if (!(error instanceof XpciError)) this.context.reportBug(error, request);
      this.replies.append(this.failure(request, error));
    }
  }

  private serve(request: Exclude<Request, { address: unknown }>): Buffer {
    switch (request.type) {
      case MessageType.Hello:
        return this.hello(request);
      case MessageType.ListDevices: {
        const { table } = this.context;
        return encodeJsonReply(MessageType.ListDevices, request.id, {
          devices: table.entries().map((entry) => entry.device.descriptor()),
          roots: table.roots(),
        });
      }
      case MessageType.Ping:
        return encodePingReply(request.id, request.payload);
    }
  }

  /** The error reply for `error`; anything that is not an XpciError is reported as OperationFailed. */
  private failure(request: Request | Pick<Frame, 'type' | 'id'>, error: unknown): Buffer {
    const { code, message, errno } = error instanceof XpciError
      ? error
      // The detail stays in the host's log: it may name host paths, which vPCI never reveals.
      : { code: ErrorCode.OperationFailed, message: 'internal error in the backend (details in its log)', errno: 0 };
    if (this.context.requestLog.enabled) this.context.requestLog.failed(request, { code, message, errno });
    return errorReply(request.type, request.id, code, message, errno);
  }
}
