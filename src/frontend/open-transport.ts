/** Open the right transport for a path: a Unix socket or a character device (fs.stat decides). */
import { stat } from 'node:fs/promises';
import { openCharDeviceTransport } from './char-device-transport.js';
import { ConnectError, type Transport, type TransportKind } from './transport.js';
import { openUnixSocketTransport } from './unix-socket-transport.js';

export async function openTransport(path: string): Promise<Transport> {
  let kind: TransportKind;
  try {
    const info = await stat(path);
    if (info.isSocket()) kind = 'unix-socket';
    else if (info.isCharacterDevice()) kind = 'char-device';
    else throw new ConnectError(path, `cannot connect to ${path}: not a Unix socket or a character device`, 'EINVAL');
  } catch (error) {
    if (error instanceof ConnectError) throw error;
    throw connectErrorFrom(path, error);
  }
  try {
    return kind === 'unix-socket' ? await openUnixSocketTransport(path) : openCharDeviceTransport(path);
  } catch (error) {
    throw connectErrorFrom(path, error);
  }
}

function connectErrorFrom(path: string, error: unknown): ConnectError {
  const e = error as NodeJS.ErrnoException;
  const reason = e.code === 'ENOENT' ? 'no such file' : e.code === 'ECONNREFUSED' ? 'connection refused (stale socket?)'
    : e.code === 'EACCES' ? 'permission denied' : e.code === 'EBUSY' ? 'device busy (another frontend has it open)'
    : (e.message ?? String(error));
  return new ConnectError(path, `cannot connect to ${path}: ${reason}`, e.code);
}
