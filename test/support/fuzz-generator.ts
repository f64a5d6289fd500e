/**
 * What the fuzzer sends: valid requests with hostile field values (boundary offsets and sizes,
 * BAR sizing, writes everywhere, unknown addresses), the same requests mutated at the byte level
 * (flipped bits, wrong lengths, bad flags and types, truncation), handshakes good and bad, and
 * garbage. Everything comes from one seeded Random, so a seed replays a run exactly.
 */
import { encodeFrame, writeHeader } from '../../src/protocol/ring/frame.js';
import { encodeRequest } from '../../src/protocol/ring/codec.js';
import { HEADER_SIZE, MAGIC, MAX_FRAME, MessageType, type BarDescriptor, type Request } from '../../src/protocol/ring/messages.js';
import { unpackAddress, type PciAddress } from '../../src/pci/address.js';
import type { Random } from './fuzz-random.js';

export interface FuzzTarget {
  /** The function as the frontend addresses it. */
  guest: PciAddress;
  packed: number;
  configSize: number;
  bars: BarDescriptor[];
  /** Offsets of its capabilities (standard and extended), for aimed writes. */
  capabilities: number[];
}

export type ItemKind =
  | 'config-read' | 'config-block' | 'config-write' | 'bar-read' | 'bar-write' | 'decode-on' | 'bar-sizing'
  | 'hello' | 'hello-bad' | 'list' | 'ping' | 'mutated' | 'wrong-length' | 'bad-flags' | 'unknown-type' | 'garbage';

export interface Item {
  kind: ItemKind;
  bytes: Buffer;
}

const WEIGHTS: [ItemKind, number][] = [
  ['config-read', 18], ['config-block', 4], ['config-write', 22], ['bar-read', 8], ['bar-write', 8], ['decode-on', 2], ['bar-sizing', 3],
  ['hello', 1], ['hello-bad', 1], ['list', 1], ['ping', 3], ['mutated', 20], ['wrong-length', 4], ['bad-flags', 2],
  ['unknown-type', 2], ['garbage', 5],
];
const TOTAL_WEIGHT = WEIGHTS.reduce((n, [, w]) => n + w, 0);

const HEADER_OFFSETS = Array.from({ length: 0x40 }, (_, i) => i);
const INTERESTING_VALUES = [0, 0xffffffff, 0xfffffffe, 0xfffffff0, 0x80000000, 0x7fffffff, 0x0000ffff, 0xffff0000, 0x00ff00ff, 1, 2, 4, 7, 0x100, 0x400];

export class FrameGenerator {
  /** Every kind produced so far, for the report. */
  readonly counts = new Map<ItemKind, number>();

  constructor(private readonly rng: Random, private readonly targets: FuzzTarget[]) {}

  next(): Item {
    let roll = this.rng.below(TOTAL_WEIGHT);
    let kind: ItemKind = WEIGHTS[0][0];
    for (const [k, w] of WEIGHTS) {
      if (roll < w) {
        kind = k;
        break;
      }
      roll -= w;
    }
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
    return { kind, bytes: this.build(kind) };
  }

  /** A valid Hello that establishes a session (ring depth anywhere the backend clamps from). */
  hello(id = this.id()): Buffer {
    const ringDepth = this.rng.pick([64, 64, 32, 256, 1, 31, 257, 1000, 65535]);
    const versions = this.rng.pick([[1], [1], [2, 1], [1, 7, 65535]]);
    return encodeRequest({ type: MessageType.Hello, id, hello: { versions, ringDepth, client: 'fuzz' } });
  }

  private build(kind: ItemKind): Buffer {
    const rng = this.rng;
    switch (kind) {
      case 'config-read':
        return encodeRequest({ type: MessageType.ConfigRead, id: this.id(), address: this.address(), offset: this.configOffset(), size: this.configSize() });
      case 'config-block':
        return encodeRequest({
          type: MessageType.ConfigReadBlock, id: this.id(), address: this.address(),
          offset: rng.chance(0.7) ? this.configOffset() : rng.int(0, 0xffff),
          length: rng.pick([1, 2, 3, 4, 7, 64, 256, 4096, rng.int(1, 4096)]),
        });
      case 'config-write':
        return encodeRequest({
          type: MessageType.ConfigWrite, id: this.id(), address: this.address(), offset: this.configOffset(), size: this.configSize(),
          value: rng.chance(0.5) ? rng.pick(INTERESTING_VALUES) : rng.u32(),
        });
      case 'decode-on':
        // Turn decode on so BAR ops get past the policy into the BAR files.
        return encodeRequest({ type: MessageType.ConfigWrite, id: this.id(), address: this.target().guest, offset: 4, size: 2, value: rng.pick([0x0003, 0x0007, 0x0002, 0x0001]) });
      case 'bar-sizing': {
        const register = rng.pick([0x10, 0x14, 0x18, 0x1c, 0x20, 0x24, 0x30]);
        const value = rng.pick([0xffffffff, 0xfffff800, 0xfffffffe, 0, rng.u32()]);
        const write = encodeRequest({ type: MessageType.ConfigWrite, id: this.id(), address: this.target().guest, offset: register, size: 4, value });
        const read = encodeRequest({ type: MessageType.ConfigRead, id: this.id(), address: this.target().guest, offset: register, size: 4 });
        return Buffer.concat([write, read]);
      }
      case 'bar-read':
      case 'bar-write': {
        const target = this.target();
        const { bar, offset, size } = this.barTarget(target);
        const address = rng.chance(0.9) ? target.guest : this.address();
        return kind === 'bar-read'
          ? encodeRequest({ type: MessageType.BarRead, id: this.id(), address, bar, offset, size })
          : encodeRequest({ type: MessageType.BarWrite, id: this.id(), address, bar, offset, size, value: rng.chance(0.3) ? rng.pick([0n, (1n << 64n) - 1n]) : rng.u64() });
      }
      case 'hello':
        return this.hello();
      case 'hello-bad':
        return this.badHello();
      case 'list':
        return encodeRequest({ type: MessageType.ListDevices, id: this.id() });
      case 'ping': {
        const n = rng.chance(0.002) ? rng.int(0, MAX_FRAME - HEADER_SIZE) : rng.int(0, 64);
        return encodeRequest({ type: MessageType.Ping, id: this.id(), payload: rng.bytes(n) });
      }
      case 'mutated':
        return this.mutate(this.validRequest());
      case 'wrong-length': {
        const frame = this.validRequest();
        const payload = frame.subarray(HEADER_SIZE);
        const length = rng.pick([0, 1, payload.length - 1, payload.length + 1, payload.length + 8, rng.int(0, 40)]);
        const body = Buffer.concat([payload, rng.bytes(Math.max(0, length - payload.length))]).subarray(0, Math.max(0, length));
        return encodeFrame(frame.readUInt16LE(8), 0, this.id(), body);
      }
      case 'bad-flags': {
        const frame = Buffer.from(this.validRequest());
        frame.writeUInt16LE(rng.pick([1, 2, 3, 4, 5, 0x8000, rng.int(1, 0xffff)]), 10);
        return frame;
      }
      case 'unknown-type': {
        const type = rng.pick([0, 8, 9, 0x1f, 0x20, 0x21, 0x22, 0x23, 0xff, 0xffff, rng.int(8, 0xffff)]);
        return encodeFrame(type, 0, this.id(), rng.bytes(rng.int(0, 32)));
      }
      case 'garbage':
        return this.garbage();
    }
  }

  /** Ids never 0: 0 marks the backend's unattributed error replies. */
  private id(): number {
    return this.rng.int(1, 0xffffffff);
  }

  private target(): FuzzTarget {
    return this.rng.pick(this.targets);
  }

  private address(): PciAddress {
    const rng = this.rng;
    if (rng.chance(0.85)) return this.target().guest;
    const near = this.target().guest;
    return rng.chance(0.5)
      ? { ...near, device: rng.int(0, 31), function: rng.int(0, 7) }
      : unpackAddress(rng.u32());
  }

  private configOffset(): number {
    const rng = this.rng;
    const target = this.target();
    switch (rng.below(6)) {
      case 0: return rng.pick(HEADER_OFFSETS);
      case 1: return rng.int(0x40, 0xff);
      case 2: return (rng.pick(target.capabilities) ?? 0x40) + rng.int(0, 15);
      case 3: return rng.pick([0xfc, 0xfe, 0xff, 0x100, 0x101, 0x104, 0xffc, 0xffe, 0xfff, 0x1000, 0x1001, 0xfffc, 0xffff]);
      case 4: return rng.int(0, target.configSize + 8) & 0xffff;
      default: return rng.int(0, 0xffff);
    }
  }

  private configSize(): number {
    return this.rng.chance(0.9) ? this.rng.pick([1, 2, 4, 4]) : this.rng.pick([0, 3, 5, 8, 16, 255]);
  }

  private barTarget(target: FuzzTarget): { bar: number; offset: bigint; size: number } {
    const rng = this.rng;
    const real = target.bars.length > 0 && rng.chance(0.85) ? rng.pick(target.bars) : undefined;
    const bar = real ? real.index : rng.pick([0, 1, 2, 3, 4, 5, 6, 7, 255]);
    const size = rng.chance(0.9) ? rng.pick([1, 2, 4, 8]) : rng.pick([0, 3, 5, 16, 255]);
    const barSize = BigInt(real?.size ?? 0x1000);
    const offset = rng.pick<() => bigint>([
      () => 0n,
      () => BigInt(rng.below(Number(barSize))) & ~BigInt(Math.max(1, size) - 1),
      () => BigInt(rng.below(Number(barSize))),
      () => barSize - BigInt(Math.max(1, size)),
      () => barSize - 1n,
      () => barSize,
      () => barSize + 8n,
      () => (1n << 64n) - 1n,
      () => (1n << 64n) - 8n,
      () => 1n << 63n,
      () => 1n << 32n,
    ])();
    return { bar, offset: BigInt.asUintN(64, offset), size };
  }

  private validRequest(): Buffer {
    const rng = this.rng;
    const requests: (() => Request)[] = [
      () => ({ type: MessageType.ConfigRead, id: this.id(), address: this.address(), offset: this.configOffset(), size: this.configSize() }),
      () => ({ type: MessageType.ConfigWrite, id: this.id(), address: this.address(), offset: this.configOffset(), size: this.configSize(), value: rng.u32() }),
      () => ({ type: MessageType.BarRead, id: this.id(), address: this.address(), ...this.barTarget(this.target()) }),
      () => ({ type: MessageType.BarWrite, id: this.id(), address: this.address(), ...this.barTarget(this.target()), value: rng.u64() }),
      () => ({ type: MessageType.ListDevices, id: this.id() }),
      () => ({ type: MessageType.Ping, id: this.id(), payload: rng.bytes(rng.int(0, 24)) }),
      () => ({ type: MessageType.Hello, id: this.id(), hello: { versions: [1], ringDepth: 64 } }),
    ];
    return encodeRequest(rng.pick(requests)());
  }

  private mutate(frame: Buffer): Buffer {
    const rng = this.rng;
    const out = Buffer.from(frame);
    switch (rng.below(8)) {
      case 0: // flip bits anywhere, header included
      case 1: {
        for (let n = rng.int(1, 4); n > 0; n--) out[rng.below(out.length)] ^= 1 << rng.below(8);
        return out;
      }
      case 2: // flip bits in the payload only
        if (out.length > HEADER_SIZE) for (let n = rng.int(1, 3); n > 0; n--) out[HEADER_SIZE + rng.below(out.length - HEADER_SIZE)] ^= 1 << rng.below(8);
        return out;
      case 3: // a lying length field
        out.writeUInt32LE(rng.pick([0, 1, 15, 16, out.length - 1, out.length + 1, out.length + 64, MAX_FRAME, MAX_FRAME + 1, 0xffffffff, rng.int(0, 200)]) >>> 0, 4);
        return out;
      case 4: // truncated: the rest of the stream completes it
        return out.subarray(0, rng.int(1, out.length - 1));
      case 5: // trailing junk after a well-framed request
        return Buffer.concat([out, rng.bytes(rng.int(1, 24))]);
      case 6: // random type, id and flags in an otherwise valid frame
        out.writeUInt16LE(rng.u32() & 0xffff, 8);
        if (rng.chance(0.5)) out.writeUInt16LE(rng.u32() & 0xffff, 10);
        out.writeUInt32LE(rng.int(1, 0xffffffff), 12);
        return out;
      default: { // a magic planted inside the frame
        const at = rng.below(out.length);
        const magic = Buffer.alloc(4);
        magic.writeUInt32LE(MAGIC, 0);
        magic.copy(out, at, 0, Math.min(4, out.length - at));
        return out;
      }
    }
  }

  private badHello(): Buffer {
    const rng = this.rng;
    const bodies = [
      '{"versions":[2,3],"ringDepth":64}', // no common version: VersionMismatch
      '{"versions":[],"ringDepth":64}',
      '{"versions":[1],"ringDepth":0}',
      '{"versions":[1],"ringDepth":64.5}',
      '{"versions":[1],"ringDepth":"64"}',
      '{"versions":[1],"ringDepth":64,"client":' + JSON.stringify('x'.repeat(300)) + '}',
      '[1,64]',
      'null',
      '{"versions":[1],',
      '{"versions":[1e400],"ringDepth":64}',
      '{"__proto__":{"versions":[1]},"ringDepth":64}',
      '{"versions":[1],"ringDepth":64}\u0000',
    ];
    const body = rng.chance(0.8) ? Buffer.from(rng.pick(bodies)) : rng.bytes(rng.int(0, 100));
    return encodeFrame(MessageType.Hello, 0, this.id(), body);
  }

  private garbage(): Buffer {
    const rng = this.rng;
    const bytes = rng.bytes(rng.int(1, 600));
    if (rng.chance(0.3)) {
      // A magic with a random (mostly corrupt) header inside the garbage.
      const at = rng.below(Math.max(1, bytes.length - HEADER_SIZE));
      if (bytes.length >= at + HEADER_SIZE) {
        writeHeader(bytes, at, rng.pick([0, 3, 15, MAX_FRAME + 1, 0xffffffff, rng.int(16, 64)]), rng.u32() & 0xffff, 0, rng.u32());
      }
    }
    return bytes;
  }
}
