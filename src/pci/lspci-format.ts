/**
 * lspci's text, produced from a config-space snapshot (plus what sysfs adds for local devices) so
 * the same code prints a host device, a device behind the ring, or a parsed dump:
 *  - the one-line description (default, -n, -nn, -D; "(rev NN)"; "(prog-if NN [...])" with -v),
 *  - a `-v` block (a faithful subset of lspci -v: Subsystem, Flags, regions, ROM, bridge windows,
 *    capability names),
 *  - the `-x` / `-xxx` / `-xxxx` hex dumps in the exact format `lspci -F` reads back.
 */
import { formatAddress, formatShortAddress, compareAddresses, type PciAddress } from './address.js';
import type { BarInfo } from './device-info.js';
import { walkCapabilities, walkExtendedCapabilities, type Capability, type CapabilityWalk } from './capabilities.js';
import {
  PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_MEM_PREFETCH, PCI_BASE_ADDRESS_MEM_TYPE_1M, PCI_BASE_ADDRESS_MEM_TYPE_32,
  PCI_BASE_ADDRESS_MEM_TYPE_64, PCI_BASE_ADDRESS_MEM_TYPE_MASK, PCI_BASE_ADDRESS_SPACE_IO, PCI_BIST,
  PCI_BIST_CAPABLE, PCI_BIST_CODE_MASK, PCI_BIST_START, PCI_CARDBUS_HEADER_SIZE, PCI_CB_CARD_BUS,
  PCI_CB_LATENCY_TIMER, PCI_CB_PRIMARY_BUS, PCI_CB_SUBORDINATE_BUS, PCI_CB_SUBSYSTEM_ID, PCI_CB_SUBSYSTEM_VENDOR_ID,
  PCI_CFG_SPACE_EXP_SIZE, PCI_CFG_SPACE_SIZE, PCI_CLASS_BRIDGE_PCI, PCI_COMMAND, PCI_COMMAND_FAST_BACK,
  PCI_COMMAND_IO, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, PCI_COMMAND_VGA_PALETTE, PCI_COMMAND_WAIT,
  PCI_HEADER_TYPE, PCI_HEADER_TYPE_BRIDGE, PCI_HEADER_TYPE_CARDBUS, PCI_HEADER_TYPE_MASK, PCI_HEADER_TYPE_NORMAL,
  PCI_INTERRUPT_LINE, PCI_IO_BASE, PCI_IO_BASE_UPPER16, PCI_IO_LIMIT, PCI_IO_LIMIT_UPPER16, PCI_IO_RANGE_MASK,
  PCI_IO_RANGE_TYPE_16, PCI_IO_RANGE_TYPE_32, PCI_IO_RANGE_TYPE_MASK, PCI_LATENCY_TIMER, PCI_MEMORY_BASE,
  PCI_MEMORY_LIMIT, PCI_MEMORY_RANGE_MASK, PCI_MEMORY_RANGE_TYPE_MASK, PCI_PREF_BASE_UPPER32,
  PCI_PREF_LIMIT_UPPER32, PCI_PREF_MEMORY_BASE, PCI_PREF_MEMORY_LIMIT, PCI_PREF_RANGE_MASK,
  PCI_PREF_RANGE_TYPE_32, PCI_PREF_RANGE_TYPE_64, PCI_PREF_RANGE_TYPE_MASK, PCI_PRIMARY_BUS,
  PCI_REVISION_ID, PCI_ROM_ADDRESS, PCI_ROM_ADDRESS1, PCI_ROM_ADDRESS_ENABLE, PCI_ROM_ADDRESS_MASK,
  PCI_SECONDARY_BUS, PCI_SEC_LATENCY_TIMER, PCI_STATUS, PCI_STATUS_66MHZ, PCI_STATUS_DEVSEL_FAST,
  PCI_STATUS_DEVSEL_MASK, PCI_STATUS_DEVSEL_MEDIUM, PCI_STATUS_DEVSEL_SLOW, PCI_STATUS_UDF, PCI_STD_HEADER_SIZE,
  PCI_SUBORDINATE_BUS, PCI_SUBSYSTEM_ID, PCI_SUBSYSTEM_VENDOR_ID, PCI_BASE_CLASS_BRIDGE, PCI_CB_BRIDGE_CONTROL,
  PCI_CB_BRIDGE_CTL_PREFETCH_MEM0, PCI_CB_IO_BASE_0, PCI_CB_IO_LIMIT_0, PCI_CB_LEGACY_MODE_BASE, PCI_CB_MEMORY_BASE_0,
  PCI_CB_MEMORY_LIMIT_0, PCI_CB_SEC_STATUS, PCI_STATUS_SIG_SYSTEM_ERROR,
} from './config-header.js';
import { classText, pciIds, progIfText, subsystemText, vendorDeviceText, type NameMode, type PciIds } from './pci-ids.js';
import { hex } from './hex.js';

/** What the one-line description needs (PciDeviceInfo has these fields). */
export interface DeviceSummary {
  address: PciAddress;
  vendor: number;
  device: number;
  /** 24-bit class code: base, sub, prog-if */
  classCode: number;
  revision: number;
}

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

const flag = (value: number, bit: number): string => (value & bit ? '+' : '-');
const byteAt = (config: Uint8Array, offset: number): number => config[offset] ?? 0xff;
const wordAt = (config: Uint8Array, offset: number): number => byteAt(config, offset) | (byteAt(config, offset + 1) << 8);
const dwordAt = (config: Uint8Array, offset: number): number => (wordAt(config, offset) | (wordAt(config, offset + 2) << 16)) >>> 0;

/** Identity fields read from a config header. */
export function identityFromConfig(address: PciAddress, config: Uint8Array): DeviceSummary {
  if (config.length < PCI_STD_HEADER_SIZE) throw new RangeError(`config snapshot of ${formatAddress(address)} has ${config.length} bytes; the header needs 64`);
  return {
    address,
    vendor: wordAt(config, 0x00),
    device: wordAt(config, 0x02),
    classCode: dwordAt(config, PCI_REVISION_ID) >>> 8,
    revision: config[PCI_REVISION_ID],
  };
}

/**
 * lspci's first line for a device without the slot: `Ethernet controller: Red Hat, Inc. Virtio 1.0
 * network device (rev 01)`, plus `(prog-if NN [...])` when verbose.
 */
export function deviceText(identity: DeviceSummary, options: LspciOptions = {}): string {
  const ids = options.ids ?? pciIds();
  const mode = options.names ?? 'names';
  const deviceClass = identity.classCode >>> 8;
  let text = `${classText(ids, deviceClass, mode)}: ${vendorDeviceText(ids, identity.vendor, identity.device, mode)}`;
  if (identity.revision) text += ` (rev ${hex(identity.revision, 2)})`;
  if (options.verbose) {
    const progIf = identity.classCode & 0xff;
    const name = progIfText(ids, deviceClass, progIf);
    if (progIf || name !== null) text += ` (prog-if ${hex(progIf, 2)}${name !== null ? ` [${name}]` : ''})`;
  }
  return text;
}

/**
 * lspci's first line for a device, without the newline, e.g.
 * `0000:00:03.0 Ethernet controller: Red Hat, Inc. Virtio 1.0 network device (rev 01)`.
 * The domain shows with `domains` (-D), or when it is not 0.
 */
export function describeDevice(identity: DeviceSummary, options: LspciOptions = {}): string {
  return `${(options.domains ?? identity.address.domain !== 0) ? formatAddress(identity.address) : formatShortAddress(identity.address)} ${deviceText(identity, options)}`;
}

/** How many bytes `-x` levels show: the header (128 for CardBus), 256, or 4096 when readable. */
export function hexDumpLength(config: Uint8Array, level: number, configSize = config.length): number {
  const header = (config[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MASK) === PCI_HEADER_TYPE_CARDBUS ? PCI_CARDBUS_HEADER_SIZE : PCI_STD_HEADER_SIZE;
  let length = Math.min(header, config.length);
  if (level >= 3 && config.length >= PCI_CFG_SPACE_SIZE) {
    length = PCI_CFG_SPACE_SIZE;
    if (level >= 4 && configSize >= PCI_CFG_SPACE_EXP_SIZE && config.length >= PCI_CFG_SPACE_EXP_SIZE) length = PCI_CFG_SPACE_EXP_SIZE;
  }
  return length - (length % 16);
}

/** Hex lines exactly as lspci prints them: `%02x:` offset, then ` %02x` per byte, 16 a line. */
export function formatHexDump(config: Uint8Array, length: number): string {
  let out = '';
  for (let offset = 0; offset < length; offset += 16) {
    out += `${hex(offset, 2)}:`;
    for (let i = offset; i < offset + 16; i++) out += ` ${hex(config[i], 2)}`;
    out += '\n';
  }
  return out;
}

function showSize(size: number): string {
  if (!size) return '';
  const suffixes = ['', 'K', 'M', 'G', 'T'];
  let i = 0;
  while (i < suffixes.length - 1 && size % 1024 === 0) {
    size /= 1024;
    i++;
  }
  return ` [size=${size}${suffixes[i]}]`;
}

/** The address lspci prints: at least 8 hex digits, more when above 4 GiB. */
const address64 = (value: number): string => hex(value, 8);

function barLines(device: LspciDevice, count: number): string[] {
  const { config } = device;
  const command = wordAt(config, PCI_COMMAND);
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const raw = dwordAt(config, PCI_BASE_ADDRESS_0 + 4 * i);
    const resource = device.resources?.bars.find((bar) => bar.index === i);
    let flags: number;
    let position: number;
    let size = 0;
    let upper = 0;
    let isIo: boolean;
    if (device.resources) {
      // Live device: the OS's view (sysfs), as lspci uses for local devices.
      if (!resource) continue;
      isIo = resource.kind === 'io';
      flags = isIo ? PCI_BASE_ADDRESS_SPACE_IO
        : (resource.is64 ? PCI_BASE_ADDRESS_MEM_TYPE_64 : PCI_BASE_ADDRESS_MEM_TYPE_32) | (resource.prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
      position = resource.start;
      size = resource.size;
      if (!isIo && (raw & PCI_BASE_ADDRESS_MEM_TYPE_MASK) === PCI_BASE_ADDRESS_MEM_TYPE_64 && i < count - 1) upper = dwordAt(config, PCI_BASE_ADDRESS_0 + 4 * (i + 1));
      if (resource.is64) i++;
    } else {
      // Snapshot only (remote device, dump): decode the registers; a 64-bit BAR spans two.
      flags = raw === 0xffffffff ? 0 : raw;
      if (!flags) continue;
      isIo = (flags & PCI_BASE_ADDRESS_SPACE_IO) !== 0;
      position = ((flags & (isIo ? ~0x3 : ~0xf)) >>> 0);
      if (!isIo && (flags & PCI_BASE_ADDRESS_MEM_TYPE_MASK) === PCI_BASE_ADDRESS_MEM_TYPE_64) {
        if (i >= count - 1) {
          lines.push(`\tMemory at <broken-64-bit-slot> (64-bit, ${flags & PCI_BASE_ADDRESS_MEM_PREFETCH ? '' : 'non-'}prefetchable)`);
          continue;
        }
        upper = dwordAt(config, PCI_BASE_ADDRESS_0 + 4 * ++i);
        position += upper * 2 ** 32;
      }
    }
    const hwLower = raw === 0xffffffff ? 0 : raw;
    // Assigned by the OS but not programmed into the device.
    const isVirtual = device.resources !== undefined && position !== 0 && !hwLower && !upper;
    let text: string;
    if (isIo) {
      const at = position & ~0x3;
      text = `I/O ports at ${at || command & PCI_COMMAND_IO ? hex(at, 4) : hwLower & ~0x3 ? '<ignored>' : '<unassigned>'}`;
      if (isVirtual) text += ' [virtual]';
      else if (!(command & PCI_COMMAND_IO)) text += ' [disabled]';
    } else {
      const type = flags & PCI_BASE_ADDRESS_MEM_TYPE_MASK;
      const at = position - (position % 16);
      const typeName = type === PCI_BASE_ADDRESS_MEM_TYPE_32 ? '32-bit' : type === PCI_BASE_ADDRESS_MEM_TYPE_64 ? '64-bit' : type === PCI_BASE_ADDRESS_MEM_TYPE_1M ? 'low-1M' : 'type 3';
      text = `Memory at ${at ? address64(at) : hwLower & ~0xf || upper ? '<ignored>' : '<unassigned>'} (${typeName}, ${flags & PCI_BASE_ADDRESS_MEM_PREFETCH ? '' : 'non-'}prefetchable)`;
      if (isVirtual) text += ' [virtual]';
      else if (!(command & PCI_COMMAND_MEMORY)) text += ' [disabled]';
    }
    lines.push(`\t${text}${showSize(size)}`);
  }
  return lines;
}

function romLine(device: LspciDevice, register: number): string[] {
  const { config } = device;
  const raw = dwordAt(config, register);
  const rom = device.resources ? device.resources.rom : null;
  const position = device.resources ? rom?.start ?? 0 : (raw & PCI_ROM_ADDRESS_MASK) >>> 0;
  const size = rom?.size ?? 0;
  if (!position && !raw && !size) return [];
  let flags = raw;
  let isVirtual = false;
  if (position && !((raw & PCI_ROM_ADDRESS_MASK) >>> 0)) {
    flags = position;
    isVirtual = true;
  }
  let text = `\tExpansion ROM at ${position ? address64(position - (position % 0x800)) : flags & PCI_ROM_ADDRESS_MASK ? '<ignored>' : '<unassigned>'}`;
  if (isVirtual) text += ' [virtual]';
  if (!(flags & PCI_ROM_ADDRESS_ENABLE)) text += ' [disabled]';
  else if (!isVirtual && !(wordAt(config, PCI_COMMAND) & PCI_COMMAND_MEMORY)) text += ' [disabled by cmd]';
  return [text + showSize(size)];
}

function rangeLine(prefix: string, base: number, limit: number, bits: number): string {
  const digits = Math.ceil(bits / 4);
  const span = base <= limit ? ` ${hex(base, digits)}-${hex(limit, digits)}${showSize(limit - base + 1)}` : ' [disabled]';
  return `\t${prefix}:${span} [${bits}-bit]`;
}

function bridgeLines(config: Uint8Array): string[] {
  const lines = [`\tBus: primary=${hex(config[PCI_PRIMARY_BUS], 2)}, secondary=${hex(config[PCI_SECONDARY_BUS], 2)}, subordinate=${hex(config[PCI_SUBORDINATE_BUS], 2)}, sec-latency=${config[PCI_SEC_LATENCY_TIMER]}`];
  const ioBase = config[PCI_IO_BASE];
  const ioLimit = config[PCI_IO_LIMIT];
  const ioType = ioBase & PCI_IO_RANGE_TYPE_MASK;
  if (ioType !== (ioLimit & PCI_IO_RANGE_TYPE_MASK) || (ioType !== PCI_IO_RANGE_TYPE_16 && ioType !== PCI_IO_RANGE_TYPE_32)) {
    lines.push(`\t!!! Unknown I/O range types ${ioBase.toString(16)}/${ioLimit.toString(16)}`);
  } else {
    let base = (ioBase & PCI_IO_RANGE_MASK) << 8;
    let limit = (ioLimit & PCI_IO_RANGE_MASK) << 8;
    if (ioType === PCI_IO_RANGE_TYPE_32) {
      base = (base | (wordAt(config, PCI_IO_BASE_UPPER16) << 16)) >>> 0;
      limit = (limit | (wordAt(config, PCI_IO_LIMIT_UPPER16) << 16)) >>> 0;
    }
    lines.push(rangeLine('I/O behind bridge', base, limit + 0xfff, ioType === PCI_IO_RANGE_TYPE_32 ? 32 : 16));
  }
  const memBase = wordAt(config, PCI_MEMORY_BASE);
  const memLimit = wordAt(config, PCI_MEMORY_LIMIT);
  if ((memBase & PCI_MEMORY_RANGE_TYPE_MASK) !== (memLimit & PCI_MEMORY_RANGE_TYPE_MASK) || memBase & PCI_MEMORY_RANGE_TYPE_MASK) {
    lines.push(`\t!!! Unknown memory range types ${memBase.toString(16)}/${memLimit.toString(16)}`);
  } else {
    lines.push(rangeLine('Memory behind bridge', (memBase & PCI_MEMORY_RANGE_MASK) * 0x10000, (memLimit & PCI_MEMORY_RANGE_MASK) * 0x10000 + 0xfffff, 32));
  }
  const prefBase = wordAt(config, PCI_PREF_MEMORY_BASE);
  const prefLimit = wordAt(config, PCI_PREF_MEMORY_LIMIT);
  const prefType = prefBase & PCI_PREF_RANGE_TYPE_MASK;
  if (prefType !== (prefLimit & PCI_PREF_RANGE_TYPE_MASK) || (prefType !== PCI_PREF_RANGE_TYPE_32 && prefType !== PCI_PREF_RANGE_TYPE_64)) {
    lines.push(`\t!!! Unknown prefetchable memory range types ${prefBase.toString(16)}/${prefLimit.toString(16)}`);
  } else {
    let base = (prefBase & PCI_PREF_RANGE_MASK) * 0x10000;
    let limit = (prefLimit & PCI_PREF_RANGE_MASK) * 0x10000;
    if (prefType === PCI_PREF_RANGE_TYPE_64) {
      base += dwordAt(config, PCI_PREF_BASE_UPPER32) * 2 ** 32;
      limit += dwordAt(config, PCI_PREF_LIMIT_UPPER32) * 2 ** 32;
    }
    lines.push(rangeLine('Prefetchable memory behind bridge', base, limit + 0xfffff, prefType === PCI_PREF_RANGE_TYPE_64 ? 64 : 32));
  }
  return lines;
}

function cardBusLines(config: Uint8Array): string[] {
  const command = wordAt(config, PCI_COMMAND);
  const control = wordAt(config, PCI_CB_BRIDGE_CONTROL);
  const lines = [`\tBus: primary=${hex(config[PCI_CB_PRIMARY_BUS], 2)}, secondary=${hex(config[PCI_CB_CARD_BUS], 2)}, subordinate=${hex(config[PCI_CB_SUBORDINATE_BUS], 2)}, sec-latency=${config[PCI_CB_LATENCY_TIMER]}`];
  for (let i = 0; i < 2; i++) {
    const base = dwordAt(config, PCI_CB_MEMORY_BASE_0 + 8 * i);
    const limit = (dwordAt(config, PCI_CB_MEMORY_LIMIT_0 + 8 * i) + 0xfff) >>> 0;
    if (base <= limit) {
      lines.push(`\tMemory window ${i}: ${hex(base, 8)}-${hex(limit, 8)}${command & PCI_COMMAND_MEMORY ? '' : ' [disabled]'}${control & (PCI_CB_BRIDGE_CTL_PREFETCH_MEM0 << i) ? ' (prefetchable)' : ''}`);
    }
  }
  for (let i = 0; i < 2; i++) {
    let base = dwordAt(config, PCI_CB_IO_BASE_0 + 8 * i);
    let limit = dwordAt(config, PCI_CB_IO_LIMIT_0 + 8 * i);
    if (!(base & PCI_IO_RANGE_TYPE_32)) {
      base &= 0xffff;
      limit &= 0xffff;
    }
    base = (base & ~0x3) >>> 0;
    limit = ((limit & ~0x3) >>> 0) + 3;
    if (base <= limit) lines.push(`\tI/O window ${i}: ${hex(base, 8)}-${hex(limit, 8)}${command & PCI_COMMAND_IO ? '' : ' [disabled]'}`);
  }
  if (wordAt(config, PCI_CB_SEC_STATUS) & PCI_STATUS_SIG_SYSTEM_ERROR) lines.push('\tSecondary status: SERR');
  return lines;
}

const EXPRESS_TYPES: Record<number, string> = {
  0x0: 'Endpoint', 0x1: 'Legacy Endpoint', 0x4: 'Root Port', 0x5: 'Upstream Port', 0x6: 'Downstream Port',
  0x7: 'PCI-Express to PCI/PCI-X Bridge', 0x8: 'PCI/PCI-X to PCI-Express Bridge',
  0x9: 'Root Complex Integrated Endpoint', 0xa: 'Root Complex Event Collector',
};

const HT_TYPES: Record<number, string> = {
  0x4000: 'Switch', 0x8000: 'Interrupt Discovery and Configuration', 0x9000: 'UnitID Clumping',
  0x9800: 'Extended Configuration Space Access', 0xa000: 'Address Mapping', 0xb000: 'DirectRoute',
  0xb800: 'VCSet', 0xc000: 'Retry Mode', 0xc800: 'X86 (reserved)',
};

/** HyperTransport capabilities share one id; the command register's type field tells them apart. */
function hyperTransportText(command: number): string {
  if ((command & 0xe000) === 0x0000) return 'Slave or Primary Interface';
  if ((command & 0xe000) === 0x2000) return 'Host or Secondary Interface';
  const type = command & 0xf800;
  if (type === 0x8800) return `Revision ID: ${((command & 0xe0) >> 5).toString(16)}.${hex(command & 0x1f, 2)}`;
  if (type === 0xa800) return `MSI Mapping Enable${flag(command, 0x1)} Fixed${flag(command, 0x2)}`;
  return HT_TYPES[type] ?? `#${hex(type >> 11, 2)}`;
}

const VIRTIO_CFG_TYPES: Record<number, string> = { 1: 'CommonCfg', 2: 'Notify', 3: 'ISR', 4: 'DeviceCfg' };

/** lspci -v's one-line text for a standard capability. */
function capabilityText(cap: Capability, config: Uint8Array, identity: DeviceSummary, ids: PciIds, mode: NameMode): string {
  const at = cap.offset;
  const flags = wordAt(config, at + 2);
  switch (cap.id) {
    case 0x01: return `Power Management version ${flags & 0x7}`;
    case 0x02: return `AGP version ${((flags >> 4) & 0xf).toString(16)}.${(flags & 0xf).toString(16)}`;
    case 0x03: return 'Vital Product Data';
    case 0x04: return `Slot ID: ${flags & 0x1f} slots, First${flag(flags, 0x20)}, chassis ${hex(flags >> 8, 2)}`;
    case 0x05: return `MSI: Enable${flag(flags, 0x1)} Count=${1 << ((flags & 0x70) >> 4)}/${1 << ((flags & 0x0e) >> 1)} Maskable${flag(flags, 0x100)} 64bit${flag(flags, 0x80)}`;
    case 0x06: return 'CompactPCI hot-swap <?>';
    case 0x07: return (config[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MASK) === PCI_HEADER_TYPE_BRIDGE ? 'PCI-X bridge device' : 'PCI-X non-bridge device';
    case 0x08: return `HyperTransport: ${hyperTransportText(flags)}`;
    case 0x09: {
      if (identity.vendor === 0x1af4 && identity.device >= 0x1000 && identity.device <= 0x107f) {
        return `Vendor Specific Information: VirtIO: ${VIRTIO_CFG_TYPES[config[at + 3]] ?? '<unknown>'}`;
      }
      return `Vendor Specific Information: Len=${hex(config[at + 2], 2)} <?>`;
    }
    case 0x0a: return `Debug port: BAR=${flags >> 13} offset=${hex(flags & 0x1fff, 4)}`;
    case 0x0b: return 'CompactPCI central resource control <?>';
    case 0x0c: return 'Hot-plug capable';
    case 0x0d: return `Subsystem: ${subsystemText(ids, identity.vendor, identity.device, wordAt(config, at + 4), wordAt(config, at + 6), mode)}`;
    case 0x0e: return 'AGP3 <?>';
    case 0x0f: return 'Secure device <?>';
    case 0x10: {
      const type = (flags & 0xf0) >> 4;
      let name = EXPRESS_TYPES[type] ?? `Unknown type ${type}`;
      if (type === 0x4 || type === 0x6 || type === 0x8) name += ` (Slot${flag(flags, 0x100)})`;
      return `Express ${name}, MSI ${hex((flags & 0x3e00) >> 9, 2)}`;
    }
    case 0x11: return `MSI-X: Enable${flag(flags, 0x8000)} Count=${(flags & 0x7ff) + 1} Masked${flag(flags, 0x4000)}`;
    case 0x12: return `SATA HBA v${(flags >> 4) & 0xf}.${flags & 0xf}`;
    case 0x13: return 'PCI Advanced Features';
    case 0x14: return `Enhanced Allocation (EA): NumEntries=${flags & 0x3f}`;
    default: return `#${hex(cap.id, 2)} [${hex(flags, 4)}]`;
  }
}

const EXTENDED_TEXTS: Record<number, string> = {
  0x00: 'Null', 0x01: 'Advanced Error Reporting', 0x02: 'Virtual Channel', 0x04: 'Power Budgeting <?>',
  0x05: 'Root Complex Link', 0x06: 'Root Complex Internal Link <?>', 0x07: 'Root Complex Event Collector Endpoint Association',
  0x08: 'Multi-Function Virtual Channel <?>', 0x09: 'Virtual Channel', 0x0a: 'Root Complex Register Block <?>',
  0x0d: 'Access Control Services', 0x0e: 'Alternative Routing-ID Interpretation (ARI)',
  0x0f: 'Address Translation Service (ATS)', 0x10: 'Single Root I/O Virtualization (SR-IOV)',
  0x11: 'Multi-Root I/O Virtualization <?>', 0x12: 'Multicast', 0x13: 'Page Request Interface (PRI)',
  0x15: 'Physical Resizable BAR', 0x16: 'Dynamic Power Allocation <?>', 0x17: 'Transaction Processing Hints',
  0x18: 'Latency Tolerance Reporting', 0x19: 'Secondary PCI Express', 0x1a: 'Protocol Multiplexing <?>',
  0x1b: 'Process Address Space ID (PASID)', 0x1c: 'LN Requester <?>', 0x1d: 'Downstream Port Containment',
  0x1e: 'L1 PM Substates', 0x1f: 'Precision Time Measurement', 0x20: 'PCI Express over M_PHY <?>',
  0x21: 'FRS Queueing <?>', 0x22: 'Readiness Time Reporting <?>', 0x24: 'VF Resizable BAR <?>',
  0x25: 'Data Link Feature <?>', 0x26: 'Physical Layer 16.0 GT/s <?>', 0x27: 'Lane Margining at the Receiver <?>',
  0x28: 'Hierarchy ID <?>', 0x29: 'Native PCIe Enclosure Management <?>', 0x2e: 'Data Object Exchange',
};

/** lspci -v's one-line text for an extended capability. */
function extendedCapabilityText(cap: Capability, config: Uint8Array): string {
  const at = cap.offset;
  switch (cap.id) {
    case 0x03: {
      const low = dwordAt(config, at + 4);
      const high = dwordAt(config, at + 8);
      const bytes = [high >>> 24, (high >>> 16) & 0xff, (high >>> 8) & 0xff, high & 0xff, low >>> 24, (low >>> 16) & 0xff, (low >>> 8) & 0xff, low & 0xff];
      return `Device Serial Number ${bytes.map((b) => hex(b, 2)).join('-')}`;
    }
    case 0x0b: {
      const header = dwordAt(config, at + 4);
      return `Vendor Specific Information: ID=${hex(header & 0xffff, 4)} Rev=${(header >>> 16) & 0xf} Len=${hex(header >>> 20, 3)} <?>`;
    }
    case 0x23: {
      const header1 = dwordAt(config, at + 4);
      const vendor = header1 & 0xffff;
      return `Designated Vendor-Specific: Vendor=${hex(vendor, 4)} ID=${hex(wordAt(config, at + 8), 4)} Rev=${(header1 >>> 16) & 0xf} Len=${header1 >>> 20}${vendor === 0x1e98 ? ': CXL' : ' <?>'}`;
    }
    default: return EXTENDED_TEXTS[cap.id] ?? `Extended Capability ID 0x${cap.id.toString(16)}`;
  }
}

function walkEndLine(walk: CapabilityWalk): string[] {
  switch (walk.stop) {
    case 'looped': return [`\tCapabilities: [${hex(walk.stopOffset!, 2)}] <chain looped>`];
    case 'broken': return [`\tCapabilities: [${hex(walk.stopOffset!, 2)}] <chain broken>`];
    case 'truncated': return ['\tCapabilities: <access denied>'];
    default: return [];
  }
}

function capabilityLines(config: Uint8Array, identity: DeviceSummary, ids: PciIds, mode: NameMode): string[] {
  const walk = walkCapabilities(config);
  const lines = walk.capabilities.map((cap) => `\tCapabilities: [${hex(cap.offset, 2)}] ${capabilityText(cap, config, identity, ids, mode)}`);
  lines.push(...walkEndLine(walk));
  // As lspci: extended space is only looked at for PCI Express and PCI-X devices.
  if (walk.capabilities.some((cap) => cap.id === 0x10 || cap.id === 0x07)) {
    const extended = walkExtendedCapabilities(config);
    lines.push(...extended.capabilities.map((cap) => `\tCapabilities: [${hex(cap.offset, 3)}] ${extendedCapabilityText(cap, config)}`));
    if (extended.stop === 'looped') lines.push(`\tCapabilities: [${hex(extended.stopOffset!, 3)}] <chain looped>`);
  }
  return lines;
}

/** Subsystem ids: header fields, or for PCI bridges the SSVID capability (as libpci reads them). */
function subsystemIds(config: Uint8Array): [number, number] | null {
  const layout = config[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MASK;
  if (layout === PCI_HEADER_TYPE_NORMAL) return [wordAt(config, PCI_SUBSYSTEM_VENDOR_ID), wordAt(config, PCI_SUBSYSTEM_ID)];
  if (layout === PCI_HEADER_TYPE_BRIDGE) {
    const ssvid = walkCapabilities(config).capabilities.find((cap) => cap.id === 0x0d);
    return ssvid ? [wordAt(config, ssvid.offset + 4), wordAt(config, ssvid.offset + 6)] : null;
  }
  if (layout === PCI_HEADER_TYPE_CARDBUS && config.length >= PCI_CARDBUS_HEADER_SIZE) {
    return [wordAt(config, PCI_CB_SUBSYSTEM_VENDOR_ID), wordAt(config, PCI_CB_SUBSYSTEM_ID)];
  }
  return null;
}

/** `Subsystem:` line, shown by lspci with -v or -k. */
function subsystemLine(config: Uint8Array, identity: DeviceSummary, ids: PciIds, mode: NameMode): string[] {
  const sub = subsystemIds(config);
  return sub && sub[0] && sub[0] !== 0xffff ? [`\tSubsystem: ${subsystemText(ids, identity.vendor, identity.device, sub[0], sub[1], mode)}`] : [];
}

/** The indented lines `lspci -v` prints after the first line (without the kernel driver line). */
export function verboseLines(device: LspciDevice, options: LspciOptions = {}): string[] {
  const ids = options.ids ?? pciIds();
  const mode = options.names ?? 'names';
  const { config } = device;
  const identity = identityFromConfig(device.address, config);
  const lines = subsystemLine(config, identity, ids, mode);

  const layout = config[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MASK;
  const deviceClass = identity.classCode >>> 8;
  if (layout === PCI_HEADER_TYPE_NORMAL && deviceClass === PCI_CLASS_BRIDGE_PCI
    || (layout === PCI_HEADER_TYPE_BRIDGE || layout === PCI_HEADER_TYPE_CARDBUS) && deviceClass >> 8 !== PCI_BASE_CLASS_BRIDGE) {
    lines.push(`\t!!! Invalid class ${hex(deviceClass, 4)} for header type ${hex(layout, 2)}`);
  } else if (layout > PCI_HEADER_TYPE_CARDBUS) {
    lines.push(`\t!!! Unknown header type ${hex(layout, 2)}`);
    return lines;
  }

  const command = wordAt(config, PCI_COMMAND);
  const status = wordAt(config, PCI_STATUS);
  const devsel = status & PCI_STATUS_DEVSEL_MASK;
  const parts: string[] = [];
  if (command & PCI_COMMAND_MASTER) parts.push('bus master');
  if (command & PCI_COMMAND_VGA_PALETTE) parts.push('VGA palette snoop');
  if (command & PCI_COMMAND_WAIT) parts.push('stepping');
  if (command & PCI_COMMAND_FAST_BACK) parts.push('fast Back2Back');
  if (status & PCI_STATUS_66MHZ) parts.push('66MHz');
  if (status & PCI_STATUS_UDF) parts.push('user-definable features');
  parts.push(`${devsel === PCI_STATUS_DEVSEL_SLOW ? 'slow' : devsel === PCI_STATUS_DEVSEL_MEDIUM ? 'medium' : devsel === PCI_STATUS_DEVSEL_FAST ? 'fast' : '??'} devsel`);
  if (command & PCI_COMMAND_MASTER) parts.push(`latency ${config[PCI_LATENCY_TIMER]}`);
  const irq = device.irq ?? config[PCI_INTERRUPT_LINE];
  if (irq) parts.push(`IRQ ${irq}`);
  if (device.iommuGroup !== undefined && device.iommuGroup !== null) parts.push(`IOMMU group ${device.iommuGroup}`);
  lines.push(`\tFlags: ${parts.join(', ')}`);

  const bist = config[PCI_BIST];
  if (bist & PCI_BIST_CAPABLE) lines.push(bist & PCI_BIST_START ? '\tBIST is running' : `\tBIST result: ${hex(bist & PCI_BIST_CODE_MASK, 2)}`);

  if (layout === PCI_HEADER_TYPE_NORMAL) {
    lines.push(...barLines(device, 6), ...romLine(device, PCI_ROM_ADDRESS), ...capabilityLines(config, identity, ids, mode));
  } else if (layout === PCI_HEADER_TYPE_BRIDGE) {
    lines.push(...barLines(device, 2), ...bridgeLines(config), ...romLine(device, PCI_ROM_ADDRESS1), ...capabilityLines(config, identity, ids, mode));
  } else {
    lines.push(...barLines(device, 1), ...cardBusLines(config));
    if (config.length < PCI_CARDBUS_HEADER_SIZE) {
      lines.push('\t<access denied to the rest>');
    } else {
      const legacy = wordAt(config, PCI_CB_LEGACY_MODE_BASE);
      if (legacy) lines.push(`\t16-bit legacy interface ports at ${hex(legacy, 4)}`);
      lines.push(...capabilityLines(config, identity, ids, mode));
    }
  }
  return lines;
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
