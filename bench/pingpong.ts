/**
 * The transport floor: a bare Node-to-Node ping-pong over a Unix stream socket between two
 * processes, with the frame sizes of a ConfigRead (24-byte request, 20-byte reply) and no protocol
 * work. Callbacks, not promises, on the client side: this is the floor, not a client library.
 * The same client sends real ConfigRead frames to a backend to split the ring's cost between the
 * backend and the frontend library.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Sample } from './measure.js';

export const REQUEST_BYTES = 24;
export const REPLY_BYTES = 20;

export class BareClient {
  private onData: ((chunk: Buffer) => void) | null = null;

  /** `request`: the bytes sent per operation (REQUEST_BYTES long); each answer is REPLY_BYTES. */
  private constructor(private readonly socket: Socket, private readonly request: Buffer) {
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => this.onData?.(chunk));
  }

  /**
   * `hello`: sent first and its answer awaited (an xpci backend needs a session). A backend that
   * has not yet seen its previous frontend leave answers Busy and closes: then try again. Without
   * a template the request is REQUEST_BYTES zero bytes, which the bare echo server accepts.
   */
  static async connect(path: string, options: { hello?: Buffer; request?: Buffer } = {}): Promise<BareClient> {
    const request = options.request ?? Buffer.alloc(REQUEST_BYTES);
    if (request.length !== REQUEST_BYTES) throw new RangeError(`a bare request is ${REQUEST_BYTES} bytes`);
    const deadline = performance.now() + 10_000;
    for (;;) {
      const socket = await new Promise<Socket>((resolve, reject) => {
        const s = connect(path, () => resolve(s));
        s.once('error', reject);
      });
      if (!options.hello) return new BareClient(socket, request);
      const answer = await new Promise<Buffer | null>((resolve) => {
        socket.once('data', resolve);
        socket.once('close', () => resolve(null));
        socket.write(options.hello!);
      });
      // A Hello reply: type 1 (offset 8) with flags Reply (offset 10), not Reply|Error.
      if (answer && answer.length >= 12 && answer.readUInt16LE(8) === 1 && answer.readUInt16LE(10) === 1) {
        socket.removeAllListeners('data');
        socket.removeAllListeners('close');
        return new BareClient(socket, request);
      }
      socket.destroy();
      if (performance.now() > deadline) throw new Error(`no session with the backend at ${path}: it kept refusing the Hello`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Keep `depth` requests outstanding for `durationMs`; one write per refill, like a real client. */
  run(depth: number, durationMs: number): Promise<Sample> {
    const batch = Buffer.concat(Array.from({ length: depth }, () => this.request));
    return new Promise((resolve, reject) => {
      const closed = (): void => reject(new Error('the peer closed the stream during the measurement'));
      this.socket.once('close', closed);
      const start = performance.now();
      const end = start + durationMs;
      let ops = 0;
      let outstanding = 0;
      let partial = 0;
      let stopping = false;
      const send = (n: number): void => {
        if (n <= 0) return;
        outstanding += n;
        this.socket.write(n === 1 ? this.request : batch.subarray(0, n * REQUEST_BYTES));
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
          this.socket.off('close', closed);
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
