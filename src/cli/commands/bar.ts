/**
 * `xpci bar [--connect PATH] -s SEL BAR:OFFSET[.b|.w|.l|.q][=VALUE]...`: single-width BAR reads and
 * writes through the ring (`0:4.l=0x12345678`, then `0:4.l` prints 0x12345678).
 */
import type { Argv, CommandModule } from 'yargs';
import { formatAddress } from '../../pci/address.js';
import { UsageError } from '../errors.js';
import { batchOption, readBatchOperations } from '../batch-file.js';
import { frontendOptions, parseSelection, requestFailure, selectOneDevice, withFrontend, type FrontendArgs } from '../frontend-connection.js';
import { formatBarValue, parseBarOperation, type BarOperation } from '../bar-spec.js';

interface BarArgs extends FrontendArgs {
  operations?: string[];
  batch?: string;
  s: string;
}

export const barCommand: CommandModule<object, BarArgs> = {
  command: 'bar [operations..]',
  describe: 'read or write a BAR of one device behind a backend',
  builder: (yargs) => frontendOptions(yargs
    .usage([
      'xpci bar [--connect PATH] -s SEL BAR:OFFSET[.b|.w|.l|.q][=VALUE]...',
      '',
      "Reads and writes registers inside a BAR (a memory or I/O region) of one PCI function that a backend "
        + "('xpci export') serves, one access of exactly the given width each, as a driver makes them. This is "
        + "the frontend side: run it in the guest (--connect /dev/virtio-ports/xpci.0) or on the host against "
        + "the backend's socket. It needs no root, only permission to open that socket or device: the backend "
        + 'admits root and whoever its --allow-uid/--allow-gid name. -s must select exactly one function.',
      '',
      "Careful: these are the device's own registers. A write drives the device, and even a read can have side "
        + 'effects (clear-on-read status, FIFOs). The backend refuses BAR access on a --read-only export and '
        + 'while the BAR\'s decode is off (AccessDenied), and outside the BAR (InvalidOffset).',
    ].join('\n'))
    .option('batch', batchOption)
    .positional('operations', { type: 'string', array: true, describe: 'BAR reads and writes (syntax below), run in order' })
    .option('s', { type: 'string', demandOption: true, describe: 'the one function to access: [[[domain]:][bus]:][slot][.[func]] (hex; must match exactly one)' })
    .example('xpci bar -s 00:00.0 0:4.l=12345678 0:4.l', 'write a dword at offset 4 of BAR 0, read it back')
    .example('xpci bar -s 00:00.0 2:10.q', 'read 8 bytes at offset 0x10 of memory BAR 2')
    .example('xpci setpci -s 00:00.0 COMMAND=0002:0002', 'turn memory decode on first if bar says it is off')
    .epilogue([
      'OPERATIONS',
      '  BAR:OFFSET[.b|.w|.l|.q][=VALUE]. BAR is the index 0-5 (a 64-bit BAR goes by its lower index); OFFSET '
        + 'and VALUE are hex, 0x optional. The width is .b 1, .w 2, .l 4 (default) or .q 8 bytes (memory BARs '
        + 'only); OFFSET must be a multiple of it and VALUE must fit in it. Without =VALUE the operation is a read.',
      '',
      'REFUSED BY THE BACKEND (nothing accessed)',
      '  AccessDenied  \tevery BAR access of a --read-only export, reads included (they can have side effects); '
        + 'access to a BAR while its decode (memory or I/O, COMMAND bit 1 or 0) is off as the frontend set it, '
        + 'since touching a BAR that does not decode can crash the host (XSA-120); on a --permissive export '
        + 'also while the hardware no longer decodes',
      "  InvalidOffset  \tOFFSET + width past the BAR's size, or a BAR the function does not have",
      '  InvalidSize  \t.q on an I/O BAR',
      '',
      'OUTPUT',
      '  Each read prints 0x and two hex digits per byte of the width on a line of its own (0:4.l gives '
        + 'e.g. 0x12345678); writes print nothing. Operations run in order and the first failure stops them: '
        + 'the reads before it have been printed.',
      '',
      'Exit status: 0 every operation done; 1 no backend at the path, the backend refused the session, -s '
        + 'selects no function, or a request failed (AccessDenied, InvalidOffset, InvalidSize, ...); 2 no -s, '
        + '-s selecting more than one function, a bad selector or operation (unaligned OFFSET, VALUE too wide), '
        + 'or a bad option.',
    ].join('\n'))) as unknown as Argv<BarArgs>,
  handler: async (args) => {
    const matches = parseSelection(args.s, undefined);
    const texts = [...(args.operations ?? []), ...(args.batch === undefined ? [] : readBatchOperations(args.batch))];
    if (texts.length === 0) throw new UsageError('bar: no operation given (on the command line or with --batch FILE)');
    const operations: BarOperation[] = texts.map((text) => parseBarOperation(String(text)));
    await withFrontend(args, 'bar', async (client) => {
      const { address, remote } = await selectOneDevice(client, matches, args.s, 'bar');
      for (const op of operations) {
        const where = `${formatAddress(address)} BAR${op.bar} offset 0x${op.offset.toString(16)} (${op.width} bytes)`;
        try {
          if (op.value === undefined) process.stdout.write(`${formatBarValue(op.width, await remote.barRead(op.bar, op.offset, op.width))}\n`);
          else await remote.barWrite(op.bar, op.offset, op.width, op.value);
        } catch (error) {
          throw requestFailure(where, error);
        }
      }
    });
  },
};
