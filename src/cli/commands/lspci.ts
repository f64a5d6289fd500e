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
  PCI_CARDBUS_HEADER_SIZE, PCI_CFG_SPACE_SIZE, PCI_HEADER_TYPE, PCI_HEADER_TYPE_CARDBUS, PCI_HEADER_TYPE_MASK, PCI_STD_HEADER_SIZE,
} from '../../pci/config-header.js';
import { formatDevices, hexDumpLength, identityFromConfig, type LspciDevice, type LspciOptions } from '../../pci/lspci-format.js';
import { pciIds, type NameMode } from '../../pci/pci-ids.js';
import { frontendOptions, parseSelection, requestFailure, selectDevices, withFrontend, type FrontendArgs } from '../frontend-connection.js';

interface LspciArgs extends FrontendArgs {
  s?: string;
  d?: string;
  n: number;
  v: number;
  x: number;
  D: boolean;
  i?: string;
  json: boolean;
}

/**
 * How much config space to fetch: what the output shows, nothing more (lspci's own rule; reads
 * beyond the header can have side effects on some devices): the header for -x, 256 bytes for
 * -xxx, everything for -xxxx and for -v (capabilities, extended ones on PCI Express).
 */
async function snapshot(remote: RemoteDevice, args: LspciArgs): Promise<Uint8Array> {
  if (args.v > 0 || args.x >= 4) return readConfigBytes(remote, remote.configSize);
  if (args.x >= 3) return readConfigBytes(remote, Math.min(PCI_CFG_SPACE_SIZE, remote.configSize));
  const header = await readConfigBytes(remote, PCI_STD_HEADER_SIZE);
  if ((header[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MASK) !== PCI_HEADER_TYPE_CARDBUS) return header;
  return readConfigBytes(remote, PCI_CARDBUS_HEADER_SIZE);
}

const toHex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');

function jsonEntry(device: LspciDevice, remote: RemoteDevice, dumpLevel: number): Record<string, unknown> {
  const identity = identityFromConfig(device.address, device.config);
  return {
    address: formatAddress(device.address),
    vendor: identity.vendor,
    device: identity.device,
    class: identity.classCode,
    revision: identity.revision,
    configSize: remote.configSize,
    bars: remote.descriptor?.bars ?? [],
    ...(dumpLevel > 0 ? { config: toHex(device.config.subarray(0, hexDumpLength(device.config, dumpLevel, remote.configSize))) } : {}),
  };
}

export const lspciCommand: CommandModule<object, LspciArgs> = {
  command: 'lspci',
  describe: 'list the devices behind a backend like lspci (pcifront-style scan of its roots)',
  builder: (yargs) => frontendOptions(yargs
    .option('s', { type: 'string', describe: 'select devices: [[[domain]:][bus]:][slot][.[func]]' })
    .option('d', { type: 'string', describe: 'select devices by id: [vendor]:[device][:class[:prog-if]]' })
    .option('n', { type: 'count', describe: 'numeric ids (-nn: names and numbers)' })
    .option('v', { type: 'count', describe: 'verbose: subsystem, flags, regions, capabilities' })
    .option('x', { type: 'count', describe: 'hex dump: -x header, -xxx 256 bytes, -xxxx 4096 bytes' })
    .option('D', { type: 'boolean', default: false, describe: 'always show the PCI domain' })
    .option('i', { type: 'string', describe: 'pci.ids file to take names from' })
    .option('json', { type: 'boolean', default: false, describe: 'print a JSON array; config bytes as hex with a dump flag' })) as unknown as Argv<LspciArgs>,
  handler: async (args) => {
    const matches = parseSelection(args.s, args.d);
    const names: NameMode = args.n >= 2 ? 'mixed' : args.n === 1 ? 'numeric' : 'names';
    const options: LspciOptions = { names, domains: args.D, verbose: args.v, hex: args.x, ids: pciIds(args.i) };
    const output = await withFrontend(args, 'lspci', async (client) => {
      const selected = await selectDevices(client, matches);
      const devices = await Promise.all(selected.map(async ({ address, remote }) => {
        try {
          const device: LspciDevice = { address, config: await snapshot(remote, args), configSize: remote.configSize };
          return { device, remote };
        } catch (error) {
          throw requestFailure(`reading config space of ${formatAddress(address)}`, error);
        }
      }));
      if (args.json) return JSON.stringify(devices.map(({ device, remote }) => jsonEntry(device, remote, args.x))) + '\n';
      return formatDevices(devices.map(({ device }) => device), options);
    });
    process.stdout.write(output);
  },
};
