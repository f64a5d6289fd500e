/**
 * A connected Unix stream socket driven through the addon (recvmsg/sendmsg with SCM_RIGHTS), because
 * Node's net.Socket reads the stream itself and drops ancillary data: a connection is accepted by a
 * net.Server with pauseOnConnect (so Node never reads from it), its fd is duplicated and the Node
 * socket destroyed, and from then on only this class touches the fd.
 *
 * Reads: a level-triggered uv_poll on the fd; each readable turn does one recvmsg into a buffer kept
 * for the connection (the poll fires again while data is left), and copies out only what arrived.
 * Writes: sendmsg at once; what the socket buffer cannot take yet is queued (fds go with the first
 * byte, so only fd-less tails ever wait) and retried from a timer until it drains. Between cork()
 * and uncork() fd-less messages are gathered and leave in one sendmsg: the replies to one received
 * chunk wake the peer once, not once each.
 */
import { closeSync } from 'node:fs';
import { isNativeError, native, type ReadableWatcher } from '../../native/binding.js';

const READ_CHUNK = 256 * 1024;
const RETRY_MS = 1;

export interface FdConnectionEvents {
  data(data: Buffer, fds: number[], fdsTruncated: boolean): void;
  /** end of stream or a socket error; called once, after which the connection is closed */
  close(reason: string): void;
}

export class FdConnection {
  private readonly watcher: ReadableWatcher;
  private readonly queue: Buffer[] = [];
  private readonly incoming = Buffer.allocUnsafe(READ_CHUNK);
  private retry: NodeJS.Timeout | null = null;
  private closed = false;
  private corked: Buffer[] | null = null;

  constructor(readonly fd: number, private readonly maxFds: number, private readonly events: FdConnectionEvents) {
    this.watcher = native().watchReadable(fd, () => this.readable());
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Gather fd-less messages until uncork(). */
  cork(): void {
    this.corked ??= [];
  }

  uncork(): void {
    const corked = this.corked;
    this.corked = null;
    if (corked && corked.length > 0) this.send(corked.length === 1 ? corked[0] : Buffer.concat(corked));
  }

  send(message: Buffer, fds: readonly number[] = []): void {
    if (this.closed) return;
    if (this.corked) {
      if (fds.length === 0) {
        this.corked.push(message);
        return;
      }
      // Its fds must travel with its own first byte: what was gathered goes first, on its own.
      this.uncork();
      this.corked = [];
    }
    if (this.queue.length > 0) {
      if (fds.length > 0) throw new Error('internal: fds must not wait behind queued bytes');
      this.queue.push(message);
      return;
    }
    this.write(message, fds);
  }

  /** Stop reading and close the fd; `reason` goes to the close event unless `silent`. */
  close(reason: string, silent = false): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher.stop();
    if (this.retry) clearTimeout(this.retry);
    this.queue.length = 0;
    try {
      closeSync(this.fd);
    } catch {
      // already gone
    }
    if (!silent) this.events.close(reason);
  }

  private write(message: Buffer, fds: readonly number[]): void {
    let sent = 0;
    try {
      sent = native().sendWithFds(this.fd, message, fds);
    } catch (error) {
      if (!isNativeError(error, 'EAGAIN')) {
        this.close(`send failed: ${(error as Error).message}`);
        return;
      }
      if (fds.length > 0) {
        // Nothing went out: the fds must leave with the first byte, so wait for room and retry whole.
        this.queue.push(message);
        this.schedule(fds);
        return;
      }
    }
    if (sent < message.length) {
      this.queue.unshift(message.subarray(sent));
      this.schedule([]);
    }
  }

  private schedule(fds: readonly number[]): void {
    if (this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      const pending = this.queue.splice(0);
      const first = pending.shift();
      if (!first) return;
      this.queue.push(...pending);
      const rest = this.queue.splice(0);
      this.write(first, fds);
      for (const buffer of rest) this.send(buffer);
    }, RETRY_MS);
  }

  private readable(): void {
    if (this.closed) return;
    let received;
    try {
      received = native().receiveWithFds(this.fd, this.incoming, this.maxFds);
    } catch (error) {
      this.close(`receive failed: ${(error as Error).message}`);
      return;
    }
    if (received === null) return;
    if (received.bytes === 0) {
      for (const fd of received.fds) closeQuietly(fd);
      this.close('the peer closed the connection');
      return;
    }
    this.events.data(Buffer.from(this.incoming.subarray(0, received.bytes)), received.fds, received.fdsTruncated);
  }
}

export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // not ours any more, or already closed
  }
}
