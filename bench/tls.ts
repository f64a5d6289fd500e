/**
 * Remote frontends: the fixture round trip (one ConfigRead in flight, through the frontend library)
 * over mutually authenticated TLS on loopback against the same backend's Unix socket, in the same
 * run. Certificates are made on the spot (test/support/tls-certs.ts, openssl).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '../src/frontend/index.js';
import { parseAddress } from '../src/pci/address.js';
import { ALLOWED_SUBJECT, createTestPki } from '../test/support/tls-certs.js';
import { startBackend, stateDirFor } from './backend.js';
import type { Child } from './children.js';
import { pipelined, type Sample } from './measure.js';

export interface TlsBenchContext {
  work: string;
  sysfsRoot: string;
  device: string;
  runMs: number;
  pinCpu: number | undefined;
  track(child: Child): void;
  measure(name: string, depth: number, pids: Record<string, number>, run: () => Promise<Sample>): Promise<unknown>;
}

/** Records `unix1` and `tls1`: the same register read over each transport of one backend. */
export async function measureTls(context: TlsBenchContext): Promise<void> {
  const pkiDir = join(context.work, 'pki');
  mkdirSync(pkiDir);
  const pki = createTestPki(pkiDir);
  const backend = await startBackend({
    devices: [context.device], socket: join(context.work, 'tls-bench.sock'), stateDir: stateDirFor(context.work, 'tls'), mode: 'vpci',
    readOnly: false, sysfsRoot: context.sysfsRoot, pinCpu: context.pinCpu,
    extraArgs: ['--listen', 'tls://127.0.0.1:0', '--cert', pki.backend.cert, '--key', pki.backend.key, '--client-ca', pki.ca, '--allow-subject', ALLOWED_SUBJECT],
  });
  context.track(backend.child);
  const address = parseAddress(backend.devices[0].guest);
  const pids = { bench: process.pid, backend: backend.child.pid };
  const tls = { cert: readFileSync(pki.client.cert), key: readFileSync(pki.client.key), ca: readFileSync(pki.ca) };
  // One frontend at a time: each session ends before the next begins.
  for (const [name, path] of [['unix1', backend.socket], ['tls1', backend.listen as string]] as const) {
    const client = await connect(path, { client: 'xpci bench', tls });
    try {
      await context.measure(name, 1, pids, () => pipelined(1, context.runMs, () => client.configRead(address, 0, 4)));
    } finally {
      await client.close();
    }
  }
  await backend.child.stop();
}
