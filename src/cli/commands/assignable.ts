/**
 * `xpci assignable-add|assignable-remove|assignable-list`: seize devices from host drivers onto
 * vfio-pci or pci-stub and give them back, like `xl pci-assignable-*`. The work is in
 * src/backend/lifecycle/assignable.ts; this file parses options and prints.
 */
import type { Argv, CommandModule } from 'yargs';
import { parseAddress } from '../../pci/address.js';
import { DEFAULT_SYSFS_ROOT } from '../../host/sysfs/paths.js';
import { resolveStateDir } from '../../backend/lifecycle/state-dir.js';
import {
  AssignableError, assignableAdd, assignableList, assignableRemove, type AssignableOutcome,
} from '../../backend/lifecycle/assignable.js';
import { XPCI_DRIVERS, type XpciDriver } from '../../backend/lifecycle/driver-binding.js';
import { RuntimeError } from '../errors.js';
import { stateDirFailure } from '../permission-errors.js';

interface DeviceArgs {
  bdf: string[];
  driver?: XpciDriver;
  'sysfs-root': string;
  'state-dir'?: string;
  json: boolean;
}

type ListArgs = Omit<DeviceArgs, 'bdf'>;

function commonOptions<T>(yargs: Argv<T>) {
  return yargs
    .option('sysfs-root', { type: 'string', default: DEFAULT_SYSFS_ROOT, describe: 'folder that contains bus/pci/ (devices/, drivers/, drivers_probe); a fixture tree in tests' })
    .option('state-dir', {
      type: 'string',
      describe: "state directory: records of seized devices (assignable/) and export locks (locks/); use the one 'xpci export' uses (default $XPCI_STATE_DIR, else /run/xpci)",
    })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object (fields below) instead of text' });
}

function deviceOptions<T>(yargs: Argv<T>) {
  return commonOptions(yargs).positional('bdf', { type: 'string', array: true, demandOption: true, describe: 'host PCI functions, [DDDD:]BB:DD.F (hex; domain 0000 when omitted)' });
}

function describeOutcome(o: AssignableOutcome): string {
  const from = o.originalDriver ?? 'no driver';
  const now = o.driver ?? 'no driver';
  const head = {
    seized: `seized: ${from} -> ${now}`,
    'already-held': `already held on ${now} (original driver: ${from})`,
    released: `released: now ${now} (original driver: ${from})`,
    'not-held': `not held by xpci (driver: ${now})`,
    failed: 'FAILED',
    'not-attempted': 'not attempted (an earlier device failed)',
  }[o.action];
  return [`${o.bdf}: ${head}`, ...o.notes.map((n) => `  note: ${n}`)].join('\n');
}

function print(outcomes: AssignableOutcome[], json: boolean): void {
  process.stdout.write(json ? JSON.stringify({ devices: outcomes }) + '\n' : outcomes.map(describeOutcome).join('\n') + '\n');
}

function run(args: DeviceArgs, operation: typeof assignableAdd): void {
  const addresses = args.bdf.map((text) => parseAddress(String(text)));
  const options = { sysfsRoot: args['sysfs-root'], stateDir: resolveStateDir(args['state-dir']), driver: args.driver };
  try {
    print(operation(addresses, options), args.json);
  } catch (error) {
    if (!(error instanceof AssignableError)) throw stateDirFailure(options.stateDir, error);
    print(error.outcomes, args.json);
    throw new RuntimeError(error.message);
  }
}

export const assignableAddCommand: CommandModule<object, DeviceArgs> = {
  command: 'assignable-add <bdf..>',
  describe: 'seize devices from their host drivers onto vfio-pci or pci-stub (original driver remembered)',
  builder: (yargs) => deviceOptions(yargs)
    .option('driver', {
      type: 'string',
      choices: XPCI_DRIVERS,
      describe: 'driver to park the functions on: vfio-pci (the export then offers interrupts, DMA and reset) '
        + 'or pci-stub (config space and BARs only); default vfio-pci for a function with an IOMMU group, else pci-stub',
    })
    .usage([
      'xpci assignable-add [--driver vfio-pci|pci-stub] [--sysfs-root DIR] [--state-dir DIR] [--json] BDF...',
      '',
      'Takes host PCI functions away from their host drivers and parks them on vfio-pci or pci-stub, so that '
        + "'xpci export' can serve them with full access; like 'xl pci-assignable-add'. Run it on the host, "
        + 'as root. For each function it first records the driver bound now (STATE-DIR/assignable/BDF.json), '
        + 'then sets driver_override to the holding driver, unbinds the host driver and re-probes; the holding '
        + "driver is loaded with modprobe when missing. 'xpci assignable-remove' gives the functions back.",
      '',
      'DANGER: this unbinds host drivers. A disk controller, network card or GPU the host is using is gone '
        + 'from the host at once, with its file systems, links or display: never run it on a device the host '
        + "needs. 'xpci list' shows which driver owns each device.",
    ].join('\n'))
    .example('xpci assignable-add 06:01.0', 'park one function on vfio-pci (pci-stub without an IOMMU), remembering its driver')
    .example('xpci assignable-add --driver pci-stub 06:01.0', 'config space and BARs only, never VFIO')
    .example('xpci assignable-add 06:01.0 06:01.1', 'the functions of one slot (or IOMMU group) together')
    .example('xpci assignable-add --json 0000:06:01.0', 'the outcome as one JSON object')
    .epilogue([
      'REFUSED, NOTHING CHANGED',
      '  Bridges (their owner controls every device behind them), and any function whose IOMMU group (or, '
        + 'without IOMMU groups, whose slot) has other functions in host use not named in the same command: '
        + 'functions that can reach each other by DMA leave the host together.',
      '',
      'ORDER AND FAILURES',
      '  Functions are handled slot by slot, function 0 of each slot last. At the first failure the rest are '
        + 'not attempted, and every outcome is printed before the error. Every step is idempotent: running the '
        + 'command again finishes an interrupted run, and a function already held is left alone. A failed seize '
        + 'is rolled back (driver_override cleared, the function re-probed) and leaves no record, unless the '
        + 'function could not be put back on its driver. On a fixture tree (--sysfs-root) modprobe is never run. A function '
        + "locked by a running 'xpci export' fails: it is never pulled away from a live backend.",
      '',
      'OUTPUT',
      "  One line 'BDF: OUTCOME' per function, each followed by its notes as indented 'note:' lines:",
      "    seized: ORIG -> DRIVER  \twas on ORIG ('no driver': none), now on DRIVER (vfio-pci or pci-stub)",
      '    already held on DRIVER (...)  \tnothing to do; (...) names the original driver',
      '    FAILED  \tthe reason follows as a note and on stderr',
      '    not attempted (an earlier device failed)  \tnothing was done to it',
      '  --json: {"devices": [{bdf, action (seized|already-held|failed|not-attempted), originalDriver, '
        + 'driver (bound now), notes}]}.',
      '',
      'Exit status: 0 every function seized or already held; 1 a function is absent or refused, the holding '
        + 'driver is unavailable, permission denied (not root), a function is locked by a running export or did '
        + 'not bind to the holding driver; 2 bad BDF or option.',
    ].join('\n')) as unknown as Argv<DeviceArgs>,
  handler: (args) => run(args, assignableAdd),
};

export const assignableRemoveCommand: CommandModule<object, DeviceArgs> = {
  command: 'assignable-remove <bdf..>',
  describe: 'give seized devices back to their original drivers',
  builder: (yargs) => deviceOptions(yargs)
    .usage([
      'xpci assignable-remove [--sysfs-root DIR] [--state-dir DIR] [--json] BDF...',
      '',
      "Gives functions that 'xpci assignable-add' seized back to the host, like 'xl pci-assignable-remove'. "
        + 'Run it on the host, as root, once no export uses them. For each function it first writes back the command '
        + 'register, cache line size and interrupt line that a killed export left changed (from the register record '
        + 'the export keeps in STATE-DIR/registers/, which it then removes), then clears '
        + 'driver_override, unbinds vfio-pci or pci-stub, re-probes, checks that the driver recorded at seize time took '
        + 'the function, and then forgets the record. A function neither on vfio-pci/pci-stub nor recorded is left alone '
        + '(apart from that register repair).',
      '',
      'The host driver takes the device over again. A function a running export holds is refused (its lock): '
        + "stop the export, or 'xpci detach' the function, first. Careful: a function on vfio-pci or pci-stub is released "
        + 'even without an xpci record (parked there by another tool), and then goes to whichever host driver '
        + 'claims it.',
    ].join('\n'))
    .example('xpci assignable-remove 06:01.0', 'back to the driver it had before assignable-add')
    .example('xpci assignable-remove 06:01.0 06:01.1', 'a whole slot')
    .example('xpci assignable-remove --json 0000:06:01.0', 'the outcome as one JSON object')
    .epilogue([
      'ORDER AND FAILURES',
      '  The reverse of assignable-add: function 0 of each slot first. At the first failure the rest are not '
        + 'attempted, and every outcome is printed before the error. When the original driver does not bind '
        + '(its module is not loaded), the record is kept: modprobe the driver and run the command again. A '
        + 'function that is already back on a host driver only has its record forgotten.',
      '',
      'OUTPUT',
      "  One line 'BDF: OUTCOME' per function, each followed by its notes as indented 'note:' lines:",
      '    released: now DRIVER (original driver: ORIG)  \tDRIVER is what bound after the re-probe',
      '    not held by xpci (driver: DRIVER)  \tnothing to do',
      '    FAILED  \tthe reason follows as a note and on stderr',
      '    not attempted (an earlier device failed)  \tnothing was done to it',
      '  --json: {"devices": [{bdf, action (released|not-held|failed|not-attempted), originalDriver, '
        + 'driver (bound now), notes}]}.',
      '',
      'Exit status: 0 every function released or not held; 1 a function is absent, locked by a running '
        + 'export or not on its original driver after the re-probe, or permission denied (not root); '
        + '2 bad BDF or option.',
    ].join('\n')) as unknown as Argv<DeviceArgs>,
  handler: (args) => run(args, assignableRemove),
};

export const assignableListCommand: CommandModule<object, ListArgs> = {
  command: 'assignable-list',
  describe: 'list devices held by xpci, with their original drivers',
  builder: (yargs) => commonOptions(yargs)
    .usage([
      'xpci assignable-list [--state-dir DIR] [--sysfs-root DIR] [--json]',
      '',
      "Lists the functions that 'xpci assignable-add' seized and 'xpci assignable-remove' has not given "
        + 'back, from the records in STATE-DIR/assignable/, with the driver each is bound to now and the '
        + 'driver it came from. Safe anywhere: it only reads, and creates nothing. The state directory is '
        + 'mode 0700, so reading the default one normally needs root.',
    ].join('\n'))
    .example('xpci assignable-list', 'what xpci holds, per /run/xpci (or $XPCI_STATE_DIR)')
    .example('xpci assignable-list --json', 'the same as one JSON object')
    .example('xpci assignable-list --state-dir /tmp/xpci-state', 'the records of a test run')
    .epilogue([
      'OUTPUT',
      "  One line per function, by BDF: 'BDF  driver DRIVER  original ORIG  since TIME', TIME being when it "
        + 'was seized (ISO 8601) and (none) standing for no driver. A driver other than vfio-pci or pci-stub means '
        + "something rebound the function since. With nothing held: 'no devices held by xpci (state directory DIR)'.",
      '  --json: {"stateDir": DIR, "devices": [{bdf, originalDriver, driver (bound now), since, sysfsRoot}]}, '
        + 'sysfsRoot being the root the function was seized under.',
      '',
      'Exit status: 0 success, also when nothing is held; 1 the state directory or a record cannot be read; '
        + '2 bad option.',
    ].join('\n')) as unknown as Argv<ListArgs>,
  handler: (args) => {
    const stateDir = resolveStateDir(args['state-dir']);
    let held;
    try {
      held = assignableList(stateDir, args['sysfs-root']);
    } catch (error) {
      throw stateDirFailure(stateDir, error);
    }
    if (args.json) {
      process.stdout.write(JSON.stringify({ stateDir, devices: held }) + '\n');
      return;
    }
    if (held.length === 0) {
      process.stdout.write(`no devices held by xpci (state directory ${stateDir})\n`);
      return;
    }
    for (const d of held) {
      process.stdout.write(`${d.bdf}  driver ${d.driver ?? '(none)'}  original ${d.originalDriver ?? '(none)'}  since ${d.since}\n`);
    }
  },
};
