/**
 * A raw stream to the backend for the fuzzer: bytes out exactly as given (in the chunks given),
 * frames in through the same FrameReader a frontend uses. Knows whether the backend closed it.
 */
import { connect, type Socket } from 'node:net';
import { FrameReader, type Frame } from '../../src/protocol/ring/frame.js';

export class RawConnection {
  readonly frames: Frame[] = [];
  /** Bytes of the backend's output that were not valid frames (must stay 0). */
  faultBytes = 0;
  closed = false;
  private readonly reader = new FrameReader();
  /** Frames already looked at by indexOf since the last take(). */
  private scanned = 0;
  private wake: (() => void) | null = null;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const item of this.reader.push(chunk)) {
        // FrameReader never reuses the memory behind a payload it handed out: no copy needed.
        if (item.frame) this.frames.push(item.frame);
        else this.faultBytes += item.fault.skipped;
      }
      this.notify();
    });
    socket.on('close', () => {
      this.closed = true;
      this.notify();
    });
    socket.on('error', () => undefined);
  }

  static open(path: string): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once('connect', () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
    });
  }

  send(bytes: Buffer): void {
    if (!this.closed) this.socket.write(bytes);
  }

  /** Wait until `done(frames)` holds, the stream closes, or the timeout passes. */
  async until(done: (frames: Frame[]) => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!done(this.frames)) {
      if (this.closed) return done(this.frames);
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.wake = null;
          resolve();
        }, left);
        this.wake = () => {
          clearTimeout(timer);
          this.wake = null;
          resolve();
        };
      });
    }
    return true;
  }

  /**
   * Index of the first buffered frame matching `match`, waiting for it; -1 on close or timeout.
   * Scans each received frame once however often it is called.
   */
  async indexOf(match: (frame: Frame) => boolean, timeoutMs: number): Promise<number> {
    let found = -1;
    await this.until((frames) => {
      for (; this.scanned < frames.length; this.scanned++) {
        if (match(frames[this.scanned])) {
          found = this.scanned;
          return true;
        }
      }
      return false;
    }, timeoutMs);
    return found;
  }

  /** Frames received so far, removed from the buffer. */
  take(count = this.frames.length): Frame[] {
    this.scanned = 0;
    return this.frames.splice(0, count);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private notify(): void {
    this.wake?.();
  }
}
