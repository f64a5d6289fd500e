/**
 * `xpci list`: the host's PCI devices, named exactly as `lspci -D` names them, plus the bound driver
 * and whether xpci can export each one. Reads sysfs only; never changes anything.
 */
import type { Argv, CommandModule } from 'yargs';
import { DeviceNotFoundError, listDevices } from '../../host/sysfs/discovery.js';
import type { BarInfo, PciDeviceInfo } from '../../pci/device-info.js';
import { describeDevice, deviceText } from '../../pci/lspci-device-line.js';
import { pciIds, type NameMode } from '../../pci/pci-ids.js';
import { deviceSelector, matchesSlot, parseSlotSelector } from '../../pci/selector.js';
import { DEFAULT_SYSFS_ROOT, pciDevicesDir } from '../../host/sysfs/paths.js';
import { STUB_DRIVER } from '../../backend/lifecycle/driver-binding.js';
import { hex } from '../../pci/hex.js';

interface ListArgs {
  s?: string;
  d?: string;
  n: number;
  json: boolean;
  'sysfs-root': string;
  i?: string;
}

export type Exportable = 'yes' | 'read-only' | 'no';

/** Whether `xpci export` would take the device, and why; mirrors the backend's refusals. */
export function exportability(info: PciDeviceInfo): { exportable: Exportable; reason: string } {
  if (info.isBridge) return { exportable: 'no', reason: `bridge (class ${hex(info.classCode >>> 8, 4)}): xpci never exports bridges` };
  if (info.driver !== null && info.driver !== STUB_DRIVER) {
    return {
      exportable: 'read-only',
      reason: `bound to host driver ${info.driver}: export with --read-only, or hand it over first with 'xpci assignable-add ${info.bdf}'`,
    };
  }
  return { exportable: 'yes', reason: info.driver === STUB_DRIVER ? `held by ${STUB_DRIVER}` : 'no host driver bound' };
}


const barJson = (bar: BarInfo) => ({
  index: bar.index, start: bar.start, size: bar.size, type: bar.kind, prefetchable: bar.prefetchable, is64: bar.is64,
});

function toJson(info: PciDeviceInfo, description: string) {
  const { exportable, reason } = exportability(info);
  return {
    bdf: info.bdf,
    vendor: hex(info.vendor, 4),
    device: hex(info.device, 4),
    class: hex(info.classCode, 6),
    revision: hex(info.revision, 2),
    subsystemVendor: hex(info.subsystemVendor, 4),
    subsystemDevice: hex(info.subsystemDevice, 4),
    description,
    headerType: info.headerLayout,
    multiFunction: info.multiFunction,
    bridge: info.isBridge,
    driver: info.driver,
    configSize: info.configSize,
    iommuGroup: info.iommuGroup,
    bars: info.bars.map(barJson),
    rom: info.rom ? { start: info.rom.start, size: info.rom.size } : null,
    exportable,
    reason,
  };
}

function nameMode(count: number): NameMode {
  return count >= 2 ? 'mixed' : count === 1 ? 'numeric' : 'names';
}

function run(args: ListArgs): void {
  const select = deviceSelector(args.s, args.d);
  const slot = args.s === undefined ? null : parseSlotSelector(args.s);
  const ids = pciIds(args.i);
  const names = nameMode(args.n);
  const all = listDevices(args['sysfs-root']);
  // Naming one function exactly (bus, slot and function) and finding nothing is an error; a pattern
  // that matches nothing is not, as in lspci.
  if (slot && slot.bus !== null && slot.device !== null && slot.function !== null && !all.some((info) => matchesSlot(slot, info.address))) {
    throw new DeviceNotFoundError(`no PCI device matches -s '${args.s}' under ${pciDevicesDir(args['sysfs-root'])}`);
  }
  const devices = all.filter((info) => select(info.address, info));
  if (args.json) {
    process.stdout.write(JSON.stringify(devices.map((info) => toJson(info, deviceText(info, { ids, names }))), null, 2) + '\n');
    return;
  }
  const lines = devices.map((info) => {
    const { exportable } = exportability(info);
    const why = exportable === 'no' ? ' (bridge)' : '';
    return `${describeDevice(info, { ids, names, domains: true })}  [driver: ${info.driver ?? 'none'}, export: ${exportable}${why}]`;
  });
  if (lines.length) process.stdout.write(lines.join('\n') + '\n');
}

export const listCommand: CommandModule<object, ListArgs> = {
  command: 'list',
  describe: 'list host PCI devices like `lspci -D`, with driver and exportability',
  builder: (yargs) => (yargs
    .usage([
      'xpci list [-s SELECTOR] [-d VENDOR:DEVICE[:CLASS]] [-n|-nn] [--json] [--sysfs-root DIR] [-i FILE]',
      '',
      'Lists the PCI functions under DIR/bus/pci/devices, one per line, named exactly as `lspci -D` names them, '
        + 'followed by the bound host driver and whether `xpci export` can take the device. Nothing is written: '
        + 'listing is safe on any machine.',
      '',
      'export: yes = no host driver bound (or held by pci-stub): full export.',
      'export: read-only = a host driver owns it: its config space can be exported read-only (--read-only).',
      'export: no = a bridge (class 06xx): never exported.',
    ].join('\n'))
    .option('s', { type: 'string', requiresArg: true, describe: 'only devices in these slots: [[[domain]:][bus]:][slot][.[func]] (hex, * or empty = any)' })
    .option('d', { type: 'string', requiresArg: true, describe: 'only devices with these ids: [vendor]:[device][:class[:prog-if]] (hex)' })
    .option('n', { type: 'count', describe: 'numeric ids (-n); both names and numbers (-nn)' })
    .option('json', { type: 'boolean', default: false, describe: 'print a JSON array (ids as lowercase hex strings, class as 6 digits)' })
    .option('sysfs-root', { type: 'string', default: DEFAULT_SYSFS_ROOT, requiresArg: true, describe: 'folder that contains bus/pci/devices/ (a fixture tree in tests)' })
    .option('i', { type: 'string', requiresArg: true, describe: 'pci.ids file to take names from (default: as libpci, /usr/share/misc/pci.ids[.gz])' })
    .example('xpci list', 'every device, with driver and exportability')
    .example('xpci list -s 00:03.0 -nn', 'one device, names and [vendor:device] numbers')
    .example('xpci list -d ::0200', 'Ethernet controllers only')
    .example('xpci list -d 1af4: --json', 'every Red Hat/virtio device as JSON')
    .example('xpci list --sysfs-root /tmp/fixture', 'a fake sysfs tree instead of /sys')
    .epilogue([
      'JSON fields: bdf, vendor, device, class, revision, subsystemVendor, subsystemDevice, description, headerType, '
        + 'multiFunction, bridge, driver, configSize, iommuGroup, bars [{index, start, size, type, prefetchable, is64}], '
        + 'rom, exportable (yes|read-only|no), reason.',
      '',
      'Exit status: 0 success (also when a pattern matches nothing); 1 the one device named by -s BB:DD.F is absent, '
        + 'or the sysfs root is missing or unreadable; 2 bad selector or option.',
    ].join('\n'))
  ) as unknown as Argv<ListArgs>,
  handler: (args) => run(args),
};
