/** Every CLI command, in the order `xpci --help` lists them. */
import type { CommandModule } from 'yargs';
import { listCommand } from './list.js';
import { exportCommand } from './export.js';
import { lspciCommand } from './lspci.js';
import { setpciCommand } from './setpci.js';
import { barCommand } from './bar.js';
import { assignableAddCommand, assignableRemoveCommand, assignableListCommand } from './assignable.js';
import { attachCommand, detachCommand } from './hotplug.js';
import { snapshotCommand } from './snapshot.js';

// yargs' CommandModule generics differ per command; the array only needs the common shape.
export const commands: CommandModule<any, any>[] = [
  listCommand,
  exportCommand,
  lspciCommand,
  setpciCommand,
  barCommand,
  assignableAddCommand,
  assignableRemoveCommand,
  assignableListCommand,
  attachCommand,
  detachCommand,
  snapshotCommand,
];
