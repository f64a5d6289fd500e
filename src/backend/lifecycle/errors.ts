/**
 * A refusal or failure of a lifecycle operation (seize, hand back, lock, reset, snapshot, config).
 * The CLI prints its one-line message and exits 1; the backend never imports the CLI's error types.
 */
export class LifecycleError extends Error {
  override readonly name = 'LifecycleError';
}
