/**
 * The `DEBUG=xpci:*` channels of both sides, as the `debug` package prints them — loaded only when
 * something is to be printed. `debug` pulls in tty and its colour detection, several MiB of a
 * backend's resident memory (`npm run bench` measures it) that a quiet export never uses. With
 * DEBUG set it loads at once; otherwise a channel is a no-op until code turns it on
 * (`--verbose-request`, or enableDebugNamespaces for a program that picks channels itself), and
 * lines written while the package loads are printed once it has.
 */
import type { Debugger } from 'debug';

type CreateDebug = typeof import('debug');

export interface DebugLog {
  (formatter: string, ...args: unknown[]): void;
  /** Whether lines are printed; setting it to true turns the channel on whatever DEBUG says. */
  enabled: boolean;
}

const atStart: CreateDebug | undefined = process.env.DEBUG ? (await import('debug')).default : undefined;
let loaded = atStart;
/** Channels not yet bound to the package: each binds itself when given it. */
const unbound = new Set<(create: CreateDebug) => void>();

/**
 * Turn on the channels `namespaces` names (the DEBUG syntax, e.g. "xpci:policy,xpci:server"), as
 * the `debug` package's own enable() does — which, before this, would not reach channels that have
 * not loaded it.
 */
export async function enableDebugNamespaces(namespaces: string): Promise<void> {
  loaded ??= (await import('debug')).default;
  loaded.enable(namespaces);
  for (const bind of unbound) bind(loaded);
  unbound.clear();
}

export function debugLog(namespace: string): DebugLog {
  if (atStart) return atStart(namespace);
  let real: Debugger | undefined;
  /** set through `enabled`; undefined: the namespaces decide */
  let override: boolean | undefined;
  let waiting: [string, ...unknown[]][] | undefined;
  const bind = (create: CreateDebug): void => {
    if (real) return;
    real = create(namespace);
    if (override !== undefined) real.enabled = override;
    for (const line of waiting ?? []) if (real.enabled) real(...line);
    waiting = undefined;
  };
  if (loaded) bind(loaded);
  else unbound.add(bind);
  const log = ((formatter: string, ...args: unknown[]) => {
    if (real) {
      if (real.enabled) real(formatter, ...args);
    } else if (override) {
      waiting?.push([formatter, ...args]);
    }
  }) as DebugLog;
  Object.defineProperty(log, 'enabled', {
    get: () => (real ? real.enabled : override ?? false),
    set: (value: boolean) => {
      override = value;
      if (real) {
        real.enabled = value;
        return;
      }
      if (!value || waiting) return;
      waiting = [];
      if (loaded) bind(loaded);
      else void import('debug').then(({ default: create }) => { loaded ??= create; bind(create); unbound.delete(bind); });
    },
  });
  return log;
}
