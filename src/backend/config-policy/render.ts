/**
 * Prints the rule table (rules.ts) as the Markdown that docs/security.md embeds between
 * POLICY_TABLE_BEGIN and POLICY_TABLE_END. test/unit/config-policy-doc.test.ts fails when the doc
 * and the table disagree; `node dist/src/backend/config-policy/update-security-doc.js` re-renders it.
 */
import {
  CAPABILITY_HEADER_RULES, CAPABILITY_RULES, DELIVERED_INTERRUPT_RULES, DMA_COMMAND_RULE, EXTENDED_CAPABILITY_HEADER_RULE, HEADER_RULES, INTX_COMMAND_RULE,
  UNLISTED_RULE, type FieldRule,
} from './rules.js';
import { hex0x } from '../../pci/hex.js';

export const POLICY_TABLE_BEGIN = '<!-- policy-table:begin (rendered from src/backend/config-policy/rules.ts; do not edit by hand) -->';
export const POLICY_TABLE_END = '<!-- policy-table:end -->';

function widthOf(rule: FieldRule): number {
  return typeof rule.size === 'number' ? rule.size : 4;
}

function readOnlyMask(rule: FieldRule): number {
  if (typeof rule.size !== 'number') return 0;
  const all = rule.size === 4 ? 0xffffffff : (1 << (8 * rule.size)) - 1;
  const free = (rule.pass ?? 0) | (rule.emulate ?? 0) | (rule.decode ?? 0) | (rule.rw1c ?? 0) | (rule.ignore ?? 0) | (rule.permissive ?? 0);
  return ((all & ~free) | (rule.hide ?? 0)) >>> 0;
}

/** The write column: each bit class with its mask; "read-only" bits must keep the value read. */
function writeCell(rule: FieldRule): string {
  if (rule.bar !== undefined) {
    return rule.bar === 'rom'
      ? 'emulated, never reaches the hardware: all address bits set → latch the size mask; the address read → accepted (clears the latch); enable (0x1) → emulated; any other address → **refused**'
      : 'emulated, never reaches the hardware: all address bits set → latch the size mask; the address read → accepted (clears the latch); any other value → **refused**';
  }
  const digits = 2 * widthOf(rule);
  const parts: string[] = [];
  const add = (mask: number | undefined, text: string): void => {
    if (mask) parts.push(`${hex0x(mask >>> 0, digits)} ${text}`);
  };
  if (rule === UNLISTED_RULE) return 'any write **refused**, even of the value read (unknown semantics: the write itself may act)';
  add(rule.pass, 'to hardware');
  add(rule.decode, 'emulated (setting also sets the hardware bit, clearing only the view)');
  add(rule.emulate, 'emulated');
  add((rule.rw1c ?? 0) & ~(rule.hide ?? 0), 'write-1-to-clear: 1 **refused**');
  add(rule.ignore, 'no effect (read-only in hardware too)');
  add(rule.permissive, '**refused**');
  const readOnly = readOnlyMask(rule);
  const refusal = rule.strict ? 'any write **refused**, even of the value read' : 'any change **refused**';
  if (typeof rule.size !== 'number') parts.push(`read-only: ${refusal}`);
  else add(readOnly, rule.hide ? `read-only (hidden bits read 0): ${refusal}` : `read-only: ${refusal}`);
  return parts.join('; ');
}

function permissiveCell(rule: FieldRule): string {
  const digits = 2 * widthOf(rule);
  const parts: string[] = [];
  if (rule === UNLISTED_RULE) return 'to hardware as written';
  if (rule.permissive) parts.push(`${hex0x(rule.permissive, digits)} to hardware`);
  const clearable = (rule.rw1c ?? 0) & ~(rule.hide ?? 0);
  if (clearable) parts.push(`${hex0x(clearable, digits)} 1 clears in hardware`);
  return parts.length > 0 ? parts.join('; ') : 'same';
}

function offsetCell(rule: FieldRule, relative: boolean): string {
  const at = `${relative ? '+' : ''}${hex0x(rule.offset, 2)}`;
  return typeof rule.size === 'number' ? at : `${at}–end`;
}

function table(rules: readonly FieldRule[], relative: boolean): string[] {
  const lines = [
    '| offset | size | register | a read returns | a write (default) | with `--permissive` | why refused |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const rule of rules) {
    const unlisted = rule === UNLISTED_RULE;
    const offset = unlisted ? 'any' : offsetCell(rule, relative);
    const size = unlisted ? 'any' : typeof rule.size === 'number' ? String(rule.size) : '…';
    lines.push(`| ${offset} | ${size} | ${rule.name} | ${rule.reads} | ${writeCell(rule)} | ${permissiveCell(rule)} | ${rule.refused || '—'} |`);
  }
  return lines;
}

export function renderPolicyTable(): string {
  const out: string[] = [
    POLICY_TABLE_BEGIN,
    '',
    '#### Type-0 header (endpoints; bridges are never exported)',
    '',
    ...table(HEADER_RULES, false),
    '',
    '#### Every standard capability',
    '',
    ...table(CAPABILITY_HEADER_RULES, true),
  ];
  for (const cap of CAPABILITY_RULES) {
    out.push('', `#### ${cap.name} capability (ID ${hex0x(cap.id, 2)}; every instance)`, '', ...table(cap.rows, true));
  }
  out.push(
    '', '#### Every extended capability (0x100 and up)', '', ...table([EXTENDED_CAPABILITY_HEADER_RULE], true),
    '', '#### Everything else: unknown capability bodies and device-specific registers in 0x40–0xff, all of 0x100–0xfff but the headers', '',
    ...table([UNLISTED_RULE], true),
    '', '#### Devices held through VFIO with an IOMMU (descriptor `dma`): the Command row instead of the one above', '',
    ...table([DMA_COMMAND_RULE], false),
    '', '#### Devices whose INTx the backend delivers without an IOMMU (VFIO no-IOMMU: descriptor `interrupts.intx`, no `dma`): the Command row instead', '',
    ...table([INTX_COMMAND_RULE], false),
    '', '#### MSI and MSI-X of devices whose interrupts the backend delivers (descriptor `interrupts`), instead of the rows above', '',
    ...table(DELIVERED_INTERRUPT_RULES, true),
    '', POLICY_TABLE_END,
  );
  return out.join('\n');
}
