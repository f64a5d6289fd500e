/**
 * The `DEBUG=xpci:*` channels of both sides, as the `debug` package prints them — loaded only when
 * something is to be printed. `debug` pulls in tty and its colour detection, several MiB of a
 * backend's resident memory (`npm run bench` measures it) that a quiet export never uses: with DEBUG
 * unset a channel stays a no-op until code turns it on (`--verbose-request`), and the package is
 * loaded then. `debug` is CommonJS, so the late load can be synchronous.
 */
import { createRequire } from 'node:module';
import type { Debugger } from 'debug';

export interface DebugLog {
  (formatter: string, ...args: unknown[]): void;
  /** Whether lines are printed; setting it to true turns the channel on whatever DEBUG says. */
  enabled: boolean;
}

const load = (namespace: string): Debugger => (createRequire(import.meta.url)('debug') as typeof import('debug'))(namespace);

export function debugLog(namespace: string): DebugLog {
  if (process.env.DEBUG) return load(namespace);
  let real: Debugger | undefined;
  const log = ((formatter: string, ...args: unknown[]) => { if (real?.enabled) real(formatter, ...args); }) as DebugLog;
  Object.defineProperty(log, 'enabled', {
    get: () => real?.enabled ?? false,
    set: (on: boolean) => {
      if (!on && real === undefined) return;
      real ??= load(namespace);
      real.enabled = on;
    },
  });
  return log;
}
