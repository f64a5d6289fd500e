/**
 * The xpci program: one call of the CLI from its words to its exit status. A well-formed line of a
 * known command is parsed without yargs (src/cli/direct-parse.ts); anything else — help,
 * completion, usage errors, every form the direct parser does not fully understand — goes through
 * yargs, loaded only then. Each command lives in src/cli/commands/<name>.ts and exports a yargs
 * CommandModule; this file wires them together and owns the exit-status convention and the option
 * rules (src/cli/option-rules.ts).
 */
import type { Argv, CommandModule } from 'yargs';
import { describeError, exitCodeFor, UsageError } from './errors.js';
import { loadCommands } from './commands/index.js';
import { parseDirect, recordCommand } from './direct-parse.js';
import { lastOccurrenceWins, oneValuePerOccurrence, optionTable, positionalNames, unknownOptions, type OptionTable } from './option-rules.js';

type AnyCommand = CommandModule<any, any>;

export interface ProgramOptions {
  /** the command modules (default: those `argv` needs, from src/cli/commands/) */
  commands?: AnyCommand[];
  /** false: always parse with yargs (the equivalence test compares both) */
  direct?: boolean;
}

export async function runCli(argv: string[], options: ProgramOptions = {}): Promise<number> {
  const commands = options.commands ?? await loadCommands(argv);
  if (options.direct !== false) {
    const command = commands.find((c) => String(c.command).split(' ')[0] === argv[0]);
    const spec = command && recordCommand(command);
    const args = spec ? parseDirect(spec, argv) : null;
    if (command && args) return runHandler(() => command.handler(args as never));
  }
  return runWithYargs(argv, commands);
}

async function runHandler(handler: () => void | Promise<void>): Promise<number> {
  try {
    await handler();
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (error) {
    return reportFailure(describeError(error), exitCodeFor(error));
  }
}

/** One line always: yargs joins some messages (e.g. invalid choices) with newlines. */
function reportFailure(message: string, status: number): number {
  process.stderr.write(`xpci: ${message.replace(/\s*\n\s*/g, '; ')}\n`);
  return status;
}

async function runWithYargs(argv: string[], loaded: AnyCommand[]): Promise<number> {
  const { default: yargs } = await import('yargs');
  let usageFailure: string | undefined;
  // The options of the command being parsed, captured when yargs runs its builder.
  let commandOptions: OptionTable | undefined;
  const capture = (command: AnyCommand): AnyCommand => {
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
  const parser = yargs(argv)
    .scriptName('xpci')
    .usage('xpci <command> [options]\n\nUserspace PCI backend/frontend: export host PCI devices over a Unix-socket request ring.')
    .command(loaded.map(capture))
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
    return usageFailure === undefined ? reportFailure(describeError(error), exitCodeFor(error)) : reportFailure(usageFailure, 2);
  }
}
