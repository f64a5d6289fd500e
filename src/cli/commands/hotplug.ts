/**
 * `xpci attach <BDF>` / `xpci detach <BDF>`: hot-plug a device into or out of a running export over
 * its control socket (src/protocol/control/hotplug-control.ts). The backend reconciles its device
 * set and tells the frontend with DeviceAdded/DeviceRemoved; the other devices keep their slots.
 */
import type { Argv, CommandModule } from 'yargs';
import { formatAddress, parseAddress } from '../../pci/address.js';
import { resolveSocketPath } from '../../backend/server/socket-file.js';
import { controlSocketPath, type ControlRequest } from '../../protocol/control/hotplug-control.js';
import { RuntimeError } from '../errors.js';
import { REPLY_TIMEOUT_MS, sendControlRequest } from '../control-client.js';

interface HotplugArgs {
  bdf: string;
  socket?: string;
  control?: string;
  permissive?: boolean;
  json: boolean;
  'verbose-request': boolean;
}

function options<T>(yargs: Argv<T>) {
  return yargs
    .positional('bdf', { type: 'string', demandOption: true, describe: 'PCI function [DDDD:]BB:DD.F (hex): its host address, as given to xpci export, or (for a device the export serves) its frontend address' })
    .option('socket', { type: 'string', describe: "ring socket of the running export (its --socket); the control socket is this path + '.ctl' (default $XPCI_SOCKET, else /run/xpci/xpci.sock)" })
    .option('control', { type: 'string', describe: 'control socket path, used as given instead of <ring socket>.ctl' })
    .option('json', { type: 'boolean', default: false, describe: "print the backend's reply as one JSON object instead of text" })
    .option('verbose-request', { type: 'boolean', default: false, describe: "log the control request and the backend's reply on stderr, one 'xpci:control' line each" });
}

/** What attach and detach share in their help: who may run them, and the exit statuses. */
const CONTROL_ACCESS = 'Run it on the host, as root: the request goes over the backend\'s control socket (<ring socket>.ctl), '
  + 'which is mode 0600 and admits root only, whatever the export\'s --allow-uid/--allow-gid say. It needs a '
  + "running 'xpci export'.";
const CONTROL_FAILURES = 'no control socket at the path (no export running with that --socket), nothing listening on it, '
  + 'permission denied (not root), or no reply within 30 s';

async function run(op: 'attach' | 'detach', args: HotplugArgs): Promise<void> {
  const device = formatAddress(parseAddress(String(args.bdf)));
  const path = args.control ?? controlSocketPath(resolveSocketPath(args.socket));
  const request: ControlRequest = op === 'attach' && args.permissive !== undefined ? { op, device, permissive: args.permissive } : { op, device };
  const log = args['verbose-request'] ? (line: string) => process.stderr.write(`xpci:control ${line}\n`) : undefined;
  const reply = await sendControlRequest(path, request, REPLY_TIMEOUT_MS, log);
  if (args.json) process.stdout.write(JSON.stringify(reply) + '\n');
  if (!reply.ok) throw new RuntimeError(`${op} ${device}: ${reply.error}`);
  if (!args.json) {
    // The backend says which device it acted on: `device` may have been a frontend address.
    const at = reply.guest !== undefined ? ` (frontend address ${reply.guest})` : '';
    process.stdout.write(`${reply.host ?? device}: ${op === 'attach' ? 'attached' : 'detached'}${at}\n`);
  }
}

export const attachCommand: CommandModule<object, HotplugArgs> = {
  command: 'attach <bdf>',
  describe: 'hot-plug a device into a running export (control socket, root only)',
  builder: (yargs) => options(yargs)
    .option('permissive', { type: 'boolean', describe: "let this function's unlisted config writes reach the hardware (--no-permissive: do not); default: the export's --permissive" })
    .usage([
      'xpci attach [--socket PATH | --control PATH] [--[no-]permissive] [--json] BDF',
      '',
      "Hot-plugs a host PCI function into a running 'xpci export' without restarting it. The backend adds "
        + 'the function to its device set, exports it under the same rules as at start-up, and announces it '
        + 'to the frontend (DeviceAdded); the devices already exported keep their frontend addresses. '
        + CONTROL_ACCESS,
      '',
      'Attaching hands the function to the frontend. The backend refuses a function still bound to a host '
        + "driver unless the export is --read-only: seize it first with 'xpci assignable-add BDF'. A writable "
        + 'export resets the function before handing it out (unless --no-reset-on-export).',
    ].join('\n'))
    .example('xpci attach 06:02.0', 'into the export on $XPCI_SOCKET (else /run/xpci/xpci.sock)')
    .example('xpci attach --socket /run/xpci/x.sock 06:02.0', 'into the export started with --socket /run/xpci/x.sock')
    .example('xpci attach --permissive --json 06:02.0', 'a permissive function; the reply as JSON')
    .epilogue([
      'OUTPUT',
      "  'BDF: attached (frontend address ADDR)'. Attaching a function that is already exported changes "
        + 'nothing and prints its address. --json prints the reply as is: {"ok":true,"guest":ADDR}, or '
        + '{"ok":false,"error":MESSAGE} before exiting with status 1.',
      '',
      `Exit status: 0 attached or already exported; 1 the backend refused the function (the reason follows), ${CONTROL_FAILURES}; `
        + '2 bad BDF or option.',
    ].join('\n')) as unknown as Argv<HotplugArgs>,
  handler: (args) => run('attach', args),
};

export const detachCommand: CommandModule<object, HotplugArgs> = {
  command: 'detach <bdf>',
  describe: 'hot-unplug a device from a running export; the others keep their addresses',
  builder: (yargs) => options(yargs)
    .usage([
      'xpci detach [--socket PATH | --control PATH] [--json] BDF',
      '',
      "Hot-unplugs a host PCI function from a running 'xpci export'. The backend releases it (restores the "
        + 'registers the frontend changed, resets it unless the export is --read-only or runs with '
        + '--no-reset-on-release, drops its lock) and tells the frontend (DeviceRemoved); the other devices '
        + 'keep their frontend addresses. ' + CONTROL_ACCESS,
      '',
      'A frontend still using the function loses it at once: stop using it in the guest first. The function '
        + "keeps its driver binding (pci-stub after 'xpci assignable-add'); 'xpci assignable-remove BDF' then "
        + 'gives it back to the host.',
    ].join('\n'))
    .example('xpci detach 06:02.0', 'out of the export on $XPCI_SOCKET (else /run/xpci/xpci.sock)')
    .example('xpci detach --control /run/xpci/x.sock.ctl 06:02.0', 'naming the control socket itself')
    .example('xpci detach --json 06:02.0', 'the reply as JSON')
    .epilogue([
      'OUTPUT',
      "  'BDF: detached (frontend address ADDR)', ADDR being the address it had. --json prints the reply as "
        + 'is: {"ok":true,"guest":ADDR}, or {"ok":false,"error":MESSAGE} before exiting with status 1.',
      '',
      `Exit status: 0 detached; 1 the function is not exported by this backend, ${CONTROL_FAILURES}; `
        + '2 bad BDF or option.',
    ].join('\n')) as unknown as Argv<HotplugArgs>,
  handler: (args) => run('detach', args),
};
