/**
 * `xpci lspci -vv`, `-vvv`, `-t` and `-mm` through the ring print exactly what the system
 * `lspci -F` prints for the same dump: every device of the pciutils corpus (test/fixtures/
 * pciutils-dumps/, copied from pciutils' own test dumps) served by the mini backend. `-v` stays the built-in printer and shows the BAR sizes the backend describes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { formatAddress } from '../../src/pci/address.js';
import { parseLspciDump } from '../../src/pci/lspci-dump.js';
import { buildConfigImage } from '../support/fixture-sysfs.js';
import { MiniBackend } from '../support/mini-backend.js';
import { runXpci } from '../support/xpci-process.js';

const CORPUS = fileURLToPath(new URL('../../../test/fixtures/pciutils-dumps/', import.meta.url));
const hasLspci = spawnSync('lspci', ['--version'], { stdio: 'ignore' }).status === 0;
const files = readdirSync(CORPUS).sort();
const VIEWS = [['-vv'], ['-vvv'], ['-t'], ['-mm'], ['-vv', '-nn']];

function systemLspci(args: string[]): string {
  const run = spawnSync('lspci', args, { encoding: 'utf8' });
  assert.equal(run.status, 0, `lspci ${args.join(' ')}: ${run.stderr}`);
  return run.stdout;
}

test('the corpus is there (the parity suite below must not pass by being empty)', () => {
  assert.ok(files.length >= 40, `${files.length} dumps in ${CORPUS}`);
});

/**
 * The whole corpus behind one backend, so that each view costs one CLI call: dump N's devices move
 * to domains N*16+D (D their own domain), on both sides: the text handed to the system lspci is the
 * corpus file with only its device lines renumbered.
 */
function combinedCorpus(): { text: string; devices: { address: string; config: Uint8Array }[] } {
  const texts: string[] = [];
  const devices: { address: string; config: Uint8Array }[] = [];
  files.forEach((file, index) => {
    const base = (index + 1) << 4;
    const text = readFileSync(join(CORPUS, file), 'utf8');
    const renumbered = text.replace(/^(?:([0-9a-fA-F]{4,6}):)?([0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]) /gm,
      (_, domain: string | undefined, rest: string) => `${(base + parseInt(domain ?? '0', 16)).toString(16).padStart(4, '0')}:${rest} `);
    texts.push(renumbered.endsWith('\n\n') ? renumbered : `${renumbered.replace(/\n*$/, '')}\n\n`);
    for (const { address, config } of parseLspciDump(renumbered, file)) devices.push({ address: formatAddress(address), config });
  });
  return { text: texts.join(''), devices };
}

describe('lspci parity over the pciutils corpus, through the ring', { skip: !hasLspci && 'pciutils not installed' }, () => {
  let backend: MiniBackend;
  let dir: string;
  let reference: string;
  let deviceCount = 0;
  before(async () => {
    const corpus = combinedCorpus();
    deviceCount = corpus.devices.length;
    dir = mkdtempSync(join(tmpdir(), 'xpci-parity-'));
    reference = join(dir, 'corpus.dump');
    writeFileSync(reference, corpus.text);
    backend = await MiniBackend.start({
      mode: 'passthrough',
      roots: [...new Set(corpus.devices.map(({ address }) => address.slice(0, 7)))],
      devices: corpus.devices,
    });
  });
  after(async () => {
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const view of VIEWS) {
    test(`xpci lspci ${view.join(' ')} equals lspci -F of the same dumps`, async () => {
      const r = await runXpci(['lspci', '--connect', backend.path, ...view]);
      assert.equal(r.status, 0, r.stderr);
      const theirs = systemLspci(['-F', reference, ...view]);
      // Not an empty comparison: a line per device (the tree view: at least a line per dump).
      const lines = theirs.split('\n').length;
      assert.ok(deviceCount >= 150 && lines > (view.includes('-t') ? files.length : deviceCount), `${deviceCount} devices, ${lines} lines`);
      assert.equal(r.stdout, theirs);
    });
  }
});

describe('without pciutils (XPCI_LSPCI empty)', () => {
  const config = buildConfigImage({
    vendor: 0x8086, device: 0x10d3, classCode: 0x020000, revision: 0x02, command: 0x0006,
    bars: [{ index: 0, kind: 'mem', size: 0x20000, start: 0xfebc0000 }],
  });
  let backend: MiniBackend;
  before(async () => {
    backend = await MiniBackend.start({ devices: [{ address: '00:00.0', config, bars: [{ index: 0, data: Buffer.alloc(0x20000) }] }] });
  });
  after(() => backend.close());

  test('-v shows the BAR size the backend describes', async () => {
    const r = await runXpci(['lspci', '--connect', backend.path, '-v']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Memory at febc0000 \(32-bit, non-prefetchable\) \[size=128K\]/);
  });

  test('-vv falls back to the built-in -v text with a warning; -t and -mm fail naming pciutils', async () => {
    const vv = await runXpci(['lspci', '--connect', backend.path, '-vv'], { XPCI_LSPCI: '' });
    const v = await runXpci(['lspci', '--connect', backend.path, '-v'], { XPCI_LSPCI: '' });
    assert.equal(vv.status, 0, vv.stderr);
    assert.equal(vv.stdout, v.stdout);
    assert.match(vv.stderr, /warning: pciutils' lspci is not installed: -vv shows what -v shows/);
    for (const flag of ['-t', '-mm']) {
      const r = await runXpci(['lspci', '--connect', backend.path, flag], { XPCI_LSPCI: '' });
      assert.equal(r.status, 1);
      assert.match(r.stderr, /^xpci: lspci: -[tm] is decoded by pciutils' lspci, which is not installed \(apt install pciutils\)\n$/);
    }
  });
});
