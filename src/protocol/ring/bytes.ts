/**
 * Little-endian field access for the per-request paths of the codec and the frame reader. Buffer's
 * own readUInt32LE / writeUInt32LE re-validate offset and value on every call, a visible share of
 * a config read's cost; these do not, so every caller checks the bounds once for the whole frame
 * first (a typed array silently ignores stores past its end).
 */

export function readU16(buffer: Uint8Array, at: number): number {
  return buffer[at] | (buffer[at + 1] << 8);
}

export function readU32(buffer: Uint8Array, at: number): number {
  return (buffer[at] | (buffer[at + 1] << 8) | (buffer[at + 2] << 16) | (buffer[at + 3] << 24)) >>> 0;
}

/** `value` is stored modulo 2^16. */
export function writeU16(buffer: Uint8Array, at: number, value: number): void {
  buffer[at] = value;
  buffer[at + 1] = value >>> 8;
}

/** `value` is stored modulo 2^32. */
export function writeU32(buffer: Uint8Array, at: number, value: number): void {
  buffer[at] = value;
  buffer[at + 1] = value >>> 8;
  buffer[at + 2] = value >>> 16;
  buffer[at + 3] = value >>> 24;
}
