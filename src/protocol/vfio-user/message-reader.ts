/**
 * Splits a vfio-user byte stream into messages and gives each one the file descriptors that arrived
 * with its bytes. A sender attaches SCM_RIGHTS to a message's first byte; a Unix stream recvmsg may
 * gather fd-less data before that byte but stops right after the data carrying the fds, so a batch of
 * fds belongs to the message holding the last byte of the chunk it came with.
 *
 * A header whose size is below the header size leaves no way to find the next message: the stream is
 * declared broken. A message above MAX_MESSAGE_SIZE is skipped (its bytes are counted, not stored)
 * and reported, so the peer gets an E2BIG reply and the stream stays in step.
 */
import { decodeHeader } from './codec.js';
import { HEADER_SIZE, MAX_MESSAGE_SIZE, type MessageHeader } from './messages.js';

export type ReaderItem =
  | { kind: 'message'; header: MessageHeader; payload: Buffer; fds: number[] }
  | { kind: 'oversized'; header: MessageHeader; fds: number[] }
  | { kind: 'broken'; reason: string; fds: number[] };

/** `at`: stream offset of the last byte of the chunk the fds came with */
interface FdBatch { at: number; fds: number[] }

export class MessageReader {
  private buffer: Buffer = Buffer.alloc(0);
  /** stream offset of buffer[0] */
  private base = 0;
  private readonly batches: FdBatch[] = [];
  /** bytes of an oversized message still to drop */
  private skipping = 0;
  private broken = false;
  private readonly discarded: number[] = [];

  constructor(private readonly maxMessageSize = MAX_MESSAGE_SIZE) {}

  /** Bytes of a message that has not fully arrived. */
  get pending(): number {
    return this.buffer.length;
  }

  push(data: Buffer, fds: readonly number[] = []): void {
    if (fds.length > 0) {
      // fds arriving inside a skipped message belong to it: they are only to be closed.
      if (this.skipping > 0) this.discarded.push(...fds);
      else this.batches.push({ at: this.base + this.buffer.length + data.length - 1, fds: [...fds] });
    }
    if (this.skipping > 0) {
      const dropped = Math.min(this.skipping, data.length);
      this.skipping -= dropped;
      this.base += dropped;
      data = data.subarray(dropped);
    }
    this.buffer = this.buffer.length === 0 ? data : Buffer.concat([this.buffer, data]);
  }

  /** The next complete item, or null until more bytes arrive. */
  next(): ReaderItem | null {
    if (this.broken || this.buffer.length < HEADER_SIZE) return null;
    const header = decodeHeader(this.buffer);
    if (header.size < HEADER_SIZE) {
      this.broken = true;
      return { kind: 'broken', reason: `message size ${header.size} is smaller than the ${HEADER_SIZE}-byte header`, fds: this.takeAll() };
    }
    if (header.size > this.maxMessageSize) {
      const fds = this.takeFds(this.base + header.size);
      const available = Math.min(this.buffer.length, header.size);
      this.skipping = header.size - available;
      this.consume(available);
      return { kind: 'oversized', header, fds };
    }
    if (this.buffer.length < header.size) return null;
    const payload = Buffer.from(this.buffer.subarray(HEADER_SIZE, header.size));
    const fds = this.takeFds(this.base + header.size);
    this.consume(header.size);
    return { kind: 'message', header, payload, fds };
  }

  /** Every fd not yet handed out (for closing when the stream ends). */
  takeAll(): number[] {
    return [...this.discarded.splice(0), ...this.batches.splice(0).flatMap((batch) => batch.fds)];
  }

  /** fds that came with the bytes of a skipped message; the caller closes them. */
  takeDiscarded(): number[] {
    return this.discarded.splice(0);
  }

  private takeFds(end: number): number[] {
    const fds: number[] = [];
    while (this.batches.length > 0 && this.batches[0].at < end) fds.push(...this.batches.shift()!.fds);
    return fds;
  }

  private consume(length: number): void {
    this.buffer = this.buffer.subarray(length);
    this.base += length;
  }
}
