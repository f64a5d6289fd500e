/**
 * A DMA window as the frontend holds it: memory in the backend, mapped into the device's IOMMU
 * address space at `iova`. The device reads and writes it by DMA at that address; the frontend
 * reads and writes it through the ring, in ops of at most `maxTransfer` bytes (MAX_DMA_TRANSFER, or
 * less when the backend's frame limit is smaller); larger calls are split here, in order.
 */
import { ErrorCode, XpciError } from '../protocol/ring/messages.js';

/** What a window needs of the client. */
export interface DmaWindowOps {
  read(iova: bigint, offset: bigint, length: number): Promise<Buffer>;
  write(iova: bigint, offset: bigint, data: Buffer): Promise<void>;
  unmap(iova: bigint): Promise<void>;
}

export class DmaWindow {
  private unmapped = false;

  constructor(private readonly ops: DmaWindowOps, readonly iova: bigint, readonly size: number, private readonly maxTransfer: number) {}

  private check(offset: number, length: number): void {
    if (this.unmapped) throw new XpciError(ErrorCode.InvalidOffset, `the DMA window at 0x${this.iova.toString(16)} is unmapped`);
    if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(length) || length < 0 || offset + length > this.size) {
      throw new XpciError(ErrorCode.InvalidOffset, `DMA window range ${offset}+${length} is outside the window of ${this.size} bytes`);
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.check(offset, length);
    const parts: Promise<Buffer>[] = [];
    for (let at = 0; at < length; at += this.maxTransfer) {
      parts.push(this.ops.read(this.iova, BigInt(offset + at), Math.min(this.maxTransfer, length - at)));
    }
    return Buffer.concat(await Promise.all(parts));
  }

  /** `data` is sent from the caller's buffer (large writes are not copied): keep it unchanged until this settles. */
  async write(offset: number, data: Uint8Array): Promise<void> {
    this.check(offset, data.length);
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const parts: Promise<void>[] = [];
    for (let at = 0; at < bytes.length; at += this.maxTransfer) {
      parts.push(this.ops.write(this.iova, BigInt(offset + at), bytes.subarray(at, Math.min(bytes.length, at + this.maxTransfer))));
    }
    await Promise.all(parts);
  }

  async unmap(): Promise<void> {
    if (this.unmapped) return;
    await this.ops.unmap(this.iova);
    this.unmapped = true;
  }
}
