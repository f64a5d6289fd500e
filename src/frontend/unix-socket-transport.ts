/** Transport over a Unix stream socket: libuv does the buffering and partial writes. */
import { createConnection, type Socket } from 'node:net';
import { Transport } from './transport.js';

class UnixSocketTransport extends Transport {
  readonly kind = 'unix-socket';
  private closed = false;

  constructor(readonly path: string, private readonly socket: Socket) {
    super();
    socket.on('data', (chunk: Buffer) => this.emit('data', chunk));
    let failure: Error | undefined;
    socket.on('error', (error) => { failure = error; });
    socket.on('close', () => this.finish(failure));
  }

  write(data: Buffer): void {
    if (!this.closed) this.socket.write(data);
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
      resolve(new UnixSocketTransport(path, socket));
    });
  });
}
