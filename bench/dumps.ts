/**
 * The `-xxx` dump figure: every exported device dumped through the ring (the `xpci lspci -xxx`
 * process, and the same scan + reads inside this process without Node's start-up) against
 * `lspci -xxx -s BDF` of the same devices, plus a byte comparison of the two dumps (bytes may
 * differ only in the registers docs/protocol.md §13 lists as virtualized).
 */
import { execFile } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { scanBus, type FrontendClient } from '../src/frontend/index.js';
import { formatAddress, packAddress } from '../src/pci/address.js';
import { readConfigBytes } from '../src/pci/config-reader.js';
import { parseLspciDump } from '../src/pci/lspci-dump.js';
import { CLI } from './backend.js';
import { median } from './measure.js';

const run = promisify(execFile);

const withPin = (pinCpu: number | undefined, command: string, args: string[]): [string, string[]] =>
  pinCpu === undefined ? [command, args] : ['taskset', ['-c', String(pinCpu), command, ...args]];

async function timedRun(command: string, args: string[]): Promise<{ ms: number; stdout: string }> {
  const start = performance.now();
  const { stdout } = await run(command, args, { maxBuffer: 16 * 1024 * 1024, env: { ...process.env, DEBUG: '' } });
  return { ms: performance.now() - start, stdout };
}

export async function lspciAvailable(): Promise<boolean> {
  try {
    await run('lspci', ['--version']);
    return true;
  } catch {
    return false;
  }
}

export interface DumpFigures {
  devices: number;
  /** `xpci lspci -xxx --connect S`: one process dumping every exported device, median ms. */
  xpciProcessMs: number;
  /** Scan of the roots plus 256 bytes per device through an open session, median ms. */
  xpciLibraryMs: number;
  /** `lspci -xxx -s BDF` once per device, summed, median ms; undefined without lspci. */
  lspciMs?: number;
  /** Bytes that differ between the two dumps, as "BDF@0xOFF"; undefined without lspci. */
  differences?: string[];
}

export async function measureDumps(options: {
  socket: string;
  /** Used for the in-process figure, then closed so `xpci lspci` can connect. */
  client: FrontendClient;
  hostDevices: string[];
  runs: number;
  pinCpu?: number;
  withLspci: boolean;
}): Promise<DumpFigures> {
  const { socket, client, hostDevices, runs, pinCpu } = options;
  const library: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    const { addresses } = await scanBus(client);
    await Promise.all(addresses.map((a) => readConfigBytes(client.remoteDevice(a), 256)));
    library.push(performance.now() - start);
  }
  // One frontend per backend: the xpci lspci processes need the session this client holds.
  await client.close();
  await new Promise((r) => setTimeout(r, 100));

  const xpci: number[] = [];
  let xpciOut = '';
  for (let i = 0; i < runs; i++) {
    const [cmd, args] = withPin(pinCpu, process.execPath, [CLI, 'lspci', '-xxx', '--connect', socket]);
    const { ms, stdout } = await timedRun(cmd, args);
    xpci.push(ms);
    xpciOut = stdout;
  }

  const figures: DumpFigures = { devices: hostDevices.length, xpciProcessMs: median(xpci), xpciLibraryMs: median(library) };
  if (!options.withLspci) return figures;

  const lspci: number[] = [];
  let lspciOut = '';
  for (let i = 0; i < runs; i++) {
    let total = 0;
    const outputs: string[] = [];
    for (const bdf of hostDevices) {
      const [cmd, args] = withPin(pinCpu, 'lspci', ['-xxx', '-s', bdf]);
      const { ms, stdout } = await timedRun(cmd, args);
      total += ms;
      outputs.push(stdout);
    }
    lspci.push(total);
    lspciOut = outputs.join('');
  }
  figures.lspciMs = median(lspci);
  figures.differences = compareDumps(xpciOut, lspciOut);
  return figures;
}

/** Offsets whose bytes differ, per device present in both dumps; a device missing from one is named. */
function compareDumps(frontend: string, host: string): string[] {
  const ours = new Map(parseLspciDump(frontend, 'xpci lspci').map((d) => [packAddress(d.address), d]));
  const differences: string[] = [];
  for (const theirs of parseLspciDump(host, 'lspci')) {
    const mine = ours.get(packAddress(theirs.address));
    const name = formatAddress(theirs.address);
    if (!mine) {
      differences.push(`${name} missing from the frontend's dump`);
      continue;
    }
    const length = Math.max(mine.config.length, theirs.config.length);
    for (let at = 0; at < length; at++) {
      if (mine.config[at] !== theirs.config[at]) differences.push(`${name}@0x${at.toString(16).padStart(2, '0')}`);
    }
  }
  return differences;
}
