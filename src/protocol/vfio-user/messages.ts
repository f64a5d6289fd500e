/**
 * vfio-user wire format (QEMU's docs/interop/vfio-user.rst, version 0.0 as QEMU 10.x speaks it):
 * every message is a 16-byte little-endian header followed by a command-specific payload; file
 * descriptors travel as SCM_RIGHTS with the message's first byte. Structures reuse <linux/vfio.h>.
 * Limits are stated here once; the server advertises them in its VERSION reply.
 */

export const HEADER_SIZE = 16;
/** Header field offsets. */
export const HEADER = { id: 0, command: 2, size: 4, flags: 8, error: 12 } as const;

export enum Command {
  Version = 1,
  DmaMap = 2,
  DmaUnmap = 3,
  DeviceGetInfo = 4,
  DeviceGetRegionInfo = 5,
  DeviceGetRegionIoFds = 6,
  DeviceGetIrqInfo = 7,
  DeviceSetIrqs = 8,
  RegionRead = 9,
  RegionWrite = 10,
  DmaRead = 11,
  DmaWrite = 12,
  DeviceReset = 13,
  RegionWriteMulti = 15,
  DeviceFeature = 16,
  MigDataRead = 17,
  MigDataWrite = 18,
}

/** Header flags: type in bits 0-3, then No_reply and Error. */
export const MessageFlags = { typeMask: 0xf, request: 0x0, reply: 0x1, noReply: 0x10, error: 0x20 } as const;
const KNOWN_FLAG_BITS = MessageFlags.typeMask | MessageFlags.noReply | MessageFlags.error;
export const RESERVED_FLAG_BITS = ~KNOWN_FLAG_BITS >>> 0;

export const PROTOCOL_MAJOR = 0;
export const PROTOCOL_MINOR = 0;

/** Limits of this implementation (the VERSION reply states them to the client). */
export const LIMITS = {
  /** largest `count` of REGION_READ/WRITE and DMA_READ/WRITE (the spec's default) */
  maxDataTransfer: 1024 * 1024,
  /** fds accepted with one message (SET_IRQS with every MSI-X vector of a large device needs many) */
  maxMessageFds: 16,
  /** DMA windows held at once per client */
  maxDmaMaps: 1024,
  /** DMA page size: map addresses and sizes are multiples of it */
  pageSize: 4096,
  /** VERSION capabilities JSON, NUL included */
  maxVersionData: 4096,
  /** GET_REGION_INFO argsz a client may ask for (the largest reply: info + sparse mmap areas) */
  maxRegionInfo: 4096,
} as const;

/** Largest message accepted: a REGION_WRITE of maxDataTransfer bytes. */
export const MAX_MESSAGE_SIZE = HEADER_SIZE + 16 + LIMITS.maxDataTransfer;

/** PCI region indices (VFIO_PCI_*_REGION_INDEX). */
export const PciRegion = { bar0: 0, bar5: 5, rom: 6, config: 7, vga: 8 } as const;
export const PCI_REGION_COUNT = 9;
/** PCI interrupt indices (VFIO_PCI_*_IRQ_INDEX). */
export const PciIrq = { intx: 0, msi: 1, msix: 2, err: 3, req: 4 } as const;
export const PCI_IRQ_COUNT = 5;

export const DeviceFlags = { reset: 1 << 0, pci: 1 << 1 } as const;
export const RegionFlags = { read: 1 << 0, write: 1 << 1, mmap: 1 << 2, caps: 1 << 3 } as const;
export const IrqInfoFlags = { eventfd: 1 << 0, maskable: 1 << 1, automasked: 1 << 2, noresize: 1 << 3 } as const;
export const IrqSetFlags = {
  dataNone: 1 << 0, dataBool: 1 << 1, dataEventfd: 1 << 2,
  actionMask: 1 << 3, actionUnmask: 1 << 4, actionTrigger: 1 << 5,
} as const;
export const IRQ_SET_DATA_MASK = IrqSetFlags.dataNone | IrqSetFlags.dataBool | IrqSetFlags.dataEventfd;
export const IRQ_SET_ACTION_MASK = IrqSetFlags.actionMask | IrqSetFlags.actionUnmask | IrqSetFlags.actionTrigger;
export const DmaMapFlags = { read: 1 << 0, write: 1 << 1 } as const;
export const DmaUnmapFlags = { all: 1 << 1 } as const;

/** Payload sizes of the fixed structures (after the header). */
export const PAYLOAD = {
  versionFixed: 4,
  dmaMap: 32,
  dmaUnmap: 24,
  deviceInfo: 16,
  regionInfo: 32,
  irqInfo: 16,
  irqSet: 20,
  regionAccess: 16,
  dmaAccess: 16,
} as const;

/** VFIO_REGION_INFO_CAP_SPARSE_MMAP: header (id, version, next) + nr_areas, reserved + areas. */
export const SPARSE_MMAP = { id: 1, version: 1, headerSize: 16, areaSize: 16 } as const;

export interface MessageHeader {
  id: number;
  command: number;
  size: number;
  flags: number;
  error: number;
}

export interface Capabilities {
  maxMessageFds?: number;
  maxDataTransfer?: number;
  maxDmaMaps?: number;
  pgsizes?: number;
  writeMultiple?: boolean;
}

export interface SparseArea { offset: bigint; size: bigint }

export interface RegionInfo {
  index: number;
  flags: number;
  size: bigint;
  /** mmap offset in the region's fd */
  offset: bigint;
  /** the mappable parts (absent: the whole region when flags has mmap) */
  sparse?: SparseArea[];
}

/** A decoded client-to-server command (fds already checked against the command). */
export type Request =
  | { command: Command.Version; major: number; minor: number; capabilities: Capabilities }
  | { command: Command.DmaMap; flags: number; offset: bigint; address: bigint; size: bigint; fd: number | null }
  | { command: Command.DmaUnmap; flags: number; address: bigint; size: bigint }
  | { command: Command.DeviceGetInfo; argsz: number }
  | { command: Command.DeviceGetRegionInfo; argsz: number; index: number }
  | { command: Command.DeviceGetIrqInfo; argsz: number; index: number }
  | { command: Command.DeviceSetIrqs; flags: number; index: number; start: number; count: number; bools: Buffer | null; fds: number[] }
  | { command: Command.RegionRead; region: number; offset: bigint; count: number }
  | { command: Command.RegionWrite; region: number; offset: bigint; count: number; data: Buffer }
  | { command: Command.DeviceReset };

/** A message with its header; `request` is set when it decoded (else the errno to answer). */
export interface DecodedMessage {
  header: MessageHeader;
  request: Request | null;
  /** errno for the error reply when request is null */
  errno: number;
  detail: string;
}

/** An error answered to the peer as a vfio-user error reply with this errno. */
export class VfioUserError extends Error {
  override readonly name = 'VfioUserError';
  constructor(readonly errno: number, message: string) {
    super(message);
  }
}
