/**
 * `xpci snapshot <BDF> --out DIR [--with-bars]`: capture a device into a fixture tree that
 * `--sysfs-root DIR` serves (src/backend/snapshot.ts).
 */
import type { Argv, CommandModule } from 'yargs';
import { parseAddress } from '../../pci/address.js';
import { DEFAULT_SYSFS_ROOT } from '../../host/sysfs/paths.js';
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
    .usage([
      'xpci snapshot --out DIR [--with-bars] [--sysfs-root DIR] [--json] BDF',
      '',
      "Copies one PCI function's sysfs view into a fixture tree that 'xpci export --sysfs-root DIR' serves, "
        + 'so that drivers and tests can run without the hardware (in CI, or on another machine). Run it where '
        + 'the device is, usually on the host. Without --with-bars it only reads sysfs files (config, '
        + 'resource, vendor, device, class, revision, subsystem_vendor, subsystem_device): safe on any '
        + 'machine, whether a driver owns the device or not. Config space past 64 bytes is readable by root '
        + 'only; run as another user, the copy is truncated (a note says so).',
      '',
      '--with-bars also reads every BAR: memory BARs through a read-only mapping with 4-byte loads, I/O BARs '
        + 'with port reads. Reading a device can have side effects (clear-on-read registers, FIFOs that lose '
        + 'data, a device that hangs), so it is refused for a function bound to a host driver (pci-stub, which '
        + 'claims nothing, is accepted: seize the device first with xpci assignable-add) and needs root.',
    ].join('\n'))
    .positional('bdf', { type: 'string', demandOption: true, describe: 'PCI function to copy, [DDDD:]BB:DD.F (hex; domain 0000 when omitted)' })
    .option('out', { type: 'string', demandOption: true, describe: 'fixture root to write into (created if missing; may hold other snapshots, not this BDF)' })
    .option('with-bars', { type: 'boolean', default: false, describe: 'also copy BAR contents (device reads: side effects possible; refused while a host driver other than pci-stub is bound; needs root); without it resourceN files are zero-filled' })
    .option('sysfs-root', { type: 'string', default: DEFAULT_SYSFS_ROOT, describe: 'folder that contains bus/pci/devices/ to copy from (may itself be a fixture tree)' })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object (fields below) instead of text' })
    .example('xpci snapshot 00:03.0 --out /tmp/fixture', 'config space, resources, BAR sizes: safe on any host')
    .example('xpci snapshot 00:04.0 --out /tmp/fixture --json', 'a second function into the same tree; JSON result')
    .example('xpci snapshot 06:01.0 --out /tmp/fx --with-bars', 'with BAR contents (as root; unbound or on pci-stub)')
    .epilogue([
      'WHAT IS WRITTEN',
      '  DIR/devices/pciDDDD:BB/BDF/ holds config, resource and the identity files (one missing on the '
        + 'source is skipped with a note), one resourceN file per BAR with the BAR\'s size (sparse and '
        + 'zero-filled unless --with-bars), and a zero-filled rom file when the function has an expansion ROM '
        + '(ROMs are never read). DIR/bus/pci/devices/BDF links to it and DIR/bus/pci/drivers/ is created '
        + 'empty, as in sysfs. The copy has no driver link, so it exports without --read-only.',
      '',
      'OUTPUT',
      "  The device directory; config bytes captured out of the function's config size; the files written; "
        + 'each BAR with its kind and size ("zero-filled" when not captured); notes on what the copy lacks; and '
        + "the 'xpci export --sysfs-root' command that serves it.",
      '  --json: {out, bdf, deviceDir, configBytes, configSize, bars: [{index, kind, size, captured}], files, notes}.',
      '',
      'Exit status: 0 success; 1 no such function under --sysfs-root, DIR already holds this BDF, --with-bars '
        + 'for a function bound to a driver, or a read or write failed (e.g. --with-bars without root); 2 bad BDF, no --out, or bad option.',
    ].join('\n')) as unknown as Argv<SnapshotArgs>,
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
