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
 * - 'ESHORT': pread/pwrite moved fewer bytes than asked (errno 0; see bytesRead / bytesWritten);
 * - 'ENXIO' from a mapping's load/store: the access raised SIGBUS (what backs the mapping is gone).
 * fd-based calls (VFIO, eventfd, memfd) have no `path`; an ioctl's message names the request.
 */
export interface NativeError extends Error {
  /** errno name, e.g. 'EACCES'; see above for the addon's own codes */
  code: string;
  /** errno number (0 for 'ESHORT') */
  errno: number;
  /** 'open', 'pread', 'pwrite', 'fstat', 'close', 'mmap', 'munmap', 'getsockopt', 'ioctl', 'eventfd',
   * 'memfd_create', 'ftruncate', 'read', 'write', 'sendmsg', 'recvmsg', 'fcntl', 'socket', 'connect',
   * 'uv_poll_init', 'uv_poll_start', 'flock'; 'load'/'store' (mapping) */
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
 * memory. An access whose backing is gone (the file shrank below it, the device was removed) raises
 * SIGBUS; the addon catches that one access and throws ENXIO, and the process lives on.
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

/**
 * Ordinary memory mapped MAP_SHARED from an fd (DMA memory: a memfd, or another process's memory fd).
 * Bulk copies in and out; `offset + length` past the mapping throws ERANGE, use after unmap EBADF.
 */
export interface SharedMemory {
  readonly length: number;
  readonly mapped: boolean;
  read(offset: number, length: number): Buffer;
  write(offset: number, data: Uint8Array): void;
  /** Idempotent. Also done when the object is garbage collected. */
  unmap(): void;
}

/**
 * A uv_poll_t on the event loop: the callback runs whenever the fd is readable (level-triggered, so
 * it must drain the fd) with null, or libuv's error name if polling failed. Holds itself alive until
 * closed; close before closing the fd.
 */
export interface FdPoller {
  readonly fd: number;
  readonly active: boolean;
  /** Idempotent; allowed inside the callback. */
  close(): void;
}

/** The values of linux/vfio.h the VFIO back end uses (names without the VFIO_ prefix). */
export interface VfioConstants {
  API_VERSION: number;
  TYPE1_IOMMU: number;
  TYPE1v2_IOMMU: number;
  NOIOMMU_IOMMU: number;
  GROUP_FLAGS_VIABLE: number;
  GROUP_FLAGS_CONTAINER_SET: number;
  DEVICE_FLAGS_RESET: number;
  DEVICE_FLAGS_PCI: number;
  REGION_INFO_FLAG_READ: number;
  REGION_INFO_FLAG_WRITE: number;
  REGION_INFO_FLAG_MMAP: number;
  PCI_BAR0_REGION_INDEX: number;
  PCI_ROM_REGION_INDEX: number;
  PCI_CONFIG_REGION_INDEX: number;
  PCI_INTX_IRQ_INDEX: number;
  PCI_MSI_IRQ_INDEX: number;
  PCI_MSIX_IRQ_INDEX: number;
  IRQ_INFO_EVENTFD: number;
  IRQ_INFO_MASKABLE: number;
  IRQ_INFO_AUTOMASKED: number;
  IRQ_INFO_NORESIZE: number;
  IRQ_SET_DATA_NONE: number;
  IRQ_SET_DATA_BOOL: number;
  IRQ_SET_DATA_EVENTFD: number;
  IRQ_SET_ACTION_MASK: number;
  IRQ_SET_ACTION_UNMASK: number;
  IRQ_SET_ACTION_TRIGGER: number;
  DMA_MAP_FLAG_READ: number;
  DMA_MAP_FLAG_WRITE: number;
}

export interface VfioDeviceInfo { flags: number; numRegions: number; numIrqs: number }

export interface VfioRegionInfo {
  index: number;
  flags: number;
  size: bigint;
  /** offset of the region in the device fd (for pread/pwrite/mmap) */
  offset: bigint;
  /** the sparse-mmap capability's areas (offsets inside the region), or null without one */
  sparseMmap: { offset: bigint; size: bigint }[] | null;
}

export interface VfioIrqInfo { flags: number; count: number }

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
  /** mmap `length` bytes of an open fd at `offset` (a VFIO region); `label` names it in errors. */
  mapFd(fd: number, offset: bigint | number, length: number, writable: boolean, label: string): MemoryMapping;
  mapSharedMemory(fd: number, offset: bigint | number, length: number, writable: boolean): SharedMemory;
  /** memfd_create (close-on-exec) sized to `size` bytes with ftruncate; returns the fd */
  memfdCreate(name: string, size: number): number;
  /** a non-blocking, close-on-exec eventfd */
  eventfdCreate(initial?: number): number;
  /** the counter (reading resets it), or null when it is zero */
  eventfdRead(fd: number): bigint | null;
  eventfdWrite(fd: number, value: bigint): void;
  watchFd(fd: number, callback: (error: string | null) => void): FdPoller;
  /** one pread/pwrite of exactly `width` bytes at a 64-bit offset, little-endian */
  fdReadRegister(fd: number, offset: bigint | number, width: 1 | 2 | 4 | 8): bigint;
  fdWriteRegister(fd: number, offset: bigint | number, width: 1 | 2 | 4 | 8, value: bigint): void;
  closeFd(fd: number): void;

  // VFIO ioctls (linux/vfio.h), one call each; failures are NativeErrors with syscall 'ioctl'.
  readonly vfioConstants: VfioConstants;
  vfioGetApiVersion(containerFd: number): number;
  vfioCheckExtension(containerFd: number, extension: number): number;
  vfioSetIommu(containerFd: number, type: number): void;
  /** the group's flags (GROUP_FLAGS_*) */
  vfioGroupGetStatus(groupFd: number): number;
  vfioGroupSetContainer(groupFd: number, containerFd: number): void;
  vfioGroupUnsetContainer(groupFd: number): void;
  /** the device fd (close-on-exec) of the device named by its sysfs name (e.g. 0000:00:03.0) */
  vfioGroupGetDeviceFd(groupFd: number, name: string): number;
  vfioDeviceGetInfo(deviceFd: number): VfioDeviceInfo;
  vfioDeviceGetRegionInfo(deviceFd: number, index: number): VfioRegionInfo;
  vfioDeviceGetIrqInfo(deviceFd: number, index: number): VfioIrqInfo;
  /** `data`: the bytes after struct vfio_irq_set (an int32 eventfd or a uint8 bool per vector) */
  vfioDeviceSetIrqs(deviceFd: number, flags: number, index: number, start: number, count: number, data?: Uint8Array): void;
  vfioDeviceReset(deviceFd: number): void;
  /** pins `size` bytes of `memory` at `memoryOffset` and maps them at `iova` */
  vfioIommuMapDma(containerFd: number, memory: SharedMemory, memoryOffset: number, size: number, iova: bigint, flags: number): void;
  /** returns the bytes the kernel unmapped */
  vfioIommuUnmapDma(containerFd: number, iova: bigint, size: bigint | number, flags?: number): bigint;

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
