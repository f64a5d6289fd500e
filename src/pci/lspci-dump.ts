/**
 * Reading `lspci -x/-xxx/-xxxx` dumps, with the same rules as libpci's dump access method
 * (lib/dump.c, what `lspci -F FILE` uses): a line starting with a BDF and a space opens a device,
 * `<2-8 hex digits>: ` lines fill bytes from that offset, a blank line closes the device, anything
 * else (-v text) is ignored. A byte line of any other shape is an error, as in libpci.
 */
import type { PciAddress } from './address.js';
import { PCI_CFG_SPACE_EXP_SIZE } from './config-header.js';

export interface DumpedDevice {
  address: PciAddress;
  /** the text after the BDF on the device line (lspci's description, or anything) */
  description: string;
  /** bytes 0 .. last dumped offset; gaps inside read as 0xff, as libpci fills them */
  config: Uint8Array;
}

export class DumpParseError extends Error {
  override readonly name = 'DumpParseError';
}

const DEVICE_LINE = /^(?:([0-9a-fA-F]{4,6}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-9]) (.*)$/;
const BYTES_LINE = /^([0-9a-fA-F]{2,8}): (.*)$/;

export function parseLspciDump(text: string, source = 'dump'): DumpedDevice[] {
  const devices: DumpedDevice[] = [];
  let current: { address: PciAddress; description: string; bytes: Uint8Array; length: number } | null = null;
  const finish = (): void => {
    if (current) devices.push({ address: current.address, description: current.description, config: current.bytes.slice(0, current.length) });
    current = null;
  };
  text.split('\n').forEach((raw, index) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const device = DEVICE_LINE.exec(line);
    if (device) {
      finish();
      current = {
        address: { domain: device[1] ? parseInt(device[1], 16) : 0, bus: parseInt(device[2], 16), device: parseInt(device[3], 16), function: Number(device[4]) },
        description: device[5],
        bytes: new Uint8Array(PCI_CFG_SPACE_EXP_SIZE).fill(0xff),
        length: 0,
      };
      if (current.address.device > 0x1f || current.address.function > 7) throw new DumpParseError(`${source}:${index + 1}: invalid device address in '${line}'`);
      return;
    }
    if (line === '') {
      finish();
      return;
    }
    const bytes = current ? BYTES_LINE.exec(line) : null;
    if (!bytes || !current) return;
    let offset = parseInt(bytes[1], 16);
    const values = bytes[2] === '' ? [] : bytes[2].split(' ');
    for (const value of values) {
      if (!/^[0-9a-fA-F]{2}$/.test(value)) throw new DumpParseError(`${source}:${index + 1}: malformed line '${line}'`);
      if (offset >= PCI_CFG_SPACE_EXP_SIZE) throw new DumpParseError(`${source}:${index + 1}: at most 4096 bytes of config space are supported`);
      current.bytes[offset++] = parseInt(value, 16);
      current.length = Math.max(current.length, offset);
    }
  });
  finish();
  return devices;
}
