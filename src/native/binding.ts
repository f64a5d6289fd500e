/**
 * Typed surface of the native addon (addon/*.cc). The addon does syscalls only: every policy
 * decision lives in TypeScript. Errors thrown by it are `NativeError`s.
 *
 * Loading is lazy so that modules which never touch hardware (the frontend) never need the addon.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** An Error raised by a syscall in the addon. */
export interface NativeError extends Error {
  /** errno name, e.g. 'EACCES', or 'ERANGE'/'EINVAL' for argument checks done in the addon */
  code: string;
  errno: number;
  syscall: string;
  path?: string;
}

/**
 * A sysfs attribute accessed with pread/pwrite at exact width: `config` (config space) and I/O BAR
 * `resourceN` files. Little-endian values. Reads past the end are reported, never padded.
 */
export interface RegisterFile {
  readonly path: string;
  readonly writable: boolean;
  /** Current file size from fstat (sysfs `config`: 256 or 4096; fixture files: their length). */
  size(): number;
  /** Read exactly `width` bytes at `offset`. A short read throws code 'ESHORT' with `bytesRead`. */
  read(offset: number, width: 1 | 2 | 4): number;
  /** Read up to `length` bytes at `offset`; the Buffer may be shorter (a non-root reader gets 64). */
  readBlock(offset: number, length: number): Buffer;
  /** Write exactly `width` bytes. Throws EBADF-like errors when opened read-only. */
  write(offset: number, width: 1 | 2 | 4, value: number): void;
  close(): void;
  readonly closed: boolean;
}

/** A memory BAR mapped from `resourceN` with MAP_SHARED. Accesses are single volatile loads/stores. */
export interface MemoryMapping {
  readonly path: string;
  readonly length: number;
  readonly writable: boolean;
  readonly mapped: boolean;
  read(offset: number, width: 1 | 2 | 4): number;
  read64(offset: number): bigint;
  write(offset: number, width: 1 | 2 | 4, value: number): void;
  write64(offset: number, value: bigint): void;
  /** Idempotent. Also done when the object is garbage collected. */
  unmap(): void;
}

export interface PeerCredentials { pid: number; uid: number; gid: number }

export interface BuildInfo {
  /** Compiled with native debug logging (XPCI_DEBUG=1 at build time or a Debug build). */
  debugLogging: boolean;
  debugBuild: boolean;
  napiVersion: number;
}

export interface NativeBinding {
  openRegisterFile(path: string, writable: boolean): RegisterFile;
  /** length defaults to the file size; must be > 0 and <= the file size. */
  mapResource(path: string, writable: boolean, length?: number): MemoryMapping;
  /** SO_PEERCRED of a connected Unix socket fd. */
  peerCredentials(fd: number): PeerCredentials;
  buildInfo(): BuildInfo;
}

let cached: NativeBinding | undefined;

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('xpci: cannot find package root above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
  return dir;
}

/** Load the addon: build/Release first, then build/Debug (node-gyp --debug). */
export function native(): NativeBinding {
  if (cached) return cached;
  const root = packageRoot();
  const candidates = ['build/Release/xpci_native.node', 'build/Debug/xpci_native.node'].map((p) => join(root, p));
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(`xpci: native addon not built (looked for ${candidates.join(', ')}); run 'npm run build:native'`);
  }
  cached = createRequire(import.meta.url)(found) as NativeBinding;
  return cached;
}
