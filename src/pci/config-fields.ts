/**
 * Little-endian fields of a config-space snapshot for the printers: a byte past the snapshot's end
 * reads as 0xff, as an absent register does.
 */
export const byteAt = (config: Uint8Array, offset: number): number => config[offset] ?? 0xff;
export const wordAt = (config: Uint8Array, offset: number): number => byteAt(config, offset) | (byteAt(config, offset + 1) << 8);
export const dwordAt = (config: Uint8Array, offset: number): number => (wordAt(config, offset) | (wordAt(config, offset + 2) << 16)) >>> 0;
