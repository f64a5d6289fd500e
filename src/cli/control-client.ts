/**
 * The CLI side of a backend's control socket (src/protocol/control/hotplug-control.ts): one request,
 * one reply line, with errors that say what to do. Used by attach/detach and status.
 */
import { connect } from 'node:net';
import {
  ControlLineReader, encodeControlRequest, parseControlReply, type ControlReply, type ControlRequest,
} from '../protocol/control/hotplug-control.js';
import { RuntimeError } from './errors.js';

/** Resets on attach/detach can take a while; a backend silent for this long is reported. */
export const REPLY_TIMEOUT_MS = 30_000;

function connectionError(path: string, error: NodeJS.ErrnoException): RuntimeError {
  switch (error.code) {
    case 'ENOENT':
      return new RuntimeError(`no control socket at ${path}: is 'xpci export' running with that --socket? (or pass --control)`);
    case 'ECONNREFUSED':
      return new RuntimeError(`nothing listens on ${path}: the backend that created it is gone`);
    case 'EACCES':
    case 'EPERM':
      return new RuntimeError(`permission denied on ${path} (the control socket is mode 0600, owner root): run as root`);
    default:
      return new RuntimeError(`control socket ${path}: ${error.message}`);
  }
}

/** Send one request and wait for its reply line. */
export function sendControlRequest(path: string, request: ControlRequest, timeoutMs = REPLY_TIMEOUT_MS, log?: (line: string) => void): Promise<ControlReply> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const line = encodeControlRequest(request);
    const reader = new ControlLineReader();
    let settled = false;
    const finish = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      outcome();
    };
    socket.setTimeout(timeoutMs, () => finish(() => reject(new RuntimeError(`no reply from the backend on ${path} within ${timeoutMs / 1000} s`))));
    socket.once('connect', () => {
      log?.(`-> ${line.trimEnd()}`);
      socket.write(line);
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        const [answer] = reader.push(chunk);
        if (answer !== undefined) {
          log?.(`<- ${answer}`);
          const reply = parseControlReply(answer);
          finish(() => resolve(reply));
        }
      } catch (error) {
        finish(() => reject(new RuntimeError(`control socket ${path}: ${(error as Error).message}`)));
      }
    });
    socket.once('end', () => finish(() => reject(new RuntimeError(`the backend closed ${path} without replying`))));
    socket.once('error', (error: NodeJS.ErrnoException) => finish(() => reject(connectionError(path, error))));
  });
}

