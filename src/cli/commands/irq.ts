/**
 * `xpci irq -s SEL [--kind K] [--vector N] --wait [--timeout MS] [--unmask]`: wait for one interrupt
 * of a device behind a backend and print it.
 */
import type { Argv, CommandModule } from 'yargs';
import { formatAddress } from '../../pci/address.js';
import { INTERRUPT_KINDS, type InterruptKind } from '../../protocol/ring/messages.js';
import { UsageError } from '../errors.js';
import {
  frontendOptions, oneDeviceExitStatus, parseSelection, requestFailure, selectOneDevice, withFrontend, type FrontendArgs,
} from '../frontend-connection.js';

interface IrqArgs extends FrontendArgs {
  s: string;
  kind?: string;
  vector?: number;
  wait: boolean;
  timeout: number;
  unmask: boolean;
}

export const irqCommand: CommandModule<object, IrqArgs> = {
  command: 'irq',
  describe: 'wait for an interrupt of one device behind a backend',
  builder: (yargs) => frontendOptions(yargs
    .usage([
      'xpci irq [--connect PATH] -s SEL [--kind intx|msi|msix] [--vector N] --wait [--timeout MS] [--unmask]',
      '',
      'Waits for one interrupt of one PCI function that a backend (\'xpci export\') serves and prints it. The '
        + 'backend delivers interrupts of devices it holds through VFIO: INTx while neither MSI nor MSI-X is enabled '
        + "in the frontend's view, otherwise the vectors the frontend enabled and unmasked in the MSI capability or "
        + 'the MSI-X table. This is the frontend side: it opens a session of its own, so it sees the interrupts that '
        + 'arrive while it runs, and when it exits the backend tears down what the session used (an INTx that fired '
        + 'counts) and resets the device.',
    ].join('\n'))
    .option('s', { type: 'string', demandOption: true, describe: 'the one function: [[[domain]:][bus]:][slot][.[func]] (hex; must match exactly one)' })
    .option('kind', { type: 'string', choices: [...INTERRUPT_KINDS], describe: 'only this kind of interrupt (default: any)' })
    .option('vector', { type: 'number', describe: 'only this vector (default: any)' })
    .option('wait', { type: 'boolean', default: false, describe: 'wait for the interrupt (required: the only mode)' })
    .option('timeout', { type: 'number', default: 10000, describe: 'give up after this many milliseconds' })
    .option('unmask', { type: 'boolean', default: false, describe: 'INTx: unmask the line after printing (the device must have been serviced)' })
    .example('xpci irq -s 00:00.0 --wait --timeout 2000', 'print the next interrupt of 00:00.0, e.g. "intx 0 1"')
    .epilogue([
      'OUTPUT',
      '  One line: the kind (intx, msi or msix), the vector and the count (interrupts on that vector the backend '
        + 'coalesced into this event), separated by spaces.',
      '',
      'REFUSED',
      '  Timeout after --timeout ms without a matching interrupt (exit 1). A device the backend holds without '
        + 'VFIO (pci-stub) has no interrupts.',
      '',
      oneDeviceExitStatus('a request failed or timed out'),
    ].join('\n'))) as unknown as Argv<IrqArgs>,
  handler: async (args) => {
    if (!args.wait) throw new UsageError('irq: --wait is required (waiting is the only mode)');
    if (args.vector !== undefined && (!Number.isInteger(args.vector) || args.vector < 0 || args.vector > 0xffff)) {
      throw new UsageError(`irq: --vector ${args.vector} is not an integer 0..65535`);
    }
    if (!Number.isInteger(args.timeout) || args.timeout < 0) throw new UsageError(`irq: --timeout ${args.timeout} is not a number of milliseconds`);
    const matches = parseSelection(args.s, undefined);
    await withFrontend(args, 'irq', async (client) => {
      // The scan's reads come before waiting, as before selection used the Hello's list: kept for irq.
      const { address, remote } = await selectOneDevice(client, matches, args.s, 'irq', { scan: true });
      const where = `waiting for an interrupt of ${formatAddress(address)}`;
      try {
        const record = await remote.waitForInterrupt({ kind: args.kind as InterruptKind | undefined, vector: args.vector, timeoutMs: args.timeout });
        process.stdout.write(`${record.kind} ${record.vector} ${record.count}\n`);
        if (args.unmask && record.kind === 'intx') await remote.unmaskInterrupt();
      } catch (error) {
        throw requestFailure(where, error);
      }
    });
  },
};

