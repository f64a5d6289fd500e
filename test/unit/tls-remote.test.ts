/**
 * Frontends on other hosts, on loopback: `xpci export --listen tls://127.0.0.1:0` with certificates
 * made here by openssl. An allowed client scans the fixture export; a client without a
 * certificate, with one from another CA, or with a subject not allowed is refused with a clear
 * error, and the backend keeps serving.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfigImage, createFixtureTree, type FixtureTree } from '../support/fixture-sysfs.js';
import { ALLOWED_SUBJECT, createTestPki, type KeyPair, type TestPki } from '../support/tls-certs.js';
import { runXpci, startExport, type RunningExport } from '../support/xpci-process.js';
import { encodeRequest } from '../../src/protocol/ring/codec.js';
import { MessageType } from '../../src/protocol/ring/messages.js';
import { connect } from '../../src/frontend/index.js';

let scratch: string;
let tree: FixtureTree;
let pki: TestPki;
let backend: RunningExport;
let endpoint: string;

const lspci = (pair: KeyPair, ca = pki.ca) => runXpci(['lspci', '-n', '--connect', endpoint, '--cert', pair.cert, '--key', pair.key, '--ca', ca]);

function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, stderr);
  return lines[0];
}

describe('remote frontends over TLS', () => {
  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'xpci-tls-'));
    pki = createTestPki(scratch);
    tree = createFixtureTree([{ address: '0000:06:01.0', config: buildConfigImage({ vendor: 0x8086, device: 0x100e, classCode: 0x020000 }) }], join(scratch, 'sysfs'));
    backend = await startExport([
      '--sysfs-root', tree.root, '--state-dir', join(scratch, 'state'), '--socket', join(scratch, 'run', 'ring.sock'), '--read-only',
      '--listen', 'tls://127.0.0.1:0', '--cert', pki.backend.cert, '--key', pki.backend.key, '--client-ca', pki.ca, '--allow-subject', ALLOWED_SUBJECT,
      '06:01.0',
    ]);
    endpoint = backend.listen ?? '';
    assert.match(endpoint, /^tls:\/\/127\.0\.0\.1:\d+$/);
  });
  after(async () => {
    await backend?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  test('an allowed client scans the export', async () => {
    const r = await lspci(pki.client);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '00:00.0 0200: 8086:100e\n');
  });

  test('xpci status names a connected TLS frontend by its address and certificate subject', async () => {
    const client = await connect(endpoint, { tls: { cert: readFileSync(pki.client.cert), key: readFileSync(pki.client.key), ca: readFileSync(pki.ca) } });
    try {
      const r = await runXpci(['status', '--json', '--state-dir', join(scratch, 'state')]);
      assert.equal(r.status, 0, r.stderr);
      const [exported] = (JSON.parse(r.stdout) as { exports: { peer: { remote: string; subject: string } }[] }).exports;
      assert.match(exported.peer.remote, /^127\.0\.0\.1:\d+$/);
      assert.equal(exported.peer.subject, ALLOWED_SUBJECT);
      const text = await runXpci(['status', '--state-dir', join(scratch, 'state')]);
      assert.match(text.stdout, new RegExp(`frontend: TLS 127\\.0\\.0\\.1:\\d+ subject ${ALLOWED_SUBJECT}`));
    } finally {
      await client.close();
    }
  });

  test('a client certificate from another CA is refused with a clear error', async () => {
    const r = await lspci(pki.otherCa);
    assert.equal(r.status, 1);
    assert.match(oneLine(r.stderr), /^xpci: .*TLS session with tls:\/\/127\.0\.0\.1:\d+ failed: the backend refused this client's certificate \((TLS alert: [a-z ]+|it closed the connection after the handshake)\): check --cert\/--key/);
  });

  test('a subject not on the allow list is refused: PermissionDenied naming the subject', async () => {
    const r = await lspci(pki.otherSubject);
    assert.equal(r.status, 1);
    assert.match(oneLine(r.stderr), /refused the session: PermissionDenied: access denied: TLS client 127\.0\.0\.1:\d+ with certificate subject CN=mallory is not allowed; this backend admits CN=ci-runner/);
  });

  test('a client that does not trust the backend\'s CA says so', async () => {
    const r = await lspci(pki.client, pki.otherCa.cert);
    assert.equal(r.status, 1);
    assert.match(oneLine(r.stderr), /the backend's certificate is not trusted \([A-Z_]+\): check --ca/);
  });

  test('a client without a certificate: the CLI names what is missing; at the TLS level the handshake is refused', async () => {
    const usage = await runXpci(['lspci', '--connect', endpoint, '--ca', pki.ca]);
    assert.equal(usage.status, 2);
    assert.match(oneLine(usage.stderr), /^xpci: --connect tls:\/\/.* needs --cert, --key/);
    const { port } = new URL(endpoint.replace('tls:', 'https:'));
    const outcome = await new Promise<string>((resolve) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: Number(port), ca: readFileSync(pki.ca) });
      let received = 0;
      socket.on('secureConnect', () => socket.write(encodeRequest({ type: MessageType.Hello, id: 1, hello: { versions: [1], ringDepth: 8 } })));
      socket.on('data', (chunk: Buffer) => { received += chunk.length; });
      socket.on('error', (error: NodeJS.ErrnoException) => resolve(`error ${error.code}`));
      socket.on('close', () => resolve(`closed after ${received} bytes`));
    });
    assert.match(outcome, /^error ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED|^error ECONNRESET|^closed after 0 bytes/, outcome);
  });

  test('the backend stayed up: refusals were logged, the allowed client still gets in', async () => {
    assert.equal(backend.process.exitCode, null);
    assert.match(backend.stderr(), /refused a TLS client/);
    assert.match(backend.stderr(), /refused a frontend: access denied: TLS client .*CN=mallory/);
    const r = await lspci(pki.client);
    assert.equal(r.status, 0, r.stderr);
  });

  test('--listen is TLS only, and needs its certificates and an allow list (usage errors)', async () => {
    const base = ['export', '--sysfs-root', tree.root, '--state-dir', join(scratch, 'state-u'), '--socket', join(scratch, 'u.sock'), '06:01.0'];
    const cases: [string[], RegExp][] = [
      [['--listen', 'tcp://127.0.0.1:7000'], /^xpci: --listen: expected tls:\/\/HOST:PORT.*never plaintext TCP/],
      [['--listen', 'tls://127.0.0.1:7000'], /^xpci: --listen needs --cert, --key, --client-ca/],
      [['--listen', 'tls://127.0.0.1:7000', '--cert', pki.backend.cert, '--key', pki.backend.key, '--client-ca', pki.ca], /^xpci: --listen needs at least one --allow-subject/],
      [['--cert', pki.backend.cert], /^xpci: --cert goes only with --listen/],
    ];
    for (const [extra, pattern] of cases) {
      const r = await runXpci([...base, ...extra]);
      assert.equal(r.status, 2, r.stderr);
      assert.match(oneLine(r.stderr), pattern);
    }
  });
});
