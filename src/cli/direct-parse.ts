/**
 * A well-formed command line, parsed without loading yargs. yargs (with cliui, y18n, string-width)
 * costs a long-running backend ~14 MiB of resident memory and every CLI call tens of milliseconds
 * (`npm run bench` measures both), yet it is only needed to print help, completions and usage
 * errors. So each command's own yargs builder is run against a recorder that notes its options and
 * positionals, and the words are parsed here — for the forms this parser fully understands. Any
 * other word (help, an unknown or malformed option, a missing required value, `--`, an attached
 * short value) makes it answer `null`, and the caller hands the whole line to yargs, which then
 * accepts or refuses it as it always did. test/unit/cli-direct-parse.test.ts checks that both
 * parsers give the same arguments for every option of every command.
 */
import type { CommandModule } from 'yargs';
import { positionalNames } from './option-rules.js';

type Kind = 'string' | 'boolean' | 'number' | 'count';

interface OptionSpec {
  kind: Kind;
  array: boolean;
  default?: unknown;
  demand: boolean;
  choices?: readonly unknown[];
}

interface CommandSpec {
  options: Map<string, OptionSpec>;
  /** positional names in order, and whether the last one is variadic (`[name..]`) */
  positionals: { name: string; required: boolean; variadic: boolean; spec?: OptionSpec }[];
}

/** Builder calls that only shape help text. */
const HELP_ONLY = new Set(['usage', 'example', 'epilogue', 'epilog']);
const SUPPORTED_KEYS = new Set(['type', 'array', 'default', 'demandOption', 'requiresArg', 'describe', 'description', 'choices']);

class Unsupported extends Error {}

function optionSpec(settings: Record<string, unknown>): OptionSpec {
  for (const key of Object.keys(settings)) if (!SUPPORTED_KEYS.has(key)) throw new Unsupported(key);
  const kind = settings.type as Kind | undefined;
  if (kind !== 'string' && kind !== 'boolean' && kind !== 'number' && kind !== 'count') throw new Unsupported(String(kind));
  return {
    kind,
    array: settings.array === true,
    default: settings.default,
    demand: settings.demandOption === true,
    choices: settings.choices as readonly unknown[] | undefined,
  };
}

/** What a command's builder declares, recorded without yargs; null when it uses more than the recorder knows. */
export function recordCommand(command: CommandModule<any, any>): CommandSpec | null {
  const options = new Map<string, OptionSpec>();
  const positionalSpecs = new Map<string, OptionSpec>();
  const recorder: any = new Proxy({}, {
    get: (_target, method: string) => (...args: unknown[]) => {
      if (method === 'option' || method === 'positional') {
        const [name, settings] = args as [string, Record<string, unknown>];
        (method === 'option' ? options : positionalSpecs).set(name, optionSpec(settings));
      } else if (!HELP_ONLY.has(method)) {
        throw new Unsupported(method);
      }
      return recorder;
    },
  });
  try {
    if (typeof command.builder === 'function') command.builder(recorder);
    else if (command.builder !== undefined) return null;
  } catch (error) {
    if (error instanceof Unsupported) return null;
    throw error;
  }
  const text = String(command.command);
  const positionals = positionalNames(text).map((name) => ({
    name,
    required: text.includes(`<${name}`),
    variadic: text.includes(`${name}..`),
    spec: positionalSpecs.get(name),
  }));
  return { options, positionals };
}

const camel = (name: string): string => name.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
/** yargs-parser's number syntax for the forms accepted here: decimal or 0x hex. */
const NUMBER = /^(?:\d+|0x[0-9a-f]+)$/i;
const isValueWord = (word: string | undefined): word is string => word !== undefined && (word === '-' || !word.startsWith('-'));
/** Words yargs turns into numbers where no type says otherwise. */
const NUMERIC_LOOKING = /^(?:0x[0-9a-f]+|[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)$/i;

/**
 * The arguments yargs would hand the command's handler for `words` (the command name first), or
 * null when the line is not one this parser fully understands.
 */
export function parseDirect(spec: CommandSpec, words: readonly string[]): Record<string, unknown> | null {
  const values = new Map<string, unknown>();
  const rest: string[] = [];
  const set = (name: string, option: OptionSpec, raw: string | true): boolean => {
    let value: unknown;
    if (option.kind === 'count') value = ((values.get(name) as number | undefined) ?? 0) + 1;
    else if (option.kind === 'boolean') value = raw;
    else if (raw === true) return false;
    else if (option.kind === 'number') {
      if (!NUMBER.test(raw)) return false;
      value = Number(raw);
    } else value = raw;
    if (option.choices && !option.choices.includes(value)) return false;
    if (option.array) values.set(name, [...((values.get(name) as unknown[] | undefined) ?? []), value]);
    else values.set(name, value); // the last occurrence wins, as in pciutils
    return true;
  };
  for (let i = 1; i < words.length; i++) {
    const word = words[i];
    if (word.startsWith('--')) {
      const [name, attached] = word.slice(2).split(/=(.*)/s, 2);
      const option = spec.options.get(name);
      if (option === undefined) {
        const negated = name.startsWith('no-') ? spec.options.get(name.slice(3)) : undefined;
        if (negated?.kind !== 'boolean' || attached !== undefined) return null;
        values.set(name.slice(3), false);
        continue;
      }
      if (option.kind === 'boolean' || option.kind === 'count') {
        // `--flag true` and `--flag=x` mean things to yargs that this parser does not repeat.
        if (attached !== undefined || words[i + 1] === 'true' || words[i + 1] === 'false') return null;
        if (!set(name, option, true)) return null;
      } else if (attached !== undefined) {
        if (!set(name, option, attached)) return null;
      } else {
        if (!isValueWord(words[i + 1]) || !set(name, option, words[++i])) return null;
      }
    } else if (word.startsWith('-') && word.length > 1) {
      const letters = word.slice(1);
      const single = letters.length === 1 ? spec.options.get(letters) : undefined;
      if (single && (single.kind === 'string' || single.kind === 'number')) {
        if (!isValueWord(words[i + 1]) || !set(letters, single, words[++i])) return null;
        continue;
      }
      // A group of flags or counts: -vv, -nn, -xxx, -vD.
      for (const letter of letters) {
        const option = spec.options.get(letter);
        if (option === undefined || (option.kind !== 'boolean' && option.kind !== 'count')) return null;
        if (words[i + 1] === 'true' || words[i + 1] === 'false') return null;
        set(letter, option, true);
      }
    } else {
      rest.push(word);
    }
  }
  const args: Record<string, unknown> = { _: [words[0]] };
  const assign = (name: string, value: unknown): void => {
    args[name] = value;
    if (camel(name) !== name) args[camel(name)] = value;
  };
  for (const [name, option] of spec.options) {
    const value = values.has(name) ? values.get(name) : option.default;
    if (value === undefined) {
      if (option.demand) return null;
      if (option.kind === 'count') assign(name, 0);
      continue;
    }
    assign(name, value);
  }
  if (rest.some((word) => NUMERIC_LOOKING.test(word)) && spec.positionals.some((p) => p.spec?.kind !== 'string')) return null;
  for (const positional of spec.positionals) {
    if (positional.spec && positional.spec.kind !== 'string') return null;
    if (positional.variadic) {
      if (positional.required && rest.length === 0) return null;
      assign(positional.name, rest.splice(0));
    } else if (rest.length > 0) {
      assign(positional.name, rest.shift());
    } else if (positional.required) {
      return null;
    }
  }
  if (rest.length > 0) return null; // strict: a word no positional takes
  args.$0 = 'xpci';
  return args;
}
