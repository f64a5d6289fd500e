/**
 * The one access interface that the lspci printer, capability walker and register naming run
 * against: a local sysfs device (backend, `xpci list`) or a remote one through the ring (frontend).
 */
export type ConfigWidth = 1 | 2 | 4;

export interface ConfigReader {
  /** 256 for conventional PCI, 4096 for PCIe / PCI-X 2.0; what may be read. */
  readonly configSize: number;
  read(offset: number, width: ConfigWidth): Promise<number>;
  /** A whole range at once, where the reader can do better than one read per dword (a remote device). */
  readBlock?(offset: number, length: number): Promise<Uint8Array>;
}

export interface ConfigWriter extends ConfigReader {
  write(offset: number, width: ConfigWidth, value: number): Promise<void>;
}

/**
 * The widest naturally aligned config access at `at` with `left` bytes still to read: how a block
 * of config space splits into the single reads that read it.
 */
export function naturalWidth(at: number, left: number): ConfigWidth {
  return at % 4 === 0 && left >= 4 ? 4 : at % 2 === 0 && left >= 2 ? 2 : 1;
}

/**
 * Read `length` bytes: with the reader's readBlock where it has one, else as aligned dwords (the
 * kernel splits wider reads into dwords anyway, and a remote reader can keep all of them in flight
 * at once). Failures propagate: never a fake 0xff.
 */
export async function readConfigBytes(reader: ConfigReader, length: number, offset = 0): Promise<Uint8Array> {
  if (offset % 4 !== 0 || length % 4 !== 0) throw new RangeError('readConfigBytes takes dword-aligned offset and length');
  const end = Math.min(offset + length, reader.configSize);
  if (reader.readBlock && end > offset) return reader.readBlock(offset, end - offset);
  const bytes = new Uint8Array(Math.max(0, end - offset));
  const reads: Promise<void>[] = [];
  for (let at = offset; at < end; at += 4) {
    reads.push(reader.read(at, 4).then((v) => {
      const i = at - offset;
      bytes[i] = v & 0xff;
      bytes[i + 1] = (v >>> 8) & 0xff;
      bytes[i + 2] = (v >>> 16) & 0xff;
      bytes[i + 3] = (v >>> 24) & 0xff;
    }));
  }
  await Promise.all(reads);
  return bytes;
}
