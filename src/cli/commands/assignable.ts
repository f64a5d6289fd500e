/**
 * `xpci assignable-add|assignable-remove|assignable-list`: seize devices from host drivers onto
 * pci-stub and give them back, like `xl pci-assignable-*`. The work is in
 * src/backend/lifecycle/assignable.ts; this file parses options and prints.
 */
import type { Argv, CommandModule } from 'yargs';
import { parseAddress } from '../../pci/address.js';
import { DEFAULT_SYSFS_ROOT } from '../../pci/sysfs-paths.js';
import { resolveStateDir } from '../../backend/lifecycle/state-dir.js';
import {
  AssignableError, assignableAdd, assignableList, assignableRemove, type AssignableOutcome,
} from '../../backend/lifecycle/assignable.js';
import { RuntimeError } from '../errors.js';

interface DeviceArgs {
  bdf: string[];
  'sysfs-root': string;
  'state-dir'?: string;
  json: boolean;
}

type ListArgs = Omit<DeviceArgs, 'bdf'>;

function commonOptions<T>(yargs: Argv<T>) {
  return yargs
    .option('sysfs-root', { type: 'string', default: DEFAULT_SYSFS_ROOT, describe: 'folder that contains bus/pci/devices/' })
    .option('state-dir', { type: 'string', describe: 'where seized devices are recorded (default $XPCI_STATE_DIR, else /run/xpci)' })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' });
}

function deviceOptions<T>(yargs: Argv<T>) {
  return commonOptions(yargs).positional('bdf', { type: 'string', array: true, demandOption: true, describe: 'PCI address [DDDD:]BB:DD.F' });
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
  const options = { sysfsRoot: args['sysfs-root'], stateDir: resolveStateDir(args['state-dir']) };
  try {
    print(operation(addresses, options), args.json);
  } catch (error) {
    if (!(error instanceof AssignableError)) throw error;
    print(error.outcomes, args.json);
    throw new RuntimeError(error.message);
  }
}

export const assignableAddCommand: CommandModule<object, DeviceArgs> = {
  command: 'assignable-add <bdf..>',
  describe: 'seize devices from their host drivers onto pci-stub (original driver remembered)',
  builder: (yargs) => deviceOptions(yargs) as unknown as Argv<DeviceArgs>,
  handler: (args) => run(args, assignableAdd),
};

export const assignableRemoveCommand: CommandModule<object, DeviceArgs> = {
  command: 'assignable-remove <bdf..>',
  describe: 'give seized devices back to their original drivers',
  builder: (yargs) => deviceOptions(yargs) as unknown as Argv<DeviceArgs>,
  handler: (args) => run(args, assignableRemove),
};

export const assignableListCommand: CommandModule<object, ListArgs> = {
  command: 'assignable-list',
  describe: 'list devices held by xpci, with their original drivers',
  builder: (yargs) => commonOptions(yargs) as unknown as Argv<ListArgs>,
  handler: (args) => {
    const stateDir = resolveStateDir(args['state-dir']);
    const held = assignableList(stateDir, args['sysfs-root']);
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
