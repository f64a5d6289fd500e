/**
 * lspci's text, produced from a config-space snapshot (plus what sysfs adds for local devices) so
 * the same code prints a host device, a device behind the ring, or a parsed dump. Split by job, as
 * pciutils splits lspci: the first line (lspci-device-line.ts), the `-v` block (lspci-verbose.ts,
 * with the capability texts in lspci-caps.ts and lspci-ecaps.ts) and the hex dumps
 * (lspci-hex-dump.ts); this file puts them together per device.
 */
import { compareAddresses, type PciAddress } from './address.js';
import type { BarInfo } from './device-info.js';
import { describeDevice, identityFromConfig } from './lspci-device-line.js';
import { formatHexDump, hexDumpLength } from './lspci-hex-dump.js';
import { subsystemLine, verboseLines } from './lspci-verbose.js';
import { pciIds, type NameMode, type PciIds } from './pci-ids.js';

/** A device as the formatter sees it: a snapshot and, for local devices, what sysfs adds. */
export interface LspciDevice {
  address: PciAddress;
  /** config space from offset 0: 64, 128, 256 or 4096 bytes (what could be read) */
  config: Uint8Array;
  /** the device's config space size (256 or 4096); defaults to the snapshot length */
  configSize?: number;
  /** sysfs `resource` view: addresses and sizes as the OS assigned them (lspci shows [size=]) */
  resources?: { bars: BarInfo[]; rom: BarInfo | null };
  driver?: string | null;
  /** sysfs `irq`; without it the interrupt line register is shown, as lspci does for dumps */
  irq?: number;
  iommuGroup?: number | null;
}

export interface LspciOptions {
  /** names (default), numeric (-n), mixed (-nn) */
  names?: NameMode;
  /** -D: always print the domain; otherwise printed when any listed device has a non-zero one */
  domains?: boolean;
  /** -v count */
  verbose?: number;
  /** -x count: 1 = header, 3 = 256 bytes, 4 = 4096 bytes */
  hex?: number;
  /** -k: show the kernel driver line without -v */
  kernel?: boolean;
  /** name database (default: the system pci.ids) */
  ids?: PciIds;
}

/** One device as `lspci [-v] [-k] [-x...]` prints it, trailing newline(s) included. */
export function formatDevice(device: LspciDevice, options: LspciOptions = {}): string {
  const identity = identityFromConfig(device.address, device.config);
  const lines = [describeDevice(identity, options)];
  if (options.verbose) lines.push(...verboseLines(device, options));
  else if (options.kernel) lines.push(...subsystemLine(device.config, identity, options.ids ?? pciIds(), options.names ?? 'names'));
  if ((options.verbose || options.kernel) && device.driver) lines.push(`\tKernel driver in use: ${device.driver}`);
  let out = lines.join('\n') + '\n';
  if (options.hex) out += formatHexDump(device.config, hexDumpLength(device.config, options.hex, device.configSize));
  if (options.verbose || options.hex) out += '\n';
  return out;
}

/** Several devices in lspci's order; the domain column appears if asked or if any domain is not 0. */
export function formatDevices(devices: LspciDevice[], options: LspciOptions = {}): string {
  const domains = options.domains || devices.some((d) => d.address.domain !== 0);
  return [...devices].sort((a, b) => compareAddresses(a.address, b.address)).map((d) => formatDevice(d, { ...options, domains })).join('');
}
