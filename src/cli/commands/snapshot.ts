/**
 * `xpci snapshot <BDF> --out DIR [--with-bars]`: capture a device into a fixture tree that
 * `--sysfs-root DIR` serves (src/backend/snapshot.ts).
 */
import type { Argv, CommandModule } from 'yargs';
import { parseAddress } from '../../pci/address.js';
import { DEFAULT_SYSFS_ROOT } from '../../pci/sysfs-paths.js';
import { snapshotDevice } from '../../backend/snapshot.js';

interface SnapshotArgs {
  bdf: string;
  out: string;
  'with-bars': boolean;
  'sysfs-root': string;
  json: boolean;
}

export const snapshotCommand: CommandModule<object, SnapshotArgs> = {
  command: 'snapshot <bdf>',
  describe: 'capture a device (config space, resource table, BAR sizes) into a fixture tree for --sysfs-root',
  builder: (yargs) => yargs
    .positional('bdf', { type: 'string', demandOption: true, describe: 'PCI address [DDDD:]BB:DD.F' })
    .option('out', { type: 'string', demandOption: true, describe: 'new sysfs root to write (DIR/bus/pci/devices/<bdf>/...)' })
    .option('with-bars', { type: 'boolean', default: false, describe: 'also copy BAR contents (reads can have side effects; device must have no driver)' })
    .option('sysfs-root', { type: 'string', default: DEFAULT_SYSFS_ROOT, describe: 'folder that contains bus/pci/devices/' })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' }) as unknown as Argv<SnapshotArgs>,
  handler: (args) => {
    const address = parseAddress(String(args.bdf));
    const result = snapshotDevice({ sysfsRoot: args['sysfs-root'], address, outDir: args.out, withBars: args['with-bars'] });
    if (args.json) {
      process.stdout.write(JSON.stringify({ out: args.out, ...result }) + '\n');
      return;
    }
    const bars = result.bars.map((b) => `BAR${b.index} ${b.kind} ${b.size} bytes${b.captured ? '' : ' (zero-filled)'}`);
    const lines = [
      `${result.bdf}: snapshot in ${result.deviceDir}`,
      `  config ${result.configBytes}/${result.configSize} bytes; files: ${result.files.join(' ')}`,
      ...(bars.length > 0 ? [`  ${bars.join('; ')}`] : []),
      ...result.notes.map((n) => `  note: ${n}`),
      `  serve it with: xpci export --sysfs-root ${args.out} ${result.bdf}`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  },
};
