/**
 * Every option of every command, given twice, behaves as in pciutils: the last one wins (a list
 * option keeps both), or the command line is refused as usage (exit 2) in one clear line. Commands
 * and options come from the yargs definitions themselves, so a new option is covered without
 * touching this file. Every run points at paths that do not exist (sysfs root, socket, state
 * directory) so nothing on this host is read or changed.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yargs, { type Argv } from 'yargs';
import { commandNames, loadCommands } from '../../src/cli/commands/index.js';
import { optionTable, type OptionTable } from '../../src/cli/option-rules.js';
import { buildConfigImage, createFixtureTree, type FixtureTree } from '../support/fixture-sysfs.js';
import { runXpci, type XpciResult } from '../support/xpci-process.js';

interface CommandShape {
  name: string;
  positionals: { name: string; required: boolean }[];
  table: OptionTable;
}

/** Commands with their positionals (from the command string) and options (from the builder). */
async function commandShapes(): Promise<CommandShape[]> {
  const modules = await loadCommands([]);
  return modules.map((module) => {
    const [name, ...words] = String(module.command).split(' ');
    const built = (module.builder as (y: Argv<unknown>) => Argv<unknown>)(yargs([]));
    return {
      name,
      positionals: words.map((word) => ({ name: word.replace(/[<>[\].]/g, ''), required: word.startsWith('<') })),
      table: optionTable(built),
    };
  });
}

const GLOBAL_OPTIONS = new Set(['help', 'version']);
/** Safe sample positionals: a function no test host has (bus ff), and single operations. */
const POSITIONAL_SAMPLES: Record<string, string> = { bdf: 'ff:1f.7', devices: 'ff:1f.7', operations: '0.w' };
const flag = (name: string): string => (name.length === 1 ? `-${name}` : `--${name}`);

let scratch: string;
let env: NodeJS.ProcessEnv;
let shapes: CommandShape[];
let fixture: FixtureTree;

/** The options every run sets to harmless places, unless that option is the one under test. */
function baseOptions(shape: CommandShape, tested: string): string[] {
  const defaults: Record<string, string> = {
    'sysfs-root': join(scratch, 'no-sysfs'),
    connect: join(scratch, 'no-socket'),
    socket: join(scratch, 'no-socket'),
    control: join(scratch, 'no-socket.ctl'),
    'state-dir': join(scratch, 'state'),
    out: join(scratch, 'out'),
    s: '00:00.0',
  };
  return Object.entries(defaults).filter(([name]) => name !== tested && name in shape.table.key).flatMap(([name, value]) => [flag(name), value]);
}

function twice(shape: CommandShape, option: string): string[] {
  const { table } = shape;
  if (table.boolean.includes(option) || table.count.includes(option)) return [flag(option), flag(option)];
  return [flag(option), join(scratch, 'first'), flag(option), join(scratch, 'second')];
}

function assertNoCrash(r: XpciResult, what: string): void {
  assert.ok(r.status === 0 || r.status === 1 || r.status === 2, `${what}: exit ${r.status}\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /TypeError|ReferenceError|is not a function|must be of type|instance of Array|\n\s+at /, `${what}: ${r.stderr}`);
  for (const line of r.stderr.split('\n').filter(Boolean)) assert.match(line, /^xpci:/, `${what}: stray stderr line ${JSON.stringify(line)}`);
  if (r.status === 2) assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, `${what}: a usage error is one line: ${r.stderr}`);
}

describe('options given twice', () => {
  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'xpci-options-'));
    const fakeBin = join(scratch, 'bin');
    mkdirSync(fakeBin);
    writeFileSync(join(fakeBin, 'modprobe'), '#!/bin/sh\necho "fake modprobe refused: $*" >&2\nexit 1\n');
    chmodSync(join(fakeBin, 'modprobe'), 0o755);
    env = { PATH: `${fakeBin}:${process.env.PATH}`, XPCI_SOCKET: join(scratch, 'no-socket'), XPCI_STATE_DIR: join(scratch, 'state') };
    shapes = await commandShapes();
    fixture = createFixtureTree([{ address: '0000:00:03.0', config: buildConfigImage({ vendor: 0x8086, device: 0x100e, classCode: 0x020000 }) }]);
  });
  after(() => {
    rmSync(scratch, { recursive: true, force: true });
    fixture.cleanup();
  });

  test('the definitions cover every registered command', () => {
    assert.deepEqual(shapes.map((s) => s.name), [...commandNames]);
    assert.ok(shapes.every((s) => Object.keys(s.table.key).some((key) => !GLOBAL_OPTIONS.has(key))));
  });

  test('every option of every command given twice: last wins (lists keep both) or one usage line', async () => {
    const runs: { what: string; args: string[]; list: boolean }[] = [];
    for (const shape of shapes) {
      const positionals = new Set(shape.positionals.map((p) => p.name));
      const required = shape.positionals.filter((p) => p.required).map((p) => POSITIONAL_SAMPLES[p.name] ?? 'ff:1f.7');
      for (const option of Object.keys(shape.table.key)) {
        if (GLOBAL_OPTIONS.has(option) || positionals.has(option)) continue;
        const args = [shape.name, ...twice(shape, option), ...baseOptions(shape, option), ...required];
        runs.push({ what: `xpci ${args.join(' ')}`, args, list: shape.table.array.includes(option) });
      }
    }
    assert.ok(runs.length > 40, `only ${runs.length} options found`);
    const queue = [...runs];
    const worker = async (): Promise<void> => {
      for (let run = queue.shift(); run; run = queue.shift()) {
        const r = await runXpci(run.args, env);
        assertNoCrash(r, run.what);
        // The first value never wins: it is neither reported nor created (a list keeps it, as it should).
        if (!run.list) {
          assert.doesNotMatch(r.stdout + r.stderr, /\/first\b/, `${run.what}: the first value was used`);
          assert.equal(existsSync(join(scratch, 'first')), false, `${run.what}: created the first value`);
        }
      }
    };
    await Promise.all([worker(), worker(), worker()]);
  });

  test('the last value is the one used', async () => {
    const r = await runXpci(['list', '--json', '--sysfs-root', join(scratch, 'first'), '--sysfs-root', fixture.root, '-s', 'ff:', '-s', '00:03.0'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { bdf: string }[]).map((d) => d.bdf), ['0000:00:03.0']);
  });

  test('an unknown flag is named and never takes the positional after it as its value', async () => {
    const r = await runXpci(['attach', '--frobnicate', '00:03.0', '--control', join(scratch, 'no-socket.ctl')], env);
    assert.equal(r.status, 2);
    assert.equal(r.stderr, "xpci: unknown option --frobnicate for 'xpci attach' (see xpci attach --help)\n");
    const short = await runXpci(['list', '-q', '--sysfs-root', fixture.root], env);
    assert.equal(short.status, 2);
    assert.equal(short.stderr, "xpci: unknown option -q for 'xpci list' (see xpci list --help)\n");
  });

  test('a boolean flag before a positional leaves the positional alone', async () => {
    const r = await runXpci(['attach', '--verbose-request', '00:03.0', '--control', join(scratch, 'no-socket.ctl')], env);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /no control socket at .*no-socket\.ctl/);
  });
});
