/**
 * Admission of a peer on any of the backend's sockets (ring and control): the connected fd's
 * SO_PEERCRED credentials are judged before a byte is read, and refusals are logged once per
 * cause per window, so a local user who opens thousands of connections cannot flood the log
 * (the same rule the policy follows for refused writes: once per register).
 */
import type { Socket } from 'node:net';

export interface Admission {
  allowed: boolean;
  /** refusal message for the peer, or why it was admitted (logged) */
  reason: string;
  /** What refusals are counted by (e.g. the peer's uid and gid); defaults to the reason. */
  cause?: string;
  /** the peer's SO_PEERCRED credentials, when they were read (xpci status shows them) */
  credentials?: LocalPeer;
  /** a TLS peer: its address and certificate subject (xpci status shows them) */
  remote?: RemotePeer;
}

export interface LocalPeer {
  pid: number;
  uid: number;
  gid: number;
}

export interface RemotePeer {
  /** HOST:PORT it connected from */
  remote: string;
  subject: string;
}

export type PeerIdentity = LocalPeer | RemotePeer;

/** A refusal cause is logged again after this long, with how many went unlogged meanwhile. */
export const REFUSAL_LOG_WINDOW_MS = 60_000;
/** Causes remembered at once; past this the oldest is forgotten (and may be logged again). */
const MAX_CAUSES = 64;

/** The fd of a connected socket; undefined once closed (or on a platform without one). */
export const socketFd = (socket: Socket): number | undefined =>
  (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;

/** Judge the peer of `socket`; a failing check is a refusal, never an exception. */
export function admitSocket(socket: Socket, admit: (fd: number) => Admission): Admission {
  const fd = socketFd(socket);
  if (fd === undefined) return { allowed: false, reason: 'cannot read the peer credentials of this connection' };
  try {
    return admit(fd);
  } catch (error) {
    return { allowed: false, reason: `cannot check the peer credentials: ${(error as Error).message}` };
  }
}

interface CauseCount {
  loggedAt: number;
  unlogged: number;
}

/** Warnings that a peer can trigger at will, rate-limited per cause. */
export class PeerWarnings {
  private readonly causes = new Map<string, CauseCount>();

  constructor(private readonly warn: (message: string) => void, private readonly windowMs = REFUSAL_LOG_WINDOW_MS, private readonly now = Date.now) {}

  /** Log `message` unless `cause` was logged within the window; then count it instead. */
  note(cause: string, message: string): void {
    const time = this.now();
    const seen = this.causes.get(cause);
    if (seen && time - seen.loggedAt < this.windowMs) {
      seen.unlogged++;
      return;
    }
    const more = seen && seen.unlogged > 0 ? ` (${seen.unlogged} more like it since the last report)` : '';
    this.causes.delete(cause);
    if (this.causes.size >= MAX_CAUSES) this.causes.delete(this.causes.keys().next().value as string);
    this.causes.set(cause, { loggedAt: time, unlogged: 0 });
    this.warn(message + more);
  }
}
