/**
 * The state of one frontend stream, independent of the socket it arrives on: Hello first, then
 * requests; a new Hello on the live stream resets the session (a frontend restarted behind a
 * virtio-serial port that stayed open). Each received chunk is answered with ONE buffer holding
 * every reply it produced: batching replies is what makes a Node backend fast (one write per
 * chunk instead of one per request).
 *
 * A stream the backend cannot trust any more (more than MAX_GARBAGE bytes without a valid frame)
 * is closed; nothing a peer sends can make the session throw.
 */
import createDebug from 'debug';
import { FrameReader, type Frame } from '../../protocol/frame.js';
import { decodeRequest, encodeErrorReply, encodeJsonReply, encodePingReply } from '../../protocol/codec.js';
import {
  ErrorCode,
  MAX_FRAME,
  MAX_RING_DEPTH,
  MIN_RING_DEPTH,
  MessageType,
  SUPPORTED_VERSIONS,
  XpciError,
  type ExportMode,
  type HelloReply,
  type Request,
} from '../../protocol/messages.js';
import type { DeviceTable } from './device-table.js';
import { executeDeviceRequest, isDeviceRequest, type DeviceEndpoint } from './dispatcher.js';
import type { RequestLog } from './request-log.js';

const debug = createDebug('xpci:server');

/** Garbage tolerated without a single valid frame before the stream is declared untrustworthy. */
export const MAX_GARBAGE = 1024 * 1024;

export interface SessionContext {
  readonly mode: ExportMode;
  readonly table: DeviceTable<DeviceEndpoint>;
  readonly requestLog: RequestLog;
  /** A non-XpciError thrown while serving is a bug: it is reported here and answered OperationFailed. */
  reportBug(error: unknown, request: Request): void;
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
    const items = this.reader.push(chunk);
    const replies: Buffer[] = [];
    let faultReported = false;
    let inFlight = 0;
    for (const item of items) {
      if (item.fault) {
        this.garbage += item.fault.skipped;
        if (!faultReported) {
          faultReported = true;
          replies.push(errorReply(0, 0, ErrorCode.Malformed, `skipped ${item.fault.skipped} bytes: ${item.fault.detail}`));
        }
        continue;
      }
      const frame = item.frame;
      let request: Request;
      try {
        request = decodeRequest(frame);
      } catch (error) {
        replies.push(this.failure(frame, error));
        continue;
      }
      this.garbage = 0;
      if (request.type === MessageType.Hello) {
        inFlight = 0;
        replies.push(this.guarded(request, () => this.hello(request)));
      } else if (!this.established) {
        replies.push(this.failure(request, new XpciError(ErrorCode.HelloRequired, `${MessageType[request.type]} before Hello: send Hello first`)));
      } else if (++inFlight > this.depth) {
        replies.push(this.failure(request, new XpciError(ErrorCode.LimitExceeded, `more than the negotiated ring depth of ${this.depth} requests in flight`)));
      } else {
        replies.push(this.serve(request));
      }
    }
    const closeReason = this.garbage > MAX_GARBAGE
      ? `more than ${MAX_GARBAGE} bytes of garbage without a valid frame; closing the stream`
      : null;
    const reply = replies.length === 0 ? null : replies.length === 1 ? replies[0] : Buffer.concat(replies);
    return { reply, closeReason };
  }

  private hello(request: Extract<Request, { type: MessageType.Hello }>): Buffer {
    const { versions, ringDepth, client } = request.hello;
    const common = versions.filter((v) => SUPPORTED_VERSIONS.includes(v));
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

  private serve(request: Request): Buffer {
    if (isDeviceRequest(request)) return this.guarded(request, () => executeDeviceRequest(request, this.context.table, this.context.requestLog));
    return this.guarded(request, () => {
      switch (request.type) {
        case MessageType.ListDevices: {
          const { table } = this.context;
          return encodeJsonReply(MessageType.ListDevices, request.id, {
            devices: table.entries().map((entry) => entry.device.descriptor()),
            roots: table.roots(),
          });
        }
        case MessageType.Ping:
          return encodePingReply(request.id, request.payload);
        default:
          throw new XpciError(ErrorCode.NotImplemented, `request type ${request.type} is not served`);
      }
    });
  }

  /** Run `produce`; an XpciError becomes its error reply, anything else is a reported bug. */
  private guarded(request: Request, produce: () => Buffer): Buffer {
    try {
      const reply = produce();
      // Device requests log their value in the dispatcher; the rest are logged here.
      if (this.context.requestLog.enabled && !isDeviceRequest(request)) this.context.requestLog.done(request);
      return reply;
    } catch (error) {
      if (!(error instanceof XpciError)) this.context.reportBug(error, request);
      return this.failure(request, error);
    }
  }

  /** The error reply for `error`; anything that is not an XpciError is reported as OperationFailed. */
  private failure(request: Request | Pick<Frame, 'type' | 'id'>, error: unknown): Buffer {
    const { code, message, errno } = error instanceof XpciError
      ? error
      // The detail stays in the host's log: it may name host paths, which vPCI never reveals.
      : { code: ErrorCode.OperationFailed, message: 'internal error in the backend (details in its log)', errno: 0 };
    if (this.context.requestLog.enabled) this.context.requestLog.failed(request, code, message);
    return errorReply(request.type, request.id, code, message, errno);
  }
}
