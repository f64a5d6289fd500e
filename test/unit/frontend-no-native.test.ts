/**
 * The frontend must run in any VM with Node and nothing else: walk the import graph of the
 * compiled library (dist/src/frontend) and prove it never reaches the native addon, the backend,
 * or a package other than `debug`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const distSrc = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');
const frontendDir = join(distSrc, 'frontend');
const ALLOWED_PACKAGES = new Set(['debug']);

function specifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found = [
    ...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s*['"]([^'"]+)['"]/gm),
    ...text.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm),
    ...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
    ...text.matchAll(/\brequire\(\s*['"]([^'"]+)['"]\s*\)/g),
  ];
  return found.map((m) => m[1]);
}

function importClosure(entries: string[]): { files: Set<string>; packages: Set<string>; dynamicRequires: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const dynamicRequires: string[] = [];
  const pending = [...entries];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    if (/createRequire|process\.dlopen|\.node['"]/.test(readFileSync(file, 'utf8'))) dynamicRequires.push(relative(distSrc, file));
    for (const spec of specifiers(file)) {
      if (spec.startsWith('.')) pending.push(resolve(dirname(file), spec));
      else if (spec.startsWith('node:') || builtinModules.includes(spec)) continue;
      else packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);
    }
  }
  return { files, packages, dynamicRequires };
}

test('dist/src/frontend reaches neither src/native nor src/backend, nor any native loader', { skip: !existsSync(frontendDir) && 'not built' }, () => {
  const entries = readdirSync(frontendDir).filter((name) => name.endsWith('.js')).map((name) => join(frontendDir, name));
  assert.ok(entries.some((f) => f.endsWith('index.js')));
  const { files, packages, dynamicRequires } = importClosure(entries);
  const reached = [...files].map((f) => relative(distSrc, f));
  for (const file of reached) assert.ok(existsSync(join(distSrc, file)), `${file} is imported but missing`);
  assert.deepEqual(reached.filter((f) => /^(native|backend)\//.test(f)), []);
  assert.deepEqual(dynamicRequires, [], 'no createRequire/dlopen/.node in the frontend closure');
  assert.deepEqual([...packages].filter((p) => !ALLOWED_PACKAGES.has(p)), []);
  // The walk really followed imports out of the directory (protocol and pci are part of the closure).
  assert.ok(reached.some((f) => f.startsWith('protocol/')) && reached.some((f) => f.startsWith('pci/')));
});
