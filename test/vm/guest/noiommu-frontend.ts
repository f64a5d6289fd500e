/**
 * Guest-side frontend for test/vm/vfio-noiommu.test.ts: drives edu, exported by a backend that
 * holds it in VFIO's no-IOMMU mode, through the ring with the frontend library only. Usage:
 * noiommu-frontend.js SOCKET JSON-ARGS ({ edu, eduHost }). Prints one JSON object of observations
 * on its last line; the host-side test judges them. Every wait is bounded.
 */
import { execFileSync } from 'node:child_process';
import { connect, XpciError, errorCodeName, parseAddress, type RemoteDevice } from '../../../src/frontend/index.js';
import { EDU_FACTORIAL, EDU_IRQ_ACK, EDU_IRQ_STATUS, EDU_STATUS, eduIntxRounds } from './edu.js';

const [socket, argsJson] = process.argv.slice(2);
const args = JSON.parse(argsJson ?? '{}') as Record<string, string>;
const WAIT_MS = 20_000;

const COMMAND = 0x04;
const COMMAND_MEMORY = 0x2;
const COMMAND_MASTER = 0x4;
const COMMAND_INTX_DISABLE = 0x400;
// edu (QEMU docs/specs/edu.rst)

/** The guest's own setpci on the host function: the real Command register. */
const realCommand = (): number => parseInt(execFileSync('setpci', ['-s', args.eduHost, 'COMMAND.w'], { encoding: 'utf8' }).trim(), 16);

const describeError = (error: unknown): string => (error instanceof XpciError ? `${errorCodeName(error.code)}: ${error.message}` : String(error));

async function refused(attempt: () => Promise<unknown>): Promise<string> {
  try {
    await attempt();
    return 'accepted';
  } catch (error) {
    return describeError(error);
  }
}

/** The INTx that arrives within `ms`, or 'none'. */
async function interruptWithin(device: RemoteDevice, ms: number) {
  try {
    return await device.waitForInterrupt({ kind: 'intx', timeoutMs: ms });
  } catch (error) {
    if (error instanceof XpciError && /within/.test(error.message)) return 'none';
    throw error;
  }
}

const out: Record<string, unknown> = {};

async function main(): Promise<void> {
  const client = await connect(socket, { client: 'vfio-noiommu', requestTimeoutMs: WAIT_MS });
  try {
    const edu = client.remoteDevice(parseAddress(args.edu));
    out.descriptor = edu.descriptor;
    await edu.write(COMMAND, 2, (await edu.read(COMMAND, 2)) | COMMAND_MEMORY);

    // INTx: factorial with "interrupt when done", ack, unmask, and again.
    out.intx = await eduIntxRounds(edu, WAIT_MS);

    // INTx Disable in the frontend's view: the interrupt waits until it is cleared.
    await edu.write(COMMAND, 2, (await edu.read(COMMAND, 2)) | COMMAND_INTX_DISABLE);
    out.intxDisableView = (await edu.read(COMMAND, 2)) & COMMAND_INTX_DISABLE;
    await edu.barWrite(0, EDU_FACTORIAL, 4, 4);
    out.whileDisabled = await interruptWithin(edu, 2000);
    await edu.write(COMMAND, 2, (await edu.read(COMMAND, 2)) & ~COMMAND_INTX_DISABLE);
    out.afterEnable = await interruptWithin(edu, WAIT_MS);
    await edu.barWrite(0, EDU_IRQ_ACK, 4, Number(await edu.barRead(0, EDU_IRQ_STATUS, 4)));
    await edu.unmaskInterrupt();
    await edu.barWrite(0, EDU_STATUS, 4, 0);

    out.dmaMap = await refused(() => edu.mapDma(4096));
    out.busMaster = await refused(async () => edu.write(COMMAND, 2, (await edu.read(COMMAND, 2)) | COMMAND_MASTER));
    out.busMasterView = (await edu.read(COMMAND, 2)) & COMMAND_MASTER;
    out.busMasterReal = realCommand() & COMMAND_MASTER;
    out.ident = await edu.barRead(0, 0x00, 4).then(Number);
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    await client.close();
  }
}

main().catch((error: unknown) => {
  process.stdout.write(`${JSON.stringify({ error: error instanceof Error ? error.stack ?? error.message : String(error), partial: out })}\n`);
  process.exitCode = 1;
});
