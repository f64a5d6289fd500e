/**
 * Framing over a reliable byte stream (Unix socket or virtio-serial port): no message boundaries,
 * arbitrary fragmentation, possibly garbage. The magic lets a receiver resynchronise after garbage
 * or a peer that died mid-frame; the length is validated before anything is buffered for it.
 */
import { readU16, readU32, writeU16, writeU32 } from './bytes.js';
import { FRAME_HEADER } from './layout.js';
import { HEADER_SIZE, MAGIC, MAX_FRAME } from './messages.js';

export interface Frame {
  type: number;
  flags: number;
  id: number;
  /** A view of private memory: the reader never reuses or mutates buffers it handed out. */
  payload: Buffer;
}

export type FaultReason = 'bad-magic' | 'bad-length';

/** Bytes the reader threw away to get back in step; reported so the peer can be told. */
export interface FrameFault {
  reason: FaultReason;
  skipped: number;
  detail: string;
}

export type ReadItem = { frame: Frame; fault?: undefined } | { fault: FrameFault; frame?: undefined };

const MAGIC_BYTES = Buffer.alloc(4);
MAGIC_BYTES.writeUInt32LE(MAGIC, 0);
/** Never written (the reader only fills buffers it owns): shared by every reader with nothing pending. */
const NOTHING = Buffer.alloc(0);

export function encodeFrame(type: number, flags: number, id: number, payload?: Uint8Array): Buffer {
  const length = HEADER_SIZE + (payload ? payload.length : 0);
  if (length > MAX_FRAME) throw new RangeError(`frame of ${length} bytes exceeds the ${MAX_FRAME}-byte limit`);
  const frame = Buffer.allocUnsafe(length);
  writeHeader(frame, 0, length, type, flags, id);
  if (payload) frame.set(payload, HEADER_SIZE);
  return frame;
}

/** For encoders that build header and payload in one allocation. */
export function writeHeader(target: Buffer, at: number, length: number, type: number, flags: number, id: number): void {
  if (!(Number.isInteger(at) && at >= 0 && at + HEADER_SIZE <= target.length)) {
    throw new RangeError(`no room for a frame header at ${at} in ${target.length} bytes`);
  }
  storeHeader(target, at, length, type, flags, id);
}

/**
 * The one header writer, unchecked: the caller has checked that HEADER_SIZE bytes at `at` lie in
 * `target` (the per-request encoders check once for the whole frame). Values are stored modulo
 * their field width.
 */
export function storeHeader(target: Uint8Array, at: number, length: number, type: number, flags: number, id: number): void {
  writeU32(target, at + FRAME_HEADER.magic, MAGIC);
  writeU32(target, at + FRAME_HEADER.length, length);
  writeU16(target, at + FRAME_HEADER.type, type);
  writeU16(target, at + FRAME_HEADER.flags, flags);
  writeU32(target, at + FRAME_HEADER.id, id);
}

/**
 * Receives what FrameReader.scan finds, in stream order, without a per-frame allocation. A frame is
 * given as its place in `buffer` (header included); those bytes are never reused or mutated by the
 * reader, so a view of them (`buffer.subarray(at + HEADER_SIZE, at + length)`) may be kept.
 */
export interface FrameVisitor {
  frame(buffer: Buffer, at: number, length: number, type: number, flags: number, id: number): void;
  fault(fault: FrameFault): void;
}

export class FrameReader {
  private buffer: Buffer = NOTHING;
  private start = 0;
  private end = 0;
  /** The buffer was allocated here, so the bytes after `end` may be filled in place. */
  private owned = false;
  /** Skipped bytes not yet reported: consecutive skips of one reason are reported once. */
  private fault: FrameFault | undefined;

  constructor(private readonly maxFrame = MAX_FRAME) {}

  /** Bytes held for a frame that has not fully arrived. */
  get pending(): number {
    return this.end - this.start;
  }

  /** Drop a partial frame, e.g. when the stream has been idle mid-frame (a peer died). */
  discardPartial(): number {
    const dropped = this.pending;
    this.reset();
    return dropped;
  }

  push(chunk: Buffer): ReadItem[] {
    const items: ReadItem[] = [];
    this.scan(chunk, {
      frame: (buffer, at, length, type, flags, id) => {
        items.push({ frame: { type, flags, id, payload: buffer.subarray(at + HEADER_SIZE, at + length) } });
      },
      fault: (fault) => {
        items.push({ fault });
      },
    });
    return items;
  }

  /** What push does, delivered to `visitor` instead of collected (the backend's hot path). */
  scan(chunk: Buffer, visitor: FrameVisitor): void {
    // A chunk that completes the pending frame and goes on: only the frame's rest is copied (into
    // the buffer sized for it); what follows is read in place, as if it were a chunk of its own.
    const rest = this.missing();
    if (rest > 0 && rest < chunk.length) {
      this.scanChunk(chunk.subarray(0, rest), visitor);
      this.scanChunk(chunk.subarray(rest), visitor);
    } else {
      this.scanChunk(chunk, visitor);
    }
  }

  /** Bytes still to come for the pending frame when its header is here and sane; 0 otherwise. */
  private missing(): number {
    const length = this.announcedLength();
    return length === 0 ? 0 : length - this.pending;
  }

  /** The pending frame's length from its header, when the header is here and sane; 0 otherwise. */
  private announcedLength(): number {
    const pending = this.pending;
    if (pending < HEADER_SIZE || readU32(this.buffer, this.start + FRAME_HEADER.magic) !== MAGIC) return 0;
    const length = readU32(this.buffer, this.start + FRAME_HEADER.length);
    return length >= pending && length <= this.maxFrame ? length : 0;
  }

  private scanChunk(chunk: Buffer, visitor: FrameVisitor): void {
    this.append(chunk);
    const buf = this.buffer;
    const end = this.end;
    // Every field read below lies before `end`, inside `buf`.
    while (end - this.start >= 4) {
      if (readU32(buf, this.start + FRAME_HEADER.magic) !== MAGIC) {
        const next = buf.subarray(0, end).indexOf(MAGIC_BYTES, this.start + 1);
        // Keep a tail that may be the start of a magic split across chunks.
        const resume = next >= 0 ? next : Math.max(this.start + 1, end - 3);
        this.noteSkip(visitor, 'bad-magic', resume - this.start, 'bytes without the frame magic');
        this.start = resume;
        continue;
      }
      if (end - this.start < HEADER_SIZE) break;
      const at = this.start;
      const length = readU32(buf, at + FRAME_HEADER.length);
      if (length < HEADER_SIZE || length > this.maxFrame) {
        // A corrupt header: step past its magic and look for the next one.
        this.noteSkip(visitor, 'bad-length', 4, `frame length ${length} outside ${HEADER_SIZE}..${this.maxFrame}`);
        this.start += 4;
        continue;
      }
      if (end - at < length) break;
      this.flushFault(visitor);
      this.start = at + length;
      visitor.frame(buf, at, length, readU16(buf, at + FRAME_HEADER.type), readU16(buf, at + FRAME_HEADER.flags), readU32(buf, at + FRAME_HEADER.id));
    }
    this.flushFault(visitor);
    this.compact();
  }

  private noteSkip(visitor: FrameVisitor, reason: FaultReason, skipped: number, detail: string): void {
    if (this.fault && this.fault.reason === reason) {
      this.fault.skipped += skipped;
    } else {
      this.flushFault(visitor);
      this.fault = { reason, skipped, detail };
    }
  }

  private flushFault(visitor: FrameVisitor): void {
    const fault = this.fault;
    if (fault) {
      this.fault = undefined;
      visitor.fault(fault);
    }
  }

  private reset(): void {
    this.buffer = NOTHING;
    this.start = 0;
    this.end = 0;
    this.owned = false;
  }

  /**
   * Zero-copy when nothing is pending; otherwise grow to hold the frame being assembled once its
   * header says how long it is (one buffer per large frame: fresh memory costs page faults), else
   * geometrically, so a frame that arrives one byte at a time costs linear, not quadratic, copying.
   * Bytes are only ever written after `end`, never over a region a handed-out payload views.
   */
  private append(chunk: Buffer): void {
    const pending = this.pending;
    if (pending === 0) {
      this.buffer = chunk;
      this.start = 0;
      this.end = chunk.length;
      this.owned = false;
    } else if (this.owned && this.end + chunk.length <= this.buffer.length) {
      chunk.copy(this.buffer, this.end);
      this.end += chunk.length;
    } else {
      const grown = Buffer.allocUnsafe(Math.max(pending + chunk.length, this.room()));
      this.buffer.copy(grown, 0, this.start, this.end);
      chunk.copy(grown, pending);
      this.buffer = grown;
      this.start = 0;
      this.end = pending + chunk.length;
      this.owned = true;
    }
  }

  /** Bytes to hold the pending frame: its announced length when known, else double what is pending. */
  private room(): number {
    return this.announcedLength() || Math.max(2 * this.pending, 256);
  }

  /** Release consumed bytes; copy the partial tail so handed-out payload views stay untouched. */
  private compact(): void {
    if (this.start === this.end) {
      this.reset();
    } else if (this.start > 0) {
      const tail = Buffer.allocUnsafe(this.room());
      this.buffer.copy(tail, 0, this.start, this.end);
      this.buffer = tail;
      this.end = this.pending;
      this.start = 0;
      this.owned = true;
    }
  }
}
