/**
 * A minimal writer of the cpio "newc" format that the kernel unpacks as initramfs. Written here
 * rather than with cpio(1) because the host has no cpio and because it can add /dev/console (a
 * character device the kernel opens for PID 1's stdio) without mknod on the host.
 */
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

export type CpioEntry =
  | { path: string; kind: 'dir'; mode: number }
  | { path: string; kind: 'file'; mode: number; data: Buffer }
  | { path: string; kind: 'symlink'; target: string }
  | { path: string; kind: 'chardev'; mode: number; major: number; minor: number };

const field = (value: number): string => value.toString(16).padStart(8, '0');
const pad4 = (length: number): Buffer => Buffer.alloc((4 - (length % 4)) % 4);

function record(ino: number, mode: number, data: Buffer, name: string, rdev: [number, number] = [0, 0]): Buffer[] {
  const nameBytes = Buffer.from(`${name}\0`);
  const header = Buffer.from(
    '070701' +
      [ino, mode, 0, 0, 1, 0, data.length, 0, 0, rdev[0], rdev[1], nameBytes.length, 0].map(field).join(''),
    'ascii',
  );
  return [header, nameBytes, pad4(header.length + nameBytes.length), data, pad4(data.length)];
}

export function encodeCpio(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  entries.forEach((e, i) => {
    const ino = i + 1;
    if (e.kind === 'dir') parts.push(...record(ino, S_IFDIR | e.mode, Buffer.alloc(0), e.path));
    else if (e.kind === 'file') parts.push(...record(ino, S_IFREG | e.mode, e.data, e.path));
    else if (e.kind === 'symlink') parts.push(...record(ino, S_IFLNK | 0o777, Buffer.from(e.target), e.path));
    else parts.push(...record(ino, S_IFCHR | e.mode, Buffer.alloc(0), e.path, [e.major, e.minor]));
  });
  parts.push(...record(0, 0, Buffer.alloc(0), 'TRAILER!!!'));
  return Buffer.concat(parts);
}

/** Entries for a host directory tree, placed under `prefix` (directories before their contents). */
export function treeEntries(hostDir: string, prefix: string): CpioEntry[] {
  const entries: CpioEntry[] = [];
  for (const name of readdirSync(hostDir).sort()) {
    const hostPath = join(hostDir, name);
    const path = `${prefix}/${name}`;
    const stat = lstatSync(hostPath);
    if (stat.isDirectory()) {
      entries.push({ path, kind: 'dir', mode: 0o755 }, ...treeEntries(hostPath, path));
    } else if (stat.isSymbolicLink()) {
      entries.push({ path, kind: 'symlink', target: readlinkSync(hostPath) });
    } else {
      entries.push({ path, kind: 'file', mode: stat.mode & 0o777, data: readFileSync(hostPath) });
    }
  }
  return entries;
}
