/**
 * The transport floor: a bare Node-to-Node ping-pong over a Unix stream socket between two
 * processes, with the frame sizes of a ConfigRead (24-byte request, 20-byte reply) and no protocol
 * work. Callbacks, not promises, on the client side: this is the floor, not a client library.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Sample } from './measure.js';

export const REQUEST_BYTES = 24;
export const REPLY_BYTES = 20;

export class BareClient {
  private onData: ((chunk: Buffer) => void) | null = null;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => this.onData?.(chunk));
  }

  static connect(path: string): Promise<BareClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(path, () => resolve(new BareClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Keep `depth` requests outstanding for `durationMs`; one write per refill, like a real client. */
  run(depth: number, durationMs: number): Promise<Sample> {
    const request = Buffer.alloc(REQUEST_BYTES);
    return new Promise((resolve) => {
      const start = performance.now();
      const end = start + durationMs;
      let ops = 0;
      let outstanding = 0;
      let partial = 0;
      let stopping = false;
      const send = (n: number): void => {
        if (n <= 0) return;
        outstanding += n;
        this.socket.write(n === 1 ? request : Buffer.alloc(n * REQUEST_BYTES));
      };
      this.onData = (chunk) => {
        const bytes = partial + chunk.length;
        const replies = Math.floor(bytes / REPLY_BYTES);
        partial = bytes % REPLY_BYTES;
        ops += replies;
        outstanding -= replies;
        if (!stopping && performance.now() >= end) stopping = true;
        if (!stopping) send(depth - outstanding);
        else if (outstanding === 0) {
          this.onData = null;
          resolve({ ops, seconds: (performance.now() - start) / 1000 });
        }
      };
      send(depth);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
