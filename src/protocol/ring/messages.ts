/**
 * xpci wire protocol: constants and message shapes shared by backend and frontend.
 * docs/protocol.md is the normative description; keep the two in step.
 *
 * A frame is a HEADER_SIZE-byte header and a payload; layout.ts says where every field lies.
 */
import type { PciAddress } from '../../pci/address.js';

/** "XPCI" as the bytes 58 50 43 49. */
export const MAGIC = 0x49435058;
export const HEADER_SIZE = 16;
/** Largest frame either side accepts: the handshake JSON of a full virtual bus (256 functions with
 * their BARs, ~100 KB) is the largest payload; the bound also caps what a peer can make the other buffer. */
export const MAX_FRAME = 256 * 1024;
export const PROTOCOL_VERSION = 1;
export const SUPPORTED_VERSIONS: readonly number[] = [1];
export const MIN_RING_DEPTH = 32;
export const DEFAULT_RING_DEPTH = 64;
export const MAX_RING_DEPTH = 256;

export enum MessageType {
  /** F→B: start (or restart) a session. Payload: JSON HelloRequest. Reply: JSON HelloReply. */
  Hello = 1,
  /** F→B: payload CONFIG_TARGET (layout.ts) without value. Reply: the value read. */
  ConfigRead = 2,
  /** F→B: payload CONFIG_TARGET with value. Reply: empty. */
  ConfigWrite = 3,
  /** F→B: payload BAR_TARGET without value. Reply: the value read. */
  BarRead = 4,
  /** F→B: payload BAR_TARGET with value. Reply: empty. */
  BarWrite = 5,
  /** F→B: empty. Reply: JSON {devices: DeviceDescriptor[], roots: string[]}. */
  ListDevices = 6,
  /** F→B: any payload up to MAX_FRAME-HEADER_SIZE; reply echoes it. Liveness and benchmarks. */
  Ping = 7,
  /** F→B: payload {u32 address, u8 kind, u8 0, u16 vector}. Reply: empty. Unmasks an auto-masked INTx. */
  InterruptUnmask = 8,
  /** F→B: payload {u32 address, u32 flags, u64 size, u64 iova}. Reply: {u64 iova}. */
  DmaMap = 9,
  /** F→B: payload {u32 address, u32 0, u64 iova}. Reply: empty. */
  DmaUnmap = 10,
  /** F→B: payload {u32 address, u32 length, u64 iova, u64 offset}. Reply: the `length` bytes. */
  DmaRead = 11,
  /** F→B: payload {u32 address, u32 length, u64 iova, u64 offset, bytes}. Reply: empty. */
  DmaWrite = 12,
  /** F→B: payload {u32 address}. Reply: empty, after the reset and the DeviceReset event. */
  ResetDevice = 13,
  /** F→B: payload CONFIG_BLOCK (layout.ts). Reply: the `length` bytes, read as ConfigReads would read them. */
  ConfigReadBlock = 14,
  /** B→F event: JSON DeviceDescriptor. */
  DeviceAdded = 0x20,
  /** B→F event: the packed address. */
  DeviceRemoved = 0x21,
  /** B→F event: JSON {reason: string}. The backend closes the stream after sending it. */
  Shutdown = 0x22,
  /** B→F event: {u32 address, u8 kind, u8 0, u16 vector, u32 count}. */
  Interrupt = 0x23,
  /** B→F event: {u32 address}. The device was reset; its view is back to the export-time state. */
  DeviceReset = 0x24,
}

/** Interrupt kinds in wire order: the wire carries the index. */
export const INTERRUPT_KINDS = ['intx', 'msi', 'msix'] as const;
export type InterruptKind = (typeof INTERRUPT_KINDS)[number];

/** DMA windows are whole pages: sizes and IOVAs are multiples of this. */
export const DMA_PAGE_SIZE = 4096;
/** DmaMap flags bit: the request names the IOVA; otherwise the backend chooses it. */
export const DMA_MAP_FIXED_IOVA = 1;

export enum FrameFlags {
  None = 0,
  Reply = 1 << 0,
  /** With Reply: payload is an ErrorPayload instead of the normal reply. */
  Error = 1 << 1,
  /** Unsolicited backend→frontend message. */
  Event = 1 << 2,
}

/** One error space, Xen's pciif meanings as the base. Never mixed with raw errno. */
export enum ErrorCode {
  /** Address not exported to this frontend, or its host device is gone (Xen -1). */
  DeviceNotFound = 1,
  /** Offset outside the device's config size or BAR size (Xen -2). */
  InvalidOffset = 2,
  /** Size not allowed for this op (Xen -2). */
  InvalidSize = 3,
  /** Offset not naturally aligned to size (Xen -2). */
  Misaligned = 4,
  /** Policy refused: read-only field, read-only export, decode off, filtered bits (Xen -3). */
  AccessDenied = 5,
  /** Unknown message type or unsupported feature (Xen -4). */
  NotImplemented = 6,
  /** The host operation failed; errno carries the detail (Xen -5). */
  OperationFailed = 7,
  /** Frame or payload could not be decoded. */
  Malformed = 8,
  /** Another frontend holds this backend. */
  Busy = 9,
  /** No common protocol version. */
  VersionMismatch = 10,
  /** A request other than Hello before the handshake. */
  HelloRequired = 11,
  /** More requests in flight than the negotiated ring depth. */
  LimitExceeded = 12,
  /** The frontend's peer credentials are not allowed. */
  PermissionDenied = 13,
}

/** Error reply payload: u16 code, u16 0, i32 errno (0 if none), then UTF-8 message. */
export interface ErrorPayload {
  code: ErrorCode;
  errno: number;
  message: string;
}

export type BarKind = 'mem' | 'io';

export interface BarDescriptor {
  index: number;
  kind: BarKind;
  is64: boolean;
  prefetchable: boolean;
  /** bytes; a string in JSON would be overkill: sizes fit in a double exactly up to 2^53 */
  size: number;
}

export interface DeviceDescriptor {
  /** As the frontend addresses it, "0000:00:01.0". */
  address: string;
  vendor: number;
  device: number;
  /** 24-bit class code (base << 16 | sub << 8 | prog-if). */
  classCode: number;
  revision: number;
  headerType: number;
  configSize: number;
  /** Config writes and BAR access refused (export --read-only). */
  readOnly: boolean;
  permissive: boolean;
  bars: BarDescriptor[];
  /** Interrupt vectors per kind the frontend may enable (VFIO-held devices); absent or {}: none. */
  interrupts?: Partial<Record<InterruptKind, number>>;
  /** DMA windows (DmaMap) are offered: the device sits behind an IOMMU. Absent: false. */
  dma?: boolean;
  /** ResetDevice is offered. Absent: false. */
  reset?: boolean;
  /** Passthrough only; absent in vPCI mode so host addresses are not revealed. */
  hostAddress?: string;
}

export type ExportMode = 'vpci' | 'passthrough';

export interface HelloRequest {
  /** Versions the frontend speaks. */
  versions: number[];
  /** Ring depth the frontend wants; the backend clamps to [MIN_RING_DEPTH, MAX_RING_DEPTH]. */
  ringDepth: number;
  client?: string;
}

export interface HelloReply {
  version: number;
  ringDepth: number;
  maxFrame: number;
  mode: ExportMode;
  /** Root buses the frontend must scan: "0000:00" (vPCI) or each exported device's bus. */
  roots: string[];
  devices: DeviceDescriptor[];
  server?: string;
}

/** Decoded request as the backend sees it: copied out of the stream once, then validated. */
export type Request =
  | { type: MessageType.Hello; id: number; hello: HelloRequest }
  | { type: MessageType.ConfigRead; id: number; address: PciAddress; offset: number; size: number }
  | { type: MessageType.ConfigWrite; id: number; address: PciAddress; offset: number; size: number; value: number }
  | { type: MessageType.BarRead; id: number; address: PciAddress; bar: number; offset: bigint; size: number }
  | { type: MessageType.BarWrite; id: number; address: PciAddress; bar: number; offset: bigint; size: number; value: bigint }
  | { type: MessageType.ListDevices; id: number }
  | { type: MessageType.Ping; id: number; payload: Buffer }
  | { type: MessageType.InterruptUnmask; id: number; address: PciAddress; kind: InterruptKind; vector: number }
  | { type: MessageType.DmaMap; id: number; address: PciAddress; size: bigint; iova?: bigint }
  | { type: MessageType.DmaUnmap; id: number; address: PciAddress; iova: bigint }
  | { type: MessageType.DmaRead; id: number; address: PciAddress; iova: bigint; offset: bigint; length: number }
  | { type: MessageType.DmaWrite; id: number; address: PciAddress; iova: bigint; offset: bigint; data: Buffer }
  | { type: MessageType.ResetDevice; id: number; address: PciAddress }
  | { type: MessageType.ConfigReadBlock; id: number; address: PciAddress; offset: number; length: number };

/** One interrupt as the Interrupt event carries it. */
export interface InterruptRecord {
  kind: InterruptKind;
  vector: number;
  /** Interrupts signalled on this vector since its previous event (more than 1: coalesced). */
  count: number;
}

/** A failure that becomes an error reply. Anything else thrown in the backend is a bug. */
export class XpciError extends Error {
  readonly code: ErrorCode;
  readonly errno: number;
  constructor(code: ErrorCode, message: string, errno = 0) {
    // A protocol error is an answer to the peer, not a bug: capturing a stack would cost ~7 µs per
    // refused request, which a hostile frontend could turn into backend CPU.
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = stackTraceLimit;
    this.code = code;
    this.errno = errno;
  }
}
Object.defineProperty(XpciError.prototype, 'name', { value: 'XpciError' });

export function errorCodeName(code: number): string {
  return ErrorCode[code] ?? `Unknown(${code})`;
}
