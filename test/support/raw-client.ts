/**
 * A raw ring client for backend tests, built only on the protocol codec: it lets a test send exact
 * bytes (garbage, partial frames, bursts in one write) and see every frame the backend returns.
 * Not the frontend library: tests of the backend must not depend on the frontend's behaviour.
 */
import { connect, type Socket } from 'node:net';
import { FrameReader, type Frame } from '../../src/protocol/ring/frame.js';
import { decodeJsonPayload, encodeRequest, errorFromReply, isErrorReply } from '../../src/protocol/ring/codec.js';
import { DEFAULT_RING_DEPTH, FrameFlags, MessageType, type HelloReply, type Request, XpciError } from '../../src/protocol/ring/messages.js';

export class RawClient {
  readonly frames: Frame[] = [];
  private readonly reader = new FrameReader();
  private waiters: { predicate: (f: Frame) => boolean; resolve: (f: Frame) => void; reject: (e: Error) => void }[] = [];
  private nextId = 1;
  readonly closed: Promise<void>;
  isClosed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const item of this.reader.push(chunk)) {
        if (!item.frame) continue;
        const frame = { ...item.frame, payload: Buffer.from(item.frame.payload) };
        this.frames.push(frame);
        const matching = this.waiters.filter((w) => w.predicate(frame));
        this.waiters = this.waiters.filter((w) => !matching.includes(w));
        for (const waiter of matching) waiter.resolve(frame);
      }
    });
    socket.on('error', () => { /* surfaced through `closed` */ });
    this.closed = new Promise((resolve) => socket.once('close', () => {
      this.isClosed = true;
      for (const w of this.waiters) w.reject(new Error('connection closed before the expected frame'));
      this.waiters = [];
      resolve();
    }));
  }

  static connect(path: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  id(): number {
    return this.nextId++;
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Resolves with the first frame (already received or future) matching `predicate`. */
  waitFor(predicate: (f: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
    const seen = this.frames.find(predicate);
    if (seen) return Promise.resolve(seen);
    if (this.isClosed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      const waiter = {
        predicate,
        resolve: (f: Frame) => { clearTimeout(timer); resolve(f); },
        reject: (e: Error) => { clearTimeout(timer); reject(e); },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no matching frame within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  reply(id: number): Promise<Frame> {
    return this.waitFor((f) => (f.flags & FrameFlags.Reply) !== 0 && f.id === id);
  }

  event(type: MessageType): Promise<Frame> {
    return this.waitFor((f) => (f.flags & FrameFlags.Event) !== 0 && f.type === type);
  }

  async request(request: Request): Promise<Frame> {
    this.write(encodeRequest(request));
    return this.reply(request.id);
  }

  /** Handshake; throws the backend's XpciError on an error reply. */
  async hello(versions = [1], ringDepth = DEFAULT_RING_DEPTH): Promise<HelloReply> {
    const frame = await this.request({ type: MessageType.Hello, id: this.id(), hello: { versions, ringDepth, client: 'raw-test-client' } });
    if (isErrorReply(frame)) throw errorFromReply(frame);
    return decodeJsonPayload<HelloReply>(frame, 'Hello reply');
  }

  close(): Promise<void> {
    this.socket.end();
    return this.closed;
  }

  destroy(): Promise<void> {
    this.socket.destroy();
    return this.closed;
  }
}

/** The XpciError an error reply stands for, or null for a normal reply. */
export function replyError(frame: Frame): XpciError | null {
  return isErrorReply(frame) ? errorFromReply(frame) : null;
}
