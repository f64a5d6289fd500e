/**
 * Serves each exported device to one vfio-user client (QEMU's vfio-user-pci) on its own socket,
 * DIR/<frontend BDF>.sock, beside or instead of the ring. The socket file follows the ring's rules
 * (0600 unless --allow-uid/--allow-gid, stale ones replaced, live ones refused) and every peer passes
 * the same SO_PEERCRED check before anything is read. A second client while one is served is closed
 * at once (vfio-user has no "busy" message before VERSION).
 *
 * Node's net cannot receive SCM_RIGHTS, so a connection is accepted by net with pauseOnConnect (Node
 * never reads it), its fd duplicated for FdConnection, and the Node socket destroyed.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { debugLog } from '../../diagnostics/debug-log.js';
import { native } from '../../native/binding.js';
import { formatAddress, type PciAddress } from '../../pci/address.js';
import type { ExportedDevice } from '../exported-device.js';
import type { Admission } from '../server/peer-admission.js';
import { listenOnSocket, prepareSocketPath, removeSocketFile, type SocketAccess } from '../server/socket-file.js';
import { closeQuietly } from './fd-connection.js';
import { VfioUserSession, type HostExtras } from './session.js';

const debug = debugLog('xpci:vfio-user');

export interface VfioUserServerOptions {
  dir: string;
  access: SocketAccess;
  admit(fd: number): Admission;
  warn(message: string): void;
  /** interrupts, DMA and reset of the device's host back end, when it has them */
  extras(device: ExportedDevice): HostExtras;
}

interface Endpoint {
  path: string;
  server: Server;
  inode: number | null;
  session: VfioUserSession | null;
}

const socketFd = (socket: Socket): number | undefined => (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;

/** DIR/<BDF>.sock, e.g. DIR/0000:00:00.0.sock */
export const vfioUserSocketPath = (dir: string, guest: PciAddress): string => join(dir, `${formatAddress(guest)}.sock`);

export class VfioUserServer {
  private readonly endpoints = new Map<string, Endpoint>();

  constructor(private readonly options: VfioUserServerOptions) {}

  paths(): string[] {
    return [...this.endpoints.values()].map((endpoint) => endpoint.path);
  }

  async attach(guest: PciAddress, device: ExportedDevice): Promise<string> {
    const path = vfioUserSocketPath(this.options.dir, guest);
    if (this.endpoints.has(path)) return path;
    await prepareSocketPath(path, this.options.access);
    const endpoint: Endpoint = { path, server: createServer({ pauseOnConnect: true }, (socket) => this.accept(endpoint, device, socket)), inode: null, session: null };
    endpoint.server.on('error', (error) => this.options.warn(`vfio-user socket ${path}: ${error.message}`));
    this.endpoints.set(path, endpoint);
    endpoint.inode = await listenOnSocket(endpoint.server, path, this.options.access);
    debug('serving %s on %s', formatAddress(guest), path);
    return path;
  }

  /** Stop serving `guest`: its client is disconnected and its socket file removed. */
  detach(guest: PciAddress): Promise<void> {
    const path = vfioUserSocketPath(this.options.dir, guest);
    const endpoint = this.endpoints.get(path);
    if (!endpoint) return Promise.resolve();
    this.endpoints.delete(path);
    endpoint.session?.close('the device is no longer exported');
    if (endpoint.inode !== null) {
      try {
        removeSocketFile(path, endpoint.inode);
      } catch (error) {
        this.options.warn(`removing ${path}: ${(error as Error).message}`);
      }
    }
    return new Promise((resolve) => endpoint.server.close(() => resolve()));
  }

  async close(): Promise<void> {
    await Promise.all([...this.endpoints.values()].map((endpoint) => this.detachPath(endpoint)));
  }

  private detachPath(endpoint: Endpoint): Promise<void> {
    this.endpoints.delete(endpoint.path);
    endpoint.session?.close('the backend is shutting down');
    if (endpoint.inode !== null) {
      try {
        removeSocketFile(endpoint.path, endpoint.inode);
      } catch {
        // reported by the caller's summary if it matters; the socket is stale either way
      }
    }
    return new Promise((resolve) => endpoint.server.close(() => resolve()));
  }

  private accept(endpoint: Endpoint, device: ExportedDevice, socket: Socket): void {
    socket.on('error', (error) => debug('vfio-user connection error: %s', error.message));
    const fd = socketFd(socket);
    let admission: Admission;
    try {
      admission = fd === undefined ? { allowed: false, reason: 'cannot read the peer credentials of this connection' } : this.options.admit(fd);
    } catch (error) {
      admission = { allowed: false, reason: `cannot check the peer credentials: ${(error as Error).message}` };
    }
    if (!admission.allowed) {
      this.options.warn(`refused a vfio-user client on ${endpoint.path}: ${admission.reason}`);
      socket.destroy();
      return;
    }
    if (endpoint.session !== null || !this.endpoints.has(endpoint.path)) {
      this.options.warn(`refused a second vfio-user client on ${endpoint.path}: one client at a time`);
      socket.destroy();
      return;
    }
    let own: number;
    try {
      own = native().duplicateFd(fd!);
    } catch (error) {
      this.options.warn(`vfio-user client on ${endpoint.path}: ${(error as Error).message}`);
      socket.destroy();
      return;
    }
    socket.destroy();
    debug('vfio-user client connected on %s (%s)', endpoint.path, admission.reason);
    try {
      endpoint.session = new VfioUserSession(own, device, this.options.extras(device), (reason) => {
        endpoint.session = null;
        debug('vfio-user client on %s gone: %s', endpoint.path, reason);
      });
    } catch (error) {
      this.options.warn(`vfio-user client on ${endpoint.path} could not be served: ${(error as Error).message}`);
      closeQuietly(own);
    }
  }
}
