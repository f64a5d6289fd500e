/**
 * Which kernel modules go into the initramfs: the named ones plus everything modules.dep says they
 * need (busybox depmod writes modules.dep; the Debian package ships none).
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';

/** Module names as modprobe compares them: '-' and '_' are the same. */
export const normalizeModuleName = (name: string): string => name.replace(/-/g, '_');

const moduleNameOf = (path: string): string => normalizeModuleName(basename(path).replace(/\.ko(\.[a-z]+)?$/, ''));

/** Paths (relative to lib/modules/<release>) of `names` and their dependencies; built-in names are skipped. */
export function moduleClosure(releaseDir: string, names: string[]): string[] {
  const depends = new Map<string, string[]>();
  const pathByName = new Map<string, string>();
  for (const line of readFileSync(join(releaseDir, 'modules.dep'), 'utf8').split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const path = line.slice(0, colon);
    depends.set(path, line.slice(colon + 1).trim().split(/\s+/).filter(Boolean));
    pathByName.set(moduleNameOf(path), path);
  }
  const builtin = new Set(readFileSync(join(releaseDir, 'modules.builtin'), 'utf8').split('\n').filter(Boolean).map(moduleNameOf));
  const closure = new Set<string>();
  const visit = (path: string): void => {
    if (closure.has(path)) return;
    closure.add(path);
    for (const dep of depends.get(path) ?? []) visit(dep);
  };
  for (const name of names) {
    const path = pathByName.get(normalizeModuleName(name));
    if (path) visit(path);
    else if (!builtin.has(normalizeModuleName(name))) throw new Error(`kernel module ${name} is neither a module nor built in`);
  }
  return [...closure].sort();
}
