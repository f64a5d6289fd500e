/** Transport over a stream socket (a Unix socket here, TLS in tls-transport.ts): libuv does the buffering and partial writes. */
import type { EventEmitter } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import { Transport, type TransportKind } from './transport.js';

export class SocketTransport extends Transport {
  private closed = false;

  constructor(readonly kind: TransportKind, readonly path: string, private readonly socket: Socket, describeFailure: (error: Error) => Error = (e) => e) {
    super();
    // Start reading only once someone listens: bytes that arrived before (a refusal a TLS backend
    // sends right after the handshake) wait in the socket instead of being emitted to nobody.
    const forward = (chunk: Buffer): void => void this.emit('data', chunk);
    (this as EventEmitter).on('newListener', (event: string | symbol) => {
      if (event === 'data' && socket.listenerCount('data') === 0) socket.on('data', forward);
    });
    let failure: Error | undefined;
    socket.on('error', (error) => { failure = describeFailure(error); });
    socket.on('close', () => this.finish(failure));
  }

  write(data: Buffer): void {
    if (!this.closed) this.socket.write(data);
  }

  override writeChunks(chunks: readonly Buffer[]): void {
    if (this.closed) return;
    this.socket.cork();
    for (const chunk of chunks) this.socket.write(chunk);
    this.socket.uncork();
  }

  close(): void {
    if (this.closed) return;
    this.socket.destroy();
    this.finish(undefined);
  }

  private finish(error: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close', error);
  }
}

export function openUnixSocketTransport(path: string): Promise<Transport> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path });
    const onError = (error: Error): void => reject(error);
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(new SocketTransport('unix-socket', path, socket));
    });
  });
}
