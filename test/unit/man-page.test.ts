/**
 * man/xpci.1 is generated from the help text (scripts/generate-man.mjs): the committed page must be
 * what the generator makes from the current CLI, and it must cover every command. Also the shell
 * completion script yargs generates, which `xpci completion` prints.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { commandNames } from '../../src/cli/commands/index.js';
import { runXpci } from '../support/xpci-process.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

test('man/xpci.1 is current: regenerate with node scripts/generate-man.mjs > man/xpci.1', () => {
  const generated = execFileSync(process.execPath, [`${REPO}scripts/generate-man.mjs`], { encoding: 'utf8' });
  const committed = readFileSync(`${REPO}man/xpci.1`, 'utf8');
  assert.equal(committed, generated);
  for (const name of commandNames) assert.match(committed, new RegExp(`^\\.SS ${name}$`, 'm'), `a section for ${name}`);
  const manifest = JSON.parse(readFileSync(`${REPO}package.json`, 'utf8')) as { man: string[]; files: string[] };
  assert.deepEqual(manifest.man, ['man/xpci.1'], 'npm link installs it');
  assert.ok(manifest.files.includes('man'), 'the package ships it');
});

test('xpci completion prints a bash completion script that completes xpci', async () => {
  const r = await runXpci(['completion']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /complete -o bashdefault -o default -F _xpci_yargs_completions xpci/);
  const commands = await runXpci(['--get-yargs-completions', 'xpci', '']);
  for (const name of commandNames) assert.match(commands.stdout, new RegExp(`^${name}$`, 'm'));
});
