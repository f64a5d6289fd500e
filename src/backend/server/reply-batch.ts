/**
 * The replies to one received chunk, written one after another into one buffer as they are
 * produced: one allocation per chunk instead of a Buffer per reply plus a concat, and one socket
 * write. ConfigRead replies (the hot path) are encoded in place; other replies are copied in.
 * Each taken buffer is new: the socket may still hold the previous one.
 */
import { writeConfigReadReply } from '../../protocol/ring/codec.js';
import { CONFIG_READ_REPLY_FRAME } from '../../protocol/ring/layout.js';

/** A first allocation never exceeds this (a full ring of ConfigRead replies fits): a chunk of garbage gets one short reply. */
const MAX_FIRST_ALLOCATION = 8192;

export class ReplyBatch {
  private buffer: Buffer | null = null;
  private used = 0;
  /** Expected bytes of replies (the received bytes are a good guess: most replies are shorter than their request). */
  private expected = 0;

  /** Start a batch; nothing is allocated until the first reply. */
  begin(expectedBytes: number): void {
    this.buffer = null;
    this.used = 0;
    this.expected = Math.min(expectedBytes, MAX_FIRST_ALLOCATION);
  }

  configReadReply(id: number, value: number): void {
    const length = CONFIG_READ_REPLY_FRAME.frameLength;
    const target = this.room(length);
    writeConfigReadReply(target, this.used, id, value);
    this.used += length;
  }

  append(frame: Buffer): void {
    const target = this.room(frame.length);
    frame.copy(target, this.used);
    this.used += frame.length;
  }

  /** Every reply of the batch, or null when there is none; the batch is empty afterwards. */
  take(): Buffer | null {
    const taken = this.buffer === null ? null : this.buffer.subarray(0, this.used);
    this.buffer = null;
    this.used = 0;
    return taken;
  }

  /** The buffer, with at least `bytes` free after `used`. */
  private room(bytes: number): Buffer {
    const buffer = this.buffer;
    if (buffer !== null && this.used + bytes <= buffer.length) return buffer;
    const grown = Buffer.allocUnsafe(Math.max(this.used + bytes, 2 * (buffer?.length ?? 0), this.expected));
    if (buffer !== null) buffer.copy(grown, 0, 0, this.used);
    this.buffer = grown;
    return grown;
  }
}
