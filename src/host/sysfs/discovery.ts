/**
 * Host PCI devices as sysfs describes them, under a sysfs root (`/sys`, or a fixture tree given with
 * --sysfs-root). Read-only: this module never writes anything. Identity comes from the attribute
 * files the kernel keeps (what lspci shows), the config header from the native addon.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { debugLog } from '../../diagnostics/debug-log.js';
import { compareAddresses, formatAddress, parseAddress, type PciAddress } from '../../pci/address.js';
import type { ConfigReader, ConfigWidth } from '../../pci/config-reader.js';
import type { PciDeviceInfo } from '../../pci/device-info.js';
import type { LspciDevice } from '../../pci/lspci-format.js';
import { configPath, deviceDir, pciDevicesDir } from './paths.js';
import { parseResourceTable } from './resource-table.js';
import {
  PCI_BASE_CLASS_BRIDGE, PCI_HEADER_TYPE, PCI_HEADER_TYPE_MASK, PCI_HEADER_TYPE_MULTI_FUNCTION, PCI_REVISION_ID,
  PCI_STD_HEADER_SIZE, PCI_SUBSYSTEM_ID, PCI_SUBSYSTEM_VENDOR_ID,
} from '../../pci/config-header.js';
import { native, type RegisterFile } from '../../native/binding.js';

const debug = debugLog('xpci:discovery');

/** The requested device does not exist under the sysfs root (runtime failure, exit status 1). */
export class DeviceNotFoundError extends Error {
  override readonly name = 'DeviceNotFoundError';
}

/** The sysfs root does not contain `bus/pci/devices` (runtime failure, exit status 1). */
export class SysfsRootError extends Error {
  override readonly name = 'SysfsRootError';
}

function devicesDirOf(sysfsRoot: string): string {
  const dir = pciDevicesDir(sysfsRoot);
  if (!existsSync(dir)) {
    throw new SysfsRootError(`no PCI devices directory under sysfs root '${sysfsRoot}' (looked for ${dir}); --sysfs-root must name a folder containing bus/pci/devices`);
  }
  return dir;
}

/** A `0x1af4\n` attribute, or undefined when absent or malformed (the config header then decides). */
function hexAttribute(dir: string, name: string): number | undefined {
  try {
    const text = readFileSync(join(dir, name), 'utf8').trim();
    return /^0x[0-9a-fA-F]+$/.test(text) ? parseInt(text, 16) : undefined;
  } catch {
    return undefined;
  }
}

/** A decimal attribute such as `irq`, or undefined when absent (fixture trees) or malformed. */
function decimalAttribute(dir: string, name: string): number | undefined {
  try {
    const text = readFileSync(join(dir, name), 'utf8').trim();
    return /^\d+$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

function linkTarget(path: string): string | null {
  try {
    return basename(readlinkSync(path));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** Read `length` bytes of config space from offset 0 (fewer when the kernel allows fewer: non-root gets 64). */
export function readConfigSnapshot(sysfsRoot: string, address: PciAddress, length: number): Uint8Array {
  const path = configPath(sysfsRoot, address);
  if (!existsSync(deviceDir(sysfsRoot, address))) {
    devicesDirOf(sysfsRoot);
    throw new DeviceNotFoundError(`no PCI device ${formatAddress(address)} under ${pciDevicesDir(sysfsRoot)}`);
  }
  const file = native().openRegisterFile(path, false);
  try {
    return new Uint8Array(file.readBlock(0, Math.min(length, file.size())));
  } finally {
    file.close();
  }
}

function describe(sysfsRoot: string, address: PciAddress): PciDeviceInfo {
  const dir = deviceDir(sysfsRoot, address);
  const header = readConfigSnapshot(sysfsRoot, address, PCI_STD_HEADER_SIZE);
  if (header.length < PCI_STD_HEADER_SIZE) throw new Error(`${configPath(sysfsRoot, address)}: only ${header.length} bytes of config header readable`);
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const headerType = header[PCI_HEADER_TYPE];
  const headerLayout = headerType & PCI_HEADER_TYPE_MASK;
  const classCode = hexAttribute(dir, 'class') ?? view.getUint32(PCI_REVISION_ID, true) >>> 8;
  const resourceFile = join(dir, 'resource');
  const { bars, rom } = existsSync(resourceFile) ? parseResourceTable(readFileSync(resourceFile, 'utf8'), resourceFile) : { bars: [], rom: null };
  const group = linkTarget(join(dir, 'iommu_group'));
  return {
    address,
    bdf: formatAddress(address),
    vendor: hexAttribute(dir, 'vendor') ?? view.getUint16(0x00, true),
    device: hexAttribute(dir, 'device') ?? view.getUint16(0x02, true),
    subsystemVendor: hexAttribute(dir, 'subsystem_vendor') ?? (headerLayout === 0 ? view.getUint16(PCI_SUBSYSTEM_VENDOR_ID, true) : 0),
    subsystemDevice: hexAttribute(dir, 'subsystem_device') ?? (headerLayout === 0 ? view.getUint16(PCI_SUBSYSTEM_ID, true) : 0),
    classCode,
    revision: hexAttribute(dir, 'revision') ?? header[PCI_REVISION_ID],
    headerLayout,
    multiFunction: (headerType & PCI_HEADER_TYPE_MULTI_FUNCTION) !== 0,
    isBridge: classCode >>> 16 === PCI_BASE_CLASS_BRIDGE,
    driver: linkTarget(join(dir, 'driver')),
    configSize: statSync(configPath(sysfsRoot, address)).size,
    bars,
    rom,
    iommuGroup: group !== null && /^\d+$/.test(group) ? Number(group) : null,
    hasReset: existsSync(join(dir, 'reset')),
    isVirtualFunction: linkTarget(join(dir, 'physfn')) !== null,
    sysfsPath: resolve(dir),
  };
}

/** One device; DeviceNotFoundError when it is absent, SysfsRootError when the root is not a sysfs tree. */
export function readDevice(sysfsRoot: string, address: PciAddress): PciDeviceInfo {
  devicesDirOf(sysfsRoot);
  if (!existsSync(deviceDir(sysfsRoot, address))) {
    throw new DeviceNotFoundError(`no PCI device ${formatAddress(address)} under ${pciDevicesDir(sysfsRoot)}`);
  }
  return describe(sysfsRoot, address);
}

/** Every device under the root, sorted by address (entries that are not PCI addresses are skipped). */
export function listDevices(sysfsRoot: string): PciDeviceInfo[] {
  const addresses: PciAddress[] = [];
  for (const name of readdirSync(devicesDirOf(sysfsRoot))) {
    try {
      addresses.push(parseAddress(name));
    } catch {
      debug('skipping %s: not a PCI address', name);
    }
  }
  return addresses.sort(compareAddresses).map((address) => describe(sysfsRoot, address));
}

/**
 * A local device as the lspci formatter wants it: `length` bytes of config space (256 or 4096 for
 * `-xxx`/`-xxxx`, fewer when the kernel allows fewer) plus what sysfs adds (sizes, driver, irq).
 */
export function snapshotDevice(sysfsRoot: string, info: PciDeviceInfo, length: number): LspciDevice {
  return {
    address: info.address,
    config: readConfigSnapshot(sysfsRoot, info.address, length),
    configSize: info.configSize,
    resources: { bars: info.bars, rom: info.rom },
    driver: info.driver,
    irq: decimalAttribute(deviceDir(sysfsRoot, info.address), 'irq'),
    iommuGroup: info.iommuGroup,
  };
}

/** ConfigReader over a local `config` file, read-only: what the lspci printer and walkers run against. */
export class LocalConfigReader implements ConfigReader {
  readonly configSize: number;

  constructor(private readonly file: RegisterFile) {
    this.configSize = file.size();
  }

  static open(sysfsRoot: string, address: PciAddress): LocalConfigReader {
    readDevice(sysfsRoot, address);
    return new LocalConfigReader(native().openRegisterFile(configPath(sysfsRoot, address), false));
  }

  async read(offset: number, width: ConfigWidth): Promise<number> {
    if (![1, 2, 4].includes(width)) throw new RangeError(`config read width must be 1, 2 or 4, not ${width}`);
    if (!Number.isInteger(offset) || offset < 0 || offset % width !== 0 || offset + width > this.configSize) {
      throw new RangeError(`config read of ${width} bytes at ${offset} is outside the ${this.configSize}-byte space or unaligned (${this.file.path})`);
    }
    return this.file.read(offset, width);
  }

  close(): void {
    this.file.close();
  }
}
