/**
 * `xpci snapshot`: copy one device's sysfs view (config space, `resource` table, identity attribute
 * files, `resourceN` files sized like its BARs) into a fixture tree that `--sysfs-root DIR` serves,
 * so driver tests run in CI without the hardware. The tree mirrors the kernel's layout: the device
 * directory lives under DIR/devices/pciDDDD:BB/ and DIR/bus/pci/devices/<bdf> links to it.
 *
 * BAR contents are captured only with `withBars` (reading MMIO or I/O ports can have side effects);
 * otherwise the resourceN files are sparse and zero-filled. The snapshot has no `driver` link, so it
 * can be exported without --read-only. Without `withBars` nothing but regular reads of `config`,
 * `resource` and attribute files happens, which is safe on any host.
 */
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { formatAddress, type PciAddress } from '../pci/address.js';
import type { BarInfo } from '../pci/device-info.js';
import { readDevice } from '../host/sysfs/discovery.js';
import { configPath, deviceDir, pciDevicesDir, pciDriversDir } from '../host/sysfs/paths.js';
import { native } from '../native/binding.js';
import { STUB_DRIVER } from './lifecycle/driver-binding.js';
import { LifecycleError } from './lifecycle/errors.js';

/** Identity attributes discovery and `lspci` read besides `config`. */
const ATTRIBUTE_FILES = ['vendor', 'device', 'class', 'revision', 'subsystem_vendor', 'subsystem_device'];

/** BAR content is copied in chunks; all-zero chunks are skipped so the file stays sparse. */
const CHUNK = 64 * 1024;

export interface SnapshotOptions {
  sysfsRoot: string;
  address: PciAddress;
  /** the new fixture root */
  outDir: string;
  withBars?: boolean;
}

export interface SnapshotBar {
  index: number;
  kind: 'mem' | 'io';
  size: number;
  /** content copied from the device (only with withBars) */
  captured: boolean;
}

export interface SnapshotResult {
  bdf: string;
  /** the device directory inside the snapshot */
  deviceDir: string;
  /** bytes of config space captured, and the device's config size */
  configBytes: number;
  configSize: number;
  bars: SnapshotBar[];
  /** files written, relative to the device directory */
  files: string[];
  /** what the snapshot lacks, e.g. config space truncated for a non-root reader */
  notes: string[];
}

export function snapshotDevice(options: SnapshotOptions): SnapshotResult {
  const { sysfsRoot, address, outDir } = options;
  const bdf = formatAddress(address);
  const source = deviceDir(sysfsRoot, address);
  const info = readDevice(sysfsRoot, address);
  // pci-stub claims no BAR regions, so a seized device's BARs can be read (the kernel refuses the
  // mmap of a BAR a real driver claimed anyway); any other driver owns its BARs.
  if (options.withBars && info.driver !== null && info.driver !== STUB_DRIVER) {
    throw new LifecycleError(`${bdf} is bound to driver ${info.driver}: its BARs belong to that driver, so --with-bars is refused; seize it first (xpci assignable-add ${bdf}) or snapshot without --with-bars`);
  }
  const link = join(pciDevicesDir(outDir), bdf);
  if (existsSync(link)) throw new LifecycleError(`${link} already exists: snapshot into an empty --out directory or remove it first`);

  const bus = `pci${bdf.slice(0, 7)}`;
  const target = join(outDir, 'devices', bus, bdf);
  mkdirSync(target, { recursive: true });
  mkdirSync(pciDevicesDir(outDir), { recursive: true });
  mkdirSync(pciDriversDir(outDir), { recursive: true });
  symlinkSync(join('..', '..', '..', 'devices', bus, bdf), link);

  const files: string[] = [];
  const notes: string[] = [];
  // sysfs cuts config reads at what the caller may see (64 bytes without CAP_SYS_ADMIN).
  const config = readFileSync(configPath(sysfsRoot, address));
  writeFileSync(join(target, 'config'), config, { mode: 0o644 });
  files.push('config');
  if (config.length < info.configSize) {
    notes.push(`config space truncated to ${config.length} of ${info.configSize} bytes: only root can read past 64 bytes`);
  }

  for (const name of ['resource', ...ATTRIBUTE_FILES]) {
    if (!existsSync(join(source, name))) {
      notes.push(`${name}: absent on the source device`);
      continue;
    }
    // Attribute files report 4096 as their size whatever their content, so read, do not copy.
    writeFileSync(join(target, name), readFileSync(join(source, name)));
    files.push(name);
  }

  const bars: SnapshotBar[] = [];
  for (const bar of info.bars) {
    const name = `resource${bar.index}`;
    const captured = options.withBars === true;
    if (captured) captureBar(join(source, name), join(target, name), bar);
    else sizedFile(join(target, name), bar.size);
    files.push(name);
    bars.push({ index: bar.index, kind: bar.kind, size: bar.size, captured });
  }
  if (info.rom) {
    // Reading the ROM needs a write to `rom` to enable it; never done here.
    sizedFile(join(target, 'rom'), info.rom.size);
    files.push('rom');
    notes.push('expansion ROM content not captured (zero-filled)');
  }
  return { bdf, deviceDir: target, configBytes: config.length, configSize: info.configSize, bars, files, notes };
}

/** A sparse zero-filled file of exactly `size` bytes. */
function sizedFile(path: string, size: number): void {
  const fd = openSync(path, 'w', 0o600);
  try {
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}

/**
 * Copy a BAR: memory BARs through a read-only mapping with 4-byte loads (MMIO width matters),
 * I/O BARs through pread (the kernel refuses mmap of I/O resources).
 */
function captureBar(from: string, to: string, bar: BarInfo): void {
  const binding = native();
  const width = bar.size % 4 === 0 ? 4 : 1;
  let read: (offset: number) => number;
  let close: () => void;
  if (bar.kind === 'mem') {
    const mapping = binding.mapResource(from, false, bar.size);
    read = (offset) => mapping.read(offset, width);
    close = () => mapping.unmap();
  } else {
    const file = binding.openRegisterFile(from, false);
    read = (offset) => file.read(offset, width);
    close = () => file.close();
  }
  sizedFile(to, bar.size);
  const fd = openSync(to, 'r+');
  try {
    const chunk = Buffer.alloc(Math.min(CHUNK, bar.size));
    for (let base = 0; base < bar.size; base += chunk.length) {
      const length = Math.min(chunk.length, bar.size - base);
      let nonZero = false;
      for (let at = 0; at < length; at += width) {
        const value = read(base + at);
        if (width === 4) chunk.writeUInt32LE(value >>> 0, at);
        else chunk[at] = value;
        if (value !== 0) nonZero = true;
      }
      if (nonZero) writeSync(fd, chunk, 0, length, base);
    }
  } finally {
    closeSync(fd);
    close();
  }
}
