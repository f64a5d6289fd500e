import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server } from 'node:net';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import {
  ControlLineReader, MAX_CONTROL_LINE, controlSocketPath, encodeControlReply, encodeControlRequest, parseControlReply,
  parseControlRequest, serveControlConnection, type ControlHandler, type ControlRequest,
} from '../../src/protocol/control/hotplug-control.js';
import { sendControlRequest } from '../../src/cli/control-client.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

describe('control protocol encoding', () => {
  test('requests round-trip with the address normalised; permissive only for attach', () => {
    const line = encodeControlRequest({ op: 'attach', device: '0000:06:01.0', permissive: true });
    assert.equal(line, '{"op":"attach","device":"0000:06:01.0","permissive":true}\n');
    assert.deepEqual(parseControlRequest(line.trimEnd()), { op: 'attach', device: '0000:06:01.0', permissive: true });
    assert.deepEqual(parseControlRequest('{"op":"detach","device":"06:01.0"}'), { op: 'detach', device: '0000:06:01.0' });
    assert.deepEqual(parseControlRequest('{"op":"export-status"}'), { op: 'export-status' });
    assert.equal(controlSocketPath('/run/xpci/xpci.sock'), '/run/xpci/xpci.sock.ctl');
  });

  test('each malformed request says what is wrong', () => {
    const cases: [string, RegExp][] = [
      ['attach 06:01.0', /not JSON/],
      ['[1]', /expected a JSON object/],
      ['{"op":"remove","device":"06:01.0"}', /op must be one of attach, detach, status, export-status, got "remove"/],
      ['{"op":"export-status","device":"06:01.0"}', /export-status takes no device/],
      ['{"op":"attach"}', /device must be a PCI address string/],
      ['{"op":"attach","device":"06:01"}', /invalid PCI address '06:01'/],
      ['{"op":"attach","device":"06:01.0","permissive":"yes"}', /permissive must be true or false/],
      ['{"op":"detach","device":"06:01.0","permissive":true}', /permissive is only valid for attach/],
      ['{"op":"attach","device":"06:01.0","force":true}', /unknown key "force"/],
    ];
    for (const [line, reason] of cases) assert.throws(() => parseControlRequest(line), { name: 'ControlProtocolError', message: reason }, line);
  });

  test('replies: encoded on one line, validated on the way in', () => {
    assert.equal(encodeControlReply({ ok: false, error: 'first\nsecond' }), '{"ok":false,"error":"first"}\n');
    assert.deepEqual(parseControlReply('{"ok":true,"guest":"0000:00:01.0"}'), { ok: true, guest: '0000:00:01.0' });
    assert.throws(() => parseControlReply('{"ok":false}'), /a failure must carry an error/);
    assert.throws(() => parseControlReply('{"ok":"yes"}'), /ok must be true or false/);
    assert.throws(() => parseControlReply('{"ok":true,"guest":1}'), /guest must be a string/);
  });

  test('the line reader joins split chunks (also inside a UTF-8 character) and bounds line length', () => {
    const reader = new ControlLineReader();
    const bytes = Buffer.from('{"a":"é"}\n\n{"b":1}\n{"c"');
    const split = bytes.indexOf(0xa9);
    assert.deepEqual(reader.push(bytes.subarray(0, split)), []);
    assert.deepEqual(reader.push(bytes.subarray(split)), ['{"a":"é"}', '{"b":1}']);
    assert.deepEqual(reader.push(':2}\n'), ['{"c":2}']);
    assert.throws(() => new ControlLineReader().push('x'.repeat(MAX_CONTROL_LINE + 1)), /longer than 4096 bytes/);
  });
});

/** A control server on a temp socket whose handler is `handle`. */
async function controlServer(handle: ControlHandler): Promise<{ path: string; server: Server; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'xpci-ctl-'));
  const path = join(dir, 'xpci.sock.ctl');
  const server = createServer((socket) => serveControlConnection(socket, handle));
  server.listen(path);
  await once(server, 'listening');
  return {
    path,
    server,
    close: async () => {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('control connection and client', () => {
  test('requests are answered in order; a bad line or a throwing handler gets ok:false and the connection stays usable', async () => {
    const seen: ControlRequest[] = [];
    const ctl = await controlServer(async (request) => {
      seen.push(request);
      if (request.op === 'status') throw new Error('status exploded');
      await new Promise((resolve) => setTimeout(resolve, request.op === 'attach' ? 5 : 0));
      return { ok: true, guest: '0000:00:01.0' };
    });
    try {
      const socket = connect(ctl.path);
      await once(socket, 'connect');
      const replies: string[] = [];
      const reader = new ControlLineReader();
      socket.on('data', (chunk: Buffer) => replies.push(...reader.push(chunk)));
      socket.write('{"op":"attach","device":"06:01.0"}\nnot json\n{"op":"status","device":"06:01.0"}\n{"op":"detach","device":"0000:06:01.0"}\n');
      while (replies.length < 4) await once(socket, 'data');
      assert.deepEqual(replies.map((r) => JSON.parse(r)), [
        { ok: true, guest: '0000:00:01.0' },
        { ok: false, error: 'malformed request: not JSON' },
        { ok: false, error: 'status exploded' },
        { ok: true, guest: '0000:00:01.0' },
      ]);
      assert.deepEqual(seen.map((r) => r.op), ['attach', 'status', 'detach']);
      socket.destroy();
    } finally {
      await ctl.close();
    }
  });

  test('an oversized line is answered and the connection closed', async () => {
    const ctl = await controlServer(() => ({ ok: true }));
    try {
      const socket = connect(ctl.path);
      await once(socket, 'connect');
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.write('x'.repeat(MAX_CONTROL_LINE + 10));
      await once(socket, 'end');
      assert.deepEqual(JSON.parse(Buffer.concat(chunks).toString()), { ok: false, error: 'control line longer than 4096 bytes' });
      socket.destroy();
    } finally {
      await ctl.close();
    }
  });

  test('sendControlRequest: reply, and clear errors for a missing or silent backend', async () => {
    const ctl = await controlServer((request) => ({ ok: true, guest: request.device === '0000:06:01.0' ? '0000:00:01.0' : undefined }));
    try {
      assert.deepEqual(await sendControlRequest(ctl.path, { op: 'attach', device: '0000:06:01.0' }), { ok: true, guest: '0000:00:01.0' });
      await assert.rejects(sendControlRequest(ctl.path + '.absent', { op: 'status', device: '0000:06:01.0' }), /no control socket at .*\.absent: is 'xpci export' running/);
    } finally {
      await ctl.close();
    }
    const dir = mkdtempSync(join(tmpdir(), 'xpci-ctl-'));
    const silent = createServer(() => {});
    silent.listen(join(dir, 'silent.ctl'));
    await once(silent, 'listening');
    try {
      await assert.rejects(sendControlRequest(join(dir, 'silent.ctl'), { op: 'status', device: '0000:06:01.0' }, 50), /no reply from the backend on .*silent\.ctl within 0\.05 s/);
    } finally {
      silent.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function xpci(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, XPCI_SOCKET: '/nonexistent/xpci.sock' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })));
}

describe('xpci attach / detach', () => {
  test('talk to <socket>.ctl, print the frontend address, report refusals with exit 1', async () => {
    const requests: ControlRequest[] = [];
    const ctl = await controlServer((request) => {
      requests.push(request);
      if (request.device === '0000:06:02.0') return { ok: false, error: '0000:06:02.0 is in use by host driver \'igb\'' };
      return { ok: true, guest: '0000:00:01.0' };
    });
    const ring = ctl.path.slice(0, -'.ctl'.length);
    try {
      const attached = await xpci('attach', '06:01.0', '--socket', ring, '--permissive');
      assert.deepEqual([attached.status, attached.stdout, attached.stderr], [0, '0000:06:01.0: attached (frontend address 0000:00:01.0)\n', '']);
      const detached = await xpci('detach', '0000:06:01.0', '--control', ctl.path, '--json');
      assert.deepEqual([detached.status, JSON.parse(detached.stdout)], [0, { ok: true, guest: '0000:00:01.0' }]);
      const refused = await xpci('attach', '06:02.0', '--socket', ring);
      assert.deepEqual([refused.status, refused.stderr], [1, "xpci: attach 0000:06:02.0: 0000:06:02.0 is in use by host driver 'igb'\n"]);
      assert.deepEqual(requests, [
        { op: 'attach', device: '0000:06:01.0', permissive: true },
        { op: 'detach', device: '0000:06:01.0' },
        { op: 'attach', device: '0000:06:02.0' },
      ]);
    } finally {
      await ctl.close();
    }
  });

  test('bad address: exit 2; no backend: exit 1 naming the socket', async () => {
    const bad = await xpci('attach', '6:1');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^xpci: invalid PCI address '6:1'/);
    const absent = await xpci('detach', '06:01.0');
    assert.equal(absent.status, 1);
    assert.equal(absent.stderr, "xpci: no control socket at /nonexistent/xpci.sock.ctl: is 'xpci export' running with that --socket? (or pass --control)\n");
  });
});
