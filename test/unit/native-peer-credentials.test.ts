import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection, createServer, type Socket } from 'node:net';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { native } from '../../src/native/binding.js';

/** The fd under a net.Socket (Node keeps it on the internal libuv handle). */
const fdOf = (socket: Socket): number => (socket as unknown as { _handle: { fd: number } })._handle.fd;

test('peerCredentials of an accepted Unix socket names this process', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xpci-native-sock-'));
  const server = createServer();
  try {
    const path = join(dir, 'ring.sock');
    server.listen(path);
    await once(server, 'listening');
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    const client = createConnection(path);
    const [socket] = await accepted;
    try {
      const fd = fdOf(socket);
      assert.ok(Number.isInteger(fd) && fd >= 0, `accepted socket fd ${fd}`);
      assert.deepEqual(native().peerCredentials(fd), { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    } finally {
      socket.destroy();
      client.destroy();
    }
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('peerCredentials errors: not a socket, no such fd, bad argument', () => {
  const fd = openSync(process.execPath, 'r');
  try {
    assert.throws(() => native().peerCredentials(fd), {
      code: 'ENOTSOCK', syscall: 'getsockopt', message: `getsockopt: Socket operation on non-socket (SO_PEERCRED on fd ${fd})`,
    });
  } finally {
    closeSync(fd);
  }
  assert.throws(() => native().peerCredentials(0x7ffffff0), { code: 'EBADF', errno: 9, syscall: 'getsockopt' }, 'above any fd limit');
  assert.throws(() => native().peerCredentials(-1), { code: 'ERANGE', syscall: 'getsockopt' });
  assert.throws(() => native().peerCredentials('3' as unknown as number), { code: 'EINVAL' });
});
