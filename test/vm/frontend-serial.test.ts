/**
 * A frontend inside the QEMU guest reaches a backend on the HOST through the virtio-serial port
 * xpci.0: `xpci export --sysfs-root <fixture tree>` listens on a host socket, QEMU connects to it
 * as a client, and `xpci lspci/setpci --connect /dev/virtio-ports/xpci.0` runs in the guest. The
 * frontend then restarts several times on the same stream (the backend and QEMU's connection stay
 * up), once after a predecessor died mid-frame.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { formatAddress } from '../../src/pci/address.js';
import { parseLspciDump } from '../../src/pci/lspci-dump.js';
import { buildConfigImage, createFixtureTree, type FixtureTree } from '../support/fixture-sysfs.js';
import { startExport, type RunningExport } from '../support/xpci-process.js';
import { Guest, announceSkip, qemuAvailable } from './harness/index.js';

const hasAddon = existsSync(new URL('../../../build/Release/xpci_native.node', import.meta.url));
const unavailable = (await qemuAvailable()) ?? (hasAddon ? null : 'the native addon is not built (npm run build:native)');

const PORT = '/dev/virtio-ports/xpci.0';
const nic = buildConfigImage({
  vendor: 0x8086, device: 0x10d3, classCode: 0x020000, revision: 2, headerType: 0x80, command: 0x0002,
  bars: [{ index: 0, kind: 'mem', size: 0x20000, start: 0xfebc0000 }],
  capabilities: [{ id: 0x01, body: [0x22, 0xc8, 0x00, 0x00, 0, 0] }],
});
const nicSibling = buildConfigImage({ vendor: 0x8086, device: 0x10d3, classCode: 0x020000, revision: 2, headerType: 0x80 });
const lone = buildConfigImage({ vendor: 0x1af4, device: 0x1041, classCode: 0x020000, revision: 1 });

describe('frontend in the guest, backend on the host, over virtio-serial', { skip: unavailable !== null && announceSkip('frontend-serial', unavailable) }, () => {
  let dir: string;
  let tree: FixtureTree;
  let backend: RunningExport;
  let vm: Guest;
  const xpci = (args: string) => vm.exec(`node dist/src/cli/main.js ${args}`, { timeoutMs: 60_000 });

  before(async () => {
    // Short: the socket path must stay under 108 bytes.
    dir = mkdtempSync('/tmp/xpci-fs-');
    tree = createFixtureTree([
      { address: '0000:06:01.0', config: nic, driver: null, bars: [{ index: 0, kind: 'mem', size: 0x20000, start: 0xfebc0000 }] },
      { address: '0000:06:01.1', config: nicSibling, driver: null },
      { address: '0000:07:00.2', config: lone, driver: null },
    ], join(dir, 'sysfs'));
    backend = await startExport(['--sysfs-root', tree.root, '--state-dir', join(dir, 'state'), '--socket', join(dir, 'x.sock'),
      '--no-reset-on-export', '--no-reset-on-release', '06:01.0', '06:01.1', '07:00.2']);
    vm = await Guest.boot({ devices: { standard: false, xpciPort: { mode: 'client', path: backend.socket } }, timeoutMs: 120_000 });
  });

  after(async () => {
    await vm?.shutdown();
    const status = await backend?.stop();
    tree?.cleanup();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(status, 0, `xpci export exited with ${status}: ${backend?.stderr()}`);
  });

  test('xpci lspci -xxx over /dev/virtio-ports/xpci.0 shows the exported devices', async () => {
    assert.ok((await vm.exec(`test -c ${PORT}`)).exitCode === 0, `${PORT} is a character device in the guest`);
    const r = await xpci(`lspci -n -xxx --connect ${PORT}`);
    assert.equal(r.exitCode, 0, r.stderr);
    const dumps = parseLspciDump(r.stdout);
    assert.deepEqual(dumps.map((d) => formatAddress(d.address)), ['0000:00:00.0', '0000:00:00.1', '0000:00:01.2']);
    assert.match(r.stdout, /^00:00\.0 0200: 8086:10d3 \(rev 02\)$/m);
    assert.match(r.stdout, /^00:01\.2 0200: 1af4:1041 \(rev 01\)$/m);
    // Identity and capability bytes come through (BARs are emulated in vPCI mode, and PM's PME
    // support bits read 0: docs/protocol.md §13).
    assert.deepEqual(dumps[0].config.subarray(0, 4), nic.subarray(0, 4));
    assert.deepEqual(dumps[0].config.subarray(0x40, 0x43), nic.subarray(0x40, 0x43));
    assert.equal(dumps[0].config[0x43], nic[0x43] & 0x07);
    assert.deepEqual(dumps[2].config.subarray(0x28, 0x30), lone.subarray(0x28, 0x30));
  });

  test('a second frontend (xpci setpci) on the same stream works: restart without restarting the backend', async () => {
    const r = await xpci(`setpci --connect ${PORT} -s 00:00.0 CACHE_LINE_SIZE=10 CACHE_LINE_SIZE`);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout, '10\n');
    assert.equal(tree.configBytes('0000:06:01.0')[0x0c], 0x10, 'the write reached the host-side device');
  });

  test('right after a frontend died mid-frame, the next one retries Hello until the backend drops the partial frame', async () => {
    // One process plays both: it leaves the magic and a 256-byte length (plus 2 bytes) on the
    // stream, then connects at once, so its Hellos land inside the partial frame until the
    // backend discards it after 2 s of silence.
    const script = `
      import { writeFileSync } from 'node:fs';
      import { connect, scanBus } from './dist/src/frontend/index.js';
      writeFileSync('${PORT}', Buffer.from([0x58, 0x50, 0x43, 0x49, 0x00, 0x01, 0x00, 0x00, 0x02, 0x00]));
      const client = await connect('${PORT}');
      const scan = await scanBus(client);
      console.log(scan.addresses.length, (await client.configRead(scan.addresses[2], 0, 4)).toString(16));
      await client.close();`;
    const r = await vm.exec(`node --input-type=module -e "${script.replace(/"/g, '\\"')}"`, { timeoutMs: 60_000, env: { DEBUG: 'xpci:frontend' } });
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout, '3 10411af4\n');
    assert.match(r.stderr, /no Hello reply from \/dev\/virtio-ports\/xpci\.0 after 1000 ms; sending Hello again/);
  });
});
