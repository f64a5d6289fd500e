/**
 * How the CLI treats options beyond what yargs does on its own, as pciutils does:
 * - an option given twice: the last one wins (yargs would collect both into an array, which each
 *   command would then misread); options declared `array: true` (repeatable lists) and counts keep
 *   every occurrence;
 * - an option the command does not know is a usage error naming it, reported before anything else
 *   (yargs would let it take the next word as its value, e.g. a BDF, and then complain about a
 *   missing positional instead).
 */
import type { Argv } from 'yargs';

/** What yargs' getOptions() says about a built command; only the parts read here. */
export interface OptionTable {
  key: Record<string, unknown>;
  array: string[];
  boolean: string[];
  count: string[];
  alias: Record<string, string[]>;
}

export const optionTable = (yargs: Argv<unknown>): OptionTable => (yargs as unknown as { getOptions(): OptionTable }).getOptions();

const kebab = (name: string): string => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

function namesOf(table: OptionTable, keys: readonly string[]): Set<string> {
  const names = new Set<string>();
  for (const key of keys) {
    names.add(key);
    for (const alias of table.alias[key] ?? []) names.add(alias);
  }
  return names;
}

/** Keep the last occurrence of every option that is not a list or a count. Mutates and returns `argv`. */
export function lastOccurrenceWins<T extends Record<string, unknown>>(argv: T, table: OptionTable): T {
  const lists = namesOf(table, [...table.array, ...table.count]);
  for (const [key, value] of Object.entries(argv)) {
    if (key === '_' || key === '$0' || !Array.isArray(value) || value.length === 0) continue;
    if (lists.has(key) || lists.has(kebab(key))) continue;
    (argv as Record<string, unknown>)[key] = value[value.length - 1];
  }
  return argv;
}

/** The options on the command line that `table` does not define, as typed (`--frob`, `-q`). */
export function unknownOptions(words: readonly string[], table: OptionTable): string[] {
  const known = namesOf(table, Object.keys(table.key));
  const booleans = namesOf(table, table.boolean);
  const unknown: string[] = [];
  for (const word of words) {
    if (word === '--') break;
    if (word.startsWith('--')) {
      const name = word.slice(2).split('=')[0];
      const negated = name.startsWith('no-') && booleans.has(name.slice(3));
      if (!known.has(name) && !negated) unknown.push(`--${name}`);
    } else if (/^-[A-Za-z]$/.test(word) && !known.has(word[1])) {
      unknown.push(word);
    }
  }
  return [...new Set(unknown)];
}

