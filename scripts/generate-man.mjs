#!/usr/bin/env node
// Generate man/xpci.1 from the CLI's own help text (xpci --help and xpci COMMAND --help), so the
// man page says exactly what --help says. Run after `npm run build`:
//   node scripts/generate-man.mjs > man/xpci.1
// test/unit/man-page.test.ts fails when the committed page is not current.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const cli = `${repo}dist/src/cli/main.js`;
const { commandNames } = await import(`${repo}dist/src/cli/commands/index.js`);
const { version, description } = JSON.parse(readFileSync(`${repo}package.json`, 'utf8'));

// Fixed width and no colour: the page must not depend on the terminal it was made in.
const help = (args) => execFileSync(process.execPath, [cli, ...args, '--help'], { encoding: 'utf8', env: { ...process.env, COLUMNS: '100', FORCE_COLOR: '0' } });

/** Text shown verbatim: roff's escape character doubled, control characters at line starts defused. */
const verbatim = (text) => ['.nf', ...text.trimEnd().split('\n').map((line) => line.replace(/\\/g, '\\e').replace(/^([.'])/, '\\&$1')), '.fi'].join('\n');

const page = [
  `.TH XPCI 1 "" "xpci ${version}" "User Commands"`,
  '.SH NAME',
  `xpci \\- ${description.replace(/\\/g, '\\e').replace(/-/g, '\\-')}`,
  '.SH SYNOPSIS',
  '.B xpci',
  '.I command',
  '[options]',
  '.SH DESCRIPTION',
  verbatim(help([])),
  '.SH COMMANDS',
  ...commandNames.flatMap((name) => [`.SS ${name}`, verbatim(help([name]))]),
  '.SH SEE ALSO',
  '.BR lspci (8),',
  '.BR setpci (8);',
  'docs/ in the package: protocol.md, architecture.md, security.md, operations.md, frontend-api.md, qemu.md.',
  '',
].join('\n');
process.stdout.write(page);
