#!/usr/bin/env -S node --max-semi-space-size=1 --single-threaded
/**
 * xpci command line (src/cli/program.ts runs it). The shebang's flags keep a backend small
 * (measured by `npm run bench`): a 1 MiB young generation, because its per-request path allocates
 * almost nothing and V8's default semi-spaces (up to 16 MiB each) would otherwise be the largest
 * part of its resident memory; and no V8 helper threads (each with its own stacks and heaps),
 * because the backend serves one frontend on one event loop and has nothing for them to do in
 * parallel.
 */
import { runCli } from './program.js';

process.exitCode = await runCli(process.argv.slice(2));
