/**
 * One command in a throwaway guest: boot, run, power off. The status says whether there is a
 * result at all: 'exited' (exitCode is the command's), 'timeout' (the command or the guest was
 * killed at the deadline) or 'crashed' (QEMU or the guest died).
 */
import { GuestCrashedError, GuestTimeoutError } from './errors.js';
import { Guest, type BootOptions } from './guest.js';

export interface OneShotOptions extends Omit<BootOptions, 'timeoutMs'> {
  command: string;
  /** the whole run, boot included */
  timeoutMs: number;
  cwd?: string;
  env?: Record<string, string>;
}

export interface OneShotResult {
  status: 'exited' | 'timeout' | 'crashed';
  /** set when status is 'exited' */
  exitCode?: number;
  /** stdout and stderr interleaved; for 'timeout' what was written before the kill, for 'crashed' the guest's diagnostics */
  output: string;
}

export async function runInGuest(options: OneShotOptions): Promise<OneShotResult> {
  const { command, timeoutMs, cwd, env, ...bootOptions } = options;
  const deadline = Date.now() + timeoutMs;
  let guest: Guest | undefined;
  try {
    guest = await Guest.boot({ ...bootOptions, timeoutMs });
    const result = await guest.exec(command, { timeoutMs: Math.max(1000, deadline - Date.now()), cwd, env, mergeStderr: true });
    return { status: 'exited', exitCode: result.exitCode, output: result.stdout };
  } catch (error) {
    if (error instanceof GuestTimeoutError) return { status: 'timeout', output: error.stdout || error.diagnostics };
    if (error instanceof GuestCrashedError) return { status: 'crashed', output: error.diagnostics || error.message };
    throw error;
  } finally {
    await guest?.shutdown();
  }
}
