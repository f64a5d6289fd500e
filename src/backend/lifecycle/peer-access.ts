/**
 * Who may talk to a backend: the peer's credentials come from SO_PEERCRED (the addon), taken by the
 * kernel at connect time, so a client cannot lie about them. Root and the backend's own user are
 * always admitted (they own the 0600 socket anyway); others only when their uid, primary gid or one
 * of their supplementary groups is allowed.
 */
import { readFileSync } from 'node:fs';
import { native, type PeerCredentials } from '../../native/binding.js';

export interface PeerPolicy {
  allowUids: readonly number[];
  allowGids: readonly number[];
}

export interface PeerDecision {
  allowed: boolean;
  credentials: PeerCredentials;
  /** why admitted, or the refusal message to send the peer and log */
  reason: string;
  /** A refusal's cause without the pid, so repeated refusals of one user are logged once. */
  cause?: string;
}

/**
 * Supplementary groups of `pid` from the "Groups:" line of /proc/<pid>/status. Empty when the
 * process is gone or invisible (pid 0: the peer lives in another pid namespace).
 */
export function supplementaryGroups(pid: number): number[] {
  if (!Number.isSafeInteger(pid) || pid <= 0) return [];
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return [];
  }
  const line = /^Groups:[ \t]*(.*)$/m.exec(status);
  if (!line) return [];
  return line[1].split(/\s+/).filter((g) => g !== '').map(Number).filter(Number.isSafeInteger);
}

/** The policy decision alone, for credentials already known. */
export function decidePeerAccess(
  credentials: PeerCredentials,
  policy: PeerPolicy,
  groupsOf: (pid: number) => number[] = supplementaryGroups,
  ownUid: number | undefined = process.getuid?.(),
): PeerDecision {
  const { uid, gid } = credentials;
  const admit = (reason: string): PeerDecision => ({ allowed: true, credentials, reason });
  if (uid === 0) return admit('uid 0 (root)');
  if (uid === ownUid) return admit(`uid ${uid} runs this backend`);
  if (policy.allowUids.includes(uid)) return admit(`uid ${uid} is allowed`);
  if (policy.allowGids.includes(gid)) return admit(`primary gid ${gid} is allowed`);
  const groups = policy.allowGids.length > 0 ? groupsOf(credentials.pid) : [];
  const shared = groups.find((g) => policy.allowGids.includes(g));
  if (shared !== undefined) return admit(`supplementary group ${shared} is allowed`);
  const admitted = [
    ownUid === undefined || ownUid === 0 ? 'root' : `root; uid ${ownUid} (this backend's user)`,
    ...(policy.allowUids.length > 0 ? [`uid ${policy.allowUids.join(', ')}`] : []),
    ...(policy.allowGids.length > 0 ? [`gid ${policy.allowGids.join(', ')}`] : []),
  ].join('; ');
  return {
    allowed: false,
    credentials,
    cause: `peer uid ${uid} gid ${gid} is not allowed`,
    reason: `access denied: peer uid ${uid} gid ${gid} (pid ${credentials.pid}) is not allowed; this backend admits ${admitted} (widen with --allow-uid/--allow-gid)`,
  };
}

/** Check the peer of a connected Unix socket `fd` against `policy`. */
export function checkPeer(fd: number, policy: PeerPolicy): PeerDecision {
  return decidePeerAccess(native().peerCredentials(fd), policy);
}
