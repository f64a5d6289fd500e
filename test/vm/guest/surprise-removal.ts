/**
 * Guest-side driver (runs inside the test VM) for the surprise-removal test of
 * test/vm/faults.test.ts: one frontend reads the BAR and config of two exported devices in a
 * pipelined loop, and in the middle of it the first device is removed from the guest's PCI bus
 * (`remove` in sysfs: the backend's BAR mapping loses its backing under it).
 *
 * Usage: surprise-removal.js SOCKET GONE_HOST GONE_GUEST KEPT_GUEST. Prints one JSON object:
 * { before, after } where each holds, per device, the outcomes of its BAR 0 and config reads
 * ("ok" or the error code name with errno and message), and `after` is everything answered
 * after the removal.
 */
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { FrontendClient, XpciError, errorCodeName, parseAddress, type PciAddress } from '../../../src/frontend/index.js';

const [socket, goneHost, goneGuest, keptGuest] = process.argv.slice(2);
if (keptGuest === undefined) throw new Error('usage: surprise-removal.js SOCKET GONE_HOST GONE_GUEST KEPT_GUEST');
const gone = parseAddress(goneGuest);
const kept = parseAddress(keptGuest);

type Outcome = string;
const tally = (into: Record<string, number>, outcome: Outcome): void => {
  into[outcome] = (into[outcome] ?? 0) + 1;
};
const outcomeOf = (request: Promise<unknown>): Promise<Outcome> => request.then(() => 'ok', (error: unknown) =>
  error instanceof XpciError ? `${errorCodeName(error.code)} errno=${error.errno}: ${error.message}` : `other: ${String(error)}`);

const client = await FrontendClient.connect(socket, { requestTimeoutMs: 20_000 });
for (const address of [gone, kept]) {
  const command = await client.configRead(address, 0x04, 2);
  await client.configWrite(address, 0x04, 2, command | 0x2); // memory decode on, for the BAR reads
}

/** One round: BAR 0 and config of both devices, pipelined. */
function round(address: PciAddress): Promise<Outcome>[] {
  return [outcomeOf(client.barRead(address, 0, 0, 4)), outcomeOf(client.configRead(address, 0, 4))];
}

const result: Record<'before' | 'after', Record<'gone' | 'kept', Record<string, number>>> = {
  before: { gone: {}, kept: {} },
  after: { gone: {}, kept: {} },
};
for (let i = 0; i < 40; i++) {
  const removed = i >= 20;
  if (i === 20) {
    writeFileSync(`/sys/bus/pci/devices/${goneHost}/remove`, '1');
    // Past the backend's presence check interval (src/host/sysfs/device-presence.ts): the next BAR
    // access looks the device up again.
    await sleep(300);
  }
  const [goneOutcomes, keptOutcomes] = await Promise.all([Promise.all(round(gone)), Promise.all(round(kept))]);
  const phase = removed ? result.after : result.before;
  for (const outcome of goneOutcomes) tally(phase.gone, outcome);
  for (const outcome of keptOutcomes) tally(phase.kept, outcome);
}
await client.close();
process.stdout.write(JSON.stringify(result) + '\n');
