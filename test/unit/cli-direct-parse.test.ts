/**
 * The direct parser (src/cli/direct-parse.ts) must hand every command's handler exactly what yargs
 * would: for each command, each of its options alone (every kind, repeated, negated, grouped) and
 * its positionals are parsed both ways and compared. Lines it does not fully understand must be
 * left to yargs (null), and a CLI call of a well-formed line must not load yargs at all.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { CommandModule } from 'yargs';
import { loadCommands, commandNames } from '../../src/cli/commands/index.js';
import { parseDirect, recordCommand } from '../../src/cli/direct-parse.js';
import { runCli } from '../../src/cli/program.js';
import { positionalNames } from '../../src/cli/option-rules.js';

type AnyCommand = CommandModule<any, any>;

/** The arguments yargs hands `command`'s handler for `argv` (the handler itself does not run). */
async function yargsArgs(command: AnyCommand, argv: string[]): Promise<Record<string, unknown> | string> {
  let captured: Record<string, unknown> | undefined;
  const realErr = process.stderr.write;
  let stderr = '';
  process.stderr.write = ((chunk: string) => ((stderr += chunk), true)) as typeof process.stderr.write;
  try {
    process.exitCode = undefined;
    await runCli(argv, { direct: false, commands: [{ ...command, handler: (args: Record<string, unknown>) => { captured = { ...args }; } }] });
  } finally {
    process.stderr.write = realErr;
    process.exitCode = undefined;
  }
  return captured ?? `yargs refused: ${stderr.trim()}`;
}

interface Declared { name: string; kind: string; array: boolean; demand: boolean; choices?: readonly unknown[] }

/** The options a builder declares, through the recorder's view of the builder. */
function declaredOptions(command: AnyCommand): Declared[] {
  const found: Declared[] = [];
  const recorder: any = new Proxy({}, {
    get: (_t, method: string) => (...args: any[]) => {
      if (method === 'option') found.push({ name: args[0], kind: args[1].type, array: args[1].array === true, demand: args[1].demandOption === true, choices: args[1].choices });
      return recorder;
    },
  });
  (command.builder as (y: unknown) => unknown)(recorder);
  return found;
}

const flag = (name: string): string => (name.length === 1 ? `-${name}` : `--${name}`);

/** Well-formed lines exercising every option of `command`. */
function linesFor(name: string, command: AnyCommand): string[][] {
  const options = declaredOptions(command);
  const value = (o: Declared, n = 0): string => (o.choices ? String(o.choices[n % o.choices.length]) : o.kind === 'number' ? ['42', '0x10'][n % 2] : ['00:03.0', 'abc'][n % 2]);
  const base = [name, ...options.filter((o) => o.demand).flatMap((o) => [flag(o.name), value(o)])];
  const positionals = positionalNames(String(command.command));
  const withPositionals = positionals.length > 0 ? [...base, '06:01.0', 'COMMAND.w=0x5'].slice(0, base.length + (String(command.command).includes('..') ? 2 : 1)) : base;
  const lines: string[][] = [base, withPositionals];
  for (const o of options) {
    if (o.kind === 'boolean') lines.push([...withPositionals, flag(o.name)], [...withPositionals, flag(o.name), flag(o.name)]);
    if (o.kind === 'boolean' && o.name.length > 1) lines.push([...withPositionals, `--no-${o.name}`], [...withPositionals, flag(o.name), `--no-${o.name}`]);
    if (o.kind === 'count') lines.push([...withPositionals, flag(o.name)], [...withPositionals, flag(o.name), flag(o.name)], ...(o.name.length === 1 ? [[...withPositionals, `-${o.name}${o.name}${o.name}`]] : []));
    if (o.kind === 'string' || o.kind === 'number') {
      lines.push([...withPositionals, flag(o.name), value(o, 0)], [...withPositionals, flag(o.name), value(o, 0), flag(o.name), value(o, 1)]);
      if (o.name.length > 1) lines.push([...withPositionals, `--${o.name}=${value(o, 1)}`]);
    }
  }
  return lines;
}

test('every command: each option, repeated, negated and grouped, parses as yargs parses it', async () => {
  const commands = await loadCommands([]);
  let compared = 0;
  for (const [index, command] of commands.entries()) {
    const name = commandNames[index];
    const spec = recordCommand(command);
    assert.ok(spec, `${name}: its builder uses only what the recorder knows`);
    for (const line of linesFor(name, command)) {
      const expected = await yargsArgs(command, line);
      if (typeof expected === 'string') {
        assert.equal(parseDirect(spec, line), null, `${line.join(' ')}: yargs refuses it (${expected}), so the direct parser must leave it to yargs`);
        continue;
      }
      assert.deepEqual(parseDirect(spec, line), expected, line.join(' '));
      compared++;
    }
  }
  assert.ok(compared > 150, `compared ${compared} lines`);
});

test('lines the direct parser leaves to yargs: help, unknown or malformed options, missing values, --', async () => {
  const [lspci] = await loadCommands(['lspci']);
  const [exportCommand] = await loadCommands(['export']);
  const [snapshot] = await loadCommands(['snapshot']);
  const cases: [AnyCommand, string[]][] = [
    [lspci, ['lspci', '--help']], [lspci, ['lspci', '-h']], [lspci, ['lspci', '--frob']], [lspci, ['lspci', '-s']],
    [lspci, ['lspci', '-s00:03.0']], [lspci, ['lspci', '-vq']], [lspci, ['lspci', '--json=false']], [lspci, ['lspci', '--json', 'true']],
    [lspci, ['lspci', 'extra']], [exportCommand, ['export', '--', '06:01.0']], [exportCommand, ['export', '--dma-limit', '1e6']],
    [exportCommand, ['export', '--socket', '--json']], [exportCommand, ['export', '--readOnly']], [snapshot, ['snapshot', '06:01.0']],
  ];
  for (const [command, line] of cases) assert.equal(parseDirect(recordCommand(command)!, line), null, line.join(' '));
});

test('a well-formed CLI call never loads yargs; a usage error does', () => {
  const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
  // NODE_DEBUG=esm names every module the loader resolves.
  const loaded = (args: string[]): { yargs: boolean; stderr: string } => {
    const run = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', env: { ...process.env, NODE_DEBUG: 'esm' } });
    return { yargs: /node_modules\/yargs\//.test(run.stderr), stderr: run.stderr };
  };
  assert.equal(loaded(['lspci', '--connect', '/nonexistent/xpci.sock']).yargs, false);
  assert.equal(loaded(['lspci', '--frob']).yargs, true);
});
