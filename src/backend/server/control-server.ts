/**
 * Hosts the hot-plug control channel (`<ring socket>.ctl`): always 0600 and root-only whatever the
 * ring's allow lists say, since attach/detach decide which host devices leave the host. Peers are
 * checked with SO_PEERCRED before a line is read; the line protocol itself lives in
 * src/protocol/control/hotplug-control.ts.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { debugLog } from '../../diagnostics/debug-log.js';
import { encodeControlReply, serveControlConnection, type ControlHandler } from '../../protocol/control/hotplug-control.js';
import { admitSocket, PeerWarnings, type Admission } from './peer-admission.js';
import { listenOnSocket, prepareSocketPath, removeSocketFile, type SocketAccess } from './socket-file.js';

const debug = debugLog('xpci:control');

const ROOT_ONLY: SocketAccess = { allowUids: [], allowGids: [] };

export class ControlServer {
  private readonly server: Server;
  private readonly connections = new Set<Socket>();
  private inode: number | null = null;

  constructor(
    readonly path: string,
    handle: ControlHandler,
    admit: (fd: number, access: SocketAccess) => Admission,
    warn: (message: string) => void,
  ) {
    const peerWarnings = new PeerWarnings(warn);
    this.server = createServer((socket) => {
      socket.on('error', (error) => debug('control connection error: %s', error.message));
      const admission = admitSocket(socket, (fd) => admit(fd, ROOT_ONLY));
      if (!admission.allowed) {
        peerWarnings.note(admission.cause ?? admission.reason, `refused a control connection: ${admission.reason}`);
        socket.end(encodeControlReply({ ok: false, error: admission.reason }));
        return;
      }
      this.connections.add(socket);
      socket.once('close', () => this.connections.delete(socket));
      serveControlConnection(socket, handle);
    });
    this.server.on('error', (error) => {
      if (this.server.listening) warn(`control socket error: ${error.message}`);
    });
  }

  prepare(): Promise<void> {
    return prepareSocketPath(this.path, ROOT_ONLY);
  }

  async listen(): Promise<void> {
    this.inode = await listenOnSocket(this.server, this.path, ROOT_ONLY);
    debug('control channel on %s', this.path);
  }

  close(): Promise<void> {
    for (const socket of this.connections) socket.destroy();
    try {
      if (this.inode !== null) removeSocketFile(this.path, this.inode);
    } catch (error) {
      debug('cannot remove %s: %s', this.path, (error as Error).message);
    }
    if (!this.server.listening) return Promise.resolve();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
