/**
 * CLI error convention (pciutils-like): exit 2 for bad usage (bad selector, bad BDF, unknown
 * option), exit 1 for runtime failures (device absent, sysfs root missing, permission denied).
 * Both print one line `xpci: <message>` on stderr, never a stack trace.
 *
 * An error carries its exit status: errors that mean "the command line is wrong", whichever layer
 * finds it (a BDF, a selector, a register or BAR operation), have `exitStatus = 2`; any other
 * error is a runtime failure.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly exitStatus = 2;
}

export class RuntimeError extends Error {
  override readonly name = 'RuntimeError';
}

export function exitCodeFor(error: unknown): number {
  const status = (error as { exitStatus?: unknown } | null)?.exitStatus;
  return typeof status === 'number' ? status : 1;
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
