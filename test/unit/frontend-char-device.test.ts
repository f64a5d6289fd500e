/**
 * The character-device transport, exercised on the host with a pseudo-terminal in raw mode as a
 * stand-in for a virtio-serial port: a small Python relay joins the pty master to the mini
 * backend's socket and keeps that connection while frontends come and go on the pty slave,
 * as QEMU keeps the host end of a virtio-serial port connected while the guest frontend restarts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { connect } from '../../src/frontend/index.js';
import { parseAddress } from '../../src/pci/address.js';
import { readConfigBytes } from '../../src/pci/config-reader.js';
import { encodeRequest } from '../../src/protocol/ring/codec.js';
import { MessageType } from '../../src/protocol/ring/messages.js';
import { buildConfigImage } from '../support/fixture-sysfs.js';
import { MiniBackend } from '../support/mini-backend.js';

const RELAY = String.raw`
import os, select, socket, sys, tty
master, slave = os.openpty()
tty.setraw(slave)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(sys.argv[1])
print(os.ttyname(slave), flush=True)
while True:
    ready = select.select([master, sock, sys.stdin], [], [])[0]
    if master in ready:
        sock.sendall(os.read(master, 65536))
    if sock in ready:
        data = sock.recv(65536)
        if not data:
            break
        os.write(master, data)
    if sys.stdin in ready and not os.read(sys.stdin.fileno(), 1):
        break
`;

const hasPython = spawnSync('python3', ['-c', 'import pty, tty'], { stdio: 'ignore' }).status === 0;
const NET = parseAddress('00:00.0');
const config = buildConfigImage({ vendor: 0x1af4, device: 0x1041, classCode: 0x020000, revision: 1, command: 0x0007 });

describe('character device transport (pty stand-in for virtio-serial)', { skip: hasPython ? false : 'python3 not available' }, () => {
  let backend: MiniBackend;
  let relay: ChildProcess;
  let port: string;

  before(async () => {
    backend = await MiniBackend.start({ devices: [{ address: '00:00.0', config, bars: [{ index: 0, data: Buffer.alloc(4096) }] }] });
    relay = spawn('python3', ['-c', RELAY, backend.path], { stdio: ['pipe', 'pipe', 'inherit'] });
    const [line] = await once(createInterface({ input: relay.stdout! }), 'line');
    port = String(line);
  });

  after(async () => {
    relay.stdin?.end();
    await once(relay, 'exit');
    await backend.close();
  });

  test('handshake and config reads through the character device', async () => {
    const client = await connect(port);
    try {
      assert.equal(client.devices()[0].address, '0000:00:00.0');
      assert.deepEqual(await readConfigBytes(client.remoteDevice(NET), 256), config);
    } finally {
      await client.close();
    }
  });

  test('large pipelined traffic survives the tty buffer (short writes, EAGAIN)', async () => {
    const client = await connect(port);
    try {
      const payload = Buffer.alloc(60000, 0xa5);
      const echoes = await Promise.all([client.ping(payload), client.ping(payload), ...Array.from({ length: 300 }, (_, i) => client.barRead(NET, 0, i * 8, 8))]);
      assert.deepEqual(echoes[0], payload);
      assert.deepEqual(echoes[1], payload);
    } finally {
      await client.close();
    }
  });

  test('a frontend restart on the same stream works: stale replies ignored, partial frame survived', async () => {
    const connectionsBefore = backend.connections;
    // A first frontend sends a request and goes away without reading the reply.
    const first = await connect(port);
    const abandoned = first.configRead(NET, 0, 4).catch((e: unknown) => e);
    const sent = backend.received.length;
    await first.close();
    await abandoned;
    // A dead frontend's partial frame: the next Hello gets swallowed and must be retried.
    const fd = openSync(port, constants.O_RDWR | constants.O_NOCTTY);
    writeSync(fd, encodeRequest({ type: MessageType.ConfigRead, id: 1, address: NET, offset: 0, size: 4 }).subarray(0, 10));
    closeSync(fd);
    const hellos = (): number => backend.received.filter((r) => r.type === MessageType.Hello).length;
    const hellosBefore = hellos();

    const second = await connect(port, { helloTimeoutsMs: [300, 300, 300] });
    try {
      assert.ok(backend.received.length >= sent);
      assert.equal(hellos() - hellosBefore, 1, 'the first Hello was swallowed by the partial frame; the retry got through');
      assert.equal(await second.configRead(NET, 0, 4), 0x10411af4);
      assert.equal(await second.configRead(NET, 4, 2), 0x0007);
      assert.equal(backend.connections, connectionsBefore, 'the host side stayed connected throughout');
    } finally {
      await second.close();
    }
  });
});
