/**
 * The block `lspci -v` prints under a device's first line (a faithful subset): Subsystem, Flags,
 * BIST, regions, expansion ROM, bridge and CardBus windows, then the capabilities (lspci-caps.ts).
 */
import type { BarInfo } from './device-info.js';
import { walkCapabilities } from './capabilities.js';
import { dwordAt, wordAt } from './config-fields.js';
import {
  PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_MEM_PREFETCH, PCI_BASE_ADDRESS_MEM_TYPE_1M,
  PCI_BASE_ADDRESS_MEM_TYPE_32, PCI_BASE_ADDRESS_MEM_TYPE_64, PCI_BASE_ADDRESS_MEM_TYPE_MASK,
  PCI_BASE_ADDRESS_SPACE_IO, PCI_BASE_CLASS_BRIDGE, PCI_BIST, PCI_BIST_CAPABLE, PCI_BIST_CODE_MASK,
  PCI_BIST_START, PCI_CAP_ID_SSVID, PCI_CARDBUS_HEADER_SIZE, PCI_CB_BRIDGE_CONTROL,
  PCI_CB_BRIDGE_CTL_PREFETCH_MEM0, PCI_CB_CARD_BUS, PCI_CB_IO_BASE_0, PCI_CB_IO_LIMIT_0, PCI_CB_LATENCY_TIMER,
  PCI_CB_LEGACY_MODE_BASE, PCI_CB_MEMORY_BASE_0, PCI_CB_MEMORY_LIMIT_0, PCI_CB_PRIMARY_BUS, PCI_CB_SEC_STATUS,
  PCI_CB_SUBORDINATE_BUS, PCI_CB_SUBSYSTEM_ID, PCI_CB_SUBSYSTEM_VENDOR_ID, PCI_CLASS_BRIDGE_PCI, PCI_COMMAND,
  PCI_COMMAND_FAST_BACK, PCI_COMMAND_IO, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, PCI_COMMAND_VGA_PALETTE,
  PCI_COMMAND_WAIT, PCI_HEADER_TYPE, PCI_HEADER_TYPE_BRIDGE, PCI_HEADER_TYPE_CARDBUS, PCI_HEADER_TYPE_MASK,
  PCI_HEADER_TYPE_NORMAL, PCI_INTERRUPT_LINE, PCI_IO_BASE, PCI_IO_BASE_UPPER16, PCI_IO_LIMIT,
  PCI_IO_LIMIT_UPPER16, PCI_IO_RANGE_MASK, PCI_IO_RANGE_TYPE_16, PCI_IO_RANGE_TYPE_32, PCI_IO_RANGE_TYPE_MASK,
  PCI_LATENCY_TIMER, PCI_MEMORY_BASE, PCI_MEMORY_LIMIT, PCI_MEMORY_RANGE_MASK, PCI_MEMORY_RANGE_TYPE_MASK,
  PCI_PREF_BASE_UPPER32, PCI_PREF_LIMIT_UPPER32, PCI_PREF_MEMORY_BASE, PCI_PREF_MEMORY_LIMIT,
  PCI_PREF_RANGE_MASK, PCI_PREF_RANGE_TYPE_32, PCI_PREF_RANGE_TYPE_64, PCI_PREF_RANGE_TYPE_MASK,
  PCI_PRIMARY_BUS, PCI_ROM_ADDRESS, PCI_ROM_ADDRESS1, PCI_ROM_ADDRESS_ENABLE, PCI_ROM_ADDRESS_MASK,
  PCI_SECONDARY_BUS, PCI_SEC_LATENCY_TIMER, PCI_STATUS, PCI_STATUS_66MHZ, PCI_STATUS_DEVSEL_FAST,
  PCI_STATUS_DEVSEL_MASK, PCI_STATUS_DEVSEL_MEDIUM, PCI_STATUS_DEVSEL_SLOW, PCI_STATUS_SIG_SYSTEM_ERROR,
  PCI_STATUS_UDF, PCI_SUBORDINATE_BUS, PCI_SUBSYSTEM_ID, PCI_SUBSYSTEM_VENDOR_ID,
} from './config-header.js';
import { hex } from './hex.js';
import { capabilityLines } from './lspci-caps.js';
import { identityFromConfig, type DeviceSummary } from './lspci-device-line.js';
import type { LspciDevice, LspciOptions } from './lspci-format.js';
import { pciIds, subsystemText, type NameMode, type PciIds } from './pci-ids.js';

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

/** Subsystem ids: header fields, or for PCI bridges the SSVID capability (as libpci reads them). */
function subsystemIds(config: Uint8Array): [number, number] | null {
  const layout = config[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MASK;
  if (layout === PCI_HEADER_TYPE_NORMAL) return [wordAt(config, PCI_SUBSYSTEM_VENDOR_ID), wordAt(config, PCI_SUBSYSTEM_ID)];
  if (layout === PCI_HEADER_TYPE_BRIDGE) {
    const ssvid = walkCapabilities(config).capabilities.find((cap) => cap.id === PCI_CAP_ID_SSVID);
    return ssvid ? [wordAt(config, ssvid.offset + 4), wordAt(config, ssvid.offset + 6)] : null;
  }
  if (layout === PCI_HEADER_TYPE_CARDBUS && config.length >= PCI_CARDBUS_HEADER_SIZE) {
    return [wordAt(config, PCI_CB_SUBSYSTEM_VENDOR_ID), wordAt(config, PCI_CB_SUBSYSTEM_ID)];
  }
  return null;
}

/** `Subsystem:` line, shown by lspci with -v or -k. */
export function subsystemLine(config: Uint8Array, identity: DeviceSummary, ids: PciIds, mode: NameMode): string[] {
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
