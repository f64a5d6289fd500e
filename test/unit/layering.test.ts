/**
 * The layer rule of src/ (docs/architecture.md): diagnostics (the DEBUG channels) under all; pci
 * (pure PCI knowledge) and native (syscalls) at the bottom → host (access to host devices: sysfs, fixture trees, VFIO) → protocol (wire
 * formats) → backend | frontend → cli, imports pointing downward only, backend and frontend never
 * importing each other, and the frontend's whole import closure free of the native addon and of
 * host access (test VMs must run it without a compiler).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..', '..');
const srcDir = join(root, 'src');

const allowed: Record<string, readonly string[]> = {
  diagnostics: ['diagnostics'],
  native: ['native', 'diagnostics'],
  pci: ['pci', 'diagnostics'],
  host: ['host', 'pci', 'native', 'diagnostics'],
  protocol: ['protocol', 'pci', 'diagnostics'],
  backend: ['backend', 'protocol', 'host', 'pci', 'native', 'diagnostics'],
  frontend: ['frontend', 'protocol', 'pci', 'diagnostics'],
  cli: ['cli', 'backend', 'frontend', 'protocol', 'host', 'pci', 'native', 'diagnostics'],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

const layerOf = (file: string): string => relative(srcDir, file).split(sep)[0];

/** Relative imports of a file, resolved to .ts paths under src/. */
function localImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/(?:^|\s)(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm)]
    .map((m) => m[1] ?? m[2])
    .filter((s) => s.startsWith('.'));
  return specifiers.map((s) => resolve(dirname(file), s.replace(/\.js$/, '.ts')));
}

const files = sourceFiles(srcDir);

test('every src/ file sits in a known layer', () => {
  const unknown = files.filter((f) => !(layerOf(f) in allowed)).map((f) => relative(root, f));
  assert.deepEqual(unknown, []);
});

test('imports point downward only; backend and frontend never import each other', () => {
  const violations: string[] = [];
  for (const file of files) {
    const from = layerOf(file);
    for (const target of localImports(file)) {
      if (!existsSync(target)) {
        violations.push(`${relative(root, file)} imports missing ${relative(root, target)}`);
        continue;
      }
      const to = layerOf(target);
      if (!allowed[from]?.includes(to)) violations.push(`${relative(root, file)} (${from}) imports ${relative(root, target)} (${to})`);
    }
  }
  assert.deepEqual(violations, []);
});

test('the frontend import closure never reaches the native addon', () => {
  const seen = new Set<string>();
  const stack = files.filter((f) => layerOf(f) === 'frontend');
  assert.ok(stack.length > 0, 'src/frontend has no files');
  while (stack.length > 0) {
    const file = stack.pop()!;
    if (seen.has(file) || !existsSync(file)) continue;
    seen.add(file);
    stack.push(...localImports(file));
  }
  const native = [...seen].filter((f) => ['native', 'host'].includes(layerOf(f))).map((f) => relative(root, f));
  assert.deepEqual(native, [], 'frontend reaches native code or host access');
});
