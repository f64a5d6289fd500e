#!/usr/bin/env node
/**
 * xpci command line. Each command lives in src/cli/commands/<name>.ts and exports a yargs
 * CommandModule; this file only wires them together and owns the exit-status convention.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { describeError, exitCodeFor, UsageError } from './errors.js';
import { loadCommands } from './commands/index.js';

export async function main(argv: string[]): Promise<number> {
  let usageFailure: string | undefined;
  const commands = await loadCommands(argv);
  const parser = yargs(argv)
    .scriptName('xpci')
    .usage('xpci <command> [options]\n\nUserspace PCI backend/frontend: export host PCI devices over a Unix-socket request ring.')
    .command(commands)
    .demandCommand(1, 'no command given; see xpci --help')
    .strict()
    .recommendCommands()
    .completion('completion', 'print a bash/zsh completion script for xpci (xpci completion >> ~/.bashrc)')
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .epilogue('Exit status: 0 success, 1 runtime failure (device absent, sysfs missing, permission), 2 bad usage.\nSee docs/ for the protocol, architecture and security model.')
    .exitProcess(false)
    .fail((message, error) => {
      // yargs reports its own parse problems (e.g. an option missing its value) as a YError.
      if (error && error.name !== 'YError') throw error;
      usageFailure = message ?? error?.message;
      throw new UsageError(usageFailure ?? 'bad usage');
    });
  try {
    await parser.parseAsync(argv);
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (error) {
    // One line always: yargs joins some messages (e.g. invalid choices) with newlines.
    const message = (usageFailure ?? describeError(error)).replace(/\s*\n\s*/g, '; ');
    process.stderr.write(`xpci: ${message}\n`);
    return usageFailure === undefined ? exitCodeFor(error) : 2;
  }
}

const status = await main(hideBin(process.argv));
process.exitCode = status;
