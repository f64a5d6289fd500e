/**
 * `xpci lspci [--connect PATH] [-s SEL] [-d VEN:DEV] [-n|-nn] [-v] [-x|-xxx|-xxxx] [-D] [--json]`:
 * lspci for the devices behind a backend, found by a pcifront-style scan of its roots and printed
 * by the same src/pci formatter as local devices. Dumps are in lspci's exact `-x` format, so
 * `lspci -F` decodes them.
 */
import type { Argv, CommandModule } from 'yargs';
import type { RemoteDevice } from '../../frontend/index.js';
import { formatAddress } from '../../pci/address.js';
import { readConfigBytes } from '../../pci/config-reader.js';
import {
  PCI_BASE_ADDRESS_0, PCI_ROM_ADDRESS, PCI_ROM_ADDRESS1, PCI_ROM_ADDRESS_MASK,
  PCI_CARDBUS_HEADER_SIZE, PCI_CFG_SPACE_SIZE, PCI_HEADER_TYPE, PCI_HEADER_TYPE_CARDBUS, PCI_HEADER_TYPE_MASK, PCI_STD_HEADER_SIZE,
} from '../../pci/config-header.js';
import { formatDevices, type LspciDevice, type LspciOptions } from '../../pci/lspci-format.js';
import { identityFromConfig } from '../../pci/lspci-device-line.js';
import { hexDumpLength } from '../../pci/lspci-hex-dump.js';
import { pciIds, type NameMode } from '../../pci/pci-ids.js';
import { RuntimeError, UsageError } from '../errors.js';
import { decodeWithSystemLspci, systemLspci } from '../system-lspci.js';
import { frontendOptions, parseSelection, requestFailure, selectDevices, withFrontend, type FrontendArgs } from '../frontend-connection.js';
import { hex } from '../../pci/hex.js';

interface LspciArgs extends FrontendArgs {
  s?: string;
  d?: string;
  n: number;
  v: number;
  x: number;
  D: boolean;
  t: boolean;
  m: number;
  i?: string;
  json: boolean;
}

/** What the built-in printer does not decode: handed to the system lspci (see system-lspci.ts). */
const needsPciutils = (args: LspciArgs): boolean => args.v >= 2 || args.t || args.m > 0;

/** The lspci options that shape the output, for `lspci -F` (selection is already done). */
function pciutilsArguments(args: LspciArgs): string[] {
  const repeat = (flag: string, count: number): string[] => (count > 0 ? [`-${flag.repeat(count)}`] : []);
  return [
    ...repeat('v', args.v), ...repeat('n', args.n), ...repeat('x', args.x), ...repeat('m', args.m),
    ...(args.t ? ['-t'] : []), ...(args.D ? ['-D'] : []), ...(args.i !== undefined ? ['-i', args.i] : []),
  ];
}

/**
 * How much config space to fetch: what the output shows, nothing more (lspci's own rule; reads
 * beyond the header can have side effects on some devices): the header for -x, 256 bytes for
 * -xxx, everything for -xxxx and for -v (capabilities, extended ones on PCI Express).
 */
async function snapshot(remote: RemoteDevice, args: LspciArgs): Promise<Uint8Array> {
  if (args.v > 0 || args.x >= 4 || needsPciutils(args)) return readConfigBytes(remote, remote.configSize);
  if (args.x >= 3) return readConfigBytes(remote, Math.min(PCI_CFG_SPACE_SIZE, remote.configSize));
  const header = await readConfigBytes(remote, PCI_STD_HEADER_SIZE);
  if ((header[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MASK) !== PCI_HEADER_TYPE_CARDBUS) return header;
  return readConfigBytes(remote, PCI_CARDBUS_HEADER_SIZE);
}

const dwordAt = (config: Uint8Array, offset: number): number =>
  (config[offset] | (config[offset + 1] << 8) | (config[offset + 2] << 16) | (config[offset + 3] << 24)) >>> 0;

/**
 * The backend's BAR sizes (from the Hello) beside the addresses config space shows, so -v prints
 * [size=...] as lspci does for a local device. The ROM's size is not described: shown without.
 */
function resourcesFromHello(config: Uint8Array, remote: RemoteDevice): LspciDevice['resources'] {
  const bars = remote.descriptor?.bars;
  if (!bars || config.length < PCI_STD_HEADER_SIZE) return undefined;
  const romRegister = (config[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MASK) === 0 ? PCI_ROM_ADDRESS : PCI_ROM_ADDRESS1;
  const romStart = (dwordAt(config, romRegister) & PCI_ROM_ADDRESS_MASK) >>> 0;
  const base = { flags: 0, is64: false, prefetchable: false };
  return {
    bars: bars.map((bar) => {
      const low = dwordAt(config, PCI_BASE_ADDRESS_0 + 4 * bar.index);
      const high = bar.is64 && bar.index < 5 ? dwordAt(config, PCI_BASE_ADDRESS_0 + 4 * (bar.index + 1)) : 0;
      const start = bar.kind === 'io' ? (low & ~0x3) >>> 0 : ((low & ~0xf) >>> 0) + high * 2 ** 32;
      return { ...bar, start, flags: 0 };
    }),
    rom: romStart ? { ...base, index: 6, kind: 'mem', start: romStart, size: 0 } : null,
  };
}

const toHex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');

function jsonEntry(device: LspciDevice, remote: RemoteDevice, dumpLevel: number): Record<string, unknown> {
  const identity = identityFromConfig(device.address, device.config);
  // Ids as lowercase hex strings, the same shape as `xpci list --json`, so scripts treat both alike.
  return {
    address: formatAddress(device.address),
    vendor: hex(identity.vendor, 4),
    device: hex(identity.device, 4),
    class: hex(identity.classCode, 6),
    revision: hex(identity.revision, 2),
    configSize: remote.configSize,
    bars: remote.descriptor?.bars ?? [],
    ...(dumpLevel > 0 ? { config: toHex(device.config.subarray(0, hexDumpLength(device.config, dumpLevel, remote.configSize))) } : {}),
  };
}

export const lspciCommand: CommandModule<object, LspciArgs> = {
  command: 'lspci',
  describe: 'list the devices behind a backend like lspci (pcifront-style scan of its roots)',
  builder: (yargs) => frontendOptions(yargs
    .usage([
      'xpci lspci [--connect PATH] [-s SEL] [-d VEN:DEV] [-n|-nn] [-v] [-x|-xxx|-xxxx] [-D] [--json]',
      '',
      "Lists the PCI functions that a backend ('xpci export') serves, as lspci lists local ones, under "
        + 'the addresses the frontend sees. This is the frontend side: run it in the guest (--connect '
        + '/dev/virtio-ports/xpci.0) or on the host against the backend\'s socket. It needs no root, only '
        + 'permission to open that socket or device: the backend admits root and whoever its '
        + '--allow-uid/--allow-gid name. Functions are found as pcifront finds them, by scanning every bus '
        + 'the backend publishes; -s and -d then filter them.',
      '',
      'Safe: only config-space reads are sent. Nothing is written and BARs are never touched, so it also '
        + 'works against a --read-only export.',
    ].join('\n'))
    .option('s', { type: 'string', describe: 'only functions in these slots: [[[domain]:][bus]:][slot][.[func]] (hex; empty or * = any)' })
    .option('d', { type: 'string', describe: 'only functions with these ids: [vendor]:[device][:class[:prog-if]] (hex; empty or * = any; an x digit in the class = any)' })
    .option('n', { type: 'count', describe: 'ids as numbers (-n), or names followed by [numbers] (-nn)' })
    .option('v', { type: 'count', describe: 'verbose: subsystem, prog-if, flags, regions with [size=...] from the backend, expansion ROM, capabilities; -vv and -vvv are decoded by the system lspci (below)' })
    .option('t', { type: 'boolean', default: false, describe: 'tree view of the virtual bus, by the system lspci' })
    .option('m', { type: 'count', describe: 'machine-readable output (-m, -mm), by the system lspci' })
    .option('x', { type: 'count', describe: 'hex dump after each function: -x the header (64 bytes, 128 for CardBus), -xxx 256 bytes, -xxxx 4096 bytes when the function has them' })
    .option('D', { type: 'boolean', default: false, describe: 'always show the domain (otherwise shown only when a listed function has a non-zero one)' })
    .option('i', { type: 'string', describe: 'pci.ids file to take names from (default: as libpci, /usr/share/misc/pci.ids[.gz], then /usr/share/hwdata/pci.ids, /usr/share/pci.ids)' })
    .option('json', { type: 'boolean', default: false, describe: "print one line, a JSON array of the functions (fields below), instead of lspci's text" })
    .example('xpci lspci', 'every function the backend at $XPCI_SOCKET (else /run/xpci/xpci.sock) serves')
    .example('xpci lspci --connect /dev/virtio-ports/xpci.0', 'from inside a guest, over its virtio-serial port')
    .example('xpci lspci -s 00:01.0 -vv -nn', 'one function in detail, with [vendor:device] ids')
    .example('xpci lspci -xxx > dump.txt', "256-byte dumps; 'lspci -F dump.txt -vv' decodes them")
    .epilogue([
      'OUTPUT',
      '  -vv, -vvv, -t and -m/-mm: config space is fetched once and handed, as an -xxxx dump, to the system '
        + "'lspci -F', so the text is pciutils' own (BAR sizes are not in a dump, so these show none). Without "
        + "pciutils (or with XPCI_LSPCI=''), -vv and -vvv print what -v prints, with a warning, and -t and -m fail.",
      "  Otherwise lspci's format, from the same formatter as 'xpci list'. Hex dumps are byte for byte lspci's -x "
        + "format, so a saved dump decodes with 'lspci -F FILE'. Names come from pci.ids; without a readable "
        + 'pci.ids, or for ids it does not name, numbers are printed, as lspci does.',
      '',
      '  --json prints address (the frontend BDF); vendor, device, class (6 digits) and revision as lowercase '
        + 'hex strings, as xpci list --json does; configSize as a number; bars as the backend describes them [{index, kind, is64, prefetchable, size}]; and, with '
        + '-x/-xxx/-xxxx, config: the dumped bytes as one hex string. Names, -n, -v and -D do not apply.',
      '',
      'READS',
      '  As lspci, it reads no more config space than it shows: the header (64 bytes, 128 for CardBus) by '
        + 'default and for -x, 256 bytes for -xxx, everything for -xxxx and for -v. Reads past the header '
        + 'can have side effects on a few devices.',
      '',
      'Exit status: 0 success, also when -s/-d match nothing (no output, or [] with --json); 1 no backend at '
        + 'the path, the backend refused the session, or a request failed; 2 bad selector or option.',
    ].join('\n'))) as unknown as Argv<LspciArgs>,
  handler: async (args) => {
    const matches = parseSelection(args.s, args.d);
    const names: NameMode = args.n >= 2 ? 'mixed' : args.n === 1 ? 'numeric' : 'names';
    if (args.json && (args.t || args.m > 0)) throw new UsageError('lspci: --json and -t/-m are different output formats; give one');
    let lspciBinary: string | null = null;
    if (needsPciutils(args) && !args.json) {
      lspciBinary = systemLspci();
      if (lspciBinary === null && (args.t || args.m > 0)) {
        throw new RuntimeError(`lspci: -${args.t ? 't' : 'm'} is decoded by pciutils' lspci, which is not installed (apt install pciutils)`);
      }
      if (lspciBinary === null) process.stderr.write(`xpci: warning: pciutils' lspci is not installed: -${'v'.repeat(args.v)} shows what -v shows\n`);
    }
    const options: LspciOptions = { names, domains: args.D, verbose: args.v, hex: args.x, ids: lspciBinary ? undefined : pciIds(args.i) };
    const output = await withFrontend(args, 'lspci', async (client) => {
      // A full listing scans like pcifront; -s/-d pick from the backend's device list (no probes).
      const selected = await selectDevices(client, matches, { scan: args.s === undefined && args.d === undefined });
      const devices = await Promise.all(selected.map(async ({ address, remote }) => {
        try {
          const config = await snapshot(remote, args);
          const device: LspciDevice = { address, config, configSize: remote.configSize, resources: resourcesFromHello(config, remote) };
          return { device, remote };
        } catch (error) {
          throw requestFailure(`reading config space of ${formatAddress(address)}`, error);
        }
      }));
      if (args.json) return JSON.stringify(devices.map(({ device, remote }) => jsonEntry(device, remote, args.x))) + '\n';
      if (lspciBinary) return decodeWithSystemLspci(lspciBinary, devices.map(({ device }) => device), pciutilsArguments(args));
      return formatDevices(devices.map(({ device }) => device), options);
    });
    process.stdout.write(output);
  },
};
