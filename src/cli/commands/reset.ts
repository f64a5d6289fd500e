/** `xpci reset -s SEL`: reset one device behind a backend (VFIO_DEVICE_RESET in the backend). */
import type { Argv, CommandModule } from 'yargs';
import { formatAddress } from '../../pci/address.js';
import {
  frontendOptions, oneDeviceExitStatus, parseSelection, requestFailure, selectOneDevice, withFrontend, type FrontendArgs,
} from '../frontend-connection.js';

interface ResetArgs extends FrontendArgs {
  s: string;
}

export const resetCommand: CommandModule<object, ResetArgs> = {
  command: 'reset',
  describe: 'reset one device behind a backend',
  builder: (yargs) => frontendOptions(yargs
    .usage([
      'xpci reset [--connect PATH] -s SEL',
      '',
      'Resets one PCI function that a backend (\'xpci export\') serves, with the reset the host kernel picks (FLR, PM '
        + 'or bus reset) through VFIO. Afterwards the backend puts its view of the device back to the export-time '
        + 'state (emulated BAR registers, MSI and MSI-X off) and tells the frontend with a DeviceReset event.',
    ].join('\n'))
    .option('s', { type: 'string', demandOption: true, describe: 'the one function: [[[domain]:][bus]:][slot][.[func]] (hex; must match exactly one)' })
    .example('xpci reset -s 00:00.0', 'reset 00:00.0')
    .epilogue([
      'REFUSED BY THE BACKEND',
      '  NotImplemented  \tthe device offers no reset (held without VFIO, or the kernel knows no reset for it)',
      '  AccessDenied  \ta --read-only export',
      '',
      oneDeviceExitStatus('the reset was refused or failed'),
    ].join('\n'))) as unknown as Argv<ResetArgs>,
  handler: async (args) => {
    const matches = parseSelection(args.s, undefined);
    await withFrontend(args, 'reset', async (client) => {
      const { address, remote } = await selectOneDevice(client, matches, args.s, 'reset');
      try {
        await remote.reset();
      } catch (error) {
        throw requestFailure(`resetting ${formatAddress(address)}`, error);
      }
    });
  },
};
