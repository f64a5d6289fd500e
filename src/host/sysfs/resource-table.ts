/**
 * The sysfs `resource` file: one `start end flags` line (hex) per resource, line number = resource
 * index: 0-5 BARs, 6 the expansion ROM, then SR-IOV BARs and (for bridges) the bridge windows.
 * Flags are the kernel's IORESOURCE_* bits (include/linux/ioport.h), which the kernel documents as
 * stable because this file exposes them to userspace.
 */
import type { BarInfo } from '../../pci/device-info.js';

export const IORESOURCE_IO = 0x100;
export const IORESOURCE_MEM = 0x200;
export const IORESOURCE_PREFETCH = 0x2000;
export const IORESOURCE_READONLY = 0x4000;
export const IORESOURCE_MEM_64 = 0x100000;

export const ROM_RESOURCE_INDEX = 6;
const STANDARD_BARS = 6;

export interface ResourceTable {
  /** BARs 0-5 that decode something (non-zero size and an I/O or memory type) */
  bars: BarInfo[];
  rom: BarInfo | null;
}

function hexField(text: string, what: string, source: string, line: number): number {
  if (!/^0x[0-9a-fA-F]{1,16}$/.test(text)) throw new Error(`${source}: line ${line}: bad ${what} '${text}'`);
  const value = BigInt(text);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${source}: line ${line}: ${what} ${text} is beyond 2^53`);
  return Number(value);
}

/** One line to a BarInfo, or null when the resource is unused. */
function parseLine(text: string, index: number, source: string): BarInfo | null {
  const fields = text.trim().split(/\s+/);
  if (fields.length !== 3) throw new Error(`${source}: line ${index + 1}: expected 'start end flags', got '${text}'`);
  const start = hexField(fields[0], 'start', source, index + 1);
  const end = hexField(fields[1], 'end', source, index + 1);
  const flags = hexField(fields[2], 'flags', source, index + 1);
  if (start === 0 && end === 0) return null;
  if (end < start) throw new Error(`${source}: line ${index + 1}: end ${fields[1]} below start ${fields[0]}`);
  const isIo = (flags & IORESOURCE_IO) !== 0 && (flags & IORESOURCE_MEM) === 0;
  const isMem = (flags & IORESOURCE_MEM) !== 0 && (flags & IORESOURCE_IO) === 0;
  if (!isIo && !isMem) return null;
  return {
    index,
    start,
    size: end - start + 1,
    kind: isIo ? 'io' : 'mem',
    is64: (flags & IORESOURCE_MEM_64) !== 0,
    prefetchable: (flags & IORESOURCE_PREFETCH) !== 0,
    flags,
  };
}

/** Parse the whole file; `source` names it in errors. */
export function parseResourceTable(text: string, source = 'resource'): ResourceTable {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  const bars: BarInfo[] = [];
  let rom: BarInfo | null = null;
  lines.forEach((line, index) => {
    if (index > ROM_RESOURCE_INDEX) return;
    const resource = parseLine(line, index, source);
    if (!resource) return;
    if (index < STANDARD_BARS) bars.push(resource);
    else if (resource.kind === 'mem') rom = resource;
  });
  return { bars, rom };
}
