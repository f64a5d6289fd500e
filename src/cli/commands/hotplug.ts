// PLACEHOLDER: replaced by the owner of this command.
import type { CommandModule } from 'yargs';
import { RuntimeError } from '../errors.js';
export const attachCommand: CommandModule = { command: 'attach', describe: 'not yet implemented', handler: () => { throw new RuntimeError('attach: not yet implemented'); } };
export const detachCommand: CommandModule = { command: 'detach', describe: 'not yet implemented', handler: () => { throw new RuntimeError('detach: not yet implemented'); } };
