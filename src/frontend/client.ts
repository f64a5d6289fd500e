/**
 * The frontend client: one session with a backend over a Transport.
 *
 * - Handshake: Hello is retried on timeout, because on a virtio-serial port the host side may still
 *   hold a partial frame from a previous frontend that died mid-write; replies to ids this session
 *   does not know (a previous session's leftovers) are dropped.
 * - Pipelining: up to the negotiated ring depth in flight, the rest waits in a local FIFO.
 * - Requests made in one synchronous run are encoded into one buffer and written together (one
 *   write per microtask turn); ConfigRead replies are read in place from the received bytes.
 * - A request is built once: the same object is encoded, traced and matched with its reply, found
 *   by id in an array (no Map) and timed by one timer for the whole session.
 * - Every request has a deadline; a failed request rejects with an XpciError carrying the protocol
 *   error code, so a failed read never yields a value.
 */
import { EventEmitter } from 'node:events';
import { constants as osConstants } from 'node:os';
import { debugLog } from '../diagnostics/debug-log.js';
import { formatAddress as formatAddressShort, packAddress, parseAddress, type PciAddress } from '../pci/address.js';
import { readU32 } from '../protocol/ring/bytes.js';
import { FrameReader, type Frame, type FrameFault, type FrameVisitor } from '../protocol/ring/frame.js';
import {
  checkRequest,
  decodeBarReadReply,
  decodeConfigReadReply,
  decodeDeviceRemoved,
  decodeJsonPayload,
  encodeRequest,
  errorFromReply,
  isErrorReply,
  requestLength,
  writeDmaWriteHead,
  writeRequest,
  DMA_WRITE_HEAD,
  type StreamRequest,
} from '../protocol/ring/codec.js';
import { CONFIG_READ_REPLY_FRAME } from '../protocol/ring/layout.js';
import { HELLO_TIMEOUTS_MS, MAX_ERROR_MESSAGE } from '../protocol/ring/limits.js';
import {
  decodeDeviceResetEvent,
  decodeDmaMapReply,
  decodeInterruptEvent,
  DMA_TRANSFER,
  MAX_DMA_TRANSFER,
} from '../protocol/ring/device-ops-codec.js';
import {
  DEFAULT_RING_DEPTH,
  ErrorCode,
  FrameFlags,
  HEADER_SIZE,
  MAX_FRAME,
  MessageType,
  SUPPORTED_VERSIONS,
  XpciError,
  errorCodeName,
  type DeviceDescriptor,
  type ExportMode,
  type HelloReply,
  type InterruptKind,
  type InterruptRecord,
} from '../protocol/ring/messages.js';
import { validateDescriptor, validateDeviceList, validateHelloReply, type DeviceList } from '../protocol/ring/hello.js';
import { printablePeerText } from '../protocol/ring/peer-text.js';
import { RequestTrace } from '../protocol/ring/request-trace.js';
import { openTransport } from './open-transport.js';
import type { TlsCredentials } from './tls-transport.js';
import type { Transport } from './transport.js';
import { RemoteDevice } from './remote-device.js';

const debug = debugLog('xpci:frontend');

export interface ConnectOptions {
  /** Ring depth asked for in Hello; the backend's answer is what is used. Default 64. */
  ringDepth?: number;
  /** Name sent in Hello, shown in the backend's logs. */
  client?: string;
  /** Per-request deadline, counted from when the request is written. Default 5000 ms. */
  requestTimeoutMs?: number;
  /** Wait for a Hello reply before each attempt is given up. Default HELLO_TIMEOUTS_MS (limits.ts). */
  helloTimeoutsMs?: readonly number[];
  /** For a tls://HOST:PORT backend: this client's certificate and key, and the CA of the backend's. */
  tls?: TlsCredentials;
  /** --verbose-request: receives one line per finished request (DEBUG=xpci:request logs them too). */
  logRequest?: (line: string) => void;
}

export interface FrontendEvents {
  deviceAdded: [device: DeviceDescriptor];
  deviceRemoved: [address: PciAddress];
  /** An interrupt of an exported function (docs/protocol.md §4.7). */
  interrupt: [address: PciAddress, record: InterruptRecord];
  /** A function was reset; its view is back to the export-time state (MSI/MSI-X off). */
  deviceReset: [address: PciAddress];
  /** The backend is shutting down; it closes the stream next. */
  shutdown: [reason: string];
  /** The session ended; `error` is set when the stream failed rather than being closed by either side. */
  close: [error?: Error];
}

export type { DeviceList };

interface PendingRequest {
  request: StreamRequest;
  deadline: number;
  decode: (frame: Frame) => unknown;
  resolve: (value: any) => void;
  reject: (error: Error) => void;
}

/** DmaWrite data from this size on leaves from the caller's buffer (flush). */
const UNCOPIED_DMA_WRITE = 16 * 1024;
const sentUncopied = (request: StreamRequest): request is Extract<StreamRequest, { type: MessageType.DmaWrite }> =>
  request.type === MessageType.DmaWrite && request.data.length >= UNCOPIED_DMA_WRITE;

const ETIMEDOUT = osConstants.errno.ETIMEDOUT;

/** A monotonic clock in ms for request deadlines; unlike performance.now() it loads no perf_hooks (~10 modules per CLI call). */
const monotonicMs = (): number => process.uptime() * 1000;
/** Interrupts kept per device for waitForInterrupt until consumed; the oldest go first. */
export const MAX_QUEUED_INTERRUPTS = 1024;

export interface InterruptFilter {
  kind?: InterruptKind;
  vector?: number;
}

interface InterruptWaiter extends InterruptFilter {
  resolve: (record: InterruptRecord) => void;
}
const ECONNRESET = osConstants.errno.ECONNRESET;

/** Ids run 1..0xffffffff and wrap; 0 marks unattributed error replies. */
const nextSequentialId = (id: number): number => (id >= 0xffffffff ? 1 : id + 1);

function descriptorKey(device: DeviceDescriptor): number {
  return packAddress(parseAddress(device.address));
}

export class FrontendClient extends EventEmitter<FrontendEvents> implements FrameVisitor {
  /** Connect, handshake, and resolve once the backend has answered Hello. */
  static async connect(path: string, options: ConnectOptions = {}): Promise<FrontendClient> {
    return FrontendClient.open(await openTransport(path, options.tls), options);
  }

  /** Handshake over a transport that is already open (any reliable byte stream wrapped as a Transport). */
  static async open(transport: Transport, options: ConnectOptions = {}): Promise<FrontendClient> {
    const client = new FrontendClient(transport, options);
    try {
      await client.handshake();
    } catch (error) {
      client.shutdownSession(undefined);
      throw error;
    }
    return client;
  }

  version = 0;
  ringDepth = 0;
  maxFrame = MAX_FRAME;
  mode: ExportMode = 'vpci';
  roots: string[] = [];
  server: string | undefined;

  private readonly reader = new FrameReader();
  private readonly deviceMap = new Map<number, DeviceDescriptor>();
  /**
   * Requests in flight at index `id & slotMask`: ids are allocated so that their slot is free, so
   * a reply finds its request with one array load and an id compare.
   */
  private slots: (PendingRequest | undefined)[] = [];
  private slotMask = 0;
  private inFlightTotal = 0;
  private queue: PendingRequest[] = [];
  private queueHead = 0;
  private outgoing: PendingRequest[] = [];
  private flushScheduled = false;
  private timeoutTimer: NodeJS.Timeout | undefined;
  private nextId: number;
  private ready = false;
  private closed = false;
  /** Why the stream failed, when it did: the reason pending requests are rejected with. */
  private streamFailure: Error | undefined;
  private shutdownReason: string | undefined;
  /** Busy or PermissionDenied: the backend refused this connection and is closing it. */
  private refusal: XpciError | undefined;
  private readonly helloIds = new Set<number>();
  private helloWaiter: { resolve: (frame: Frame) => void; reject: (error: Error) => void } | undefined;
  /** Interrupts not yet taken by waitForInterrupt, per packed address. */
  private readonly interruptQueues = new Map<number, InterruptRecord[]>();
  private readonly interruptWaiters = new Map<number, InterruptWaiter[]>();
  private readonly requestTimeoutMs: number;
  private readonly trace: RequestTrace;

  private constructor(private readonly transport: Transport, private readonly options: ConnectOptions) {
    super();
    this.requestTimeoutMs = options.requestTimeoutMs ?? 5000;
    this.trace = new RequestTrace(options.logRequest);
    // A random start keeps this session's ids apart from a previous session's late replies.
    // (Math.random is enough for that, and the crypto module is not worth its start-up cost.)
    this.nextId = 1 + Math.floor(Math.random() * 0x7ffffffe);
    transport.on('data', (chunk) => this.onData(chunk));
    transport.on('close', (error) => this.shutdownSession(error));
  }

  get path(): string {
    return this.transport.path;
  }

  /** Requests written and not yet answered. */
  get inFlightCount(): number {
    return this.inFlightTotal;
  }

  /** Requests waiting for a free ring slot. */
  get queuedCount(): number {
    return this.queue.length - this.queueHead;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The exported devices as the frontend addresses them, sorted by address. */
  devices(): DeviceDescriptor[] {
    return [...this.deviceMap.entries()].sort((a, b) => a[0] - b[0]).map(([, d]) => d);
  }

  device(address: PciAddress): DeviceDescriptor | undefined {
    return this.deviceMap.get(packAddress(address));
  }

  /** A ConfigReader/ConfigWriter for src/pci's printers, plus BAR access. */
  remoteDevice(address: PciAddress): RemoteDevice {
    return new RemoteDevice(this, address);
  }

  configRead(address: PciAddress, offset: number, size: number): Promise<number> {
    return this.request<number>({ type: MessageType.ConfigRead, id: 0, address, offset, size }, decodeConfigReadReply);
  }

  /** The backend answered a ConfigReadBlock NotImplemented: RemoteDevice reads single registers instead. */
  configReadBlockUnsupported = false;

  /**
   * `length` bytes (1..MAX_CONFIG_BLOCK) of config space in one request, as the ConfigReads of
   * their aligned pieces would read them. A backend older than the message answers NotImplemented.
   */
  configReadBlock(address: PciAddress, offset: number, length: number): Promise<Buffer> {
    return this.request<Buffer>({ type: MessageType.ConfigReadBlock, id: 0, address, offset, length }, (frame) => {
      if (frame.payload.length !== length) throw new XpciError(ErrorCode.Malformed, `ConfigReadBlock reply of ${frame.payload.length} bytes, asked ${length}`);
      return Buffer.from(frame.payload);
    });
  }

  configWrite(address: PciAddress, offset: number, size: number, value: number): Promise<void> {
    return this.request<void>({ type: MessageType.ConfigWrite, id: 0, address, offset, size, value }, expectEmpty);
  }

  barRead(address: PciAddress, bar: number, offset: number | bigint, size: number): Promise<bigint> {
    return this.request<bigint>({ type: MessageType.BarRead, id: 0, address, bar, offset: BigInt(offset), size }, decodeBarReadReply);
  }

  barWrite(address: PciAddress, bar: number, offset: number | bigint, size: number, value: number | bigint): Promise<void> {
    return this.request<void>({ type: MessageType.BarWrite, id: 0, address, bar, offset: BigInt(offset), size, value: BigInt(value) }, expectEmpty);
  }

  /** Map a DMA window of `size` bytes (a multiple of 4096), at `iova` or where the backend chooses; resolves with its IOVA. */
  dmaMap(address: PciAddress, size: number | bigint, iova?: bigint): Promise<bigint> {
    const bytes = BigInt(size);
    if (bytes <= 0n || bytes > 0xffffffffffffffffn) return Promise.reject(new XpciError(ErrorCode.InvalidSize, `DMA window size ${size} is invalid`));
    if (iova !== undefined && (iova < 0n || iova > 0xffffffffffffffffn)) return Promise.reject(new XpciError(ErrorCode.InvalidOffset, `IOVA ${iova} is outside 64 bits`));
    return this.request<bigint>(
      { type: MessageType.DmaMap, id: 0, address, size: bytes, ...(iova === undefined ? {} : { iova }) },
      decodeDmaMapReply,
    );
  }

  dmaUnmap(address: PciAddress, iova: bigint): Promise<void> {
    return this.request<void>({ type: MessageType.DmaUnmap, id: 0, address, iova }, expectEmpty);
  }

  /** One DmaRead of at most MAX_DMA_TRANSFER bytes (DmaWindow splits larger reads). */
  dmaRead(address: PciAddress, iova: bigint, offset: bigint, length: number): Promise<Buffer> {
    if (!Number.isInteger(length) || length < 1 || length > MAX_DMA_TRANSFER) {
      return Promise.reject(new XpciError(ErrorCode.InvalidSize, `DMA read of ${length} bytes: must be 1..${MAX_DMA_TRANSFER}`));
    }
    return this.request<Buffer>(
      { type: MessageType.DmaRead, id: 0, address, iova, offset, length },
      (frame) => {
        if (frame.payload.length !== length) throw new XpciError(ErrorCode.Malformed, `DmaRead reply of ${frame.payload.length} bytes, asked ${length}`);
        return Buffer.from(frame.payload);
      },
    );
  }

  /** One DmaWrite of at most MAX_DMA_TRANSFER bytes. */
  dmaWrite(address: PciAddress, iova: bigint, offset: bigint, data: Buffer): Promise<void> {
    if (data.length < 1 || data.length > MAX_DMA_TRANSFER) {
      return Promise.reject(new XpciError(ErrorCode.InvalidSize, `DMA write of ${data.length} bytes: must be 1..${MAX_DMA_TRANSFER}`));
    }
    return this.request<void>({ type: MessageType.DmaWrite, id: 0, address, iova, offset, data }, expectEmpty);
  }

  /** Largest DmaRead/DmaWrite this session allows: MAX_DMA_TRANSFER, or less under a smaller frame limit. */
  get maxDmaTransfer(): number {
    return Math.min(MAX_DMA_TRANSFER, this.maxFrame - HEADER_SIZE - DMA_TRANSFER.data);
  }

  /** Let an auto-masked INTx fire again, after servicing the device. */
  interruptUnmask(address: PciAddress, kind: InterruptKind = 'intx', vector = 0): Promise<void> {
    return this.request<void>({ type: MessageType.InterruptUnmask, id: 0, address, kind, vector }, expectEmpty);
  }

  /** Reset the function; the backend sends DeviceReset before its reply. */
  resetDevice(address: PciAddress): Promise<void> {
    return this.request<void>({ type: MessageType.ResetDevice, id: 0, address }, expectEmpty);
  }

  /**
   * The oldest interrupt of `address` matching the filter that no earlier call took, waiting up to
   * `timeoutMs` for one (rejects with OperationFailed/ETIMEDOUT). Interrupts received since the
   * session started count, so an interrupt that arrives before the call is not lost.
   */
  waitForInterrupt(address: PciAddress, filter: InterruptFilter, timeoutMs: number): Promise<InterruptRecord> {
    const key = packAddress(address);
    const matches = (record: InterruptRecord): boolean =>
      (filter.kind === undefined || record.kind === filter.kind) && (filter.vector === undefined || record.vector === filter.vector);
    const queue = this.interruptQueues.get(key) ?? [];
    const index = queue.findIndex(matches);
    if (index >= 0) return Promise.resolve(queue.splice(index, 1)[0]);
    if (this.closed) return Promise.reject(this.closedError());
    return new Promise<InterruptRecord>((resolve, reject) => {
      const waiters = this.interruptWaiters.get(key) ?? [];
      this.interruptWaiters.set(key, waiters);
      const remove = (): void => {
        const at = waiters.indexOf(waiter);
        if (at >= 0) waiters.splice(at, 1);
        this.off('close', onClose);
      };
      const timer = setTimeout(() => {
        remove();
        const what = `${filter.kind === undefined ? '' : `${filter.kind} `}interrupt${filter.vector === undefined ? '' : ` on vector ${filter.vector}`}`;
        reject(new XpciError(ErrorCode.OperationFailed, `no ${what} from ${formatAddressShort(address)} within ${timeoutMs} ms`, ETIMEDOUT));
      }, timeoutMs);
      const onClose = (): void => {
        clearTimeout(timer);
        remove();
        reject(this.closedError());
      };
      const waiter: InterruptWaiter = {
        ...filter,
        resolve: (record) => {
          clearTimeout(timer);
          remove();
          resolve(record);
        },
      };
      waiters.push(waiter);
      this.once('close', onClose);
    });
  }

  private onInterrupt(address: PciAddress, record: InterruptRecord): void {
    const key = packAddress(address);
    const waiter = this.interruptWaiters.get(key)?.find((w) =>
      (w.kind === undefined || w.kind === record.kind) && (w.vector === undefined || w.vector === record.vector));
    if (waiter) waiter.resolve(record);
    else {
      const queue = this.interruptQueues.get(key) ?? [];
      if (queue.length >= MAX_QUEUED_INTERRUPTS) queue.shift();
      queue.push(record);
      this.interruptQueues.set(key, queue);
    }
    this.emit('interrupt', address, record);
  }

  /** Ask the backend for the current device list; also refreshes devices() and roots. */
  async listDevices(): Promise<DeviceList> {
    const list = await this.request<DeviceList>(
      { type: MessageType.ListDevices, id: 0 },
      (frame) => validateDeviceList(decodeJsonPayload<DeviceList>(frame, 'ListDevices reply')),
    );
    this.deviceMap.clear();
    for (const device of list.devices) this.deviceMap.set(descriptorKey(device), device);
    this.roots = list.roots;
    return list;
  }

  /** Round trip with an echoed payload. */
  ping(payload: Buffer = Buffer.alloc(0)): Promise<Buffer> {
    return this.request<Buffer>({ type: MessageType.Ping, id: 0, payload }, (frame) => Buffer.from(frame.payload));
  }

  /** End the session. Requests still pending reject. Resolves once the stream is closed. */
  close(): Promise<void> {
    if (!this.closed) {
      this.flush();
      this.transport.close();
    }
    return Promise.resolve();
  }

  // ---------------------------------------------------------------- handshake

  private async handshake(): Promise<void> {
    const waits = this.options.helloTimeoutsMs?.length ? this.options.helloTimeoutsMs : HELLO_TIMEOUTS_MS;
    const hello = {
      versions: [...SUPPORTED_VERSIONS],
      ringDepth: this.options.ringDepth ?? DEFAULT_RING_DEPTH,
      client: this.options.client ?? `xpci-frontend pid ${process.pid}`,
    };
    const replyFrame = new Promise<Frame>((resolve, reject) => { this.helloWaiter = { resolve, reject }; });
    // Keep an early rejection (stream closed) from being reported as unhandled while a timer runs.
    replyFrame.catch(() => undefined);
    let frame: Frame | undefined;
    for (let attempt = 0; attempt < waits.length && !frame; attempt++) {
      const id = this.nextId;
      this.nextId = nextSequentialId(id);
      this.helloIds.add(id);
      if (attempt > 0) debug('no Hello reply from %s after %d ms; sending Hello again', this.path, waits[attempt - 1]);
      this.transport.write(encodeRequest({ type: MessageType.Hello, id, hello }));
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<undefined>((resolve) => { timer = setTimeout(resolve, waits[attempt], undefined); });
      try {
        frame = await Promise.race([replyFrame, timeout]);
      } finally {
        clearTimeout(timer);
      }
    }
    this.helloWaiter = undefined;
    this.helloIds.clear();
    if (!frame) {
      const total = waits.reduce((sum, ms) => sum + ms, 0);
      throw new XpciError(ErrorCode.OperationFailed,
        `no Hello reply from ${this.path} in ${total} ms (${waits.length} attempts)`, ETIMEDOUT);
    }
    if (isErrorReply(frame)) throw errorFromReply(frame);
    this.accept(validateHelloReply(decodeJsonPayload<HelloReply>(frame, 'Hello reply')));
  }

  private accept(reply: HelloReply): void {
    this.version = reply.version;
    this.ringDepth = reply.ringDepth;
    this.maxFrame = reply.maxFrame;
    this.mode = reply.mode;
    this.roots = reply.roots;
    this.server = reply.server;
    // Room for twice the ring depth: ids can always be found whose slot is free.
    const slotCount = 2 ** Math.ceil(Math.log2(2 * reply.ringDepth));
    this.slots = new Array<PendingRequest | undefined>(slotCount).fill(undefined);
    this.slotMask = slotCount - 1;
    for (const device of reply.devices) this.deviceMap.set(descriptorKey(device), device);
    this.ready = true;
    debug('session with %s: version %d, ring depth %d, mode %s, roots %s, %d devices',
      this.path, this.version, this.ringDepth, this.mode, this.roots.join(' '), this.deviceMap.size);
  }

  // ---------------------------------------------------------------- requests

  /** The next id whose slot is free (one exists: at most ringDepth of 2 * ringDepth slots are taken). */
  private allocateId(): number {
    let id = this.nextId;
    while (this.slots[id & this.slotMask] !== undefined) id = nextSequentialId(id);
    this.nextId = nextSequentialId(id);
    return id;
  }

  private request<T>(request: StreamRequest, decode: (frame: Frame) => unknown): Promise<T> {
    if (this.closed || !this.ready) return Promise.reject(this.closedError());
    const invalid = checkRequest(request) ?? (requestLength(request) > this.maxFrame
      ? new XpciError(ErrorCode.LimitExceeded, `a ${requestLength(request)}-byte frame exceeds the backend's ${this.maxFrame}-byte frame limit`)
      : undefined);
    if (invalid) return Promise.reject(invalid);
    return new Promise<T>((resolve, reject) => {
      const pending: PendingRequest = { request, deadline: 0, decode, resolve, reject };
      if (this.inFlightTotal < this.ringDepth) this.send(pending);
      else this.queue.push(pending);
    });
  }

  private send(pending: PendingRequest): void {
    const id = this.allocateId();
    pending.request.id = id;
    pending.deadline = monotonicMs() + this.requestTimeoutMs;
    this.slots[id & this.slotMask] = pending;
    this.inFlightTotal++;
    this.outgoing.push(pending);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
    if (!this.timeoutTimer) this.armTimeout(this.requestTimeoutMs);
  }

  /**
   * One buffer for every request of this turn, one write. Large DmaWrite data is not copied into
   * it: it follows its head from the caller's buffer (one writev on a socket), since a fresh buffer
   * of that size costs more in page faults than the copy itself.
   */
  private flush(): void {
    this.flushScheduled = false;
    const outgoing = this.outgoing;
    if (outgoing.length === 0 || this.closed) return;
    this.outgoing = [];
    let total = 0;
    for (const { request } of outgoing) total += sentUncopied(request) ? DMA_WRITE_HEAD : requestLength(request);
    const data = Buffer.allocUnsafe(total);
    const chunks: Buffer[] = [];
    let at = 0;
    let from = 0;
    for (const { request } of outgoing) {
      if (sentUncopied(request)) {
        at = writeDmaWriteHead(data, at, request);
        chunks.push(data.subarray(from, at), request.data);
        from = at;
      } else {
        at = writeRequest(data, at, request);
      }
    }
    if (chunks.length === 0) {
      this.transport.write(data);
      return;
    }
    if (from < at) chunks.push(data.subarray(from, at));
    this.transport.writeChunks(chunks);
  }

  private pump(): void {
    while (this.queueHead < this.queue.length && this.inFlightTotal < this.ringDepth) {
      this.send(this.queue[this.queueHead++]);
    }
    if (this.queueHead === this.queue.length && this.queueHead > 0) {
      this.queue = [];
      this.queueHead = 0;
    }
  }

  private armTimeout(delay: number): void {
    this.timeoutTimer = setTimeout(() => this.expire(), Math.max(0, Math.ceil(delay)));
  }

  /** Expire what is due and re-arm for the earliest deadline left. */
  private expire(): void {
    this.timeoutTimer = undefined;
    const now = monotonicMs();
    let earliest = Infinity;
    for (const pending of this.slots) {
      if (pending === undefined) continue;
      if (pending.deadline > now) {
        earliest = Math.min(earliest, pending.deadline);
        continue;
      }
      this.release(pending);
      // The slot is given back: a backend that has not answered in this long has dropped the request.
      this.settle(pending, undefined, new XpciError(ErrorCode.OperationFailed,
        `${MessageType[pending.request.type]} request timed out after ${this.requestTimeoutMs} ms`, ETIMEDOUT));
    }
    if (earliest !== Infinity) this.armTimeout(earliest - now);
    this.pump();
  }

  private release(pending: PendingRequest): void {
    this.slots[pending.request.id & this.slotMask] = undefined;
    this.inFlightTotal--;
  }

  private settle(pending: PendingRequest, value: unknown, error: XpciError | undefined): void {
    if (this.trace.enabled) {
      if (error) this.trace.failed(pending.request, error);
      else this.trace.done(pending.request, typeof value === 'number' || typeof value === 'bigint' ? value : undefined);
    }
    if (error) pending.reject(error);
    else pending.resolve(value);
  }

  // ---------------------------------------------------------------- incoming

  private onData(chunk: Buffer): void {
    this.reader.scan(chunk, this);
    this.pump();
  }

  /** FrameVisitor: a ConfigRead reply for a request in flight is read in place; anything else becomes a Frame. */
  frame(buffer: Buffer, at: number, length: number, type: number, flags: number, id: number): void {
    if (type === MessageType.ConfigRead && flags === FrameFlags.Reply && length === CONFIG_READ_REPLY_FRAME.frameLength) {
      const pending = this.slots[id & this.slotMask];
      if (pending !== undefined && pending.request.id === id && pending.request.type === MessageType.ConfigRead) {
        this.release(pending);
        this.settle(pending, readU32(buffer, at + CONFIG_READ_REPLY_FRAME.value), undefined);
        return;
      }
    }
    this.onFrame({ type, flags, id, payload: buffer.subarray(at + HEADER_SIZE, at + length) });
  }

  /** FrameVisitor: bytes the reader skipped. */
  fault(fault: FrameFault): void {
    debug('skipped %d bytes from %s: %s (%s)', fault.skipped, this.path, fault.reason, fault.detail);
  }

  private onFrame(frame: Frame): void {
    if (frame.flags & FrameFlags.Event) {
      if (this.ready) this.onEvent(frame);
      return;
    }
    if (!(frame.flags & FrameFlags.Reply)) {
      debug('ignored a non-reply frame of type %d', frame.type);
      return;
    }
    if (frame.id === 0 && isErrorReply(frame)) {
      this.onUnattributedError(frame);
      return;
    }
    if (this.helloIds.has(frame.id) && (frame.type === MessageType.Hello || isErrorReply(frame))) {
      this.helloWaiter?.resolve(frame);
      return;
    }
    const candidate = this.slots[frame.id & this.slotMask];
    const pending = candidate !== undefined && candidate.request.id === frame.id ? candidate : undefined;
    // Error replies to requests the backend could not frame carry type 0.
    if (!pending || (frame.type !== pending.request.type && !(isErrorReply(frame) && frame.type === 0))) {
      debug('ignored a reply for unknown request id %d (type %d): stale or timed out', frame.id, frame.type);
      return;
    }
    this.release(pending);
    try {
      if (isErrorReply(frame)) this.settle(pending, undefined, errorFromReply(frame));
      else this.settle(pending, pending.decode(frame), undefined);
    } catch (error) {
      this.settle(pending, undefined, asXpciError(error));
    }
  }

  /**
   * Error replies with id 0 answer no request: garbage reports (ignored), or Busy /
   * PermissionDenied just before the backend closes the stream, which become the close reason.
   */
  private onUnattributedError(frame: Frame): void {
    let error: XpciError;
    try {
      error = errorFromReply(frame);
    } catch (failure) {
      debug('ignored an undecodable error reply with id 0: %s', (failure as Error).message);
      return;
    }
    if (error.code === ErrorCode.Busy || error.code === ErrorCode.PermissionDenied) this.refusal = error;
    else debug('backend reported %s: %s', errorCodeName(error.code), error.message);
  }

  private onEvent(frame: Frame): void {
    try {
      switch (frame.type) {
        case MessageType.DeviceAdded: {
          const device = validateDescriptor(decodeJsonPayload<DeviceDescriptor>(frame, 'DeviceAdded event'));
          this.deviceMap.set(descriptorKey(device), device);
          this.emit('deviceAdded', device);
          break;
        }
        case MessageType.DeviceRemoved: {
          const address = decodeDeviceRemoved(frame);
          this.deviceMap.delete(packAddress(address));
          this.emit('deviceRemoved', address);
          break;
        }
        case MessageType.Interrupt: {
          const { address, record } = decodeInterruptEvent(frame);
          this.onInterrupt(address, record);
          break;
        }
        case MessageType.DeviceReset: {
          const address = decodeDeviceResetEvent(frame);
          // Interrupts from before the reset belong to a device state that is gone.
          this.interruptQueues.delete(packAddress(address));
          this.emit('deviceReset', address);
          break;
        }
        case MessageType.Shutdown: {
          const { reason } = decodeJsonPayload<{ reason?: unknown }>(frame, 'Shutdown event');
          this.shutdownReason = typeof reason === 'string' ? printablePeerText(reason, MAX_ERROR_MESSAGE) : 'no reason given';
          this.emit('shutdown', this.shutdownReason);
          break;
        }
        default:
          debug('ignored unknown event type %d', frame.type);
      }
    } catch (error) {
      debug('ignored a malformed event of type %d: %s', frame.type, (error as Error).message);
    }
  }

  // ---------------------------------------------------------------- teardown

  private closedError(): XpciError {
    if (this.refusal) return this.refusal;
    const why = this.shutdownReason ? `the backend shut down: ${this.shutdownReason}`
      : this.streamFailure ? `the connection failed: ${this.streamFailure.message}` : 'the connection is closed';
    return new XpciError(ErrorCode.OperationFailed, why, ECONNRESET);
  }

  private shutdownSession(error: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.streamFailure = error;
    if (this.timeoutTimer) clearTimeout(this.timeoutTimer);
    this.timeoutTimer = undefined;
    this.transport.close();
    const failure = this.closedError();
    this.helloWaiter?.reject(failure);
    for (const pending of this.slots) if (pending !== undefined) this.settle(pending, undefined, failure);
    this.slots.fill(undefined);
    this.inFlightTotal = 0;
    for (let i = this.queueHead; i < this.queue.length; i++) this.settle(this.queue[i], undefined, failure);
    this.queue = [];
    this.queueHead = 0;
    this.outgoing = [];
    if (error) debug('stream %s failed: %s', this.path, error.message);
    this.emit('close', error);
  }
}

export function connect(path: string, options?: ConnectOptions): Promise<FrontendClient> {
  return FrontendClient.connect(path, options);
}

// ---------------------------------------------------------------- local checks and validation

function expectEmpty(frame: Frame): undefined {
  if (frame.payload.length !== 0) throw new XpciError(ErrorCode.Malformed, `expected an empty reply, got ${frame.payload.length} bytes`);
  return undefined;
}

function asXpciError(error: unknown): XpciError {
  return error instanceof XpciError ? error : new XpciError(ErrorCode.Malformed, (error as Error).message);
}
