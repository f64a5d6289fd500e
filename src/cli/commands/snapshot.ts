// PLACEHOLDER: replaced by the owner of this command.
import type { CommandModule } from 'yargs';
import { RuntimeError } from '../errors.js';
export const snapshotCommand: CommandModule = { command: 'snapshot', describe: 'not yet implemented', handler: () => { throw new RuntimeError('snapshot: not yet implemented'); } };
