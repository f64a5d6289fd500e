/**
 * Frontends on other hosts: a TLS listener (`xpci export --listen tls://HOST:PORT`) beside the Unix
 * socket. Mutual authentication is required: a client without a certificate signed by --client-ca
 * fails the handshake, and one whose certificate subject is not on the --allow-subject list is
 * answered PermissionDenied like a refused local peer. There is never a plaintext TCP listener.
 * A failed handshake costs that connection only; the backend keeps serving.
 */
import { createServer, type PeerCertificate, type Server, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { debugLog } from '../../diagnostics/debug-log.js';
import type { Admission } from './peer-admission.js';

const debug = debugLog('xpci:tls');

export interface TlsListenOptions {
  host: string;
  /** 0: any free port (the bound one is in `endpoint` once listening) */
  port: number;
  /** PEM: the backend's certificate and key, and the CA that signs allowed clients' certificates */
  cert: Buffer;
  key: Buffer;
  clientCa: Buffer;
  /** Subjects admitted, each `ATTR=value[,ATTR=value...]` (e.g. `CN=ci-runner`): all its attributes must match. */
  allowSubjects: readonly string[];
}

/** `CN=alice,O=lab` from a certificate's subject, attributes in the certificate's order. */
export function formatSubject(subject: PeerCertificate['subject'] | undefined): string {
  if (!subject) return '';
  return Object.entries(subject).flatMap(([attr, value]) => (Array.isArray(value) ? value : [value]).map((v) => `${attr}=${v}`)).join(',');
}

/** Does `subject` carry every attribute of one allowed entry? */
export function subjectAllowed(subject: string, allowed: readonly string[]): boolean {
  const have = new Set(subject.split(','));
  return allowed.some((entry) => entry.split(',').map((part) => part.trim()).every((part) => have.has(part)));
}

export function admitCertificate(socket: TLSSocket, allowSubjects: readonly string[]): Admission {
  const subject = formatSubject(socket.getPeerCertificate()?.subject);
  const from = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
  if (!socket.authorized) return { allowed: false, reason: `TLS client ${from} is not authorized: ${String(socket.authorizationError)}` };
  if (subjectAllowed(subject, allowSubjects)) return { allowed: true, reason: `TLS client ${from} with subject ${subject}`, remote: { remote: from, subject } };
  return {
    allowed: false,
    reason: `access denied: TLS client ${from} with certificate subject ${subject || '(none)'} is not allowed; this backend admits ${allowSubjects.join('; ')} (widen with --allow-subject)`,
  };
}

export class TlsListener {
  private readonly server: Server;
  private readonly sockets = new Set<TLSSocket>();

  constructor(private readonly options: TlsListenOptions, accept: (socket: TLSSocket, admission: Admission) => void, warn: (message: string) => void) {
    this.server = createServer({
      cert: options.cert,
      key: options.key,
      ca: options.clientCa,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
    }, (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      accept(socket, admitCertificate(socket, options.allowSubjects));
    });
    this.server.on('tlsClientError', (error, socket) => {
      warn(`refused a TLS client ${socket.remoteAddress ?? '?'}: ${error.message.split('\n')[0]}`);
      socket.destroy();
    });
    this.server.on('error', (error) => {
      if (this.server.listening) warn(`TLS listener error: ${error.message}`);
    });
  }

  /** tls://HOST:PORT as bound (the real port when 0 was asked for). */
  get endpoint(): string {
    const address = this.server.address() as AddressInfo | null;
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `tls://${host}:${address?.port ?? this.options.port}`;
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        debug('listening on %s', this.endpoint);
        resolve();
      });
    });
  }

  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    if (!this.server.listening) return Promise.resolve();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
