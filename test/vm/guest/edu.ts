/**
 * QEMU's edu device as the guest-side frontends drive it (QEMU's docs/specs/edu.rst): its BAR0
 * registers, and the factorial round every interrupt suite starts with.
 */
import type { InterruptRecord, RemoteDevice } from '../../../src/frontend/index.js';

export const EDU_FACTORIAL = 0x08;
export const EDU_STATUS = 0x20;
export const EDU_STATUS_IRQ_ON_FACTORIAL = 0x80;
export const EDU_IRQ_STATUS = 0x24;
export const EDU_IRQ_RAISE = 0x60;
export const EDU_IRQ_ACK = 0x64;

/**
 * Factorials of 5 and 6 with "interrupt when done" on: each INTx is awaited, the interrupt acked
 * (0x64) and the line unmasked before the next round. Returns what each round saw.
 */
export async function eduIntxRounds(edu: RemoteDevice, timeoutMs: number): Promise<{ record: InterruptRecord; factorial: number; status: number }[]> {
  await edu.barWrite(0, EDU_STATUS, 4, EDU_STATUS_IRQ_ON_FACTORIAL);
  const rounds = [];
  for (const n of [5, 6]) {
    await edu.barWrite(0, EDU_FACTORIAL, 4, n);
    const record = await edu.waitForInterrupt({ kind: 'intx', timeoutMs });
    const factorial = Number(await edu.barRead(0, EDU_FACTORIAL, 4));
    const status = Number(await edu.barRead(0, EDU_IRQ_STATUS, 4));
    await edu.barWrite(0, EDU_IRQ_ACK, 4, status);
    await edu.unmaskInterrupt();
    rounds.push({ record, factorial, status });
  }
  return rounds;
}
