/**
 * Distinct failures of the test bed, so that "no result" is never confused with a command's exit
 * status: a command that ran and failed resolves normally with its exitCode; these are thrown only
 * when there is no exit status to report.
 */

/** Base class: carries what the guest printed last, for the test log. */
export class GuestError extends Error {
  /** Last lines of the serial console (kernel messages, XPCI-FATAL) and of QEMU's stderr. */
  readonly diagnostics: string;
  constructor(message: string, diagnostics: string) {
    super(diagnostics ? `${message}\n--- guest diagnostics ---\n${diagnostics}` : message);
    this.diagnostics = diagnostics;
  }
}

/**
 * A deadline passed. `phase: 'exec'` with `guestKilled: false`: the agent killed the command's
 * process group and the guest is still usable. `guestKilled: true`: the guest itself stopped
 * answering (or did not boot in time) and QEMU was killed.
 */
export class GuestTimeoutError extends GuestError {
  override readonly name = 'GuestTimeoutError';
  constructor(
    message: string,
    readonly phase: 'boot' | 'exec',
    readonly guestKilled: boolean,
    /** what the command wrote before it was killed ('' when the guest was killed) */
    readonly stdout: string,
    readonly stderr: string,
    diagnostics: string,
  ) {
    super(message, diagnostics);
  }
}

/** QEMU exited on its own (kernel panic, init failure, QEMU error) or the guest was already gone. */
export class GuestCrashedError extends GuestError {
  override readonly name = 'GuestCrashedError';
  constructor(
    message: string,
    readonly qemuExitCode: number | null,
    readonly qemuSignal: string | null,
    diagnostics: string,
  ) {
    super(message, diagnostics);
  }
}

/** The guest kernel or busybox cannot be obtained (no apt index entry, no network): a reason to skip. */
export class GuestAssetsUnavailableError extends Error {
  override readonly name = 'GuestAssetsUnavailableError';
}
