/**
 * lspci's `-x` / `-xxx` / `-xxxx` hex dumps, in the exact format `lspci -F` reads back.
 */
import {
  PCI_CARDBUS_HEADER_SIZE, PCI_CFG_SPACE_EXP_SIZE, PCI_CFG_SPACE_SIZE, PCI_HEADER_TYPE, PCI_HEADER_TYPE_CARDBUS,
  PCI_HEADER_TYPE_MASK, PCI_STD_HEADER_SIZE,
} from './config-header.js';
import { hex } from './hex.js';

/** How many bytes `-x` levels show: the header (128 for CardBus), 256, or 4096 when readable. */
export function hexDumpLength(config: Uint8Array, level: number, configSize = config.length): number {
  const header = (config[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MASK) === PCI_HEADER_TYPE_CARDBUS ? PCI_CARDBUS_HEADER_SIZE : PCI_STD_HEADER_SIZE;
  let length = Math.min(header, config.length);
  if (level >= 3 && config.length >= PCI_CFG_SPACE_SIZE) {
    length = PCI_CFG_SPACE_SIZE;
    if (level >= 4 && configSize >= PCI_CFG_SPACE_EXP_SIZE && config.length >= PCI_CFG_SPACE_EXP_SIZE) length = PCI_CFG_SPACE_EXP_SIZE;
  }
  return length - (length % 16);
}

/** Hex lines exactly as lspci prints them: `%02x:` offset, then ` %02x` per byte, 16 a line. */
export function formatHexDump(config: Uint8Array, length: number): string {
  let out = '';
  for (let offset = 0; offset < length; offset += 16) {
    out += `${hex(offset, 2)}:`;
    for (let i = offset; i < offset + 16; i++) out += ` ${hex(config[i], 2)}`;
    out += '\n';
  }
  return out;
}
