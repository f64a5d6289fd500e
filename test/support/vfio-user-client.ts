/**
 * A vfio-user client written from the spec (docs/interop/vfio-user.rst), for conformance tests and
 * the bench: requests are pipelined (any number in flight, matched by message id), fds travel with
 * SCM_RIGHTS through the addon, and server-to-client DMA_READ/DMA_WRITE are answered from a local
 * buffer per fd-less DMA window. Not a product feature.
 */
import { native } from '../../src/native/binding.js';
import { closeQuietly, FdConnection } from '../../src/backend/vfio-user/fd-connection.js';
import {
  decodeRegionInfo,
  encodeDmaMap,
  encodeDmaUnmap,
  encodeErrorReply,
  encodeIrqInfo,
  encodeMessage,
  encodeRegionAccess,
  encodeReply,
  encodeSetIrqs,
  encodeVersion,
  errno,
} from '../../src/protocol/vfio-user/codec.js';
import { MessageReader } from '../../src/protocol/vfio-user/message-reader.js';
import { Command, MessageFlags, PAYLOAD, VfioUserError, type MessageHeader, type RegionInfo } from '../../src/protocol/vfio-user/messages.js';

export interface Reply { header: MessageHeader; payload: Buffer; fds: number[] }

export class VfioUserClient {
  private readonly reader = new MessageReader(64 * 1024 * 1024);
  private readonly connection: FdConnection;
  private readonly pending = new Map<number, { resolve(reply: Reply): void; reject(error: Error): void }>();
  private nextId = 1;
  private closedReason: string | null = null;
  /** fd-less DMA windows the server reaches with DMA_READ/DMA_WRITE */
  readonly dmaMemory = new Map<bigint, Buffer>();
  readonly closed: Promise<string>;
  private resolveClosed!: (reason: string) => void;

  private constructor(fd: number) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.connection = new FdConnection(fd, 16, {
      data: (data, fds) => this.receive(data, fds),
      close: (reason) => this.gone(reason),
    });
  }

  static connect(path: string): VfioUserClient {
    return new VfioUserClient(native().connectUnixStream(path));
  }

  /** Send one raw message (any header) and wait for the reply with its id. */
  send(message: Buffer, fds: readonly number[] = []): Promise<Reply> {
    if (this.closedReason !== null) return Promise.reject(new Error(`connection closed: ${this.closedReason}`));
    const id = message.readUInt16LE(0);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.connection.send(message, fds);
    });
  }

  /** A command; an error reply rejects with VfioUserError(errno). */
  async request(command: Command, payload?: Buffer, fds: readonly number[] = []): Promise<Reply> {
    const id = this.nextId;
    this.nextId = (this.nextId + 1) & 0x7fff || 1;
    const reply = await this.send(encodeMessage(id, command, MessageFlags.request, payload), fds);
    if (reply.header.flags & MessageFlags.error) throw new VfioUserError(reply.header.error, `${Command[command]}: errno ${reply.header.error}`);
    return reply;
  }

  async version(capabilities: object = { capabilities: { max_msg_fds: 16 } }): Promise<{ major: number; minor: number; capabilities: unknown }> {
    const json = Buffer.concat([Buffer.from(JSON.stringify(capabilities)), Buffer.from([0])]);
    const { payload } = await this.request(Command.Version, encodeVersion(0, 0, json));
    const text = payload.subarray(4, payload.length - 1).toString('utf8');
    return { major: payload.readUInt16LE(0), minor: payload.readUInt16LE(2), capabilities: JSON.parse(text) };
  }

  async deviceInfo(): Promise<{ flags: number; regions: number; irqs: number }> {
    const request = Buffer.alloc(PAYLOAD.deviceInfo);
    request.writeUInt32LE(PAYLOAD.deviceInfo, 0);
    const { payload } = await this.request(Command.DeviceGetInfo, request);
    return { flags: payload.readUInt32LE(4), regions: payload.readUInt32LE(8), irqs: payload.readUInt32LE(12) };
  }

  /** As QEMU does: ask with the fixed size, ask again with the argsz the server says it needs. */
  async regionInfo(index: number): Promise<RegionInfo & { fd: number | null }> {
    let argsz: number = PAYLOAD.regionInfo;
    for (;;) {
      const request = Buffer.alloc(PAYLOAD.regionInfo);
      request.writeUInt32LE(argsz, 0);
      request.writeUInt32LE(index, 8);
      const reply = await this.request(Command.DeviceGetRegionInfo, request);
      const info = decodeRegionInfo(reply.payload);
      if (info.argsz > argsz) {
        for (const fd of reply.fds) closeQuietly(fd);
        argsz = info.argsz;
        continue;
      }
      return { ...info, fd: reply.fds[0] ?? null };
    }
  }

  async irqInfo(index: number): Promise<{ flags: number; count: number }> {
    const { payload } = await this.request(Command.DeviceGetIrqInfo, encodeIrqInfo(index, 0, 0));
    return { flags: payload.readUInt32LE(4), count: payload.readUInt32LE(12) };
  }

  setIrqs(flags: number, index: number, start: number, count: number, fds: readonly number[] = [], bools?: Buffer): Promise<Reply> {
    return this.request(Command.DeviceSetIrqs, encodeSetIrqs(flags, index, start, count, bools), fds);
  }

  async regionRead(region: number, offset: bigint, count: number): Promise<Buffer> {
    const { payload } = await this.request(Command.RegionRead, encodeRegionAccess(region, offset, count));
    return payload.subarray(PAYLOAD.regionAccess);
  }

  async regionWrite(region: number, offset: bigint, data: Buffer): Promise<void> {
    await this.request(Command.RegionWrite, encodeRegionAccess(region, offset, data.length, data));
  }

  /** Map guest memory: with an fd (the server maps it) or without (served by DMA_READ/WRITE from `memory`). */
  async dmaMap(address: bigint, size: bigint, flags: number, memory: { fd: number; offset: bigint } | Buffer): Promise<void> {
    if (Buffer.isBuffer(memory)) {
      this.dmaMemory.set(address, memory);
      await this.request(Command.DmaMap, encodeDmaMap(flags, 0n, address, size));
    } else {
      await this.request(Command.DmaMap, encodeDmaMap(flags, memory.offset, address, size), [memory.fd]);
    }
  }

  async dmaUnmap(address: bigint, size: bigint, flags = 0): Promise<void> {
    await this.request(Command.DmaUnmap, encodeDmaUnmap(flags, address, size));
    this.dmaMemory.delete(address);
  }

  async reset(): Promise<void> {
    await this.request(Command.DeviceReset);
  }

  close(): void {
    this.connection.close('client closed', true);
    this.gone('client closed');
  }

  private receive(data: Buffer, fds: number[]): void {
    this.reader.push(data, fds);
    let item;
    while ((item = this.reader.next()) !== null) {
      if (item.kind !== 'message') {
        this.connection.close(`bad stream from the server: ${item.kind}`);
        return;
      }
      const { header, payload } = item;
      if ((header.flags & MessageFlags.typeMask) === MessageFlags.request) {
        this.serveDma(header, payload);
        continue;
      }
      const waiter = this.pending.get(header.id);
      this.pending.delete(header.id);
      if (waiter) waiter.resolve({ header, payload, fds: item.fds });
      else for (const fd of item.fds) closeQuietly(fd);
    }
  }

  private serveDma(header: MessageHeader, payload: Buffer): void {
    const fail = (code: number): void => this.connection.send(encodeErrorReply(header.id, header.command, code));
    if ((header.command !== Command.DmaRead && header.command !== Command.DmaWrite) || payload.length < PAYLOAD.dmaAccess) return fail(errno.EINVAL);
    const address = payload.readBigUInt64LE(0);
    const count = Number(payload.readBigUInt64LE(8));
    for (const [base, memory] of this.dmaMemory) {
      if (address >= base && address + BigInt(count) <= base + BigInt(memory.length)) {
        const at = Number(address - base);
        if (header.command === Command.DmaRead) {
          this.connection.send(encodeReply(header.id, header.command, Buffer.concat([payload.subarray(0, PAYLOAD.dmaAccess), memory.subarray(at, at + count)])));
        } else {
          payload.copy(memory, at, PAYLOAD.dmaAccess, PAYLOAD.dmaAccess + count);
          this.connection.send(encodeReply(header.id, header.command, payload.subarray(0, PAYLOAD.dmaAccess)));
        }
        return;
      }
    }
    fail(errno.EFAULT);
  }

  private gone(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    for (const waiter of this.pending.values()) waiter.reject(new Error(`connection closed: ${reason}`));
    this.pending.clear();
    this.resolveClosed(reason);
  }
}
