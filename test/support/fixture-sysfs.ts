/**
 * Fake sysfs trees for tests: regular files shaped like the kernel's PCI attributes, so every read
 * and write path runs without touching real hardware. The layout mirrors real sysfs: device
 * directories live under `devices/pciDDDD:BB/`, `bus/pci/devices/<bdf>` are symlinks to them, so
 * the kernel's relative `driver` and `iommu_group` link targets resolve exactly as on a host.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, openSync, ftruncateSync, closeSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface FixtureBar { index: number; kind: 'mem' | 'io'; size: number; start: number; is64?: boolean; prefetchable?: boolean }

export interface FixtureDeviceSpec {
  address: string;
  config: Uint8Array;
  bars?: FixtureBar[];
  rom?: { start: number; size: number };
  driver?: string | null;
  iommuGroup?: number;
  /** SR-IOV: this function is a VF of the given PF ("0000:06:00.0") -> a `physfn` link */
  physfn?: string;
  reset?: boolean;
}

export interface FixtureTree {
  root: string;
  deviceDir(address: string): string;
  configBytes(address: string): Buffer;
  cleanup(): void;
}

export interface ConfigImageSpec {
  vendor: number; device: number; classCode: number; revision?: number;
  headerType?: number;
  subsystemVendor?: number; subsystemDevice?: number;
  command?: number; status?: number; cacheLineSize?: number; interruptLine?: number; interruptPin?: number;
  bars?: FixtureBar[];
  /** Extension: the expansion ROM register (0x30, or 0x38 for bridges), written disabled. */
  rom?: { start: number; size: number };
  capabilities?: { id: number; body?: number[] }[];
  extendedCapabilities?: { id: number; version?: number; body?: number[] }[];
  size?: 256 | 4096;
}

// include/linux/ioport.h
const IORESOURCE_IO = 0x100;
const IORESOURCE_MEM = 0x200;
const IORESOURCE_PREFETCH = 0x2000;
const IORESOURCE_READONLY = 0x4000;
const IORESOURCE_SIZEALIGN = 0x40000;
const IORESOURCE_MEM_64 = 0x100000;

const hex = (value: number, width: number): string => value.toString(16).padStart(width, '0');

/** Low bits of a BAR register as the device reports them (PCI_BASE_ADDRESS_*). */
function barTypeBits(bar: FixtureBar): number {
  if (bar.kind === 'io') return 0x1;
  return (bar.is64 ? 0x4 : 0) | (bar.prefetchable ? 0x8 : 0);
}

/** Flags column the kernel prints: IORESOURCE_* plus the BAR's own low bits (pci_read_bases). */
function resourceFlags(bar: FixtureBar): number {
  if (bar.kind === 'io') return IORESOURCE_IO | IORESOURCE_SIZEALIGN | barTypeBits(bar);
  return IORESOURCE_MEM | IORESOURCE_SIZEALIGN | (bar.prefetchable ? IORESOURCE_PREFETCH : 0) | (bar.is64 ? IORESOURCE_MEM_64 : 0) | barTypeBits(bar);
}

function checkBar(bar: FixtureBar, layout: number): void {
  const maxIndex = layout === 1 ? 1 : 5;
  if (!Number.isInteger(bar.index) || bar.index < 0 || bar.index > maxIndex) throw new RangeError(`fixture BAR index ${bar.index} outside 0..${maxIndex}`);
  if (bar.is64 && bar.index === maxIndex) throw new RangeError(`fixture 64-bit BAR ${bar.index} has no room for its upper half`);
  if (!(bar.size > 0 && Number.isInteger(Math.log2(bar.size)))) throw new RangeError(`fixture BAR ${bar.index} size ${bar.size} is not a power of two`);
}

export function buildConfigImage(spec: ConfigImageSpec): Uint8Array {
  const size = spec.size ?? (spec.extendedCapabilities?.length ? 4096 : 256);
  if (spec.extendedCapabilities?.length && size !== 4096) throw new RangeError('extended capabilities need a 4096-byte config image');
  const image = new Uint8Array(size);
  const view = new DataView(image.buffer);
  const headerType = spec.headerType ?? 0;
  const layout = headerType & 0x7f;
  const hasCaps = (spec.capabilities?.length ?? 0) > 0;

  view.setUint16(0x00, spec.vendor, true);
  view.setUint16(0x02, spec.device, true);
  view.setUint16(0x04, spec.command ?? 0, true);
  view.setUint16(0x06, (spec.status ?? 0) | (hasCaps ? 0x10 : 0), true);
  view.setUint8(0x08, spec.revision ?? 0);
  view.setUint8(0x09, spec.classCode & 0xff);
  view.setUint16(0x0a, (spec.classCode >>> 8) & 0xffff, true);
  view.setUint8(0x0c, spec.cacheLineSize ?? 0);
  view.setUint8(0x0e, headerType);
  if (layout === 0) {
    view.setUint16(0x2c, spec.subsystemVendor ?? 0, true);
    view.setUint16(0x2e, spec.subsystemDevice ?? 0, true);
  }
  view.setUint8(0x3c, spec.interruptLine ?? 0);
  view.setUint8(0x3d, spec.interruptPin ?? 0);

  for (const bar of spec.bars ?? []) {
    checkBar(bar, layout);
    const at = 0x10 + 4 * bar.index;
    const mask = bar.kind === 'io' ? 0x3 : 0xf;
    view.setUint32(at, ((bar.start % 2 ** 32) & ~mask) >>> 0 | barTypeBits(bar), true);
    if (bar.is64) view.setUint32(at + 4, Math.floor(bar.start / 2 ** 32), true);
  }
  if (spec.rom) view.setUint32(layout === 1 ? 0x38 : 0x30, (spec.rom.start & ~0x7ff) >>> 0, true);

  if (hasCaps) {
    view.setUint8(layout === 2 ? 0x14 : 0x34, 0x40);
    let at = 0x40;
    spec.capabilities!.forEach((cap, i) => {
      const body = cap.body ?? [];
      const next = i + 1 < spec.capabilities!.length ? (at + 2 + body.length + 3) & ~3 : 0;
      if (at + 2 + body.length > 0x100 || next >= 0x100) throw new RangeError('fixture capabilities do not fit below 0x100');
      image[at] = cap.id;
      image[at + 1] = next;
      image.set(body, at + 2);
      at = next;
    });
  }
  if (spec.extendedCapabilities?.length) {
    let at = 0x100;
    spec.extendedCapabilities.forEach((cap, i) => {
      const body = cap.body ?? [];
      const next = i + 1 < spec.extendedCapabilities!.length ? (at + 4 + body.length + 3) & ~3 : 0;
      if (at + 4 + body.length > size || next >= size) throw new RangeError('fixture extended capabilities do not fit in 4096 bytes');
      view.setUint32(at, (cap.id & 0xffff | ((cap.version ?? 1) & 0xf) << 16 | next << 20) >>> 0, true);
      image.set(body, at + 4);
      at = next;
    });
  }
  return image;
}

function resourceLine(start: number, size: number, flags: number): string {
  const end = size > 0 ? start + size - 1 : 0;
  return `0x${hex(start, 16)} 0x${hex(end, 16)} 0x${hex(flags, 16)}\n`;
}

/** Sparse zero-filled file of exactly `size` bytes. */
function sizedFile(path: string, size: number): void {
  const fd = openSync(path, 'w', 0o600);
  try { ftruncateSync(fd, size); } finally { closeSync(fd); }
}

const ADDRESS = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/;

function writeDevice(root: string, spec: FixtureDeviceSpec): void {
  const m = ADDRESS.exec(spec.address)!;
  const config = spec.config;
  if (config.length < 64) throw new RangeError('fixture config image shorter than 64 bytes');
  const view = new DataView(config.buffer, config.byteOffset, config.byteLength);
  const layout = config[0x0e] & 0x7f;

  const realDir = join(root, 'devices', `pci${m[1]}:${m[2]}`, spec.address);
  if (existsSync(realDir)) throw new Error(`fixture device ${spec.address} given twice`);
  mkdirSync(realDir, { recursive: true });
  symlinkSync(join('..', '..', '..', 'devices', `pci${m[1]}:${m[2]}`, spec.address), join(root, 'bus', 'pci', 'devices', spec.address));

  writeFileSync(join(realDir, 'config'), config, { mode: 0o644 });
  const attr = (name: string, value: number, width: number): void => writeFileSync(join(realDir, name), `0x${hex(value, width)}\n`);
  attr('vendor', view.getUint16(0x00, true), 4);
  attr('device', view.getUint16(0x02, true), 4);
  attr('class', view.getUint32(0x08, true) >>> 8, 6);
  attr('revision', config[0x08], 2);
  attr('subsystem_vendor', layout === 0 ? view.getUint16(0x2c, true) : 0, 4);
  attr('subsystem_device', layout === 0 ? view.getUint16(0x2e, true) : 0, 4);

  // The kernel prints 7 lines (6 BARs + ROM) for endpoints, plus bridge windows for bridges.
  const lines = Array.from({ length: layout === 1 ? 11 : 7 }, () => resourceLine(0, 0, 0));
  for (const bar of spec.bars ?? []) {
    checkBar(bar, layout);
    lines[bar.index] = resourceLine(bar.start, bar.size, resourceFlags(bar));
    sizedFile(join(realDir, `resource${bar.index}`), bar.size);
  }
  if (spec.rom) {
    lines[6] = resourceLine(spec.rom.start, spec.rom.size, IORESOURCE_MEM | IORESOURCE_PREFETCH | IORESOURCE_READONLY | IORESOURCE_SIZEALIGN);
    sizedFile(join(realDir, 'rom'), spec.rom.size);
  }
  writeFileSync(join(realDir, 'resource'), lines.join(''));

  if (spec.driver) {
    mkdirSync(join(root, 'bus', 'pci', 'drivers', spec.driver), { recursive: true });
    symlinkSync(join('..', '..', '..', 'bus', 'pci', 'drivers', spec.driver), join(realDir, 'driver'));
  }
  if (spec.iommuGroup !== undefined) {
    mkdirSync(join(root, 'kernel', 'iommu_groups', String(spec.iommuGroup)), { recursive: true });
    symlinkSync(join('..', '..', '..', 'kernel', 'iommu_groups', String(spec.iommuGroup)), join(realDir, 'iommu_group'));
  }
  if (spec.reset) writeFileSync(join(realDir, 'reset'), '');
  if (spec.physfn) symlinkSync(join('..', spec.physfn), join(realDir, 'physfn'));
}

/** Build a tree under `dir` (default: a fresh temp directory, removed by cleanup()). */
export function createFixtureTree(devices: FixtureDeviceSpec[], dir?: string): FixtureTree {
  for (const { address } of devices) {
    if (!ADDRESS.test(address)) throw new RangeError(`fixture address '${address}' must be DDDD:BB:DD.F in lowercase hex`);
  }
  const root = dir ?? mkdtempSync(join(tmpdir(), 'xpci-sysfs-'));
  mkdirSync(join(root, 'bus', 'pci', 'devices'), { recursive: true });
  mkdirSync(join(root, 'bus', 'pci', 'drivers'), { recursive: true });
  for (const device of devices) writeDevice(root, device);
  const deviceDir = (address: string): string => join(root, 'bus', 'pci', 'devices', address);
  return {
    root,
    deviceDir,
    configBytes: (address) => readFileSync(join(deviceDir(address), 'config')),
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}
