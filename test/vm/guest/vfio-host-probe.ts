/**
 * Guest-side probe of the VFIO back end (src/host/vfio/) on edu and e1000e, both bound to vfio-pci
 * (run as root in the test guest with intel-iommu). Usage: vfio-host-probe.js EDU_BDF E1000E_BDF.
 * Prints one JSON object of observations; the host-side test judges them. Every wait is bounded by
 * a deadline that fails the step instead of hanging.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { readDevice } from '../../../src/host/sysfs/discovery.js';
import { vfioMethod } from '../../../src/host/vfio/vfio-device.js';
import { allocateDmaMemory } from '../../../src/host/dma-memory.js';
import type { VfioDma } from '../../../src/host/vfio/vfio-dma.js';
import type { VfioInterrupts } from '../../../src/host/vfio/vfio-interrupts.js';
import type { HostDevice, InterruptKind } from '../../../src/host/device-access.js';
import { parseAddress } from '../../../src/pci/address.js';

const [eduBdf, e1000eBdf] = process.argv.slice(2);
const DEADLINE_MS = 20_000;
const PCI_COMMAND = 0x04;
const COMMAND_MEMORY = 0x2;
const COMMAND_MASTER = 0x4;
const COMMAND_INTX_DISABLE = 0x400;
const EDU_DMA_BYTES = 2048;

const fdCount = (): number => readdirSync('/proc/self/fd').length;
const vfioMaps = (): number => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('vfio-device') || l.includes('/dev/vfio')).length;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Seen { kind: InterruptKind; vector: number; count: number }

/** Interrupt records in arrival order, and a waiter for the n-th one. */
class Inbox {
  readonly seen: Seen[] = [];
  private waiters: (() => void)[] = [];
  push = (kind: InterruptKind, vector: number, count: number): void => {
    this.seen.push({ kind, vector, count });
    for (const w of this.waiters.splice(0)) w();
  };
  async nth(n: number, what: string): Promise<Seen> {
    const deadline = Date.now() + DEADLINE_MS;
    while (this.seen.length < n) {
      if (Date.now() > deadline) throw new Error(`${what}: no interrupt #${n} within ${DEADLINE_MS} ms`);
      await Promise.race([new Promise<void>((resolve) => this.waiters.push(resolve)), sleep(200)]);
    }
    return this.seen[n - 1];
  }
}

function enableDecodeAndMaster(device: HostDevice): void {
  const command = device.config.read(PCI_COMMAND, 2);
  device.config.write(PCI_COMMAND, 2, command | COMMAND_MEMORY | COMMAND_MASTER);
}

async function eduDmaDone(device: HostDevice, what: string): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  while ((device.bar(0).read(0x98, 4) & 1n) !== 0n) {
    if (Date.now() > deadline) throw new Error(`${what}: edu DMA still running after ${DEADLINE_MS} ms`);
    await sleep(20);
  }
}

async function probeEdu(): Promise<Record<string, unknown>> {
  const method = vfioMethod();
  const fdsBefore = fdCount();
  const device = method.open(readDevice('/sys', parseAddress(eduBdf)), { writable: true });
  const out: Record<string, unknown> = { method: device.method, features: device.features };
  try {
    enableDecodeAndMaster(device);
    const bar = device.bar(0);
    out.ident = Number(bar.read(0x00, 4));
    out.barMapped = vfioMaps() > 0;
    bar.write(0x04, 4, 0x12345678n);
    out.liveness = Number(bar.read(0x04, 4));

    // INTx: raise, auto-masked by VFIO (DisINTx set), unmask with the line still up: a second one.
    const intx = new Inbox();
    device.interrupts!.enable('intx', 1, intx.push);
    bar.write(0x60, 4, 1n);
    out.intxFirst = await intx.nth(1, 'INTx #1');
    out.intxMaskedCommand = (device.config.read(PCI_COMMAND, 2) & COMMAND_INTX_DISABLE) !== 0;
    device.interrupts!.mask('intx', 0, false);
    out.intxSecond = await intx.nth(2, 'INTx #2');
    bar.write(0x64, 4, 1n);
    device.interrupts!.mask('intx', 0, false);

    // MSI: one vector; edu raises MSI instead of INTx once MSI is on.
    const msi = new Inbox();
    device.interrupts!.enable('msi', 1, msi.push);
    out.intxStillRouted = (device.interrupts as VfioInterrupts).routed().includes('intx');
    bar.write(0x60, 4, 2n);
    out.msi = await msi.nth(1, 'MSI');
    bar.write(0x64, 4, 2n);
    device.interrupts!.disable('msi');

    // DMA: pattern into window A, edu copies A → its buffer (0x40000) → window B. Half a page: QEMU
    // 7.2's edu refuses (hardware error) a transfer that ends exactly at the end of its buffer.
    const a = allocateDmaMemory(4096);
    const b = allocateDmaMemory(4096);
    const pattern = Buffer.from(Array.from({ length: EDU_DMA_BYTES }, (_, i) => (i * 7 + 3) & 0xff));
    a.write(0, pattern);
    device.dma!.map(0x10_0000n, 4096, { fd: a.fd, offset: 0n }, { read: true, write: true });
    device.dma!.map(0x20_0000n, 4096, { fd: b.fd, offset: 0n }, { read: true, write: true });
    bar.write(0x80, 8, 0x10_0000n);
    bar.write(0x88, 8, 0x40000n);
    bar.write(0x90, 8, BigInt(EDU_DMA_BYTES));
    bar.write(0x98, 8, 1n);
    await eduDmaDone(device, 'DMA RAM→device');
    bar.write(0x80, 8, 0x40000n);
    bar.write(0x88, 8, 0x20_0000n);
    bar.write(0x90, 8, BigInt(EDU_DMA_BYTES));
    bar.write(0x98, 8, 3n);
    await eduDmaDone(device, 'DMA device→RAM');
    out.dmaMatches = b.read(0, EDU_DMA_BYTES).equals(pattern);
    out.dmaRestUntouched = b.read(EDU_DMA_BYTES, 4096 - EDU_DMA_BYTES).every((byte) => byte === 0);
    out.dmaMapped = (device.dma as VfioDma).list().length;
    device.dma!.unmap(0x20_0000n, 4096);
    out.dmaAfterUnmap = (device.dma as VfioDma).list().length;
    a.close();
    b.close();
    out.fdsWhileOpen = fdCount() - fdsBefore;
  } finally {
    device.close();
  }
  out.fdsLeft = fdCount() - fdsBefore;
  out.vfioMapsLeft = vfioMaps();
  return out;
}

async function probeE1000e(): Promise<Record<string, unknown>> {
  const ICR = 0xc0, ICS = 0xc8, IMS = 0xd0, IVAR = 0xe4;
  const RXQ0 = 1 << 20;
  const method = vfioMethod();
  const fdsBefore = fdCount();
  const device = method.open(readDevice('/sys', parseAddress(e1000eBdf)), { writable: true });
  const out: Record<string, unknown> = { features: device.features };
  try {
    enableDecodeAndMaster(device);
    const bar = device.bar(0);
    const inbox = new Inbox();
    device.interrupts!.enable('msix', 3, inbox.push);
    bar.write(IVAR, 4, BigInt(0x8 | 2));
    bar.write(IMS, 4, BigInt(RXQ0));
    bar.write(ICS, 4, BigInt(RXQ0));
    out.msix = await inbox.nth(1, 'MSI-X');
    bar.read(ICR, 4);
    device.interrupts!.disableAll();

    out.resetMethod = readFileSync(`/sys/bus/pci/devices/${e1000eBdf}/reset_method`, 'utf8').trim();
    try {
      device.reset!();
      out.resetError = null;
    } catch (error) {
      out.resetError = (error as Error).message;
    }
  } finally {
    device.close();
  }
  out.fdsLeft = fdCount() - fdsBefore;
  return out;
}

const result: Record<string, unknown> = {};
try {
  result.edu = await probeEdu();
  result.e1000e = await probeE1000e();
} catch (error) {
  result.error = error instanceof Error ? `${error.message}\n${error.stack}` : String(error);
}
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(0);
