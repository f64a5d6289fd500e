/**
 * What one CLI call puts on the wire, counted by the mini backend: selection comes from the
 * backend's device list (no bus scan), a plain setpci register read is one request after Hello,
 * `lspci -s X -x` reads only the selected function's header (one ConfigReadBlock; single reads from
 * a backend that predates it), and --batch runs many operations in one session.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatAddress } from '../../src/pci/address.js';
import { PCI_STD_HEADER_SIZE } from '../../src/pci/config-header.js';
import { MessageType, type Request } from '../../src/protocol/ring/messages.js';
import { buildConfigImage } from '../support/fixture-sysfs.js';
import { MiniBackend } from '../support/mini-backend.js';
import { runXpci } from '../support/xpci-process.js';

const image = (device: number, command: number): Uint8Array =>
  buildConfigImage({ vendor: 0x1af4, device, classCode: 0x020000, revision: 1, command, bars: [{ index: 0, kind: 'mem', size: 0x1000, start: 0xfe000000 }] });

const target = (request: Request): string | undefined => ('address' in request && request.address ? formatAddress(request.address) : undefined);

describe('requests per CLI call', () => {
  let backend: MiniBackend;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'xpci-cli-call-'));
    backend = await MiniBackend.start({
      devices: [
        { address: '00:00.0', config: image(0x1041, 0x0002) },
        { address: '00:01.0', config: image(0x1042, 0x0006), bars: [{ index: 0, data: Buffer.alloc(0x1000) }] },
        { address: '00:02.0', config: image(0x1043, 0x0000) },
      ],
    });
  });
  after(async () => {
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const requestsOf = async (args: string[]): Promise<Request[]> => {
    const before = backend.received.length;
    const r = await runXpci([...args, '--connect', backend.path]);
    assert.equal(r.status, 0, r.stderr);
    return backend.received.slice(before);
  };

  test('xpci setpci -s DEV COMMAND: Hello and one ConfigRead, nothing else', async () => {
    const sent = await requestsOf(['setpci', '-s', '00:01.0', 'COMMAND']);
    assert.deepEqual(sent.map((r) => [MessageType[r.type], target(r)]), [['Hello', undefined], ['ConfigRead', '0000:00:01.0']]);
  });

  test('xpci lspci -s DEV -x: only the selected function, only its header', async () => {
    const sent = await requestsOf(['lspci', '-s', '00:01.0', '-x']);
    assert.deepEqual(sent.map((r) => [MessageType[r.type], target(r), 'length' in r ? r.length : undefined]),
      [['Hello', undefined, undefined], ['ConfigReadBlock', '0000:00:01.0', PCI_STD_HEADER_SIZE]], 'Hello and the 64-byte header in one request');
  });

  test('xpci lspci -s DEV -x against a backend without ConfigReadBlock: the same dump from single reads', async () => {
    const blocks = await runXpci(['lspci', '-s', '00:01.0', '-x', '--connect', backend.path]);
    const older = await MiniBackend.start({ configReadBlock: false, devices: [{ address: '00:01.0', config: image(0x1042, 0x0006) }] });
    try {
      const r = await runXpci(['lspci', '-s', '00:01.0', '-x', '--connect', older.path]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, blocks.stdout);
      const sent = older.received.map((q) => MessageType[q.type]);
      assert.deepEqual(sent, ['Hello', 'ConfigReadBlock', ...Array<string>(PCI_STD_HEADER_SIZE / 4).fill('ConfigRead')]);
    } finally {
      await older.close();
    }
  });

  test('a full xpci lspci still scans like pcifront (finds what the list lacks)', async () => {
    const sent = await requestsOf(['lspci']);
    assert.ok(sent.some((r) => target(r) === '0000:00:1f.7'), 'the scan probes every devfn');
  });

  test('--batch FILE: many operations, one session, in order', async () => {
    const file = join(dir, 'ops');
    writeFileSync(file, '# cache line size, then read back\nCACHE_LINE_SIZE=20\nCACHE_LINE_SIZE\n\nCOMMAND  # decode bits\n');
    const connections = backend.connections;
    const r = await runXpci(['setpci', '--connect', backend.path, '-s', '00:01.0', 'VENDOR_ID', '--batch', file]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '1af4\n20\n0006\n');
    assert.equal(backend.connections, connections + 1, 'one session');
    const bar = await runXpci(['bar', '--connect', backend.path, '-s', '00:01.0', '--batch', file.replace(/ops$/, 'bar-ops')]);
    assert.equal(bar.status, 1);
    assert.match(bar.stderr, /^xpci: --batch \S+bar-ops: ENOENT/);
  });

  test('no operation at all is a usage error', async () => {
    const r = await runXpci(['setpci', '--connect', backend.path, '-s', '00:01.0']);
    assert.equal(r.status, 2);
    assert.equal(r.stderr, 'xpci: setpci: no operation given (on the command line or with --batch FILE)\n');
  });
});
