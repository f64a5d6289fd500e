/**
 * The `DEBUG=xpci:*` channels of both sides, as the `debug` package prints them — loaded only when
 * something is to be printed. `debug` pulls in tty and its colour detection, several MiB of a
 * backend's resident memory (`npm run bench` measures it) that a quiet export never uses. With
 * DEBUG set it loads at once; otherwise a channel is a no-op until code turns it on
 * (`--verbose-request`), and lines written while the package loads are printed once it has.
 */
import type { Debugger } from 'debug';

export interface DebugLog {
  (formatter: string, ...args: unknown[]): void;
  /** Whether lines are printed; setting it to true turns the channel on whatever DEBUG says. */
  enabled: boolean;
}

const atStart = process.env.DEBUG ? (await import('debug')).default : undefined;

export function debugLog(namespace: string): DebugLog {
  if (atStart) return atStart(namespace);
  let real: Debugger | undefined;
  let waiting: [string, ...unknown[]][] | undefined;
  let on = false;
  const log = ((formatter: string, ...args: unknown[]) => {
    if (!on) return;
    if (real) real(formatter, ...args);
    else waiting?.push([formatter, ...args]);
  }) as DebugLog;
  Object.defineProperty(log, 'enabled', {
    get: () => on,
    set: (value: boolean) => {
      on = value;
      if (real) real.enabled = value;
      if (!value || real || waiting) return;
      waiting = [];
      void import('debug').then(({ default: create }) => {
        real = create(namespace);
        real.enabled = on;
        for (const line of waiting ?? []) if (on) real(...line);
        waiting = undefined;
      });
    },
  });
  return log;
}
