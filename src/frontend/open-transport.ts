/** Open the right transport for a path: tls://HOST:PORT, else a Unix socket or a character device (fs.stat decides). */
import { stat, statSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { ConnectError, type Transport, type TransportKind } from './transport.js';
import { openUnixSocketTransport } from './unix-socket-transport.js';
import { isTlsEndpoint } from '../protocol/ring/tls-endpoint.js';
import type { TlsCredentials } from './tls-transport.js';

export async function openTransport(path: string, tls?: TlsCredentials): Promise<Transport> {
  // node's TLS (and crypto) load only for a remote backend: a local CLI call starts faster.
  if (isTlsEndpoint(path)) return (await import('./tls-transport.js')).openTlsTransport(path, tls);
  let kind: TransportKind;
  try {
    // fs.stat with a callback: fs/promises would be one more module to load per CLI call.
    const info = await new Promise<Stats>((resolve, reject) => stat(path, (error, stats) => (error ? reject(error) : resolve(stats))));
    if (info.isSocket()) kind = 'unix-socket';
    else if (info.isCharacterDevice()) kind = 'char-device';
    else throw new ConnectError(path, `cannot connect to ${path}: not a Unix socket or a character device`, 'EINVAL');
  } catch (error) {
    if (error instanceof ConnectError) throw error;
    throw connectErrorFrom(path, error);
  }
  try {
    // The character-device transport (a guest's virtio-serial port) loads only where it is used.
    return kind === 'unix-socket' ? await openUnixSocketTransport(path) : (await import('./char-device-transport.js')).openCharDeviceTransport(path);
  } catch (error) {
    throw connectErrorFrom(path, error);
  }
}

function connectErrorFrom(path: string, error: unknown): ConnectError {
  const e = error as NodeJS.ErrnoException;
  if (e.code === 'EACCES' || e.code === 'EPERM') return new ConnectError(path, permissionDenied(path), e.code);
  const reason = e.code === 'ENOENT' ? 'no such file' : e.code === 'ECONNREFUSED' ? 'connection refused (stale socket?)'
    : e.code === 'EBUSY' ? 'device busy (another frontend has it open)'
    : (e.message ?? String(error));
  return new ConnectError(path, `cannot connect to ${path}: ${reason}`, e.code);
}

/**
 * Which file refused and how to get in: the socket itself (0600 unless the export admits others) or,
 * when it cannot even be looked at, the folder holding it (the backend's 0700 state directory).
 */
function permissionDenied(path: string): string {
  const fix = `run as root or export with --allow-uid ${process.getuid?.() ?? 'UID'}`;
  for (const [file, what] of [[path, 'socket'], [dirname(path), 'directory']] as const) {
    let info;
    try {
      info = statSync(file);
    } catch {
      continue;
    }
    const mode = (info.mode & 0o7777).toString(8).padStart(4, '0');
    const owner = info.uid === 0 ? 'root' : `uid ${info.uid}`;
    const holding = what === 'directory' ? ', which holds the socket' : '';
    return `permission denied on ${file} (${what} mode ${mode}, owner ${owner}${holding}): ${fix}`;
  }
  return `permission denied on ${path}: ${fix}`;
}
