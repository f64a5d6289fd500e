#!/usr/bin/env node
/**
 * Run one command in a throwaway test guest by hand:
 *   node dist/test/vm/harness/cli.js [-m e1000,e1000e] [-t 120] [--no-devices] [-s /abs/dir] -- 'lspci -nn'
 * Exit status: the command's, or 124 when it timed out, 125 when the guest crashed or hung.
 */
import { parseArgs } from 'node:util';
import { Guest } from './guest.js';
import { GuestCrashedError, GuestTimeoutError } from './errors.js';

const usage = 'usage: cli.js [-m|--modules mod,mod] [-t|--timeout seconds] [--no-devices] [-s|--share /abs/dir]... -- COMMAND';

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    options: {
      modules: { type: 'string', short: 'm' },
      timeout: { type: 'string', short: 't', default: '120' },
      'no-devices': { type: 'boolean', default: false },
      share: { type: 'string', short: 's', multiple: true },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: true,
  });
  if (values.help || positionals.length === 0) {
    process.stderr.write(`${usage}\n`);
    return values.help ? 0 : 2;
  }
  const timeoutMs = Number(values.timeout) * 1000;
  if (!(timeoutMs > 0)) {
    process.stderr.write(`cli.js: bad --timeout '${values.timeout}'\n${usage}\n`);
    return 2;
  }
  const guest = await Guest.boot({
    devices: { standard: !values['no-devices'] },
    modules: values.modules ? values.modules.split(',') : [],
    shares: values.share ?? [],
  });
  process.stderr.write(`[guest ${guest.kernelRelease} ready in ${guest.bootMs} ms]\n`);
  try {
    const result = await guest.exec(positionals.join(' '), { timeoutMs });
    process.stdout.write(result.stdout);
    process.stderr.write(result.stderr);
    return result.exitCode;
  } catch (error) {
    if (error instanceof GuestTimeoutError) {
      process.stdout.write(error.stdout);
      process.stderr.write(`${error.stderr}cli.js: ${error.message}\n`);
      return error.guestKilled ? 125 : 124;
    }
    if (error instanceof GuestCrashedError) {
      process.stderr.write(`cli.js: ${error.message}\n`);
      return 125;
    }
    throw error;
  } finally {
    await guest.shutdown();
  }
}

process.exitCode = await main();
