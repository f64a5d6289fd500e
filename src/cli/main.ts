#!/usr/bin/env -S node --max-semi-space-size=1 --single-threaded
/**
 * xpci command line. The shebang's flags keep a backend small (measured by `npm run bench`): a
 * 1 MiB young generation, because its per-request path allocates almost nothing and V8's default
 * semi-spaces (up to 16 MiB each) would otherwise be the largest part of its resident memory; and
 * no V8 helper threads (each with its own stacks and heaps), because the backend serves one
 * frontend on one event loop and has nothing for them to do in parallel. Each command lives in
 * src/cli/commands/<name>.ts and exports a yargs
 * CommandModule; this file only wires them together and owns the exit-status convention and the
 * option rules (src/cli/option-rules.ts).
 */
import yargs, { type Argv, type CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { describeError, exitCodeFor, UsageError } from './errors.js';
import { loadCommands } from './commands/index.js';
import { lastOccurrenceWins, oneValuePerOccurrence, optionTable, positionalNames, unknownOptions, type OptionTable } from './option-rules.js';

export async function main(argv: string[]): Promise<number> {
  let usageFailure: string | undefined;
  // The options of the command being parsed, captured when yargs runs its builder.
  let commandOptions: OptionTable | undefined;
  const capture = (command: CommandModule<any, any>): CommandModule<any, any> => {
    const builder = command.builder;
    if (typeof builder !== 'function') return command;
    return {
      ...command,
      builder: (y: Argv<any>) => {
        const built = (builder(y) ?? y) as Argv<any>;
        commandOptions = optionTable(built);
        return oneValuePerOccurrence(built, commandOptions, positionalNames(String(command.command)));
      },
    };
  };
  const commands = (await loadCommands(argv)).map(capture);
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
    .middleware((args) => void lastOccurrenceWins(args, commandOptions ?? optionTable(parser)), true)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .epilogue('Exit status: 0 success, 1 runtime failure (device absent, sysfs missing, permission), 2 bad usage.\nSee docs/ for the protocol, architecture and security model.')
    .exitProcess(false)
    .fail((message, error) => {
      // yargs reports its own parse problems (e.g. an option missing its value) as a YError.
      if (error && error.name !== 'YError') throw error;
      // An unknown option explains the rest (it may have taken a positional as its value).
      const unknown = unknownOptions(argv, commandOptions ?? optionTable(parser));
      const command = argv.find((word) => !word.startsWith('-'));
      usageFailure = unknown.length > 0
        ? `unknown option ${unknown.join(', ')}${commandOptions && command ? ` for 'xpci ${command}' (see xpci ${command} --help)` : ' (see xpci --help)'}`
        : message ?? error?.message;
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
