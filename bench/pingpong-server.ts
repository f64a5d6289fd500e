/**
 * The transport floor's server half: a bare Node Unix-socket echo with fixed-size frames and no
 * protocol work at all. Each complete request gets a reply carrying its id; all replies produced
 * by one 'data' event leave in one write, exactly as the xpci backend batches them.
 *
 * Usage: node pingpong-server.js SOCKET REQUEST_BYTES REPLY_BYTES   (prints "ready" when listening)
 */
import { createServer } from 'node:net';
import { rmSync } from 'node:fs';

const [socketPath, requestText, replyText] = process.argv.slice(2);
const requestSize = Number(requestText);
const replySize = Number(replyText);
if (!socketPath || !(requestSize >= 16) || !(replySize >= 16)) {
  process.stderr.write('usage: pingpong-server SOCKET REQUEST_BYTES REPLY_BYTES (sizes >= 16)\n');
  process.exit(2);
}

const server = createServer((socket) => {
  let held = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    const data = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
    const count = Math.floor(data.length / requestSize);
    if (count > 0) {
      const replies = Buffer.allocUnsafe(count * replySize);
      for (let i = 0; i < count; i++) {
        // The same header-copy work a real reply needs: magic, length, type, flags, id.
        data.copy(replies, i * replySize, i * requestSize, i * requestSize + 16);
        replies.writeUInt32LE(0, i * replySize + 16);
      }
      socket.write(replies);
    }
    held = Buffer.from(data.subarray(count * requestSize));
  });
  socket.on('error', () => socket.destroy());
});

rmSync(socketPath, { force: true });
server.listen(socketPath, () => process.stdout.write('ready\n'));
const stop = (): void => {
  server.close();
  rmSync(socketPath, { force: true });
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
