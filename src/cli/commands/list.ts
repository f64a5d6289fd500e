// PLACEHOLDER: replaced by the owner of this command.
import type { CommandModule } from 'yargs';
import { RuntimeError } from '../errors.js';
export const listCommand: CommandModule = { command: 'list', describe: 'not yet implemented', handler: () => { throw new RuntimeError('list: not yet implemented'); } };
