/**
 * Decoding by pciutils itself: the frontend fetches each device's config space once, writes it as
 * an `lspci -xxxx` dump and hands that to the system's `lspci -F`. Output for -vv/-vvv, -t and -m
 * is then pciutils' own, exact by construction, with no second decoder to keep in step. Only when
 * pciutils is missing does the built-in printer (src/pci) stand in.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatAddress, type PciAddress } from '../pci/address.js';
import { formatHexDump } from '../pci/lspci-hex-dump.js';
import { RuntimeError } from './errors.js';

/** The pciutils binary; XPCI_LSPCI names another (an empty value means "not installed"). */
export function systemLspci(env: NodeJS.ProcessEnv = process.env): string | null {
  const binary = env.XPCI_LSPCI ?? 'lspci';
  if (binary === '') return null;
  return spawnSync(binary, ['--version'], { stdio: 'ignore' }).status === 0 ? binary : null;
}

export interface DumpedConfig {
  address: PciAddress;
  config: Uint8Array;
}

/** Devices in the `lspci -xxxx` text that libpci's dump access method (`-F`) reads back. */
export function formatDump(devices: readonly DumpedConfig[]): string {
  return devices.map(({ address, config }) => `${formatAddress(address)} dump\n${formatHexDump(config, config.length - (config.length % 16))}\n`).join('');
}

/** Run `lspci -F DUMP ARGS` on the devices and return its output. */
export async function decodeWithSystemLspci(binary: string, devices: readonly DumpedConfig[], args: readonly string[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'xpci-lspci-'));
  try {
    const file = join(dir, 'config.dump');
    writeFileSync(file, formatDump(devices));
    const child = spawn(binary, ['-F', file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => { stdout += text; });
    child.stderr.setEncoding('utf8').on('data', (text: string) => { stderr += text; });
    const status = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', resolve);
    });
    if (status !== 0) throw new RuntimeError(`${binary} -F failed (exit ${status}): ${stderr.trim().split('\n')[0] ?? ''}`);
    return stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
