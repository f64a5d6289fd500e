// PLACEHOLDER: replaced by the owner of this command.
import type { CommandModule } from 'yargs';
import { RuntimeError } from '../errors.js';
export const barCommand: CommandModule = { command: 'bar', describe: 'not yet implemented', handler: () => { throw new RuntimeError('bar: not yet implemented'); } };
