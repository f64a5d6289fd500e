/**
 * The ring socket's file: where it lives, who may open it, and replacing a stale one.
 *
 * Permissions (the kernel checks them at connect; SO_PEERCRED checks follow before any op):
 * - no allow list: 0600, so only the owner (root) can connect;
 * - exactly one --allow-gid and no --allow-uid: 0660 with that group as the file's group;
 * - any other allow list: 0666, and the peer-credential check alone decides.
 *
 * The folder that holds the socket must be as trustworthy as the state directory: owned by root or
 * the backend's user and writable by nobody else, or another user could swap the socket's name for
 * a symlink. The socket is also never changed through a name someone else can swap: it is bound,
 * chowned and chmodded inside a private 0700 folder, under umask 0177 (never wider than 0600, not
 * even for an instant), and only then linked to its public name (link(2) fails rather than replace
 * what appeared there meanwhile).
 */
import { chmodSync, chownSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { connect, type Server } from 'node:net';
import { basename, dirname, join } from 'node:path';

export const DEFAULT_SOCKET = '/run/xpci/xpci.sock';

/** `--socket` wins, then $XPCI_SOCKET, then /run/xpci/xpci.sock (the frontend resolves the same way). */
export function resolveSocketPath(option?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (option !== undefined && option !== '') return option;
  return env.XPCI_SOCKET !== undefined && env.XPCI_SOCKET !== '' ? env.XPCI_SOCKET : DEFAULT_SOCKET;
}

export interface SocketAccess {
  allowUids: readonly number[];
  allowGids: readonly number[];
}

export function socketMode(access: SocketAccess): { mode: number; group: number | null } {
  if (access.allowUids.length === 0 && access.allowGids.length === 0) return { mode: 0o600, group: null };
  if (access.allowUids.length === 0 && access.allowGids.length === 1) return { mode: 0o660, group: access.allowGids[0] };
  return { mode: 0o666, group: null };
}

export class SocketInUseError extends Error {
  override readonly name = 'SocketInUseError';
}

/** Does something accept connections on `path`? Resolves false for a leftover with no listener. */
function probeListener(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED' || error.code === 'ENOENT') resolve(false);
      else reject(error);
    });
  });
}

/** Group-writable is accepted only for groups that already control the folder's contents (root, ours). */
function writableByOthers(mode: number, gid: number): boolean {
  return (mode & 0o002) !== 0 || ((mode & 0o020) !== 0 && gid !== 0 && gid !== process.getgid?.());
}

/**
 * Refuse a socket folder another user could write (plant a symlink, replace the socket): it must be
 * owned by root or this process's user and not writable by other users, a sticky /tmp included.
 */
export function checkSocketFolder(folder: string): void {
  const stat = statSync(folder);
  if (!stat.isDirectory()) throw new SocketInUseError(`the socket folder ${folder} is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== 0 && stat.uid !== uid) {
    throw new SocketInUseError(`the socket folder ${folder} is owned by uid ${stat.uid}, not by root or this process (uid ${uid}); refusing to create a socket there`);
  }
  if (writableByOthers(stat.mode, stat.gid)) {
    throw new SocketInUseError(`the socket folder ${folder} is writable by other users (mode ${(stat.mode & 0o7777).toString(8)}); `
      + 'they could swap the socket for a symlink: choose a folder only root or this user can write (e.g. /run/xpci)');
  }
}

/**
 * Make `path` ready for bind: check its folder (checkSocketFolder); create the parent folder if missing (0700, or 0711 when other users
 * are admitted, so they can reach the socket without listing the folder; an existing folder of ours
 * that they could not search gets the same search bits); replace a stale socket left by a backend
 * that died; refuse a live one, or anything that is not a socket.
 */
export async function prepareSocketPath(path: string, access: SocketAccess): Promise<void> {
  const parent = dirname(path);
  const widened = access.allowUids.length > 0 || access.allowGids.length > 0;
  if (!existsSync(parent)) {
    mkdirSync(parent, { recursive: true, mode: widened ? 0o711 : 0o700 });
  } else if (widened) {
    const folder = statSync(parent);
    if (folder.uid === process.getuid?.() && (folder.mode & 0o011) !== 0o011) {
      checkSocketFolder(parent);
      chmodSync(parent, (folder.mode & 0o7777) | 0o011);
    }
  }
  checkSocketFolder(parent);
  let kind: 'socket' | 'other' | 'none';
  try {
    kind = lstatSync(path).isSocket() ? 'socket' : 'other';
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    kind = 'none';
  }
  if (kind === 'other') throw new SocketInUseError(`${path} exists and is not a socket; refusing to replace it`);
  if (kind === 'socket') {
    if (await probeListener(path)) {
      throw new SocketInUseError(`another backend is already listening on ${path} (use --socket to choose another path)`);
    }
    unlinkSync(path);
  }
}

/**
 * Bind and listen on `path`, permissions set before the name is visible (see the top of this file);
 * returns the socket's inode. Throws SocketInUseError if something took the name meanwhile.
 */
export async function listenOnSocket(server: Server, path: string, access: SocketAccess): Promise<number> {
  const parent = dirname(path);
  checkSocketFolder(parent);
  const privateDir = mkdtempSync(join(parent, `.xpci-${basename(path)}-`));
  const bound = join(privateDir, 's');
  try {
    const previous = process.umask(0o177);
    const listening = new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      server.once('error', onError);
      server.once('listening', () => {
        server.off('error', onError);
        resolve();
      });
    });
    try {
      // For a path, bind(2) and listen(2) happen synchronously inside listen(): the umask covers them.
      server.listen(bound);
    } finally {
      process.umask(previous);
    }
    await listening;
    const { mode, group } = socketMode(access);
    if (group !== null) chownSync(bound, -1, group);
    chmodSync(bound, mode);
    const inode = lstatSync(bound).ino;
    try {
      linkSync(bound, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      throw new SocketInUseError(`${path} appeared while the socket was being created; refusing to replace it`);
    }
    return inode;
  } finally {
    try {
      unlinkSync(bound);
    } catch {
      // never bound
    }
    rmdirSync(privateDir);
  }
}

/** Remove the socket file if it is still the one this backend created (not a successor's). */
export function removeSocketFile(path: string, inode: number): void {
  try {
    if (lstatSync(path).ino === inode) unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
