/**
 * `xpci attach <BDF>` / `xpci detach <BDF>`: hot-plug a device into or out of a running export over
 * its control socket (src/backend/lifecycle/control-protocol.ts). The backend reconciles its device
 * set and tells the frontend with DeviceAdded/DeviceRemoved; the other devices keep their slots.
 */
import { connect } from 'node:net';
import type { Argv, CommandModule } from 'yargs';
import { formatAddress, parseAddress } from '../../pci/address.js';
import { resolveSocketPath } from '../../backend/server/socket-file.js';
import {
  ControlLineReader, controlSocketPath, encodeControlRequest, parseControlReply,
  type ControlReply, type ControlRequest,
} from '../../backend/lifecycle/control-protocol.js';
import { RuntimeError } from '../errors.js';

/** Resets on attach/detach can take a while; a backend silent for this long is reported. */
const REPLY_TIMEOUT_MS = 30_000;

function connectionError(path: string, error: NodeJS.ErrnoException): RuntimeError {
  switch (error.code) {
    case 'ENOENT':
      return new RuntimeError(`no control socket at ${path}: is 'xpci export' running with that --socket? (or pass --control)`);
    case 'ECONNREFUSED':
      return new RuntimeError(`nothing listens on ${path}: the backend that created it is gone`);
    case 'EACCES':
    case 'EPERM':
      return new RuntimeError(`permission denied on ${path}: the control socket is root-only`);
    default:
      return new RuntimeError(`control socket ${path}: ${error.message}`);
  }
}

/** Send one request and wait for its reply line. */
export function sendControlRequest(path: string, request: ControlRequest, timeoutMs = REPLY_TIMEOUT_MS): Promise<ControlReply> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const reader = new ControlLineReader();
    let settled = false;
    const finish = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      outcome();
    };
    socket.setTimeout(timeoutMs, () => finish(() => reject(new RuntimeError(`no reply from the backend on ${path} within ${timeoutMs / 1000} s`))));
    socket.once('connect', () => socket.write(encodeControlRequest(request)));
    socket.on('data', (chunk: Buffer) => {
      try {
        const [line] = reader.push(chunk);
        if (line !== undefined) {
          const reply = parseControlReply(line);
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

interface HotplugArgs {
  bdf: string;
  socket?: string;
  control?: string;
  permissive?: boolean;
  json: boolean;
}

function options<T>(yargs: Argv<T>) {
  return yargs
    .positional('bdf', { type: 'string', demandOption: true, describe: 'host PCI address [DDDD:]BB:DD.F' })
    .option('socket', { type: 'string', describe: "the backend's ring socket (default $XPCI_SOCKET, else /run/xpci/xpci.sock)" })
    .option('control', { type: 'string', describe: 'control socket (default: <ring socket>.ctl)' })
    .option('json', { type: 'boolean', default: false, describe: 'print the reply as one JSON object' });
}

async function run(op: 'attach' | 'detach', args: HotplugArgs): Promise<void> {
  const device = formatAddress(parseAddress(String(args.bdf)));
  const path = args.control ?? controlSocketPath(resolveSocketPath(args.socket));
  const request: ControlRequest = op === 'attach' && args.permissive !== undefined ? { op, device, permissive: args.permissive } : { op, device };
  const reply = await sendControlRequest(path, request);
  if (args.json) process.stdout.write(JSON.stringify(reply) + '\n');
  if (!reply.ok) throw new RuntimeError(`${op} ${device}: ${reply.error}`);
  if (!args.json) {
    const at = reply.guest !== undefined ? ` (frontend address ${reply.guest})` : '';
    process.stdout.write(`${device}: ${op === 'attach' ? 'attached' : 'detached'}${at}\n`);
  }
}

export const attachCommand: CommandModule<object, HotplugArgs> = {
  command: 'attach <bdf>',
  describe: 'hot-plug a device into a running export (control socket, root only)',
  builder: (yargs) => options(yargs)
    .option('permissive', { type: 'boolean', describe: "export it permissive (default: the backend's --permissive)" }) as unknown as Argv<HotplugArgs>,
  handler: (args) => run('attach', args),
};

export const detachCommand: CommandModule<object, HotplugArgs> = {
  command: 'detach <bdf>',
  describe: 'hot-unplug a device from a running export; the others keep their addresses',
  builder: (yargs) => options(yargs) as unknown as Argv<HotplugArgs>,
  handler: (args) => run('detach', args),
};
