/**
 * `--batch FILE|-` for setpci and bar: operations for one session, one per line (several on a line
 * separated by blanks also work), `#` to the end of a line a comment. Many operations in one call
 * cost one Node start and one handshake instead of one each.
 */
import { readFileSync } from 'node:fs';
import { RuntimeError } from './errors.js';

export function readBatchOperations(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (error) {
    throw new RuntimeError(`--batch ${path}: ${(error as Error).message}`);
  }
  return text.split('\n').flatMap((line) => line.replace(/#.*/, '').trim().split(/\s+/).filter((word) => word !== ''));
}

export const batchOption = {
  type: 'string',
  describe: "more operations, read from FILE ('-' for stdin): one per line, '#' starts a comment; run after those on the command line, in one session",
} as const;
