/**
 * One vfio-user client of one exported device: VERSION first, then the device's commands, each
 * answered in order (a reply, or an error reply with an errno). Everything the client handed over
 * (DMA memory fds, interrupt eventfds) is owned here and closed when replaced or when the session
 * ends; DMA windows given to the host's IOMMU are unmapped then too. Nothing a client sends makes
 * this throw: a stream it cannot follow any more is closed.
 */
import { writeSync } from 'node:fs';
import { debugLog } from '../../diagnostics/debug-log.js';
import type { HostDma, HostInterrupts, InterruptKind } from '../../host/device-access.js';
import {
  decodeRequest,
  encodeDeviceInfo,
  encodeDmaAccess,
  encodeDmaUnmap,
  encodeErrorReply,
  encodeIrqInfo,
  encodeMessage,
  encodeRegionAccess,
  encodeRegionInfo,
  encodeReply,
  encodeVersion,
  errno,
  serverCapabilities,
} from '../../protocol/vfio-user/codec.js';
import { MessageReader, type ReaderItem } from '../../protocol/vfio-user/message-reader.js';
import {
  Command,
  DeviceFlags,
  DmaMapFlags,
  DmaUnmapFlags,
  IrqSetFlags,
  LIMITS,
  MessageFlags,
  PCI_IRQ_COUNT,
  PCI_REGION_COUNT,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  PciIrq,
  VfioUserError,
  type MessageHeader,
  type Request,
} from '../../protocol/vfio-user/messages.js';
import type { ExportedDevice } from '../exported-device.js';
import { DeviceRegions, errnoOf } from './device-regions.js';
import { closeQuietly, FdConnection } from './fd-connection.js';

const debug = debugLog('xpci:vfio-user');

/** What a host back end offers beyond config and BARs (VFIO); absent on sysfs and fixture devices. */
export interface HostExtras {
  interrupts?: HostInterrupts;
  /** The client has left with its interrupt routes torn down: the device routes its interrupts to itself again. */
  restoreInterrupts?(): void;
  dma?: HostDma;
  reset?(): void;
}

interface DmaWindow { address: bigint; size: bigint; fd: number | null; inHost: boolean }

const IRQ_KINDS: Partial<Record<number, InterruptKind>> = { [PciIrq.intx]: 'intx', [PciIrq.msi]: 'msi', [PciIrq.msix]: 'msix' };

export class VfioUserSession {
  private readonly reader = new MessageReader();
  private readonly connection: FdConnection;
  private readonly regions: DeviceRegions;
  private versioned = false;
  private readonly windows = new Map<bigint, DmaWindow>();
  /** eventfds per interrupt index, as the client last set them (null: unrouted) */
  private readonly eventFds = new Map<number, (number | null)[]>();
  private nextRequestId = 0x8000;
  private readonly pendingDma = new Map<number, (reply: { header: MessageHeader; payload: Buffer }) => void>();

  constructor(
    fd: number,
    private readonly device: ExportedDevice,
    private readonly host: HostExtras,
    private readonly onEnd: (reason: string) => void,
  ) {
    this.regions = new DeviceRegions(device);
    this.connection = new FdConnection(fd, LIMITS.maxMessageFds, {
      data: (data, fds, truncated) => this.receive(data, fds, truncated),
      close: (reason) => this.end(reason),
    });
  }

  close(reason: string): void {
    this.connection.close(reason);
  }

  /** Server-to-client DMA_READ, for memory the client mapped without an fd. */
  dmaRead(address: bigint, count: number): Promise<Buffer> {
    return this.dmaRequest(Command.DmaRead, encodeDmaAccess(address, count)).then(({ payload }) => payload.subarray(16, 16 + count));
  }

  dmaWrite(address: bigint, data: Buffer): Promise<void> {
    return this.dmaRequest(Command.DmaWrite, encodeDmaAccess(address, data.length, data)).then(() => undefined);
  }

  private dmaRequest(command: Command, payload: Buffer): Promise<{ header: MessageHeader; payload: Buffer }> {
    const id = this.nextRequestId;
    this.nextRequestId = this.nextRequestId === 0xffff ? 0x8000 : this.nextRequestId + 1;
    return new Promise((resolve, reject) => {
      this.pendingDma.set(id, (reply) => {
        if (reply.header.flags & MessageFlags.error) reject(new VfioUserError(reply.header.error, `${Command[command]} failed`));
        else resolve(reply);
      });
      this.connection.send(encodeMessage(id, command, MessageFlags.request, payload));
    });
  }

  private receive(data: Buffer, fds: number[], truncated: boolean): void {
    this.reader.push(data, fds);
    for (const fd of this.reader.takeDiscarded()) closeQuietly(fd);
    if (truncated) debug('a message carried more than %d fds: the excess was closed by the kernel', LIMITS.maxMessageFds);
    let item: ReaderItem | null;
    this.connection.cork();
    try {
      while (!this.connection.isClosed && (item = this.reader.next()) !== null) this.handle(item);
    } finally {
      this.connection.uncork();
    }
  }

  private handle(item: ReaderItem): void {
    if (item.kind === 'broken') {
      for (const fd of item.fds) closeQuietly(fd);
      this.connection.close(`stream out of step: ${item.reason}`);
      return;
    }
    const { header } = item;
    if (item.kind === 'oversized') {
      for (const fd of item.fds) closeQuietly(fd);
      this.answerError(header, errno.E2BIG, `message of ${header.size} bytes exceeds the limit`);
      return;
    }
    if ((header.flags & MessageFlags.typeMask) === MessageFlags.reply) {
      for (const fd of item.fds) closeQuietly(fd);
      const resolve = this.pendingDma.get(header.id);
      this.pendingDma.delete(header.id);
      if (resolve) resolve({ header, payload: item.payload });
      else debug('dropped a reply to no request (id %d)', header.id);
      return;
    }
    let request: Request;
    try {
      request = decodeRequest(header, item.payload, item.fds);
    } catch (error) {
      for (const fd of item.fds) closeQuietly(fd);
      const failure = errnoOf(error);
      this.answerError(header, failure.errno, failure.message);
      return;
    }
    let taken: readonly number[] = [];
    try {
      if (!this.versioned && request.command !== Command.Version) throw new VfioUserError(errno.EINVAL, 'VERSION must come first');
      const answer = this.serve(request);
      taken = answer.taken ?? [];
      if (!(header.flags & MessageFlags.noReply)) this.connection.send(encodeReply(header.id, header.command, answer.payload), answer.fds ?? []);
    } catch (error) {
      const failure = errnoOf(error);
      this.answerError(header, failure.errno, failure.message);
    } finally {
      for (const fd of item.fds) if (!taken.includes(fd)) closeQuietly(fd);
    }
  }

  private answerError(header: MessageHeader, code: number, message: string): void {
    debug('%s (id %d): error %d: %s', Command[header.command] ?? `command ${header.command}`, header.id, code, message);
    if (header.flags & MessageFlags.noReply) return;
    this.connection.send(encodeErrorReply(header.id, header.command, code));
  }

  /** Serve one decoded request; `taken` lists the fds the session now owns. */
  private serve(request: Request): { payload?: Buffer; fds?: number[]; taken?: number[] } {
    switch (request.command) {
      case Command.Version: {
        if (this.versioned) throw new VfioUserError(errno.EINVAL, 'VERSION was already negotiated');
        this.versioned = true;
        debug('VERSION %d.%d from the client, capabilities %o', request.major, request.minor, request.capabilities);
        return { payload: encodeVersion(PROTOCOL_MAJOR, Math.min(PROTOCOL_MINOR, request.minor), serverCapabilities()) };
      }
      case Command.DeviceGetInfo:
        return { payload: encodeDeviceInfo(DeviceFlags.pci | (this.host.reset ? DeviceFlags.reset : 0), PCI_REGION_COUNT, PCI_IRQ_COUNT) };
      case Command.DeviceGetRegionInfo: {
        const { info, fd } = this.regions.regionInfo(request.index);
        return { payload: encodeRegionInfo(request.argsz, info), fds: fd === null ? [] : [fd] };
      }
      case Command.DeviceGetIrqInfo: {
        const { flags, count } = this.regions.irqInfo(request.index);
        return { payload: encodeIrqInfo(request.index, flags, count) };
      }
      case Command.DeviceSetIrqs:
        return { taken: this.setIrqs(request) };
      case Command.RegionRead:
        return { payload: encodeRegionAccess(request.region, request.offset, request.count, this.regions.read(request.region, request.offset, request.count)) };
      case Command.RegionWrite:
        this.regions.write(request.region, request.offset, request.data);
        return { payload: encodeRegionAccess(request.region, request.offset, request.count) };
      case Command.DmaMap:
        return { taken: this.dmaMap(request) };
      case Command.DmaUnmap:
        this.dmaUnmap(request);
        return { payload: encodeDmaUnmap(request.flags, request.address, request.size) };
      case Command.DeviceReset:
        if (!this.host.reset) throw new VfioUserError(errno.ENOTSUP, 'this device has no reset');
        this.host.reset();
        return {};
    }
  }

  private setIrqs(request: Extract<Request, { command: Command.DeviceSetIrqs }>): number[] {
    const { index, start, count, flags } = request;
    const available = this.regions.irqInfo(index).count;
    const disableAll = count === 0 && (flags & IrqSetFlags.dataNone) !== 0;
    if (!disableAll && start + count > available) {
      throw new VfioUserError(errno.EINVAL, `interrupt index ${index} has ${available} vectors; ${start}+${count} asked`);
    }
    const kind = IRQ_KINDS[index];
    const interrupts = this.host.interrupts;
    if (flags & IrqSetFlags.actionTrigger) {
      if (flags & IrqSetFlags.dataEventfd) {
        const vectors = this.eventFds.get(index) ?? [];
        for (let i = 0; i < count; i++) {
          const old = vectors[start + i];
          if (old !== undefined && old !== null) closeQuietly(old);
          vectors[start + i] = request.fds[i] ?? null;
        }
        this.eventFds.set(index, vectors);
        if (interrupts && kind) interrupts.attachEventFds(kind, start, Array.from({ length: count }, (_, i) => request.fds[i] ?? -1));
        return request.fds;
      }
      if (disableAll) {
        for (const fd of this.eventFds.get(index) ?? []) if (fd !== null) closeQuietly(fd);
        this.eventFds.delete(index);
        if (interrupts && kind) interrupts.disable(kind);
        return [];
      }
      // DATA_NONE/BOOL trigger: the client raising the device's interrupt itself (a loopback test).
      const vectors = this.eventFds.get(index) ?? [];
      for (let i = 0; i < count; i++) {
        const fd = vectors[start + i];
        if ((request.bools === null || request.bools[i] === 1) && fd !== undefined && fd !== null) signalEventFd(fd);
      }
      return [];
    }
    // Mask and unmask: INTx through the host when it has interrupts; accepted as no-ops otherwise.
    if (flags & IrqSetFlags.dataEventfd) throw new VfioUserError(errno.ENOTSUP, 'mask/unmask eventfds are not supported');
    if (interrupts && kind) {
      for (let i = 0; i < count; i++) {
        if (request.bools === null || request.bools[i] === 1) interrupts.mask(kind, start + i, (flags & IrqSetFlags.actionMask) !== 0);
      }
    }
    return [];
  }

  private dmaMap(request: Extract<Request, { command: Command.DmaMap }>): number[] {
    if (this.windows.size >= LIMITS.maxDmaMaps) throw new VfioUserError(errno.ENOSPC, `more than ${LIMITS.maxDmaMaps} DMA windows`);
    const end = request.address + request.size;
    for (const window of this.windows.values()) {
      if (request.address < window.address + window.size && window.address < end) {
        throw new VfioUserError(errno.EEXIST, `DMA window 0x${request.address.toString(16)}+0x${request.size.toString(16)} overlaps one already mapped`);
      }
    }
    const window: DmaWindow = { address: request.address, size: request.size, fd: request.fd, inHost: false };
    if (request.fd !== null && this.host.dma) {
      if (request.size > BigInt(Number.MAX_SAFE_INTEGER)) throw new VfioUserError(errno.EINVAL, 'DMA window too large');
      this.host.dma.map(request.address, Number(request.size), { fd: request.fd, offset: request.offset },
        { read: (request.flags & DmaMapFlags.read) !== 0, write: (request.flags & DmaMapFlags.write) !== 0 });
      window.inHost = true;
    }
    this.windows.set(request.address, window);
    debug('DMA_MAP 0x%s+0x%s: %s', request.address.toString(16), request.size.toString(16), window.inHost ? "in the device's IOMMU" : 'recorded (served with DMA_READ/DMA_WRITE)');
    return request.fd === null ? [] : [request.fd];
  }

  private dmaUnmap(request: Extract<Request, { command: Command.DmaUnmap }>): void {
    if (request.flags & DmaUnmapFlags.all) {
      for (const window of [...this.windows.values()]) this.dropWindow(window);
      return;
    }
    const window = this.windows.get(request.address);
    if (window === undefined || window.size !== request.size) {
      throw new VfioUserError(errno.ENOENT, `no DMA window at 0x${request.address.toString(16)} of size 0x${request.size.toString(16)}`);
    }
    this.dropWindow(window);
  }

  private dropWindow(window: DmaWindow): void {
    this.windows.delete(window.address);
    if (window.inHost) this.host.dma?.unmap(window.address, Number(window.size));
    if (window.fd !== null) closeQuietly(window.fd);
  }

  private end(reason: string): void {
    debug('client gone: %s', reason);
    const attempt = (step: () => void): void => {
      try {
        step();
      } catch (error) {
        debug('cleanup after the client: %s', (error as Error).message);
      }
    };
    for (const window of [...this.windows.values()]) attempt(() => this.dropWindow(window));
    for (const [index, fds] of this.eventFds) {
      const kind = IRQ_KINDS[index];
      if (kind && this.host.interrupts) attempt(() => this.host.interrupts!.disable(kind));
      for (const fd of fds) if (fd !== null) closeQuietly(fd);
    }
    if (this.eventFds.size > 0 && this.host.restoreInterrupts) attempt(() => this.host.restoreInterrupts!());
    this.eventFds.clear();
    for (const fd of this.reader.takeAll()) closeQuietly(fd);
    for (const resolve of this.pendingDma.values()) resolve({ header: { id: 0, command: 0, size: 16, flags: MessageFlags.reply | MessageFlags.error, error: errno.ENOTCONN }, payload: Buffer.alloc(0) });
    this.pendingDma.clear();
    this.onEnd(reason);
  }
}

/** Raise an eventfd by writing its 8-byte counter increment. */
function signalEventFd(fd: number): void {
  const one = Buffer.alloc(8);
  one.writeBigUInt64LE(1n);
  try {
    writeSync(fd, one);
  } catch (error) {
    debug('signalling eventfd %d failed: %s', fd, (error as Error).message);
  }
}
