/**
 * Real config spaces from pciutils' test dumps: parse them, walk their capabilities, print them back
 * with our formatter and check that the real `lspci -F` reads our output exactly as it reads theirs.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseLspciDump, type DumpedDevice } from '../../src/pci/lspci-dump.js';
import { formatDevices } from '../../src/pci/lspci-format.js';
import { walkCapabilities, walkExtendedCapabilities } from '../../src/pci/capabilities.js';
import { formatAddress } from '../../src/pci/address.js';
import { PCIUTILS_DUMPS, pciutilsDumpFiles } from '../support/repository.js';

const haveLspci = spawnSync('lspci', ['--version']).status === 0;
const skip = !haveLspci ? 'lspci not installed' : false;
const files = pciutilsDumpFiles();
const scratch = mkdtempSync(join(tmpdir(), 'xpci-corpus-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function lspci(...args: string[]): string {
  const run = spawnSync('lspci', args, { encoding: 'utf8' });
  assert.equal(run.status, 0, `lspci ${args.join(' ')}: ${run.stderr}`);
  return run.stdout;
}

/** Per device (in output order), the offsets lspci -v lists as capabilities. */
function lspciCapabilityOffsets(verbose: string): number[][] {
  return verbose.split('\n\n').filter((block) => block.trim()).map((block) =>
    [...block.matchAll(/^\tCapabilities: \[([0-9a-f]+)\] (?!<chain)/gm)].map((m) => parseInt(m[1], 16)));
}

function ourCapabilityOffsets(device: DumpedDevice): number[] {
  const standard = walkCapabilities(device.config).capabilities;
  // lspci looks at extended space only for PCI Express and PCI-X devices
  const extended = standard.some((c) => c.id === 0x10 || c.id === 0x07) ? walkExtendedCapabilities(device.config).capabilities : [];
  return [...standard, ...extended].map((c) => c.offset);
}

/** pciutils 3.9 in dump mode decodes the upper half of a 64-bit BAR as one more region (a known quirk). */
const dumpModeQuirk = (line: string): boolean => /^\t(Memory at|I\/O ports at) <unassigned>/.test(line);

test('the pciutils dumps are in the repository', () => {
  assert.ok(files.length >= 40, `${files.length} dump files in ${PCIUTILS_DUMPS}`);
});

describe('pciutils dump corpus', { skip }, () => {
  for (const file of files) {
    test(file, () => {
      const path = join(PCIUTILS_DUMPS, file);
      const devices = parseLspciDump(readFileSync(path, 'utf8'), file);
      const sorted = [...devices].sort((a, b) => formatAddress(a.address).localeCompare(formatAddress(b.address)));
      const verbose = lspci('-F', path, '-D', '-v');

      // Capability walk: same offsets as lspci finds.
      assert.deepEqual(sorted.map(ourCapabilityOffsets), lspciCapabilityOffsets(verbose), 'capability offsets');

      // One-line names as lspci -D prints them, and the -v subset line by line.
      const theirs = verbose.split('\n').filter((l) => !dumpModeQuirk(l));
      const mine = formatDevices(devices, { verbose: 1, domains: true }).split('\n').filter((l) => !dumpModeQuirk(l));
      assert.deepEqual(mine, theirs, 'lspci -F -D -v');

      // Our -xxxx dump decodes to the same devices, ids and bytes.
      const ours = join(scratch, `${file}.dump`);
      writeFileSync(ours, formatDevices(devices, { hex: 4, names: 'numeric' }));
      assert.equal(lspci('-F', ours, '-nn', '-xxxx'), lspci('-F', path, '-nn', '-xxxx'), 'lspci -F -nn -xxxx');
    });
  }
});
