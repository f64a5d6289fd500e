/**
 * One exported device seen through the ring, behind the same ConfigReader/ConfigWriter interface
 * as a local sysfs device, so src/pci's lspci printer and capability walker run on it unchanged.
 */
import type { PciAddress } from '../pci/address.js';
import { naturalWidth, type ConfigWidth, type ConfigWriter } from '../pci/config-reader.js';
import { MAX_CONFIG_BLOCK } from '../protocol/ring/limits.js';
import { ErrorCode, XpciError, type DeviceDescriptor, type InterruptKind, type InterruptRecord } from '../protocol/ring/messages.js';
import type { FrontendClient } from './client.js';
import { DmaWindow } from './dma-window.js';

/** Conventional config space: what any PCI function has, when the backend did not describe it. */
const CONVENTIONAL_CONFIG_SIZE = 256;

export class RemoteDevice implements ConfigWriter {
  constructor(private readonly client: FrontendClient, readonly address: PciAddress) {}

  /** The handshake's description, or undefined for a function the backend did not list. */
  get descriptor(): DeviceDescriptor | undefined {
    return this.client.device(this.address);
  }

  get configSize(): number {
    return this.descriptor?.configSize ?? CONVENTIONAL_CONFIG_SIZE;
  }

  read(offset: number, width: ConfigWidth): Promise<number> {
    return this.client.configRead(this.address, offset, width);
  }

  /**
   * A range of config space in as few requests as the backend allows: ConfigReadBlocks, or single
   * reads from a backend that does not know them (remembered for the session).
   */
  async readBlock(offset: number, length: number): Promise<Uint8Array> {
    if (!this.client.configReadBlockUnsupported) {
      try {
        const pieces: Promise<Buffer>[] = [];
        for (let at = offset; at < offset + length; at += MAX_CONFIG_BLOCK) {
          pieces.push(this.client.configReadBlock(this.address, at, Math.min(MAX_CONFIG_BLOCK, offset + length - at)));
        }
        const bytes = Buffer.concat(await Promise.all(pieces));
        return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
      } catch (error) {
        if (!(error instanceof XpciError && error.code === ErrorCode.NotImplemented)) throw error;
        this.client.configReadBlockUnsupported = true;
      }
    }
    // The same pieces a backend reads a block in, so any range (aligned or not) reads alike both ways.
    const bytes = new Uint8Array(length);
    const reads: Promise<void>[] = [];
    for (let at = offset; at < offset + length;) {
      const width = naturalWidth(at, offset + length - at);
      const into = at - offset;
      reads.push(this.read(at, width).then((value) => {
        for (let i = 0; i < width; i++) bytes[into + i] = (value >>> (8 * i)) & 0xff;
      }));
      at += width;
    }
    await Promise.all(reads);
    return bytes;
  }

  write(offset: number, width: ConfigWidth, value: number): Promise<void> {
    return this.client.configWrite(this.address, offset, width, value);
  }

  barRead(bar: number, offset: number | bigint, size: number): Promise<bigint> {
    return this.client.barRead(this.address, bar, offset, size);
  }

  barWrite(bar: number, offset: number | bigint, size: number, value: number | bigint): Promise<void> {
    return this.client.barWrite(this.address, bar, offset, size, value);
  }

  /** A DMA window of `size` bytes (a multiple of 4096) the device reaches at the returned `iova`. */
  async mapDma(size: number, options: { iova?: bigint } = {}): Promise<DmaWindow> {
    const iova = await this.client.dmaMap(this.address, size, options.iova);
    const { client, address } = this;
    return new DmaWindow({
      read: (at, offset, length) => client.dmaRead(address, at, offset, length),
      write: (at, offset, data) => client.dmaWrite(address, at, offset, data),
      unmap: (at) => client.dmaUnmap(address, at),
    }, iova, size, this.client.maxDmaTransfer);
  }

  /** The next interrupt (of `kind`/`vector` when given) not yet taken, within `timeoutMs`. */
  waitForInterrupt(options: { kind?: InterruptKind; vector?: number; timeoutMs: number }): Promise<InterruptRecord> {
    const { timeoutMs, ...filter } = options;
    return this.client.waitForInterrupt(this.address, filter, timeoutMs);
  }

  /** INTx: let the auto-masked line fire again once the device is serviced. */
  unmaskInterrupt(): Promise<void> {
    return this.client.interruptUnmask(this.address, 'intx', 0);
  }

  /** Reset the function (FLR, PM or bus reset as the host kernel decides). */
  reset(): Promise<void> {
    return this.client.resetDevice(this.address);
  }
}
