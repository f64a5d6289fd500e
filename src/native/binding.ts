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

/**
 * An Error thrown by the addon. `message` reads like `pread /sys/.../config: Permission denied`.
 * Codes besides the kernel's errno names:
 * - 'EINVAL' / 'ERANGE': an argument check in the addon (wrong type, non-integer, width not allowed,
 *   misaligned MMIO offset / integer out of range, access past the end of a mapping);
 * - 'EBADF': use of a closed file or an unmapped mapping, or a write through a read-only one;
 * - 'ESHORT': pread/pwrite moved fewer bytes than asked (errno 0; see bytesRead / bytesWritten).
 */
export interface NativeError extends Error {
  /** errno name, e.g. 'EACCES'; see above for the addon's own codes */
  code: string;
  /** errno number (0 for 'ESHORT') */
  errno: number;
  /** 'open', 'pread', 'pwrite', 'fstat', 'close', 'mmap', 'munmap', 'getsockopt', 'sendmsg', 'recvmsg',
   *  'fcntl', 'socket', 'connect', 'uv_poll_init', 'uv_poll_start', 'flock'; 'load'/'store' (mapping) */
  syscall: string;
  path?: string;
  /** 'ESHORT' from a read: bytes actually read */
  bytesRead?: number;
  /** 'ESHORT' from a write: bytes actually written */
  bytesWritten?: number;
}

/** True for an error thrown by the addon, optionally with the given code. */
export function isNativeError(error: unknown, code?: string): error is NativeError {
  return error instanceof Error && typeof (error as Partial<NativeError>).code === 'string'
    && typeof (error as Partial<NativeError>).syscall === 'string'
    && (code === undefined || (error as NativeError).code === code);
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
  /** Write exactly `width` bytes; `value` must fit in them (else ERANGE). EBADF when opened read-only. */
  write(offset: number, width: 1 | 2 | 4, value: number): void;
  /** Idempotent. A forgotten handle's fd is also closed when it is garbage collected. */
  close(): void;
  readonly closed: boolean;
}

/**
 * A memory BAR mapped from `resourceN` with MAP_SHARED. Accesses are single volatile loads/stores of
 * exactly the width asked, little-endian; `offset + width <= length` (else ERANGE) and `offset` a
 * multiple of the width (else EINVAL). A write through a read-only mapping throws EBADF before touching
 * memory. Limit: if the file shrinks below the mapping, an access there raises SIGBUS (kills the process).
 */
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

/** One recvmsg: `bytes` 0 means end of stream; fds are close-on-exec and now owned by the caller. */
export interface ReceivedMessage {
  /** bytes written at the start of the caller's buffer */
  bytes: number;
  fds: number[];
  /** the sender attached more fds than asked for: the kernel closed the excess (MSG_CTRUNC) */
  fdsTruncated: boolean;
}

/** Calls back on the event loop while an fd is readable or hung up (level-triggered uv_poll). */
export interface ReadableWatcher {
  /** Idempotent; the fd stays open (it is the caller's). */
  stop(): void;
}

export interface NativeBinding {
  openRegisterFile(path: string, writable: boolean): RegisterFile;
  /** length defaults to the file size; must be > 0 and <= the file size. */
  mapResource(path: string, writable: boolean, length?: number): MemoryMapping;
  /** SO_PEERCRED of a connected Unix socket fd. */
  peerCredentials(fd: number): PeerCredentials;
  /**
   * flock(fd, LOCK_EX | LOCK_NB): code 'EWOULDBLOCK' (EAGAIN) when another open file holds it. The
   * kernel keeps the lock per file (a sysfs `config` file: per device) until the fd is closed, and
   * drops it when the process dies, however it dies.
   */
  lockExclusive(fd: number): void;
  buildInfo(): BuildInfo;
  /**
   * SCM_RIGHTS on Unix stream sockets (Node's net cannot pass fds): one non-blocking sendmsg with
   * `fds` attached to the first byte; returns the bytes sent (possibly fewer). EAGAIN throws.
   */
  sendWithFds(fd: number, data: Buffer, fds: readonly number[]): number;
  /** One non-blocking recvmsg into `buffer`, with up to maxFds (<= 64) fds; null when nothing is ready. */
  receiveWithFds(fd: number, buffer: Buffer, maxFds: number): ReceivedMessage | null;
  /** fcntl(F_DUPFD_CLOEXEC): take over a connection Node accepted (see backend/vfio-user). */
  duplicateFd(fd: number): number;
  /** A new non-blocking AF_UNIX stream socket connected to `path`. */
  connectUnixStream(path: string): number;
  watchReadable(fd: number, callback: () => void): ReadableWatcher;
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

/** Path of the built addon: build/Release first, then build/Debug (node-gyp --debug). */
export function nativeAddonPath(): string {
  const root = packageRoot();
  const candidates = ['build/Release/xpci_native.node', 'build/Debug/xpci_native.node'].map((p) => join(root, p));
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(`xpci: native addon not built (looked for ${candidates.join(', ')}); run 'npm run build:native'`);
  }
  return found;
}

/** Load the addon (once). */
export function native(): NativeBinding {
  cached ??= createRequire(import.meta.url)(nativeAddonPath()) as NativeBinding;
  return cached;
}
