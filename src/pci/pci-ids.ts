/**
 * Vendor, device, subsystem and class names from the system's pci.ids, found and formatted as libpci
 * does (lib/names-parse.c, lib/names.c), so that our output names devices exactly like lspci.
 *
 * The file is ~1.3 MB: it is read once, lazily, and only the top-level block boundaries are indexed;
 * a vendor's or class's block is parsed the first time something in it is looked up.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { debugLog } from '../diagnostics/debug-log.js';
import { hex } from './hex.js';

const debug = debugLog('xpci:pci-ids');

/** libpci's search order: its compiled-in path (.gz, then without .gz), then other distributions' places. */
export const DEFAULT_PCI_IDS_PATHS: readonly string[] = [
  '/usr/share/misc/pci.ids.gz',
  '/usr/share/misc/pci.ids',
  '/usr/share/hwdata/pci.ids',
  '/usr/share/pci.ids',
];

/** lspci's three ways to show an id: names (default), numbers (-n), both (-nn). */
export type NameMode = 'names' | 'numeric' | 'mixed';

/** A device line of a vendor block; its subsystem lines are parsed the first time one is asked for. */
interface DeviceEntry { name: string; subsystemText: string; subsystems?: Map<number, string> }
interface VendorBlock { name: string; devices: Map<number, DeviceEntry> }
interface ClassBlock { name: string; subclasses: Map<number, { name: string; progIfs: Map<number, string> }> }

const subsystemKey = (vendor: number, device: number): number => vendor * 0x10000 + device;

/** Read a plain or gzip-compressed file; libpci's gzopen accepts both. */
function readIdsFile(path: string): string {
  const raw = readFileSync(path);
  return (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw).toString('utf8');
}

/** libpci drops one trailing blank of each line. */
const dropTrailingBlank = (name: string): string => (name.endsWith(' ') || name.endsWith('\t') ? name.slice(0, -1) : name);

// Entries by nesting level: `<id><blanks><name>` after 0, 1 or 2 tabs (names never span lines).
const TOP_LEVEL_LINE = /^[^\t#\r\n ][^\r\n]*/gm;
const DEVICE_LINE = /^\t([0-9a-fA-F]{4})[ \t]+([^\r\n]+)/gm;
const SUBSYSTEM_LINE = /^\t\t([0-9a-fA-F]{4})[ \t]([0-9a-fA-F]{4})[ \t]+([^\r\n]+)/gm;
const SUBCLASS_LINE = /^\t([0-9a-fA-F]{2})[ \t]+([^\r\n]+)/;
const PROG_IF_LINE = /^\t\t([0-9a-fA-F]{2})[ \t]+([^\r\n]+)/;

export class PciIds {
  private text: string | null | undefined;
  private blocks: Map<string, string> | undefined;
  private readonly vendors = new Map<number, VendorBlock | null>();
  private readonly classes = new Map<number, ClassBlock | null>();
  private readonly genericSubsystems = new Map<number, Map<number, string> | null>();
  private loadedPath: string | null = null;

  /**
   * `path` overrides the search like `lspci -i FILE` (a `.gz` name that cannot be read falls back to
   * the name without `.gz`). A file that cannot be read gives no names: ids print in hex, as lspci does.
   */
  constructor(private readonly path?: string) {}

  /** The file names came from, or null when none could be read (loads the file). */
  get source(): string | null {
    this.load();
    return this.loadedPath;
  }

  private load(): string | null {
    if (this.text !== undefined) return this.text;
    const candidates = this.path === undefined
      ? DEFAULT_PCI_IDS_PATHS
      : this.path.endsWith('.gz') ? [this.path, this.path.slice(0, -3)] : [this.path];
    this.text = null;
    for (const candidate of candidates) {
      try {
        this.text = readIdsFile(candidate);
        this.loadedPath = candidate;
        debug('loaded %s (%d chars)', candidate, this.text.length);
        break;
      } catch (error) {
        debug('cannot read %s: %s', candidate, (error as Error).message);
      }
    }
    return this.text;
  }

  /** Top-level blocks by key (`v:xxxx` vendor, `c:xx` class, `s:xxxx` generic subsystems) → their text. */
  private index(): Map<string, string> {
    if (this.blocks) return this.blocks;
    const blocks = new Map<string, string>();
    const text = this.load() ?? '';
    const starts = [...text.matchAll(TOP_LEVEL_LINE)];
    starts.forEach((match, i) => {
      const line = dropTrailingBlank(match[0]);
      let key: string | null = null;
      if (line.startsWith('C ')) key = /^[0-9a-fA-F]{2}[ \t]/.test(line.slice(2)) ? `c:${line.slice(2, 4).toLowerCase()}` : null;
      else if (line.startsWith('S ')) key = /^[0-9a-fA-F]{4}$/.test(line.slice(2)) ? `s:${line.slice(2).toLowerCase()}` : null;
      else if (/^[0-9a-fA-F]{4}[ \t]/.test(line)) key = `v:${line.slice(0, 4).toLowerCase()}`;
      // Unknown top-level blocks (RFU letters) are skipped; the first of duplicates wins.
      if (key && !blocks.has(key)) blocks.set(key, text.slice(match.index, i + 1 < starts.length ? starts[i + 1].index : text.length));
    });
    this.blocks = blocks;
    return blocks;
  }

  private vendorBlock(vendor: number): VendorBlock | null {
    if (this.vendors.has(vendor)) return this.vendors.get(vendor)!;
    const text = this.index().get(`v:${hex(vendor, 4)}`);
    let block: VendorBlock | null = null;
    if (text !== undefined) {
      block = { name: dropTrailingBlank(/^[0-9a-fA-F]{4}[ \t]+([^\r\n]*)/.exec(text)?.[1] ?? ''), devices: new Map() };
      const lines = [...text.matchAll(DEVICE_LINE)];
      lines.forEach((m, i) => {
        const id = parseInt(m[1], 16);
        const end = i + 1 < lines.length ? lines[i + 1].index : text.length;
        if (!block!.devices.has(id)) block!.devices.set(id, { name: dropTrailingBlank(m[2]), subsystemText: text.slice(m.index + m[0].length, end) });
      });
    }
    this.vendors.set(vendor, block);
    return block;
  }

  private deviceSubsystems(entry: DeviceEntry): Map<number, string> {
    if (!entry.subsystems) {
      entry.subsystems = new Map();
      for (const m of entry.subsystemText.matchAll(SUBSYSTEM_LINE)) {
        const key = subsystemKey(parseInt(m[1], 16), parseInt(m[2], 16));
        if (!entry.subsystems.has(key)) entry.subsystems.set(key, dropTrailingBlank(m[3]));
      }
    }
    return entry.subsystems;
  }

  private classBlock(baseClass: number): ClassBlock | null {
    if (this.classes.has(baseClass)) return this.classes.get(baseClass)!;
    const text = this.index().get(`c:${hex(baseClass, 2)}`);
    let block: ClassBlock | null = null;
    if (text !== undefined) {
      const [first, ...rest] = text.split('\n');
      block = { name: dropTrailingBlank(/^C [0-9a-fA-F]{2}[ \t]+([^\r\n]*)/.exec(first)?.[1] ?? ''), subclasses: new Map() };
      let subclass: { name: string; progIfs: Map<number, string> } | null = null;
      for (const line of rest) {
        const progIf = PROG_IF_LINE.exec(line);
        const sub = progIf ? null : SUBCLASS_LINE.exec(line);
        if (progIf && subclass && !subclass.progIfs.has(parseInt(progIf[1], 16))) {
          subclass.progIfs.set(parseInt(progIf[1], 16), dropTrailingBlank(progIf[2]));
        } else if (sub) {
          const id = parseInt(sub[1], 16);
          subclass = block.subclasses.get(id) ?? { name: dropTrailingBlank(sub[2]), progIfs: new Map() };
          block.subclasses.set(id, subclass);
        }
      }
    }
    this.classes.set(baseClass, block);
    return block;
  }

  private genericSubsystemBlock(vendor: number): Map<number, string> | null {
    if (this.genericSubsystems.has(vendor)) return this.genericSubsystems.get(vendor)!;
    const text = this.index().get(`s:${hex(vendor, 4)}`);
    let block: Map<number, string> | null = null;
    if (text !== undefined) {
      block = new Map();
      for (const m of text.matchAll(DEVICE_LINE)) {
        if (!block.has(parseInt(m[1], 16))) block.set(parseInt(m[1], 16), dropTrailingBlank(m[2]));
      }
    }
    this.genericSubsystems.set(vendor, block);
    return block;
  }

  vendor(vendor: number): string | undefined {
    return this.vendorBlock(vendor)?.name || undefined;
  }

  device(vendor: number, device: number): string | undefined {
    return this.vendorBlock(vendor)?.devices.get(device)?.name;
  }

  /** libpci's id_lookup_subsys: per-device entry, then generic `S` block, then "subsystem = device". */
  subsystem(vendor: number, device: number, subVendor: number, subDevice: number): string | undefined {
    const entry = vendor > 0 && device > 0 ? this.vendorBlock(vendor)?.devices.get(device) : undefined;
    return (entry ? this.deviceSubsystems(entry).get(subsystemKey(subVendor, subDevice)) : undefined)
      ?? this.genericSubsystemBlock(subVendor)?.get(subDevice)
      ?? (vendor === subVendor && device === subDevice ? this.device(vendor, device) : undefined);
  }

  baseClass(baseClass: number): string | undefined {
    return this.classBlock(baseClass)?.name || undefined;
  }

  subclass(baseClass: number, subclass: number): string | undefined {
    return this.classBlock(baseClass)?.subclasses.get(subclass)?.name;
  }

  progIf(baseClass: number, subclass: number, progIf: number): string | undefined {
    return this.classBlock(baseClass)?.subclasses.get(subclass)?.progIfs.get(progIf);
  }
}

let systemIds: PciIds | undefined;
const overrides = new Map<string, PciIds>();

/** The shared database for a path (default: the system's, searched like libpci); loaded on first use. */
export function pciIds(path?: string): PciIds {
  if (path === undefined) return (systemIds ??= new PciIds());
  let ids = overrides.get(path);
  if (!ids) overrides.set(path, (ids = new PciIds(path)));
  return ids;
}

// ---- Formatting exactly as libpci's pci_lookup_name() ----

function formatName(mode: NameMode, name: string | undefined, number: string, unknown: string): string {
  if (mode === 'numeric') return number;
  if (name === undefined) return mode === 'mixed' ? `${unknown} [${number}]` : `${unknown} ${number}`;
  return mode === 'mixed' ? `${name} [${number}]` : name;
}

/** `number` is "vvvv:dddd"; an unknown device under a known vendor shows the device half only. */
function formatNamePair(mode: NameMode, vendor: string | undefined, device: string | undefined, number: string): string {
  if (mode === 'numeric') return number;
  if (mode === 'mixed') {
    if (vendor !== undefined && device !== undefined) return `${vendor} ${device} [${number}]`;
    return vendor === undefined ? `Device [${number}]` : `${vendor} Device [${number}]`;
  }
  if (vendor !== undefined && device !== undefined) return `${vendor} ${device}`;
  return vendor === undefined ? `Device ${number}` : `${vendor} Device ${number.slice(5)}`;
}

/** "Ethernet controller", "Unassigned class [ffff]", "Class 0600", ...; deviceClass is 16-bit. */
export function classText(ids: PciIds, deviceClass: number, mode: NameMode): string {
  const number = hex(deviceClass, 4);
  if (mode === 'numeric') return number;
  const subclass = ids.subclass(deviceClass >> 8, deviceClass & 0xff);
  if (subclass !== undefined) return formatName(mode, subclass, number, 'Class');
  const base = ids.baseClass(deviceClass >> 8);
  // Only the base class is known: libpci adds the full number so the subclass is not lost.
  return formatName(base !== undefined ? 'mixed' : mode, base, number, 'Class');
}

/** "Red Hat, Inc. Virtio 1.0 network device", "Intel Corporation Device 0d57", "1af4:1041", ... */
export function vendorDeviceText(ids: PciIds, vendor: number, device: number, mode: NameMode): string {
  const number = `${hex(vendor, 4)}:${hex(device, 4)}`;
  if (mode === 'numeric') return number;
  return formatNamePair(mode, ids.vendor(vendor), ids.device(vendor, device), number);
}

/** The `Subsystem:` text of `lspci -v`. */
export function subsystemText(ids: PciIds, vendor: number, device: number, subVendor: number, subDevice: number, mode: NameMode): string {
  const number = `${hex(subVendor, 4)}:${hex(subDevice, 4)}`;
  if (mode === 'numeric') return number;
  return formatNamePair(mode, ids.vendor(subVendor), ids.subsystem(vendor, device, subVendor, subDevice), number);
}

/** Programming-interface name or null (lspci's `(prog-if 01 [AHCI 1.0])` bracket), incl. IDE's bit names. */
export function progIfText(ids: PciIds, deviceClass: number, progIf: number): string | null {
  const name = ids.progIf(deviceClass >> 8, deviceClass & 0xff, progIf);
  if (name !== undefined) return name;
  if (deviceClass === 0x0101 && !(progIf & 0x70)) {
    const bits = [[0x80, 'Master'], [0x08, 'SecP'], [0x04, 'PriP'], [0x02, 'SecO'], [0x01, 'PriO']] as const;
    const text = bits.filter(([bit]) => progIf & bit).map(([, label]) => label).join(' ');
    return text || null;
  }
  return null;
}
