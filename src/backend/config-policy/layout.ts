/**
 * Lays the rule table (rules.ts) over one device's config space: which row owns each byte, and
 * each row's bit classes spread out per byte, so the engine evaluates any access (1, 2 or 4 bytes,
 * covering one field, part of one, or several) with the same per-byte arithmetic.
 * The capability list is read once from the export-time snapshot: the frontend cannot change it
 * (capability headers are read-only), so the layout is fixed for the life of the export.
 */
import { walkCapabilities, walkExtendedCapabilities } from '../../pci/capabilities.js';
import { PCI_CFG_SPACE_SIZE } from '../../pci/config-header.js';
import {
  CAPABILITY_HEADER_RULES, CAPABILITY_RULES, DMA_COMMAND_RULE, EXTENDED_CAPABILITY_HEADER_RULE, HEADER_RULES, INTX_COMMAND_RULE,
  UNLISTED_RULE, type FieldRule,
} from './rules.js';
import { hex, hex0x } from '../../pci/hex.js';

/** One row placed at an absolute offset. */
export interface PlacedField {
  readonly name: string;
  readonly start: number;
  readonly size: number;
  readonly rule: FieldRule;
}

export type MaskClass = 'pass' | 'emulate' | 'decode' | 'rw1c' | 'ignore' | 'hide' | 'permissive' | 'strict';
const MASK_CLASSES: readonly MaskClass[] = ['pass', 'emulate', 'decode', 'rw1c', 'ignore', 'hide', 'permissive', 'strict'];

/** The row's mask of one bit class; `strict` becomes all bits of the row. */
const ruleMask = (rule: FieldRule, c: MaskClass): number => (c === 'strict' ? (rule.strict ? 0xffffffff : 0) : rule[c] ?? 0);

export interface ConfigLayout {
  readonly size: number;
  readonly fields: readonly PlacedField[];
  /** Index into `fields` per byte; -1: covered by UNLISTED_RULE. */
  readonly fieldOf: Int16Array;
  /** Per-byte masks of each bit class (unlisted bytes carry UNLISTED_RULE's; strict: 0xff or 0). */
  readonly masks: Readonly<Record<MaskClass, Uint8Array>>;
}


/**
 * The layout of a type-0 header's config space (the only header type exported).
 * `snapshot`: the config bytes readable at export time (may be shorter than `configSize` for a
 * non-root reader: capabilities beyond it are then unknown, i.e. unlisted).
 */
/** `dma`: the Command row of a device with DMA through an IOMMU; `intx`: of one whose INTx the backend delivers without one. */
export function layoutConfigSpace(configSize: number, snapshot: Uint8Array, options: { dma?: boolean; intx?: boolean } = {}): ConfigLayout {
  const fields: PlacedField[] = [];
  const fieldOf = new Int16Array(configSize).fill(-1);
  const masks = Object.fromEntries(MASK_CLASSES.map((c) => [c, new Uint8Array(configSize)])) as Record<MaskClass, Uint8Array>;
  for (const c of MASK_CLASSES) masks[c].fill(ruleMask(UNLISTED_RULE, c) & 0xff);

  const place = (rule: FieldRule, start: number, size: number, name: string, limit: number): void => {
    const end = Math.min(start + size, limit);
    if (end <= start) return;
    const index = fields.length;
    fields.push({ name, start, size: end - start, rule });
    for (let b = start; b < end; b++) {
      const shift = 8 * (b - start);
      if (fieldOf[b] !== -1) {
        // Overlapping capabilities (a broken or hostile chain): the byte keeps its first owner and
        // becomes read-only, the safest reading of two conflicting rows.
        for (const c of MASK_CLASSES) masks[c][b] = 0;
        masks.strict[b] = 0xff;
        continue;
      }
      fieldOf[b] = index;
      for (const c of MASK_CLASSES) masks[c][b] = size <= 4 || c === 'strict' ? (ruleMask(rule, c) >>> (shift % 32)) & 0xff : 0;
    }
  };

  const command = options.dma ? DMA_COMMAND_RULE : options.intx ? INTX_COMMAND_RULE : undefined;
  const header = command ? HEADER_RULES.map((rule) => (rule.offset === command.offset ? command : rule)) : HEADER_RULES;
  for (const rule of header) place(rule, rule.offset, rule.size as number, rule.name, configSize);

  const standard = walkCapabilities(snapshot).capabilities;
  const extended = configSize > PCI_CFG_SPACE_SIZE ? walkExtendedCapabilities(snapshot).capabilities : [];
  for (const cap of standard) {
    const at = `@0x${hex(cap.offset, 2)}`;
    for (const rule of CAPABILITY_HEADER_RULES) place(rule, cap.offset + rule.offset, rule.size as number, `${cap.name} ${rule.name} ${at}`, PCI_CFG_SPACE_SIZE);
    const known = CAPABILITY_RULES.find((c) => c.id === cap.id);
    if (known === undefined) continue;
    const length = cap.offset + 8 <= snapshot.length ? known.length(snapshot, cap.offset) : 8;
    for (const rule of known.rows) {
      const size = rule.size === 'rest' ? length - rule.offset : rule.size;
      place(rule, cap.offset + rule.offset, size, `${rule.name} ${at}`, PCI_CFG_SPACE_SIZE);
    }
  }
  for (const cap of extended) {
    const rule = EXTENDED_CAPABILITY_HEADER_RULE;
    place(rule, cap.offset, rule.size as number, `${cap.name} ${rule.name} @${hex0x(cap.offset)}`, configSize);
  }
  return { size: configSize, fields, fieldOf, masks };
}

/** Name of the register holding byte `offset`, as AccessDenied messages and denials() use it. */
export function registerName(layout: ConfigLayout, offset: number): string {
  const index = layout.fieldOf[offset];
  if (index >= 0) return layout.fields[index].name;
  return `register ${hex0x(offset & ~3, 2)} (unlisted)`;
}
