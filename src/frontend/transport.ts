/**
 * The byte stream under a frontend: a Unix stream socket, a TLS connection to a backend on another
 * host (tls://HOST:PORT), or a character device such as the guest end of a virtio-serial port
 * (/dev/virtio-ports/xpci.0). None keeps message boundaries; the client frames and unframes. `openTransport` (open-transport.ts) picks the kind from the path.
 */
import { EventEmitter } from 'node:events';

export type TransportKind = 'unix-socket' | 'char-device' | 'tls';

export interface TransportEvents {
  data: [chunk: Buffer];
  /** Emitted once; `error` is set when the stream failed rather than ended. */
  close: [error?: Error];
}

export abstract class Transport extends EventEmitter<TransportEvents> {
  abstract readonly kind: TransportKind;
  abstract readonly path: string;
  /** Queue bytes for the peer; the transport writes all of them, in order, however short each write is. */
  abstract write(data: Buffer): void;
  /** write() each chunk, in order; a socket sends them with one writev. The chunks must stay unchanged until sent. */
  writeChunks(chunks: readonly Buffer[]): void {
    for (const chunk of chunks) this.write(chunk);
  }
  /** Stop reading and writing; emits 'close' if it has not been emitted yet. */
  abstract close(): void;
}

/** Raised when the path cannot be opened as a transport at all. */
export class ConnectError extends Error {
  override readonly name = 'ConnectError';
  constructor(readonly path: string, message: string, readonly code?: string) {
    super(message);
  }
}

