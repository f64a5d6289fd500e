/**
 * The frontend client: one session with a backend over a Transport.
 *
 * - Handshake: Hello is retried on timeout, because on a virtio-serial port the host side may still
 *   hold a partial frame from a previous frontend that died mid-write; replies to ids this session
 *   does not know (a previous session's leftovers) are dropped.
 * - Pipelining: up to the negotiated ring depth in flight, the rest waits in a local FIFO.
 * - Frames produced in one synchronous run are written together (one write per microtask turn).
 * - Every request has a deadline; a failed request rejects with an XpciError carrying the protocol
 *   error code, so a failed read never yields a value.
 */
import { EventEmitter } from 'node:events';
import { constants as osConstants } from 'node:os';
import { randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import createDebug from 'debug';
import { packAddress, parseAddress, type PciAddress } from '../pci/address.js';
import { FrameReader, type Frame } from '../protocol/ring/frame.js';
import {
  decodeBarReadReply,
  decodeConfigReadReply,
  decodeDeviceRemoved,
  decodeJsonPayload,
  encodeRequest,
  errorFromReply,
  isErrorReply,
  MAX_ERROR_MESSAGE,
} from '../protocol/ring/codec.js';
import {
  DEFAULT_RING_DEPTH,
  ErrorCode,
  FrameFlags,
  MAX_FRAME,
  MessageType,
  SUPPORTED_VERSIONS,
  XpciError,
  errorCodeName,
  type DeviceDescriptor,
  type ExportMode,
  type HelloReply,
  type Request,
} from '../protocol/ring/messages.js';
import { validateDescriptor, validateDeviceList, validateHelloReply, type DeviceList } from '../protocol/ring/hello.js';
import { printablePeerText } from '../protocol/ring/peer-text.js';
import { openTransport } from './open-transport.js';
import type { Transport } from './transport.js';
import { formatRequestLog, requestDebug, type RequestLogEntry } from './request-log.js';
import { RemoteDevice } from './remote-device.js';

const debug = createDebug('xpci:frontend');

export interface ConnectOptions {
  /** Ring depth asked for in Hello; the backend's answer is what is used. Default 64. */
  ringDepth?: number;
  /** Name sent in Hello, shown in the backend's logs. */
  client?: string;
  /** Per-request deadline, counted from when the request is written. Default 5000 ms. */
  requestTimeoutMs?: number;
  /**
   * Wait for a Hello reply before each attempt is given up: the first entry for the first Hello,
   * and so on. Default [1000, 2500, 2500]: after the first second, gaps longer than the backend's
   * 2 s idle-partial-frame discard (docs/protocol.md §9), so a Hello swallowed by a dead
   * predecessor's partial frame is followed by one the backend frames correctly.
   */
  helloTimeoutsMs?: number[];
  /** --verbose-request: receives one line per finished request (DEBUG=xpci:request logs them too). */
  logRequest?: (line: string) => void;
}

export interface FrontendEvents {
  deviceAdded: [device: DeviceDescriptor];
  deviceRemoved: [address: PciAddress];
  /** The backend is shutting down; it closes the stream next. */
  shutdown: [reason: string];
  /** The session ended; `error` is set when the stream failed rather than being closed by either side. */
  close: [error?: Error];
}

export type { DeviceList };

interface PendingRequest {
  id: number;
  type: MessageType;
  frame: Buffer;
  deadline: number;
  decode: (frame: Frame) => unknown;
  resolve: (value: any) => void;
  reject: (error: Error) => void;
  log: RequestLogEntry | undefined;
}

const ETIMEDOUT = osConstants.errno.ETIMEDOUT;
const ECONNRESET = osConstants.errno.ECONNRESET;

function descriptorKey(device: DeviceDescriptor): number {
  return packAddress(parseAddress(device.address));
}

export class FrontendClient extends EventEmitter<FrontendEvents> {
  /** Connect, handshake, and resolve once the backend has answered Hello. */
  static async connect(path: string, options: ConnectOptions = {}): Promise<FrontendClient> {
    return FrontendClient.open(await openTransport(path), options);
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
  /** Insertion order is send order, and all deadlines are equal, so the first entry expires first. */
  private readonly inFlight = new Map<number, PendingRequest>();
  private queue: PendingRequest[] = [];
  private queueHead = 0;
  private outgoing: Buffer[] = [];
  private flushScheduled = false;
  private timeoutTimer: NodeJS.Timeout | undefined;
  private nextId: number;
  private ready = false;
  private closed = false;
  private shutdownReason: string | undefined;
  /** Busy or PermissionDenied: the backend refused this connection and is closing it. */
  private refusal: XpciError | undefined;
  private readonly helloIds = new Set<number>();
  private helloWaiter: { resolve: (frame: Frame) => void; reject: (error: Error) => void } | undefined;
  private readonly requestTimeoutMs: number;
  private readonly logRequest: ((line: string) => void) | undefined;

  private constructor(private readonly transport: Transport, private readonly options: ConnectOptions) {
    super();
    this.requestTimeoutMs = options.requestTimeoutMs ?? 5000;
    this.logRequest = options.logRequest;
    // A random start keeps this session's ids apart from a previous session's late replies.
    this.nextId = randomInt(1, 0x7fffffff);
    transport.on('data', (chunk) => this.onData(chunk));
    transport.on('close', (error) => this.shutdownSession(error));
  }

  get path(): string {
    return this.transport.path;
  }

  /** Requests written and not yet answered. */
  get inFlightCount(): number {
    return this.inFlight.size;
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
    const invalid = checkConfigTarget(offset, size);
    if (invalid) return Promise.reject(invalid);
    return this.request<number>(
      { type: MessageType.ConfigRead, id: 0, address, offset, size },
      decodeConfigReadReply,
      { type: MessageType.ConfigRead, address, offset, size },
    );
  }

  configWrite(address: PciAddress, offset: number, size: number, value: number): Promise<void> {
    const invalid = checkConfigTarget(offset, size) ?? (Number.isInteger(value) && value >= 0 && value <= 0xffffffff ? undefined
      : new XpciError(ErrorCode.Malformed, `config write value ${value} is not a 32-bit unsigned integer`));
    if (invalid) return Promise.reject(invalid);
    return this.request<void>(
      { type: MessageType.ConfigWrite, id: 0, address, offset, size, value },
      expectEmpty,
      { type: MessageType.ConfigWrite, address, offset, size, value },
    );
  }

  barRead(address: PciAddress, bar: number, offset: number | bigint, size: number): Promise<bigint> {
    const at = BigInt(offset);
    const invalid = checkBarTarget(bar, at, size);
    if (invalid) return Promise.reject(invalid);
    return this.request<bigint>(
      { type: MessageType.BarRead, id: 0, address, bar, offset: at, size },
      decodeBarReadReply,
      { type: MessageType.BarRead, address, bar, offset: at, size },
    );
  }

  barWrite(address: PciAddress, bar: number, offset: number | bigint, size: number, value: number | bigint): Promise<void> {
    const at = BigInt(offset);
    const v = BigInt(value);
    const invalid = checkBarTarget(bar, at, size) ?? (v >= 0n && v <= 0xffffffffffffffffn ? undefined
      : new XpciError(ErrorCode.Malformed, `BAR write value ${v} is not a 64-bit unsigned integer`));
    if (invalid) return Promise.reject(invalid);
    return this.request<void>(
      { type: MessageType.BarWrite, id: 0, address, bar, offset: at, size, value: v },
      expectEmpty,
      { type: MessageType.BarWrite, address, bar, offset: at, size, value: v },
    );
  }

  /** Ask the backend for the current device list; also refreshes devices() and roots. */
  async listDevices(): Promise<DeviceList> {
    const list = await this.request<DeviceList>(
      { type: MessageType.ListDevices, id: 0 },
      (frame) => validateDeviceList(decodeJsonPayload<DeviceList>(frame, 'ListDevices reply')),
      { type: MessageType.ListDevices },
    );
    this.deviceMap.clear();
    for (const device of list.devices) this.deviceMap.set(descriptorKey(device), device);
    this.roots = list.roots;
    return list;
  }

  /** Round trip with an echoed payload. */
  ping(payload: Buffer = Buffer.alloc(0)): Promise<Buffer> {
    return this.request<Buffer>({ type: MessageType.Ping, id: 0, payload }, (frame) => Buffer.from(frame.payload), { type: MessageType.Ping });
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
    const waits = this.options.helloTimeoutsMs?.length ? this.options.helloTimeoutsMs : [1000, 2500, 2500];
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
      const id = this.allocateId();
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
    for (const device of reply.devices) this.deviceMap.set(descriptorKey(device), device);
    this.ready = true;
    debug('session with %s: version %d, ring depth %d, mode %s, roots %s, %d devices',
      this.path, this.version, this.ringDepth, this.mode, this.roots.join(' '), this.deviceMap.size);
  }

  // ---------------------------------------------------------------- requests

  private allocateId(): number {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    return id;
  }

  private request<T>(request: Request, decode: (frame: Frame) => unknown, log: RequestLogEntry): Promise<T> {
    if (this.closed || !this.ready) return Promise.reject(this.closedError());
    return new Promise<T>((resolve, reject) => {
      const id = this.allocateId();
      request.id = id;
      const pending: PendingRequest = {
        id, type: request.type, frame: encodeRequest(request), deadline: 0, decode, resolve, reject,
        log: this.logRequest || requestDebug.enabled ? log : undefined,
      };
      if (this.inFlight.size < this.ringDepth) this.send(pending);
      else this.queue.push(pending);
    });
  }

  private send(pending: PendingRequest): void {
    pending.deadline = performance.now() + this.requestTimeoutMs;
    this.inFlight.set(pending.id, pending);
    this.outgoing.push(pending.frame);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
    if (!this.timeoutTimer) this.armTimeout(this.requestTimeoutMs);
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.outgoing.length === 0 || this.closed) return;
    const data = this.outgoing.length === 1 ? this.outgoing[0] : Buffer.concat(this.outgoing);
    this.outgoing = [];
    this.transport.write(data);
  }

  private pump(): void {
    while (this.queueHead < this.queue.length && this.inFlight.size < this.ringDepth) {
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

  private expire(): void {
    this.timeoutTimer = undefined;
    const now = performance.now();
    for (const pending of this.inFlight.values()) {
      if (pending.deadline > now) {
        this.armTimeout(pending.deadline - now);
        break;
      }
      this.inFlight.delete(pending.id);
      // The slot is given back: a backend that has not answered in this long has dropped the request.
      this.settle(pending, undefined, new XpciError(ErrorCode.OperationFailed,
        `${MessageType[pending.type]} request timed out after ${this.requestTimeoutMs} ms`, ETIMEDOUT));
    }
    this.pump();
  }

  private settle(pending: PendingRequest, value: unknown, error: XpciError | undefined): void {
    if (pending.log) {
      const result = typeof value === 'number' || typeof value === 'bigint' ? value : undefined;
      const line = formatRequestLog(pending.id, pending.log, { result, error });
      requestDebug(line);
      this.logRequest?.(line);
    }
    if (error) pending.reject(error);
    else pending.resolve(value);
  }

  // ---------------------------------------------------------------- incoming

  private onData(chunk: Buffer): void {
    for (const item of this.reader.push(chunk)) {
      if (item.fault) debug('skipped %d bytes from %s: %s (%s)', item.fault.skipped, this.path, item.fault.reason, item.fault.detail);
      else this.onFrame(item.frame);
    }
    this.pump();
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
    const pending = this.inFlight.get(frame.id);
    // Error replies to requests the backend could not frame carry type 0.
    if (!pending || (frame.type !== pending.type && !(isErrorReply(frame) && frame.type === 0))) {
      debug('ignored a reply for unknown request id %d (type %d): stale or timed out', frame.id, frame.type);
      return;
    }
    this.inFlight.delete(frame.id);
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
    const why = this.shutdownReason ? `the backend shut down: ${this.shutdownReason}` : 'the connection is closed';
    return new XpciError(ErrorCode.OperationFailed, why, ECONNRESET);
  }

  private shutdownSession(error: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timeoutTimer) clearTimeout(this.timeoutTimer);
    this.timeoutTimer = undefined;
    this.transport.close();
    const failure = this.closedError();
    this.helloWaiter?.reject(failure);
    for (const pending of this.inFlight.values()) this.settle(pending, undefined, failure);
    this.inFlight.clear();
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

/** Only what the wire format cannot carry is refused here; the backend judges everything else. */
function checkConfigTarget(offset: number, size: number): XpciError | undefined {
  if (!Number.isInteger(offset) || offset < 0 || offset > 0xffff) return new XpciError(ErrorCode.InvalidOffset, `config offset ${offset} is outside 0..0xffff`);
  if (!Number.isInteger(size) || size < 1 || size > 0xff) return new XpciError(ErrorCode.InvalidSize, `config access size ${size} is invalid`);
  return undefined;
}

function checkBarTarget(bar: number, offset: bigint, size: number): XpciError | undefined {
  if (!Number.isInteger(bar) || bar < 0 || bar > 0xff) return new XpciError(ErrorCode.Malformed, `BAR index ${bar} is invalid`);
  if (offset < 0n || offset > 0xffffffffffffffffn) return new XpciError(ErrorCode.InvalidOffset, `BAR offset ${offset} is outside 64 bits`);
  if (!Number.isInteger(size) || size < 1 || size > 0xff) return new XpciError(ErrorCode.InvalidSize, `BAR access size ${size} is invalid`);
  return undefined;
}

function expectEmpty(frame: Frame): undefined {
  if (frame.payload.length !== 0) throw new XpciError(ErrorCode.Malformed, `expected an empty reply, got ${frame.payload.length} bytes`);
  return undefined;
}

function asXpciError(error: unknown): XpciError {
  return error instanceof XpciError ? error : new XpciError(ErrorCode.Malformed, (error as Error).message);
}
