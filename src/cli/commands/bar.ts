/**
 * `xpci bar [--connect PATH] -s SEL BAR:OFFSET[.b|.w|.l|.q][=VALUE]...`: single-width BAR reads and
 * writes through the ring (`0:4.l=0x12345678`, then `0:4.l` prints 0x12345678).
 */
import type { Argv, CommandModule } from 'yargs';
import { formatAddress } from '../../pci/address.js';
import { RuntimeError, UsageError } from '../errors.js';
import { frontendOptions, parseSelection, requestFailure, selectDevices, withFrontend, type FrontendArgs } from '../frontend-connection.js';
import { BarSpecError, formatBarValue, parseBarOperation, type BarOperation } from '../bar-spec.js';

interface BarArgs extends FrontendArgs {
  operations: string[];
  s: string;
}

export const barCommand: CommandModule<object, BarArgs> = {
  command: 'bar <operations..>',
  describe: 'read or write a BAR of one device behind a backend',
  builder: (yargs) => frontendOptions(yargs
    .usage('xpci bar [--connect PATH] -s SEL BAR:OFFSET[.b|.w|.l|.q][=VALUE]...\n\n'
      + 'BAR is 0-5; OFFSET and VALUE are hex; the width defaults to .l. Reads print 0x followed by the value.')
    .positional('operations', { type: 'string', array: true, demandOption: true, describe: 'BAR reads and writes, executed in order' })
    .option('s', { type: 'string', demandOption: true, describe: 'the device: [[[domain]:][bus]:][slot][.[func]]' })) as unknown as Argv<BarArgs>,
  handler: async (args) => {
    const matches = parseSelection(args.s, undefined);
    const operations: BarOperation[] = args.operations.map((text) => {
      try {
        return parseBarOperation(String(text));
      } catch (error) {
        if (error instanceof BarSpecError) throw new UsageError(`bar: ${error.message}`);
        throw error;
      }
    });
    await withFrontend(args, 'bar', async (client) => {
      const devices = await selectDevices(client, matches);
      if (devices.length === 0) throw new RuntimeError(`bar: -s ${args.s} selects no device`);
      if (devices.length > 1) {
        throw new UsageError(`bar: -s ${args.s} selects ${devices.length} devices (${devices.map((d) => formatAddress(d.address)).join(', ')}); name exactly one`);
      }
      const [{ address, remote }] = devices;
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
