/**
 * One JSON vocabulary across commands: every key any `--json` output prints is in docs/json.md's
 * table, every key of the table is printed by some command, and the values of formatted keys (BDFs,
 * ids, class) have the documented format. Runs each JSON-printing command against one fixture export.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { buildConfigImage, createFixtureTree, type FixtureTree } from '../support/fixture-sysfs.js';
import { RawClient } from '../support/raw-client.js';
import { ALLOWED_SUBJECT, createTestPki } from '../support/tls-certs.js';
import { runXpci, XPCI_MAIN } from '../support/xpci-process.js';
import { parseAddress } from '../../src/pci/address.js';
import { MessageType } from '../../src/protocol/ring/messages.js';

const NIC = '0000:06:01.0';
const EDU = '0000:06:02.0';
const HELD = '0000:06:03.0';
const BRIDGE = '0000:00:1c.0';

const FORMATS: Record<string, RegExp> = {
  BDF: /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/,
  hex2: /^[0-9a-f]{2}$/,
  hex4: /^[0-9a-f]{4}$/,
  hex6: /^[0-9a-f]{6}$/,
  hex: /^([0-9a-f]{2})*$/,
};

/** key -> format, from the table in docs/json.md. */
function documentedKeys(): Map<string, string> {
  const doc = readFileSync(new URL('../../../docs/json.md', import.meta.url), 'utf8');
  return new Map([...doc.matchAll(/^\| `(\w+)` \| ([^|]+?) \|/gm)].map((m) => [m[1], m[2]]));
}

/** Every key with every value it had, anywhere in `value`. */
function collect(value: unknown, into: Map<string, unknown[]>): void {
  if (Array.isArray(value)) {
    for (const item of value) collect(item, into);
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, inner] of Object.entries(value)) {
      into.set(key, [...(into.get(key) ?? []), inner]);
      collect(inner, into);
    }
  }
}

let scratch: string;
let tree: FixtureTree;

before(() => {
  scratch = mkdtempSync(join(tmpdir(), 'xpci-json-'));
  tree = createFixtureTree([
    { address: NIC, config: buildConfigImage({ vendor: 0x8086, device: 0x100e, classCode: 0x020000 }), bars: [{ index: 0, kind: 'mem', size: 0x20000, start: 0xfeb80000 }] },
    { address: EDU, config: buildConfigImage({ vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00 }) },
    { address: HELD, config: buildConfigImage({ vendor: 0x8086, device: 0x10d3, classCode: 0x020000 }), driver: 'e1000e' },
    { address: BRIDGE, config: buildConfigImage({ vendor: 0x8086, device: 0x2448, classCode: 0x060400, headerType: 1 }) },
  ], join(scratch, 'sysfs'));
  mkdirSync(join(tree.root, 'bus', 'pci', 'drivers', 'pci-stub'));
});
after(() => rmSync(scratch, { recursive: true, force: true }));

test('every --json key is documented in docs/json.md, with its format, and every documented key is used', async () => {
  const stateDir = join(scratch, 'state');
  const socket = join(scratch, 'run', 'ring.sock');
  const common = ['--sysfs-root', tree.root, '--state-dir', stateDir];
  const outputs: unknown[] = [];
  const json = async (args: string[], expectStatus = 0): Promise<void> => {
    const r = await runXpci([...args, '--json'], { XPCI_STATE_DIR: stateDir });
    assert.equal(r.status, expectStatus, `${args.join(' ')}: ${r.stderr}`);
    for (const text of r.stdout.trim().split(/\n(?=[[{])/)) outputs.push(JSON.parse(text));
  };

  const pki = createTestPki(mkdtempSync(join(scratch, 'pki-')));
  const tls = ['--listen', 'tls://127.0.0.1:0', '--cert', pki.backend.cert, '--key', pki.backend.key, '--client-ca', pki.ca, '--allow-subject', ALLOWED_SUBJECT];
  const backend = spawn(process.execPath, [XPCI_MAIN, 'export', '--json', ...common, ...tls, '--socket', socket, '--no-reset-on-export', '--no-reset-on-release', NIC, BRIDGE], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBUG: '' } });
  const lines: string[] = [];
  const ready = new Promise<void>((resolve) => createInterface({ input: backend.stdout }).on('line', (line) => {
    lines.push(line);
    if (line.startsWith('{"socket"')) resolve();
  }));
  await ready;
  const client = await RawClient.connect(socket);
  await client.hello();
  await client.request({ type: MessageType.ConfigWrite, id: client.id(), address: parseAddress('00:00.0'), offset: 0, size: 2, value: 0x1234 });
  await json(['attach', '--socket', socket, EDU]);
  await json(['status', '--state-dir', stateDir]);
  await client.close();
  await json(['lspci', '--connect', socket, '-x']);
  await json(['detach', '--socket', socket, '00:01.0']);
  await json(['detach', '--socket', socket, HELD], 1);
  await json(['list', ...common]);
  await json(['assignable-add', ...common, HELD], 1);
  // A seize needs a kernel; the record one leaves behind is written here as assignable-add writes it.
  writeFileSync(join(stateDir, 'assignable', `${HELD}.json`), JSON.stringify({ bdf: HELD, originalDriver: 'e1000e', sysfsRoot: tree.root, since: new Date().toISOString() }));
  await json(['assignable-list', ...common]);
  await json(['snapshot', NIC, '--sysfs-root', tree.root, '--out', join(scratch, 'snap')]);
  backend.kill('SIGTERM');
  await once(backend, 'exit');
  outputs.push(...lines.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line)));

  const seen = new Map<string, unknown[]>();
  collect(outputs, seen);
  const documented = documentedKeys();
  const undocumented = [...seen.keys()].filter((key) => !documented.has(key));
  assert.deepEqual(undocumented, [], 'keys printed but not in docs/json.md');
  const unused = [...documented.keys()].filter((key) => !seen.has(key));
  assert.deepEqual(unused, [], 'keys in docs/json.md that no command printed');
  for (const [key, values] of seen) {
    const format = FORMATS[documented.get(key) ?? ''];
    if (!format) continue;
    for (const value of values) assert.match(String(value), format, `${key}: ${JSON.stringify(value)} is not ${documented.get(key)}`);
  }
});
