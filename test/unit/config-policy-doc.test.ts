/**
 * docs/security.md embeds the register table rendered from src/backend/config-policy/rules.ts; the
 * doc and the code that enforces it must never disagree.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CAPABILITY_RULES, HEADER_RULES } from '../../src/backend/config-policy/rules.js';
import { POLICY_TABLE_BEGIN, POLICY_TABLE_END, renderPolicyTable } from '../../src/backend/config-policy/render.js';
import { withRenderedTable } from '../../src/backend/config-policy/update-security-doc.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const doc = readFileSync(join(root, 'docs', 'security.md'), 'utf8');

test('docs/security.md contains the table rendered from the rules, unedited', () => {
  assert.ok(doc.includes(POLICY_TABLE_BEGIN) && doc.includes(POLICY_TABLE_END), 'markers present');
  assert.ok(doc.includes(renderPolicyTable()),
    'docs/security.md is out of date: run `npx tsc -p . && node dist/src/backend/config-policy/update-security-doc.js`');
  assert.equal(withRenderedTable(doc), doc);
});

test('the rendered table has a row for every type-0 header field and every capability rule', () => {
  const table = renderPolicyTable();
  for (const name of ['Vendor ID', 'Device ID', 'Command', 'Status', 'Revision ID', 'Class Code', 'Cache Line Size', 'Latency Timer',
    'Header Type', 'BIST', 'BAR0', 'BAR1', 'BAR2', 'BAR3', 'BAR4', 'BAR5', 'CardBus CIS Pointer', 'Subsystem Vendor ID', 'Subsystem ID',
    'Expansion ROM', 'Capabilities Pointer', 'Interrupt Line', 'Interrupt Pin', 'Min_Gnt', 'Max_Lat']) {
    assert.ok(HEADER_RULES.some((rule) => rule.name === name), `rules have ${name}`);
    assert.match(table, new RegExp(`\\| ${name.replace(/[()]/g, '\\$&')} \\|`), `table row for ${name}`);
  }
  for (const cap of CAPABILITY_RULES) {
    for (const rule of cap.rows) assert.ok(table.includes(`| ${rule.name} |`), `table row for ${rule.name}`);
  }
});

test('the header rows cover bytes 0x00-0x3f exactly once', () => {
  const owner = new Array<string | undefined>(64);
  for (const rule of HEADER_RULES) {
    for (let b = rule.offset; b < rule.offset + (rule.size as number); b++) {
      assert.equal(owner[b], undefined, `0x${b.toString(16)} claimed by ${owner[b]} and ${rule.name}`);
      owner[b] = rule.name;
    }
  }
  assert.equal(owner.filter((o) => o !== undefined).length, 64);
});
