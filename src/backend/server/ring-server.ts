/**
 * Accepts frontends on the ring socket: one at a time (a second concurrent one gets Busy and is
 * closed; a frontend that died can reconnect), each peer admitted by its SO_PEERCRED credentials
 * before any op. Feeds received chunks to the FrontendSession, writes each chunk's batched replies
 * with one write, honours backpressure, drops a partial frame left idle by a peer that died
 * mid-frame, and never lets a socket error escape.
 *
 * No peer can hold the backend or its memory: a connection that has not said Hello within
 * HELLO_DEADLINE_MS, or a session silent for IDLE_YIELD_MS, gives way to the next frontend that
 * connects (alone it may stay: the host end of a virtio-serial port legitimately sits open
 * before its guest frontend starts); and a peer that stops reading is dropped once
 * MAX_UNREAD_REPLY_BYTES of replies wait for it, so what it costs is freed when it goes.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { debugLog } from '../../diagnostics/debug-log.js';
import { encodeErrorReply, encodeEvent } from '../../protocol/ring/codec.js';
import { ErrorCode, MessageType } from '../../protocol/ring/messages.js';
import { FrontendSession, type SessionContext, type SessionOutput } from './frontend-session.js';
import { admitSocket, PeerWarnings, type Admission, type PeerIdentity } from './peer-admission.js';

export type { Admission, PeerIdentity } from './peer-admission.js';
import { HELLO_DEADLINE_MS, IDLE_YIELD_MS, MAX_UNREAD_REPLY_BYTES } from '../../protocol/ring/limits.js';

const debug = debugLog('xpci:server');

/** How long a refused or closing peer gets to read its last frame before the stream is destroyed. */
const CLOSE_GRACE_MS = 1000;
/**
 * A frontend that reconnects right after its predecessor exited can be accepted in the same event
 * loop turn that has yet to see the old stream's EOF; it waits this long before being called Busy.
 */
const BUSY_GRACE_MS = 100;

export interface RingServerOptions {
  context: SessionContext;
  /** Decides on the peer of a connected socket fd (SO_PEERCRED) before anything is read. */
  admit(fd: number): Admission;
  warn(message: string): void;
  partialFrameTimeoutMs: number;
  /** Defaults HELLO_DEADLINE_MS, IDLE_YIELD_MS, MAX_UNREAD_REPLY_BYTES (tests shorten them). */
  helloDeadlineMs?: number;
  idleYieldMs?: number;
  maxUnreadReplyBytes?: number;
  /** A frontend that had completed a Hello disconnected. */
  onFrontendGone(): void;
}

interface ActiveFrontend {
  socket: Socket;
  peer: PeerIdentity | null;
  session: FrontendSession;
  /** Once set, nothing more is read or written except the closing frames. */
  ending: boolean;
  connectedAt: number;
  /** When the peer last sent anything. */
  lastHeardAt: number;
}

export class RingServer {
  readonly server: Server;
  private active: ActiveFrontend | null = null;
  private closing = false;
  private readonly peerWarnings: PeerWarnings;

  constructor(private readonly options: RingServerOptions) {
    this.peerWarnings = new PeerWarnings(options.warn);
    this.server = createServer({ allowHalfOpen: false }, (socket) => this.accept(socket));
    // Before listening, listenOnSocket reports errors to its caller.
    this.server.on('error', (error) => {
      if (this.server.listening) options.warn(`ring socket error: ${error.message}`);
    });
  }

  /** Credentials of the connected frontend (xpci status), or null when none is connected. */
  get peer(): PeerIdentity | null {
    const frontend = this.active;
    return frontend && !frontend.ending ? frontend.peer : null;
  }

  /** Send an event to the connected frontend, if it has said Hello (the Hello reply carries the state). */
  sendEvent(type: MessageType, body: unknown): void {
    this.sendFrame(encodeEvent(type, body));
  }

  /** Send an already encoded event frame (Interrupt, DeviceReset) under the same conditions as sendEvent. */
  sendFrame(frame: Buffer): void {
    const frontend = this.active;
    if (!frontend || frontend.ending || !frontend.session.ready || frontend.socket.destroyed) return;
    this.write(frontend, frame);
  }

  /** Bytes written to the current frontend that it has not read yet (0 when none is connected). */
  get unreadReplyBytes(): number {
    const socket = this.active?.socket;
    return socket && !socket.destroyed ? socket.writableLength : 0;
  }

  /** Write to the frontend; one that leaves too much unread is dropped. False if it was. */
  private write(frontend: ActiveFrontend, bytes: Buffer): boolean {
    const flowing = frontend.socket.write(bytes);
    const limit = this.options.maxUnreadReplyBytes ?? MAX_UNREAD_REPLY_BYTES;
    if (frontend.socket.writableLength > limit) {
      this.peerWarnings.note('unread replies', `dropped a frontend that left more than ${limit} bytes of replies unread`);
      frontend.ending = true;
      frontend.socket.destroy();
      return false;
    }
    return flowing;
  }

  /** A silent connection or an idle session gives way to a frontend that wants the backend. */
  private mayDisplace(active: ActiveFrontend, now: number): boolean {
    if (active.ending) return true;
    return active.session.ready
      ? now - active.lastHeardAt >= (this.options.idleYieldMs ?? IDLE_YIELD_MS)
      : now - active.connectedAt >= (this.options.helloDeadlineMs ?? HELLO_DEADLINE_MS);
  }

  private displace(active: ActiveFrontend): void {
    const why = active.session.ready
      ? `the session was idle for ${this.options.idleYieldMs ?? IDLE_YIELD_MS} ms and another frontend connected`
      : `no Hello within ${this.options.helloDeadlineMs ?? HELLO_DEADLINE_MS} ms while another frontend waited`;
    debug('closing the current frontend: %s', why);
    if (!active.ending) {
      endFrontend(active, active.session.ready
        ? encodeEvent(MessageType.Shutdown, { reason: `closed: ${why}` })
        : encodeErrorReply(0, 0, { code: ErrorCode.Busy, errno: 0, message: `closed: ${why}` }));
    }
    this.active = null;
  }

  /** Stop accepting; tell the frontend why (Shutdown event) and close its stream. */
  close(reason: string): Promise<void> {
    this.closing = true;
    const frontend = this.active;
    if (frontend && !frontend.ending && !frontend.socket.destroyed) {
      endFrontend(frontend, frontend.session.ready ? encodeEvent(MessageType.Shutdown, { reason }) : null);
    }
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    this.acceptAdmitted(socket, admitSocket(socket, this.options.admit));
  }

  /**
   * Serve a connection whose peer was already judged: by SO_PEERCRED on the Unix socket, or by its
   * client certificate on the TLS listener (tls-listener.ts).
   */
  acceptAdmitted(socket: Socket, admission: Admission, waitedForPredecessor = false): void {
    if (!waitedForPredecessor) socket.on('error', (error) => debug('frontend socket error: %s', error.message));
    if (this.closing || socket.destroyed) {
      socket.destroy();
      return;
    }
    if (!admission.allowed) {
      this.peerWarnings.note(admission.cause ?? admission.reason, `refused a frontend: ${admission.reason}`);
      refuse(socket, ErrorCode.PermissionDenied, admission.reason);
      return;
    }
    if (this.active && !waitedForPredecessor) {
      setTimeout(() => this.acceptAdmitted(socket, admission, true), BUSY_GRACE_MS).unref();
      return;
    }
    const now = Date.now();
    if (this.active && this.mayDisplace(this.active, now)) {
      this.displace(this.active);
    } else if (this.active && !this.active.session.ready) {
      // A connection that has not said Hello yet: wait for its deadline, then take its place.
      const wait = this.active.connectedAt + (this.options.helloDeadlineMs ?? HELLO_DEADLINE_MS) - now;
      setTimeout(() => this.acceptAdmitted(socket, admission, true), Math.max(1, wait)).unref();
      return;
    }
    if (this.active) {
      debug('refused a second frontend: busy');
      refuse(socket, ErrorCode.Busy, `this backend already serves a frontend (one at a time); retry when it disconnects`);
      return;
    }
    debug('frontend connected (%s)', admission.reason);
    const peer = admission.credentials ? { pid: admission.credentials.pid, uid: admission.credentials.uid, gid: admission.credentials.gid }
      : admission.remote ? { ...admission.remote } : null;
    const frontend: ActiveFrontend = {
      socket, peer, session: new FrontendSession(this.options.context), ending: false, connectedAt: now, lastHeardAt: now,
    };
    this.active = frontend;
    this.serve(frontend);
  }

  private serve(frontend: ActiveFrontend): void {
    const { socket, session } = frontend;
    let idle: NodeJS.Timeout | null = null;
    let paused = false;
    const resume = (): void => {
      paused = false;
      socket.resume();
    };
    socket.on('data', (chunk: Buffer) => {
      if (frontend.ending) return;
      frontend.lastHeardAt = Date.now();
      let output: SessionOutput;
      try {
        output = session.receive(chunk);
      } catch (error) {
        // The session answers every request itself; reaching here is a bug. Drop the stream, keep serving.
        this.options.warn(`internal error in a frontend session (stream closed; please report): ${error instanceof Error ? error.stack : String(error)}`);
        endFrontend(frontend, null);
        return;
      }
      const { reply, closeReason } = output;
      if (closeReason) {
        this.peerWarnings.note(closeReason, `closing a frontend stream: ${closeReason}`);
        endFrontend(frontend, reply);
        return;
      }
      if (reply && !this.write(frontend, reply) && !paused && !frontend.ending) {
        paused = true;
        socket.pause();
        socket.once('drain', resume);
      }
      if (session.pendingBytes === 0) {
        if (idle) clearTimeout(idle);
        idle = null;
      } else if (idle) {
        idle.refresh();
      } else {
        idle = setTimeout(() => {
          idle = null;
          debug('dropped %d bytes of a partial frame idle for %d ms', session.discardPartial(), this.options.partialFrameTimeoutMs);
        }, this.options.partialFrameTimeoutMs);
        idle.unref();
      }
    });
    socket.on('close', () => {
      if (idle) clearTimeout(idle);
      if (this.active === frontend) this.active = null;
      debug('frontend disconnected');
      if (session.ready && !this.closing) this.options.onFrontendGone();
    });
  }
}

/** Answer a connection that will not be served with one error frame, then close it. */
function refuse(socket: Socket, code: ErrorCode, message: string): void {
  socket.end(encodeErrorReply(0, 0, { code, errno: 0, message }));
  destroyLater(socket);
}

function endFrontend(frontend: ActiveFrontend, last: Buffer | null): void {
  frontend.ending = true;
  if (last) frontend.socket.end(last);
  else frontend.socket.end();
  destroyLater(frontend.socket);
}

/** The peer normally closes after reading; one that does not is cut off after a grace period. */
function destroyLater(socket: Socket): void {
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
