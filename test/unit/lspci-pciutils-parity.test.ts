/**
 * `xpci lspci -vv`, `-vvv`, `-t` and `-mm` through the ring print exactly what the system
 * `lspci -F` prints for the same dump: every device of the pciutils corpus (test/fixtures/
 * pciutils-dumps/, copied from pciutils' own test dumps) served by the mini backend at its own
 * address. `-v` stays the built-in printer and shows the BAR sizes the backend describes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
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

describe('lspci parity over the pciutils corpus, through the ring', { skip: !hasLspci && 'pciutils not installed' }, () => {
  for (const file of files) {
    test(file, async () => {
      const path = join(CORPUS, file);
      const devices = parseLspciDump(readFileSync(path, 'utf8'), file);
      const roots = [...new Set(devices.map(({ address }) => formatAddress(address).slice(0, 7)))];
      const backend = await MiniBackend.start({
        mode: 'passthrough',
        roots,
        devices: devices.map(({ address, config }) => ({ address: formatAddress(address), config })),
      });
      try {
        for (const view of VIEWS) {
          const r = await runXpci(['lspci', '--connect', backend.path, ...view]);
          assert.equal(r.status, 0, r.stderr);
          assert.equal(r.stdout, systemLspci(['-F', path, ...view]), `xpci lspci ${view.join(' ')}`);
        }
      } finally {
        await backend.close();
      }
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
