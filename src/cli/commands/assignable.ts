// PLACEHOLDER: replaced by the owner of this command.
import type { CommandModule } from 'yargs';
import { RuntimeError } from '../errors.js';
export const assignableAddCommand: CommandModule = { command: 'assignable-add', describe: 'not yet implemented', handler: () => { throw new RuntimeError('assignable-add: not yet implemented'); } };
export const assignableRemoveCommand: CommandModule = { command: 'assignable-remove', describe: 'not yet implemented', handler: () => { throw new RuntimeError('assignable-remove: not yet implemented'); } };
export const assignableListCommand: CommandModule = { command: 'assignable-list', describe: 'not yet implemented', handler: () => { throw new RuntimeError('assignable-list: not yet implemented'); } };
