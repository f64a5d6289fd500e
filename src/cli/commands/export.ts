// PLACEHOLDER: replaced by the owner of this command.
import type { CommandModule } from 'yargs';
import { RuntimeError } from '../errors.js';
export const exportCommand: CommandModule = { command: 'export', describe: 'not yet implemented', handler: () => { throw new RuntimeError('export: not yet implemented'); } };
