/**
 * CLI error convention (pciutils-like): exit 2 for bad usage (bad selector, bad BDF, unknown
 * option), exit 1 for runtime failures (device absent, sysfs root missing, permission denied).
 * Both print one line `xpci: <message>` on stderr, never a stack trace.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly exitCode = 2;
}

export class RuntimeError extends Error {
  override readonly name = 'RuntimeError';
  readonly exitCode = 1;
}

/** Errors that mean "the command line is wrong", whichever layer detected it. */
const USAGE_ERROR_NAMES = new Set(['UsageError', 'AddressError', 'SelectorError', 'RegisterSpecError', 'YError']);

export function exitCodeFor(error: unknown): number {
  return error instanceof Error && USAGE_ERROR_NAMES.has(error.name) ? 2 : 1;
}

/** One line, no stack: node errors carry code/path, which say more than the message alone. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const e = error as Error & { code?: string; path?: string; syscall?: string };
  if (e.code && e.syscall && !e.message.includes(e.code)) {
    return `${e.message} (${e.code}${e.path ? `: ${e.path}` : ''})`;
  }
  return e.message.split('\n')[0];
}
