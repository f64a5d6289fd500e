/**
 * Transport over a character device, chiefly a virtio-serial port inside a QEMU guest.
 *
 * Node cannot put a character device under epoll through public APIs (net.Socket rejects the fd
 * type), and a blocking read on the thread pool cannot be cancelled: closing the fd does not wake
 * it, so the process would hang until the host sent something. So the fd is opened O_NONBLOCK and
 * polled with synchronous, never-blocking read/write calls: right after any traffic it polls on
 * every loop turn, then backs off to a slow idle poll.
 * virtio-serial facts this relies on: each write moves at most 32 KiB (short writes), a write
 * while the host end is disconnected gets EAGAIN, and a read then returns 0 (EOF).
 */
import { closeSync, constants, openSync, readSync, writeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Transport } from './transport.js';

const READ_CHUNK = 64 * 1024;
/** Keep polling on every loop turn this long after the last traffic (a guest round trip is ~2 ms under TCG). */
const BUSY_POLL_MS = 5;
const MAX_IDLE_POLL_MS = 50;

class CharDeviceTransport extends Transport {
  readonly kind = 'char-device';
  private readonly readBuffer = Buffer.allocUnsafe(READ_CHUNK);
  private readonly pendingWrites: Buffer[] = [];
  private lastTraffic = performance.now();
  private idleDelay = 1;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private closed = false;

  constructor(readonly path: string, private readonly fd: number) {
    super();
    this.schedule();
  }

  write(data: Buffer): void {
    if (this.closed || data.length === 0) return;
    this.pendingWrites.push(data);
    this.lastTraffic = performance.now();
    this.idleDelay = 1;
    this.flushWrites();
    this.schedule(true);
  }

  close(): void {
    this.finish(undefined);
  }

  private schedule(soon = false): void {
    if (this.closed) return;
    const busy = performance.now() - this.lastTraffic < BUSY_POLL_MS;
    if (soon || busy) {
      if (this.immediate) return;
      if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
      this.immediate = setImmediate(() => { this.immediate = undefined; this.poll(); });
    } else if (!this.timer && !this.immediate) {
      this.timer = setTimeout(() => { this.timer = undefined; this.poll(); }, this.idleDelay);
      this.idleDelay = Math.min(this.idleDelay * 2, MAX_IDLE_POLL_MS);
    }
  }

  private poll(): void {
    if (this.closed) return;
    this.flushWrites();
    if (this.closed) return;
    for (;;) {
      let count: number;
      try {
        count = readSync(this.fd, this.readBuffer, 0, READ_CHUNK, null);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' || code === 'EINTR') break;
        this.finish(error as Error);
        return;
      }
      if (count === 0) {
        this.finish(undefined);
        return;
      }
      this.lastTraffic = performance.now();
      this.idleDelay = 1;
      // A copy: the frame reader may keep views into the chunk after this returns.
      this.emit('data', Buffer.from(this.readBuffer.subarray(0, count)));
      if (this.closed) return;
    }
    this.schedule();
  }

  private flushWrites(): void {
    while (this.pendingWrites.length > 0) {
      const head = this.pendingWrites[0];
      let written: number;
      try {
        written = writeSync(this.fd, head);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' || code === 'EINTR') return;
        this.finish(error as Error);
        return;
      }
      if (written < head.length) this.pendingWrites[0] = head.subarray(written);
      else this.pendingWrites.shift();
    }
  }

  private finish(error: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.pendingWrites.length = 0;
    try {
      closeSync(this.fd);
    } catch {
      // The fd is gone either way; the close event below is what callers act on.
    }
    this.emit('close', error);
  }
}

export function openCharDeviceTransport(path: string): Transport {
  // O_NOCTTY: a pty used as a stand-in for a serial port must not become our controlling terminal.
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK | constants.O_NOCTTY);
  return new CharDeviceTransport(path, fd);
}
