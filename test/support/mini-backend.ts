/**
 * A tiny backend built from the protocol codec, for frontend tests: it serves config spaces and
 * BAR contents held in memory, so frontend tests depend on the wire contract, not on the real
 * backend. Tests shape its behaviour with `handle` (drop, delay, corrupt or replace a reply) and
 * inject raw bytes with `writeRaw`.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatAddress, packAddress, parseAddress } from '../../src/pci/address.js';
import { FrameReader } from '../../src/protocol/ring/frame.js';
import {
  decodeRequest,
  encodeBarReadReply,
  encodeConfigReadBlockReply,
  encodeConfigReadReply,
  encodeEmptyReply,
  encodeErrorReply,
  encodeEvent,
  encodeJsonReply,
  encodePingReply,
} from '../../src/protocol/ring/codec.js';
import { encodeDmaMapReply, encodeDmaReadReply } from '../../src/protocol/ring/device-ops-codec.js';
import {
  ErrorCode,
  MessageType,
  XpciError,
  type DeviceDescriptor,
  type ExportMode,
  type HelloReply,
  type Request,
} from '../../src/protocol/ring/messages.js';

export interface MiniBar {
  index: number;
  kind?: 'mem' | 'io';
  data: Buffer;
}

export interface MiniDevice {
  address: string;
  config: Uint8Array;
  bars?: MiniBar[];
  readOnly?: boolean;
  /** Listed in the handshake? Default true; false makes a device the scan finds but the list lacks. */
  listed?: boolean;
}

export interface MiniBackendOptions {
  devices: MiniDevice[];
  mode?: ExportMode;
  roots?: string[];
  /** Granted ring depth, whatever the frontend asks. Default 32. */
  ringDepth?: number;
  /**
   * Called for every decoded request with the reply the mini backend would send. Return that
   * reply, a replacement (one or more frames, or raw bytes), or null to send nothing.
   */
  handle?: (request: Request, reply: Buffer) => Buffer | Buffer[] | null;
  /** false: ConfigReadBlock is answered NotImplemented, as by a backend that predates it. */
  configReadBlock?: boolean;
  /** 'bytewise' writes replies one byte per write, each on a later loop turn. */
  chunking?: 'batched' | 'bytewise';
}

const descriptorOf = (d: MiniDevice): DeviceDescriptor => {
  const view = Buffer.from(d.config.buffer, d.config.byteOffset, d.config.byteLength);
  return {
    address: formatAddress(parseAddress(d.address)),
    vendor: view.readUInt16LE(0),
    device: view.readUInt16LE(2),
    classCode: view.readUIntLE(9, 3),
    revision: view[8],
    headerType: view[0x0e],
    configSize: d.config.length,
    readOnly: d.readOnly ?? false,
    permissive: false,
    bars: (d.bars ?? []).map((b) => ({ index: b.index, kind: b.kind ?? 'mem', is64: false, prefetchable: false, size: b.data.length })),
  };
};

export class MiniBackend {
  static async start(options: MiniBackendOptions): Promise<MiniBackend> {
    const backend = new MiniBackend(options);
    await new Promise<void>((resolve, reject) => {
      backend.server.once('error', reject);
      backend.server.listen(backend.path, () => resolve());
    });
    return backend;
  }

  readonly path: string;
  /** Every request decoded, in arrival order, over all connections. */
  readonly received: Request[] = [];
  /** Most requests received and not yet answered at any moment. */
  maxOutstanding = 0;
  connections = 0;
  private readonly dir: string;
  private readonly server: Server;
  private readonly devices = new Map<number, MiniDevice>();
  private socket: Socket | undefined;
  private outstanding = 0;

  private constructor(private readonly options: MiniBackendOptions) {
    this.dir = mkdtempSync(join(tmpdir(), 'xpci-mini-'));
    this.path = join(this.dir, 'ring.sock');
    for (const device of options.devices) this.devices.set(packAddress(parseAddress(device.address)), device);
    this.server = createServer((socket) => this.accept(socket));
  }

  helloReply(): HelloReply {
    return {
      version: 1,
      ringDepth: this.options.ringDepth ?? 32,
      maxFrame: 65536,
      mode: this.options.mode ?? 'vpci',
      roots: this.options.roots ?? ['0000:00'],
      devices: [...this.devices.values()].filter((d) => d.listed !== false).map(descriptorOf),
      server: 'mini-backend',
    };
  }

  /** Bytes straight onto the current connection: garbage, stale replies, events. */
  writeRaw(data: Buffer): void {
    this.socket?.write(data);
  }

  sendEvent(type: MessageType, body: unknown): void {
    this.writeRaw(encodeEvent(type, body));
  }

  /** Close the current frontend's connection (the server keeps listening). */
  dropConnection(): void {
    this.socket?.end();
  }

  async close(): Promise<void> {
    this.socket?.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private accept(socket: Socket): void {
    this.connections++;
    this.socket = socket;
    this.outstanding = 0;
    const reader = new FrameReader();
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      const replies: Buffer[] = [];
      let answered = 0;
      for (const item of reader.push(chunk)) {
        if (!item.frame) continue;
        let request: Request;
        try {
          request = decodeRequest(item.frame);
        } catch (error) {
          const e = error as XpciError;
          replies.push(encodeErrorReply(item.frame.type, item.frame.id, { code: e.code, errno: 0, message: e.message }));
          continue;
        }
        this.received.push(request);
        this.outstanding++;
        this.maxOutstanding = Math.max(this.maxOutstanding, this.outstanding);
        const reply = this.options.handle ? this.options.handle(request, this.answer(request)) : this.answer(request);
        answered++;
        if (reply) replies.push(...(Array.isArray(reply) ? reply : [reply]));
      }
      // Answer on a later loop turn, all at once: the frontend must cope with batched replies.
      setImmediate(() => {
        this.outstanding -= answered;
        if (replies.length > 0) this.send(socket, Buffer.concat(replies));
      });
    });
  }

  private send(socket: Socket, data: Buffer): void {
    if (this.options.chunking !== 'bytewise') {
      socket.write(data);
      return;
    }
    let at = 0;
    const next = (): void => {
      if (at >= data.length || socket.destroyed) return;
      socket.write(data.subarray(at, at + 1));
      at++;
      setTimeout(next, 1);
    };
    next();
  }

  private answer(request: Request): Buffer {
    try {
      return this.execute(request);
    } catch (error) {
      if (!(error instanceof XpciError)) throw error;
      return encodeErrorReply(request.type, request.id, { code: error.code, errno: error.errno, message: error.message });
    }
  }

  private execute(request: Request): Buffer {
    switch (request.type) {
      case MessageType.Hello:
        return encodeJsonReply(MessageType.Hello, request.id, this.helloReply());
      case MessageType.ListDevices: {
        const { devices, roots } = this.helloReply();
        return encodeJsonReply(MessageType.ListDevices, request.id, { devices, roots });
      }
      case MessageType.Ping:
        return encodePingReply(request.id, request.payload);
      case MessageType.ConfigReadBlock: {
        // false: answer as a backend older than the message does.
        if (this.options.configReadBlock === false) throw new XpciError(ErrorCode.NotImplemented, `unknown request type ${request.type}`);
        const device = this.device(request.address);
        if (request.offset + request.length > device.config.length) throw new XpciError(ErrorCode.InvalidOffset, 'block beyond config size');
        return encodeConfigReadBlockReply(request.id, device.config.subarray(request.offset, request.offset + request.length));
      }
      case MessageType.ConfigRead:
      case MessageType.ConfigWrite: {
        const device = this.device(request.address);
        const { offset, size } = request;
        if (size !== 1 && size !== 2 && size !== 4) throw new XpciError(ErrorCode.InvalidSize, `size ${size}`);
        if (offset % size !== 0) throw new XpciError(ErrorCode.Misaligned, `offset 0x${offset.toString(16)} is not aligned to ${size}`);
        if (offset + size > device.config.length) throw new XpciError(ErrorCode.InvalidOffset, `offset 0x${offset.toString(16)} beyond config size`);
        const view = Buffer.from(device.config.buffer, device.config.byteOffset, device.config.byteLength);
        if (request.type === MessageType.ConfigRead) return encodeConfigReadReply(request.id, view.readUIntLE(offset, size));
        if (device.readOnly) throw new XpciError(ErrorCode.AccessDenied, 'read-only export');
        view.writeUIntLE(request.value % 2 ** (8 * size), offset, size);
        return encodeEmptyReply(MessageType.ConfigWrite, request.id);
      }
      case MessageType.BarRead:
      case MessageType.BarWrite: {
        const device = this.device(request.address);
        if (device.readOnly) throw new XpciError(ErrorCode.AccessDenied, 'read-only export: no BAR access');
        const bar = device.bars?.find((b) => b.index === request.bar);
        if (!bar) throw new XpciError(ErrorCode.InvalidOffset, `no BAR ${request.bar}`);
        const offset = Number(request.offset);
        if (![1, 2, 4, 8].includes(request.size)) throw new XpciError(ErrorCode.InvalidSize, `size ${request.size}`);
        if (offset + request.size > bar.data.length) throw new XpciError(ErrorCode.InvalidOffset, 'beyond the BAR');
        if (request.type === MessageType.BarRead) {
          const value = request.size === 8 ? bar.data.readBigUInt64LE(offset) : BigInt(bar.data.readUIntLE(offset, request.size));
          return encodeBarReadReply(request.id, value);
        }
        if (request.size === 8) bar.data.writeBigUInt64LE(request.value, offset);
        else bar.data.writeUIntLE(Number(request.value % 2n ** BigInt(8 * request.size)), offset, request.size);
        return encodeEmptyReply(MessageType.BarWrite, request.id);
      }
      case MessageType.DmaMap: {
        this.device(request.address);
        const iova = request.iova ?? 0x10_0000n + BigInt(this.dmaWindows.size) * 0x100_0000n;
        this.dmaWindows.set(iova, Buffer.alloc(Number(request.size)));
        return encodeDmaMapReply(request.id, iova);
      }
      case MessageType.DmaUnmap:
        if (!this.dmaWindows.delete(request.iova)) throw new XpciError(ErrorCode.InvalidOffset, 'no such window');
        return encodeEmptyReply(request.type, request.id);
      case MessageType.DmaRead:
      case MessageType.DmaWrite: {
        const window = this.dmaWindows.get(request.iova);
        const length = request.type === MessageType.DmaRead ? request.length : request.data.length;
        if (!window || request.offset + BigInt(length) > BigInt(window.length)) throw new XpciError(ErrorCode.InvalidOffset, 'outside the window');
        const at = Number(request.offset);
        if (request.type === MessageType.DmaRead) return encodeDmaReadReply(request.id, window.subarray(at, at + length));
        window.set(request.data, at);
        return encodeEmptyReply(request.type, request.id);
      }
      case MessageType.InterruptUnmask:
      case MessageType.ResetDevice:
        this.device(request.address);
        return encodeEmptyReply(request.type, request.id);
    }
  }

  /** DMA windows the mini backend holds, by IOVA (plain memory: no device reaches them). */
  readonly dmaWindows = new Map<bigint, Buffer>();

  private device(address: { domain: number; bus: number; device: number; function: number }): MiniDevice {
    const device = this.devices.get(packAddress(address));
    if (!device) throw new XpciError(ErrorCode.DeviceNotFound, `no device at ${formatAddress(address)}`);
    return device;
  }
}
