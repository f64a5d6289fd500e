// PLACEHOLDER: replaced by the owner of this command.
import type { CommandModule } from 'yargs';
import { RuntimeError } from '../errors.js';
export const lspciCommand: CommandModule = { command: 'lspci', describe: 'not yet implemented', handler: () => { throw new RuntimeError('lspci: not yet implemented'); } };
