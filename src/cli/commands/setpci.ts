// PLACEHOLDER: replaced by the owner of this command.
import type { CommandModule } from 'yargs';
import { RuntimeError } from '../errors.js';
export const setpciCommand: CommandModule = { command: 'setpci', describe: 'not yet implemented', handler: () => { throw new RuntimeError('setpci: not yet implemented'); } };
