/**
 * Numbers as lspci, setpci and the xpci docs print them: lowercase hex, zero-padded to `width`
 * digits (none when 0), with or without the `0x` prefix.
 */
export const hex = (value: number | bigint, width = 0): string => value.toString(16).padStart(width, '0');

export const hex0x = (value: number | bigint, width = 0): string => `0x${hex(value, width)}`;
