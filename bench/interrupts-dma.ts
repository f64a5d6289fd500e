/**
 * Interrupt and DMA figures for `npm run bench`, on fixture means only: this machine has no VFIO
 * (and the bench never touches its devices). bench/interrupts-dma-backend.ts runs the real backend
 * with an eventfd standing in for VFIO's interrupt eventfds and memfd windows without an IOMMU
 * mapping. Measured in the same run:
 * - interrupt latency: the bench signals the eventfd and waits for the frontend library's
 *   'interrupt' callback (backend wake-up, router, Interrupt event through the ring), against a
 *   bare Node process woken by the same eventfd that writes one frame of the same size back;
 * - DMA window writes of 64 KiB through the ring (DmaWrite, 8 in flight), against a bare Node
 *   Unix-socket stream of 64 KiB messages, each acknowledged, 8 in flight.
 */
import { createServer, connect as connectSocket, type Server, type Socket } from 'node:net';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { connect, parseAddress, type FrontendClient } from '../src/frontend/index.js';
import { native } from '../src/native/binding.js';
import { spawnReady, type Child } from './children.js';
import { pipelined, type Sample } from './measure.js';

const here = dirname(fileURLToPath(import.meta.url));
const BACKEND = resolve(here, 'interrupts-dma-backend.js');
const WAKE = resolve(here, 'eventfd-wake.js');
const PINGPONG_SERVER = resolve(here, 'pingpong-server.js');
export const DMA_OP_BYTES = 64 * 1024;
export const DMA_DEPTH = 8;
const WINDOW_BYTES = DMA_OP_BYTES * DMA_DEPTH * 2;
const ACK_BYTES = 20;
const MSI_ENABLE = 0x1;
/** Where the backend's fixture device has its MSI capability (buildConfigImage's first capability). */
const BENCH_MSI_CAP = 0x40;

export interface InterruptsDmaBench {
  readonly options: { runMs: number };
  track(child: Child): void;
  measure(name: string, depth: number, pids: Record<string, number>, run: () => Promise<Sample>): Promise<{ usPerOp: number; opsPerSec: number }>;
}

export interface InterruptsDmaTarget { name: string; measured: number | null; relation: '<=' | '>='; goal: number; unit: 'x'; pass: boolean | null }

/** One wait at a time: `issue` signals, `settle` (called from a callback) ends the wait. */
class OneAtATime {
  private waiting: (() => void) | null = null;
  issue(signal: () => void): Promise<void> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      signal();
    });
  }
  readonly settle = (): void => {
    const done = this.waiting;
    this.waiting = null;
    done?.();
  };
}

async function listenOnce(path: string): Promise<{ server: Server; peer: Promise<Socket> }> {
  const server = createServer();
  const peer = new Promise<Socket>((resolvePeer) => server.once('connection', resolvePeer));
  await new Promise<void>((resolveListen) => server.listen(path, resolveListen));
  return { server, peer };
}

/** `depth` messages of DMA_OP_BYTES in flight to the pingpong server, each answered by ACK_BYTES. */
function streamRun(socket: Socket, depth: number, durationMs: number): Promise<Sample> {
  const message = Buffer.alloc(DMA_OP_BYTES, 0x5a);
  return new Promise((resolveRun) => {
    const start = performance.now();
    const end = start + durationMs;
    let ops = 0;
    let outstanding = 0;
    let partial = 0;
    const onData = (chunk: Buffer): void => {
      const bytes = partial + chunk.length;
      const acks = Math.floor(bytes / ACK_BYTES);
      partial = bytes % ACK_BYTES;
      ops += acks;
      outstanding -= acks;
      if (performance.now() < end) {
        for (; outstanding < depth; outstanding++) socket.write(message);
      } else if (outstanding === 0) {
        socket.off('data', onData);
        resolveRun({ ops, seconds: (performance.now() - start) / 1000 });
      }
    };
    socket.on('data', onData);
    for (; outstanding < depth; outstanding++) socket.write(message);
  });
}

export async function benchInterruptsDma(bench: InterruptsDmaBench, work: string, pinCpu: number | undefined): Promise<InterruptsDmaTarget[]> {
  const figures = new Map<string, { usPerOp: number; opsPerSec: number }>();
  const measure = async (name: string, depth: number, pids: Record<string, number>, run: () => Promise<Sample>): Promise<void> => {
    figures.set(name, await bench.measure(name, depth, pids, run));
  };
  const eventfd = native().eventfdCreate();
  const servers: Server[] = [];
  const sockets: Socket[] = [];
  let client: FrontendClient | undefined;
  try {
    // Bare: a Node process woken by the eventfd answers over a Unix socket.
    const wakePath = join(work, 'wake.sock');
    const wake = await listenOnce(wakePath);
    servers.push(wake.server);
    const { child: waker } = await spawnReady(process.execPath, [WAKE, wakePath], { pinCpu, inheritFds: [eventfd], ready: (line) => line === 'ready' });
    bench.track(waker);
    const wakeSocket = await wake.peer;
    sockets.push(wakeSocket);
    const bare = new OneAtATime();
    wakeSocket.on('data', bare.settle);
    await measure('irqBare1', 1, { bench: process.pid, waker: waker.pid }, () =>
      pipelined(1, bench.options.runMs, () => bare.issue(() => native().eventfdWrite(eventfd, 1n))));
    wakeSocket.destroy();
    await waker.stop();

    // Through the ring: the backend's poller, router and Interrupt event; the library's callback.
    const { child: backend, ready } = await spawnReady(process.execPath, [BACKEND, join(work, 'irq.sock'), join(work, 'irq')], {
      pinCpu, inheritFds: [eventfd], env: { ...process.env, DEBUG: '' },
      ready: (line) => (line.startsWith('{') ? JSON.parse(line) as { socket: string; guest: string[] } : undefined),
    });
    bench.track(backend);
    const { socket, guest } = ready as { socket: string; guest: string[] };
    client = await connect(socket, { client: 'xpci bench (interrupts, DMA)' });
    const device = client.remoteDevice(parseAddress(guest[0]));
    const control = await device.read(BENCH_MSI_CAP + 2, 2);
    await device.write(BENCH_MSI_CAP + 2, 2, control | MSI_ENABLE);
    const ring = new OneAtATime();
    client.on('interrupt', ring.settle);
    const pids = { bench: process.pid, backend: backend.pid };
    await measure('irqRing1', 1, pids, () => pipelined(1, bench.options.runMs, () => ring.issue(() => native().eventfdWrite(eventfd, 1n))));

    // DMA window writes through the ring.
    const window = await device.mapDma(WINDOW_BYTES);
    const data = Buffer.alloc(DMA_OP_BYTES, 0xa5);
    let next = 0;
    await measure('dmaWrite64k', DMA_DEPTH, pids, () => pipelined(DMA_DEPTH, bench.options.runMs, () => {
      const offset = next;
      next = (next + DMA_OP_BYTES) % WINDOW_BYTES;
      return window.write(offset, data);
    }));
    await window.unmap();
    await client.close();
    client = undefined;
    await backend.stop();

    // Bare stream: the same 64 KiB messages to an echo server that answers each with ACK_BYTES.
    const streamPath = join(work, 'stream.sock');
    const { child: sink } = await spawnReady(process.execPath, [PINGPONG_SERVER, streamPath, String(DMA_OP_BYTES), String(ACK_BYTES)], {
      pinCpu, ready: (line) => line === 'ready',
    });
    bench.track(sink);
    const streamSocket = await new Promise<Socket>((resolveSocket, reject) => {
      const s = connectSocket(streamPath, () => resolveSocket(s));
      s.once('error', reject);
    });
    sockets.push(streamSocket);
    await measure('streamBare64k', DMA_DEPTH, { bench: process.pid, sink: sink.pid }, () => streamRun(streamSocket, DMA_DEPTH, bench.options.runMs));
    streamSocket.destroy();
    await sink.stop();
  } finally {
    await client?.close();
    for (const s of sockets) s.destroy();
    for (const s of servers) s.close();
    native().closeFd(eventfd);
  }
  const f = (name: string) => figures.get(name);
  const ratio = (a: number | undefined, b: number | undefined): number | null => (a === undefined || b === undefined ? null : a / b);
  const target = (name: string, measured: number | null, relation: '<=' | '>=', goal: number): InterruptsDmaTarget => ({
    name, measured, relation, goal, unit: 'x', pass: measured === null ? null : relation === '<=' ? measured <= goal : measured >= goal,
  });
  return [
    target('interrupt latency: ring vs bare eventfd wake-up (fixture)', ratio(f('irqRing1')?.usPerOp, f('irqBare1')?.usPerOp), '<=', 1.5),
    target('DMA writes 64 KiB: ring vs bare socket stream (memfd, no IOMMU)', ratio(f('dmaWrite64k')?.opsPerSec, f('streamBare64k')?.opsPerSec), '>=', 0.5),
  ];
}
