/**
 * Every way `xpci export` can end that Node lets it see goes through the one release path: the
 * registers a frontend changed are restored, and no lock or socket file is left behind. Signals
 * (SIGINT, SIGTERM, SIGHUP: a closed terminal) and a broken stdout or stderr pipe (`xpci export |
 * head -1`, a log reader that dies) are each tested on a fixture device.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { buildConfigImage, createFixtureTree } from '../support/fixture-sysfs.js';
import { XPCI_MAIN } from '../support/xpci-process.js';
import { connect } from '../../src/frontend/index.js';
import { parseAddress } from '../../src/pci/address.js';

const BDF = '0000:00:05.0';
const CACHE_LINE_SIZE = 0x0c;

type Ending = 'SIGINT' | 'SIGTERM' | 'SIGHUP' | 'stdout closed, then SIGTERM';
type Start = 'stdout closed' | 'stderr closed';

/** `xpci export` of one fixture device in `dir`, its output piped to this test. */
function spawnExport(dir: string) {
  const tree = createFixtureTree([{ address: BDF, config: buildConfigImage({ vendor: 0x8086, device: 0x100e, classCode: 0x020000, cacheLineSize: 0x10 }) }], join(dir, 'sysfs'));
  const socket = join(dir, 'run', 'xpci.sock');
  const stateDir = join(dir, 'state');
  const child = spawn(process.execPath, [XPCI_MAIN, 'export', '--sysfs-root', tree.root, '--state-dir', stateDir, '--socket', socket, BDF],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBUG: '' } });
  return { tree, socket, stateDir, child, exited: once(child, 'exit') };
}

async function exportAndEnd(ending: Ending): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'xpci-deaths-'));
  try {
    const { tree, socket, stateDir, child, exited } = spawnExport(dir);
    const before = tree.configBytes(BDF);
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const lines = createInterface({ input: child.stdout! });
    const ready = new Promise<void>((resolve) => lines.on('line', (line) => { if (line.startsWith('ready')) resolve(); }));
    await Promise.race([ready, exited.then(() => assert.fail(`exited early: ${stderr}`))]);
    const client = await connect(socket);
    await client.configWrite(parseAddress('00:00.0'), CACHE_LINE_SIZE, 1, 0x20);
    assert.notDeepEqual(tree.configBytes(BDF), before, 'the frontend changed the device');
    if (ending.startsWith('SIG')) child.kill(ending as NodeJS.Signals);
    else {
      // Like a log reader that died: the shutdown summary goes to a closed pipe.
      lines.close();
      child.stdout!.destroy();
      child.kill('SIGTERM');
    }
    const [code, signal] = await exited;
    await client.close();
    assert.equal(signal, null, `${ending}: the backend died of ${String(signal)} (stderr: ${stderr})`);
    assert.ok(code === 0, `${ending}: exit status ${String(code)} (stderr: ${stderr})`);
    assert.deepEqual(tree.configBytes(BDF), before, `${ending}: the registers were restored`);
    assert.deepEqual(readdirSync(join(stateDir, 'locks')), [], `${ending}: no lock left`);
    assert.equal(existsSync(socket), false, `${ending}: no socket left`);
    assert.equal(existsSync(`${socket}.ctl`), false, `${ending}: no control socket left`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Output closed before the first line (`xpci export | head -0`): the first write fails while devices are held. */
async function exportIntoClosedPipe(start: Start): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'xpci-deaths-'));
  try {
    const { socket, stateDir, child, exited } = spawnExport(dir);
    let output = '';
    const [closed, kept] = start === 'stdout closed' ? [child.stdout!, child.stderr!] : [child.stderr!, child.stdout!];
    closed.destroy();
    kept.on('data', (d) => (output += d));
    const [code, signal] = await exited;
    assert.equal(signal, null, `${start}: the backend died of ${String(signal)} (${output})`);
    assert.equal(code, 0, `${start}: exit status ${String(code)} (${output})`);
    assert.deepEqual(readdirSync(join(stateDir, 'locks')), [], `${start}: no lock left`);
    assert.equal(existsSync(socket), false, `${start}: no socket left`);
    assert.equal(existsSync(`${socket}.ctl`), false, `${start}: no control socket left`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('deaths of xpci export release the devices', () => {
  for (const start of ['stdout closed', 'stderr closed'] as const) {
    test(`${start} from the start: the backend stops cleanly, no lock or socket left`, () => exportIntoClosedPipe(start));
  }
  for (const ending of ['SIGINT', 'SIGTERM', 'SIGHUP', 'stdout closed, then SIGTERM'] as const) {
    test(`${ending}: registers restored, no lock or socket left`, () => exportAndEnd(ending));
  }
});
