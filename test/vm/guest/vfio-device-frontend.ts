/**
 * Guest-side frontend for test/vm/vfio-device.test.ts: drives edu and e1000e, exported by a VFIO
 * backend in the test guest, through the ring with the frontend library only (dist/src/frontend),
 * as a user's driver would. Usage: vfio-device-frontend.js STEP SOCKET JSON-ARGS. Prints one JSON
 * object of observations on its last line; the host-side test judges them. Every wait is bounded.
 *
 * Steps: `interrupts` (edu INTx twice, edu MSI with the guest's setpci on the real capability,
 * e1000e MSI-X with a masked vector), `dma` (edu copies between two windows; a DMA outside them),
 * `dirty` (windows and MSI, then SIGKILL of itself, or with `hold` kept until the backend dies), `clean` (what the next frontend finds),
 * `ident` (edu answers), `bad` (1,000 invalid requests; the backend's fds and maps around them).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, XpciError, errorCodeName, formatAddress, parseAddress, type FrontendClient, type RemoteDevice } from '../../../src/frontend/index.js';
import { EDU_IRQ_ACK, EDU_IRQ_RAISE, EDU_STATUS, eduIntxRounds } from './edu.js';
import { findCapability } from '../../../src/pci/capabilities.js';

const [step, socket, argsJson] = process.argv.slice(2);
const args = JSON.parse(argsJson ?? '{}') as Record<string, any>;
const WAIT_MS = 20_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const COMMAND = 0x04;
const COMMAND_MEMORY = 0x2;
const COMMAND_MASTER = 0x4;
const MSI_CAP = 0x05;
const MSIX_CAP = 0x11;

// edu (QEMU docs/specs/edu.rst)
const EDU_DMA_SRC = 0x80;
const EDU_DMA_DST = 0x88;
const EDU_DMA_COUNT = 0x90;
const EDU_DMA_CMD = 0x98;
const EDU_DMA_START = 1;
const EDU_DMA_TO_RAM = 2;
const EDU_BUFFER = 0x40000n;
/** Half a page: QEMU 7.2's edu refuses a transfer that ends exactly at the end of its buffer. */
const EDU_DMA_BYTES = 2048;

// e1000e
const ICR = 0xc0, ICS = 0xc8, IMS = 0xd0, IVAR = 0xe4;
const RXQ0 = 1 << 20;

async function config(device: RemoteDevice): Promise<Uint8Array> {
  const bytes = new Uint8Array(256);
  for (let at = 0; at < 256; at += 4) new DataView(bytes.buffer).setUint32(at, await device.read(at, 4), true);
  return bytes;
}

async function capability(device: RemoteDevice, id: number): Promise<number> {
  const cap = findCapability(await config(device), 'standard', id);
  if (!cap) throw new Error(`capability 0x${id.toString(16)} not found`);
  return cap.offset;
}

async function enableMemoryAndMaster(device: RemoteDevice): Promise<void> {
  const command = await device.read(COMMAND, 2);
  await device.write(COMMAND, 2, command | COMMAND_MEMORY | COMMAND_MASTER);
}

/** The guest's own setpci on the host function (the real registers), one value per register. */
function setpci(bdf: string, ...registers: string[]): number[] {
  return execFileSync('setpci', ['-s', bdf, ...registers], { encoding: 'utf8' }).trim().split('\n').map((h) => parseInt(h, 16));
}

/** Resolves with what happened within `ms`: the interrupt, or 'none'. */
async function interruptWithin(device: RemoteDevice, filter: { kind?: 'intx' | 'msi' | 'msix'; vector?: number }, ms: number) {
  try {
    return await device.waitForInterrupt({ ...filter, timeoutMs: ms });
  } catch (error) {
    if (error instanceof XpciError && /within/.test(error.message)) return 'none';
    throw error;
  }
}

async function eduDmaDone(edu: RemoteDevice, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while ((await edu.barRead(0, EDU_DMA_CMD, 8)) & 1n) {
    if (Date.now() > deadline) throw new Error(`${what}: edu DMA still running after ${WAIT_MS} ms`);
    await sleep(20);
  }
}

async function eduDma(edu: RemoteDevice, src: bigint, dst: bigint, toRam: boolean, what: string): Promise<void> {
  await edu.barWrite(0, EDU_DMA_SRC, 8, src);
  await edu.barWrite(0, EDU_DMA_DST, 8, dst);
  await edu.barWrite(0, EDU_DMA_COUNT, 8, BigInt(EDU_DMA_BYTES));
  await edu.barWrite(0, EDU_DMA_CMD, 8, BigInt(EDU_DMA_START | (toRam ? EDU_DMA_TO_RAM : 0)));
  await eduDmaDone(edu, what);
}

const pattern = (seed: number, length: number): Buffer => Buffer.from(Array.from({ length }, (_, i) => (i * 7 + seed) & 0xff));

/**
 * The backend's fds and mappings: every mapping of a file (DMA memfds, VFIO regions, sysfs files,
 * libraries) by name, and the count of all of them (anonymous ones come and go with V8's heap).
 */
function backendResources(pid: number): { fds: number; maps: number; deviceMaps: number; namedMaps: string[] } {
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8').trim().split('\n');
  const named = maps.map((line) => line.split(/\s+/).slice(5).join(' ')).filter((name) => name !== '' && !name.startsWith('['));
  return {
    fds: readdirSync(`/proc/${pid}/fd`).length,
    maps: maps.length,
    deviceMaps: named.filter((name) => /memfd:|vfio|\/sys\//.test(name)).length,
    namedMaps: named.sort(),
  };
}

/** What a step observed so far: printed with the error when a step fails midway. */
const out: Record<string, unknown> = {};

async function interrupts(client: FrontendClient): Promise<Record<string, unknown>> {
  const edu = client.remoteDevice(parseAddress(args.edu));
  const events: string[] = [];
  client.on('interrupt', (address, record) => events.push(`${formatAddress(address)} ${record.kind}/${record.vector}/${record.count}`));
  await enableMemoryAndMaster(edu);
  out.eduDescriptor = edu.descriptor;

  // INTx: factorial with "interrupt when done", ack, unmask, and again.
  out.intx = await eduIntxRounds(edu, WAIT_MS);
  await edu.barWrite(0, EDU_STATUS, 4, 0);

  // MSI: the frontend's own address/data, never the hardware's.
  const msi = await capability(edu, MSI_CAP);
  const control = await edu.read(msi + 2, 2);
  const is64 = (control & 0x80) !== 0;
  const dataAt = msi + (is64 ? 12 : 8);
  const frontendMsi = { address: 0x12345678, upper: 0x9abc, data: 0x4321 };
  await edu.write(msi + 4, 4, frontendMsi.address);
  if (is64) await edu.write(msi + 8, 4, frontendMsi.upper);
  await edu.write(dataAt, 2, frontendMsi.data);
  await edu.write(msi + 2, 2, control | 1);
  out.msiFrontendView = {
    control: await edu.read(msi + 2, 2), address: await edu.read(msi + 4, 4), data: await edu.read(dataAt, 2),
  };
  const realRegisters = ['CAP_MSI+2.w', 'CAP_MSI+4.l', ...(is64 ? ['CAP_MSI+8.l'] : []), `CAP_MSI+${is64 ? 'c' : '8'}.w`];
  const real = setpci(args.eduHost, ...realRegisters);
  out.msiFrontend = frontendMsi;
  out.msiReal = { control: real[0], address: real[1], upper: is64 ? real[2] : 0, data: real[real.length - 1] };
  out.msiIs64 = is64;
  await edu.barWrite(0, EDU_IRQ_RAISE, 4, 2);
  out.msi = await edu.waitForInterrupt({ timeoutMs: WAIT_MS });
  await edu.barWrite(0, EDU_IRQ_ACK, 4, 2);
  await edu.write(msi + 2, 2, control & ~1);
  out.msiRealAfterDisable = setpci(args.eduHost, 'CAP_MSI+2.w')[0];

  // e1000e MSI-X: vector 2 through ICS; masked, it waits in the PBA until unmasked.
  const nic = client.remoteDevice(parseAddress(args.e1000e));
  out.e1000eDescriptor = nic.descriptor;
  await enableMemoryAndMaster(nic);
  const msix = await capability(nic, MSIX_CAP);
  const msixControl = await nic.read(msix + 2, 2);
  const table = await nic.read(msix + 4, 4);
  const pba = await nic.read(msix + 8, 4);
  const tableBar = table & 7, tableAt = table & ~7, pbaBar = pba & 7, pbaAt = pba & ~7;
  out.msixLayout = { vectors: (msixControl & 0x7ff) + 1, tableBar, tableAt, pbaBar, pbaAt };
  await nic.write(msix + 2, 2, msixControl | 0x8000);
  const entry = tableAt + 2 * 16;
  await nic.barWrite(tableBar, entry, 4, 0xfee00000);
  await nic.barWrite(tableBar, entry + 4, 4, 0);
  await nic.barWrite(tableBar, entry + 8, 4, 0x22);
  await nic.barWrite(tableBar, entry + 12, 4, 0);
  await nic.barWrite(0, IVAR, 4, 0x8 | 2);
  await nic.barWrite(0, IMS, 4, RXQ0);
  await nic.barWrite(0, ICS, 4, RXQ0);
  out.msix = await interruptWithin(nic, { kind: 'msix' }, WAIT_MS);
  if (out.msix === 'none') {
    out.msixDiagnosis = {
      procInterrupts: readFileSync('/proc/interrupts', 'utf8').split('\n').filter((l) => /vfio/.test(l)),
      realControl: setpci(args.e1000eHost, 'CAP_MSIX+2.w')[0],
      command: setpci(args.e1000eHost, 'COMMAND.w')[0],
      icr: Number(await nic.barRead(0, ICR, 4)),
      ims: Number(await nic.barRead(0, IMS, 4)),
      ivar: Number(await nic.barRead(0, IVAR, 4)),
      pba: Number(await nic.barRead(pbaBar, pbaAt, 8)),
      entry: [await nic.barRead(tableBar, entry, 4), await nic.barRead(tableBar, entry + 12, 4)].map(Number),
      virtualControl: await nic.read(msix + 2, 2),
    };
    throw new Error('no MSI-X interrupt');
  }
  // In MSI-X mode a read leaves ICR as it is, and e1000e sends no new message for a cause still set: clear it (W1C).
  await nic.barWrite(0, ICR, 4, 0xffffffff);
  await nic.barWrite(tableBar, entry + 12, 4, 1);
  await nic.barWrite(0, ICS, 4, RXQ0);
  out.msixWhileMasked = await interruptWithin(nic, { kind: 'msix' }, 2000);
  out.pbaWhileMasked = Number(await nic.barRead(pbaBar, pbaAt, 8));
  await nic.barWrite(tableBar, entry + 12, 4, 0);
  out.msixAfterUnmask = await nic.waitForInterrupt({ kind: 'msix', timeoutMs: WAIT_MS });
  out.pbaAfterUnmask = Number(await nic.barRead(pbaBar, pbaAt, 8));
  await nic.barWrite(0, ICR, 4, 0xffffffff);

  // Reset with MSI-X still on: the backend turns it off (view and hardware) and says so first.
  const resets: string[] = [];
  client.on('deviceReset', (address) => resets.push(formatAddress(address)));
  out.msixRealBeforeReset = setpci(args.e1000eHost, 'CAP_MSIX+2.w')[0];
  await nic.reset();
  out.resetEvents = resets;
  out.msixViewAfterReset = await nic.read(msix + 2, 2);
  out.msixRealAfterReset = setpci(args.e1000eHost, 'CAP_MSIX+2.w')[0];
  out.eduReset = await edu.reset().then(() => 'done', (e: unknown) => (e instanceof XpciError ? `${errorCodeName(e.code)}: ${e.message}` : String(e)));
  out.events = events;
  return out;
}

async function dma(client: FrontendClient): Promise<Record<string, unknown>> {
  const edu = client.remoteDevice(parseAddress(args.edu));
  await enableMemoryAndMaster(edu);
  const a = await edu.mapDma(4096);
  const b = await edu.mapDma(4096);
  out.iovas = [a.iova.toString(16), b.iova.toString(16)];
  const data = pattern(3, EDU_DMA_BYTES);
  await a.write(0, data);
  await eduDma(edu, a.iova, EDU_BUFFER, false, 'RAM→device');
  await eduDma(edu, EDU_BUFFER, b.iova, true, 'device→RAM');
  const copied = await b.read(0, 4096);
  out.copyMatches = copied.subarray(0, EDU_DMA_BYTES).equals(data);
  out.restUntouched = copied.subarray(EDU_DMA_BYTES).every((byte) => byte === 0);

  // Outside every window: edu writes its buffer (now a second pattern) to an unmapped IOVA.
  const before = Buffer.concat([await a.read(0, 4096), await b.read(0, 4096)]);
  await edu.barWrite(0, 0x40000, 4, 0xdeadbeef);
  const outside = BigInt(args.outsideIova);
  await eduDma(edu, EDU_BUFFER, outside, true, 'device→unmapped IOVA');
  await eduDma(edu, outside, EDU_BUFFER, false, 'unmapped IOVA→device');
  const after = Buffer.concat([await a.read(0, 4096), await b.read(0, 4096)]);
  out.windowsUnchanged = before.equals(after);
  out.outsideIova = args.outsideIova;
  await a.unmap();
  await b.unmap();
  return out;
}

async function dirty(client: FrontendClient): Promise<never> {
  const edu = client.remoteDevice(parseAddress(args.edu));
  await enableMemoryAndMaster(edu);
  const a = await edu.mapDma(4096);
  await edu.mapDma(8192);
  await a.write(0, pattern(9, 4096));
  const msi = await capability(edu, MSI_CAP);
  const control = await edu.read(msi + 2, 2);
  await edu.write(msi + 2, 2, control | 1);
  const state = {
    msiControl: await edu.read(msi + 2, 2),
    msiRealControl: setpci(args.eduHost, 'CAP_MSI+2.w')[0],
    firstIova: a.iova.toString(16),
    backend: backendResources(args.backendPid),
  };
  process.stdout.write(`${JSON.stringify(state)}\n`);
  if (!args.hold) process.kill(process.pid, 'SIGKILL');
  // Holding: until the backend goes away (the test kills it with everything still mapped and on).
  await new Promise((resolve) => client.once('close', resolve));
  process.exit(0);
}

async function clean(client: FrontendClient): Promise<Record<string, unknown>> {
  const edu = client.remoteDevice(parseAddress(args.edu));
  const msi = await capability(edu, MSI_CAP);
  out.msiControl = await edu.read(msi + 2, 2);
  out.msiRealControl = setpci(args.eduHost, 'CAP_MSI+2.w')[0];
  out.backend = backendResources(args.backendPid);
  try {
    await client.dmaRead(edu.address, BigInt(`0x${args.oldIova}`), 0n, 16);
    out.oldWindow = 'readable';
  } catch (error) {
    out.oldWindow = error instanceof XpciError ? `${errorCodeName(error.code)}: ${error.message}` : String(error);
  }
  const again = await edu.mapDma(4096);
  out.nextIova = again.iova.toString(16);
  out.nextWindowZero = (await again.read(0, 4096)).every((byte) => byte === 0);
  await again.unmap();
  return out;
}

async function ident(client: FrontendClient): Promise<Record<string, unknown>> {
  const edu = client.remoteDevice(parseAddress(args.edu));
  await enableMemoryAndMaster(edu);
  await edu.barWrite(0, 0x04, 4, 0x12345678);
  const msi = await capability(edu, MSI_CAP);
  return {
    ident: Number(await edu.barRead(0, 0x00, 4)),
    liveness: Number(await edu.barRead(0, 0x04, 4)),
    msiControl: await edu.read(msi + 2, 2),
    msiRealControl: setpci(args.eduHost, 'CAP_MSI+2.w')[0],
    descriptor: edu.descriptor,
  };
}

/** 1,000 invalid requests of four kinds, 250 each; every one must fail with a clear error. */
async function bad(client: FrontendClient): Promise<Record<string, unknown>> {
  const edu = client.remoteDevice(parseAddress(args.edu));
  const nic = client.remoteDevice(parseAddress(args.e1000e));
  const resourcesBefore = backendResources(args.backendPid);
  const window = await edu.mapDma(4096);
  // Each kind alternates two forms: a window larger than the limit / one that would pass the limit
  // with the open window; a read past the end / a write straddling it; an MSI-X vector never enabled
  // / an INTx vector that does not exist; a write after the table / after the PBA in their pages.
  let n = 0;
  const alternate = (a: () => Promise<unknown>, b: () => Promise<unknown>) => () => (n++ % 2 === 0 ? a() : b());
  const kinds: Record<string, () => Promise<unknown>> = {
    pastLimit: alternate(() => client.dmaMap(edu.address, 2 * args.dmaLimit), () => client.dmaMap(edu.address, args.dmaLimit)),
    outOfRange: alternate(() => client.dmaRead(edu.address, window.iova, 4000n, 200), () => client.dmaWrite(edu.address, window.iova, 4095n, Buffer.alloc(2))),
    unmaskNeverEnabled: alternate(() => client.interruptUnmask(nic.address, 'msix', 3), () => client.interruptUnmask(edu.address, 'intx', 1)),
    msixOutsideTable: alternate(() => nic.barWrite(args.tableBar, args.outsideTable, 4, 0), () => nic.barWrite(args.pbaBar, args.outsidePba, 4, 0)),
  };
  const outcomes: Record<string, { failed: number; succeeded: number; messages: string[] }> = {};
  for (const [kind, request] of Object.entries(kinds)) {
    const outcome = { failed: 0, succeeded: 0, messages: [] as string[] };
    const results = await Promise.allSettled(Array.from({ length: 250 }, () => request()));
    for (const result of results) {
      if (result.status === 'fulfilled') outcome.succeeded++;
      else {
        outcome.failed++;
        const e = result.reason;
        const text = e instanceof XpciError ? `${errorCodeName(e.code)}: ${e.message}` : String(e);
        if (!outcome.messages.includes(text)) outcome.messages.push(text);
      }
    }
    outcomes[kind] = outcome;
  }
  await window.unmap();
  // Let the backend's event loop settle (replies flushed) before looking at it again.
  await client.ping();
  return { outcomes, resourcesBefore, resourcesAfter: backendResources(args.backendPid) };
}

const steps: Record<string, (client: FrontendClient) => Promise<Record<string, unknown>>> = { interrupts, dma, dirty, clean, ident, bad };

async function main(): Promise<void> {
  const run = steps[step];
  if (!run) throw new Error(`unknown step ${step}`);
  const client = await connect(socket, { client: `vfio-device ${step}`, requestTimeoutMs: WAIT_MS });
  try {
    const out = await run(client);
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    await client.close();
  }
}

main().catch((error: unknown) => {
  process.stdout.write(`${JSON.stringify({ error: error instanceof Error ? error.stack ?? error.message : String(error), partial: out })}\n`);
  process.exitCode = 1;
});
