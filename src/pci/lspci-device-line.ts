/**
 * lspci's first line for a device: `06:01.0 Ethernet controller: Intel Corporation 82576 Gigabit
 * Network Connection (rev 01)`, with the numeric forms of -n / -nn, the domain of -D and the
 * `(prog-if NN [...])` of -v.
 */
import { formatAddress, formatShortAddress, type PciAddress } from './address.js';
import { dwordAt, wordAt } from './config-fields.js';
import { PCI_REVISION_ID, PCI_STD_HEADER_SIZE } from './config-header.js';
import { hex } from './hex.js';
import type { LspciOptions } from './lspci-format.js';
import { classText, pciIds, progIfText, vendorDeviceText } from './pci-ids.js';

/** What the one-line description needs (PciDeviceInfo has these fields). */
export interface DeviceSummary {
  address: PciAddress;
  vendor: number;
  device: number;
  /** 24-bit class code: base, sub, prog-if */
  classCode: number;
  revision: number;
}

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
