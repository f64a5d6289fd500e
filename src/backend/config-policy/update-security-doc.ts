/**
 * Re-renders the register table into docs/security.md after rules.ts changed:
 *   npx tsc -p . && node dist/src/backend/config-policy/update-security-doc.js
 * Only the text between the two markers is replaced.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { POLICY_TABLE_BEGIN, POLICY_TABLE_END, renderPolicyTable } from './render.js';

/** The doc text with the table section replaced; throws when the markers are missing. */
export function withRenderedTable(doc: string): string {
  const begin = doc.indexOf(POLICY_TABLE_BEGIN);
  const end = doc.indexOf(POLICY_TABLE_END);
  if (begin < 0 || end < begin) throw new Error(`docs/security.md lacks the markers ${POLICY_TABLE_BEGIN} ... ${POLICY_TABLE_END}`);
  return doc.slice(0, begin) + renderPolicyTable() + doc.slice(end + POLICY_TABLE_END.length);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // dist/src/backend/config-policy → repository root
  const path = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'docs', 'security.md');
  writeFileSync(path, withRenderedTable(readFileSync(path, 'utf8')));
  console.log(`rendered the register table into ${path}`);
}
