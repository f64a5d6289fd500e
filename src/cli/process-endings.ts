/**
 * Every way a long-running command can end that Node lets it see, funnelled into one callback so a
 * backend releases its devices (restore registers, remove lock and socket files) whichever it is:
 * SIGINT, SIGTERM, SIGHUP (a closed terminal), SIGQUIT; stdout or stderr going away (EPIPE: `xpci
 * export | head -1`, a log reader that dies); an uncaught exception; and the process exiting. The
 * callback must do its releasing synchronously (on 'exit' nothing asynchronous runs any more) and be
 * idempotent. SIGKILL and a power cut are not visible: the next export repairs those (lock and
 * register records in the state directory).
 */
export const ENDING_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

const closedOutputs = new Set<NodeJS.WriteStream>();
let onOutputClosed: ((reason: string) => void) | null = null;

/**
 * Output that a closed pipe must not turn into a crash: after an error on the stream (EPIPE) it is
 * dropped. The listeners stay for the life of the process, since the last lines (a shutdown
 * summary) are written after the command's own handlers are gone.
 */
function watchOutput(stream: NodeJS.WriteStream, name: string): void {
  if (stream.listeners('error').includes(outputErrorListeners.get(stream)!)) return;
  const listener = (error: NodeJS.ErrnoException): void => {
    closedOutputs.add(stream);
    onOutputClosed?.(`${name} is closed (${error.code ?? error.message})`);
  };
  outputErrorListeners.set(stream, listener);
  stream.on('error', listener);
}
const outputErrorListeners = new Map<NodeJS.WriteStream, (error: NodeJS.ErrnoException) => void>();

/** Write to stdout/stderr unless it has been closed under us. */
export function writeOutput(stream: NodeJS.WriteStream, text: string): void {
  if (closedOutputs.has(stream) || stream.destroyed) return;
  stream.write(text);
}

/**
 * Call `end(reason)` on each ending until the returned function is called. An uncaught exception is
 * reported on stderr, then `end` runs, then the process exits with status 1.
 */
export function onProcessEnd(end: (reason: string) => void): () => void {
  watchOutput(process.stdout, 'stdout');
  watchOutput(process.stderr, 'stderr');
  const onSignal = (signal: NodeJS.Signals): void => end(`received ${signal}`);
  const onExit = (): void => end('the process is exiting');
  const onCrash = (error: unknown): void => {
    writeOutput(process.stderr, `xpci: internal error (please report): ${error instanceof Error ? error.stack : String(error)}\n`);
    try {
      end('internal error');
    } finally {
      process.exit(1);
    }
  };
  for (const signal of ENDING_SIGNALS) process.on(signal, onSignal);
  process.on('exit', onExit);
  process.on('uncaughtException', onCrash);
  onOutputClosed = end;
  return () => {
    for (const signal of ENDING_SIGNALS) process.off(signal, onSignal);
    process.off('exit', onExit);
    process.off('uncaughtException', onCrash);
    if (onOutputClosed === end) onOutputClosed = null;
  };
}
