/**
 * `xpci demo` runs to the end as an unprivileged user (uid/gid 65534, as on a machine where the user
 * may touch no PCI device): it exports the bundled snapshot tree, every frontend step comes out as
 * expected, it exits 0 and leaves no temp directory behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess, XPCI_MAIN, type XpciResult } from '../support/xpci-process.js';

const NOBODY = 65534;

function runDemoAsNobody(tmp: string): Promise<XpciResult> {
  const asRoot = process.getuid?.() === 0;
  const command = asRoot ? 'setpriv' : process.execPath;
  const args = asRoot
    ? [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, XPCI_MAIN, 'demo']
    : [XPCI_MAIN, 'demo'];
  return runProcess(command, args, { env: { PATH: process.env.PATH, HOME: tmp, TMPDIR: tmp } });
}

test('xpci demo as uid 65534: every step as expected, exit 0, nothing left behind', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'xpci-demo-test-'));
  chmodSync(tmp, 0o1777);
  try {
    const r = await runDemoAsNobody(tmp);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^00:00\.0 Unclassified device \[00ff\]: .*\[1234:11e8\]/m, 'lspci -nn of the virtual bus');
    assert.match(r.stdout, /^00:02\.0 Ethernet controller \[0200\]: .*\[8086:10d3\]/m);
    assert.match(r.stdout, /BASE_ADDRESS_0=fe000000 .*AccessDenied/, 'the BAR move is refused');
    assert.match(r.stdout, /CACHE_LINE_SIZE\n10\n/, 'the cache line size write landed');
    assert.match(r.stdout, /0:0\.l\n0x010000ed\n/, "edu's identification register through the BAR");
    assert.match(r.stdout, /^\$ xpci lspci -nn --connect \S+xpci\.sock$/m, 'each step shows the command to type');
    assert.deepEqual(readdirSync(tmp).filter((name) => name.startsWith('xpci-demo-')), [], 'temp directory removed');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test("the README's first command ends with the demo", () => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const first = /```sh\n([^\n]*)\n/.exec(readme)?.[1];
  assert.equal(first, 'bash scripts/setup-host.sh && npm ci && npx xpci demo');
});
