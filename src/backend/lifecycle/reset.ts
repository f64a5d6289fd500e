/**
 * Function reset through sysfs `reset` (the kernel picks FLR, AF-FLR, PM or bus reset). Used by the
 * backend on export and on release when configured; a device without a reset file is reported, not
 * silently handed over as if it had been reset (xen-pciback.md §5, lessons 1-2).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatAddress, type PciAddress } from '../../pci/address.js';
import { deviceDir } from '../../host/sysfs/paths.js';
import { fileSysfsWriter, type SysfsWriter } from './sysfs-writer.js';

export interface ResetResult {
  performed: boolean;
  /** "0000:06:01.0: reset (methods: flr bus)" or why no reset was possible */
  message: string;
}

/** Write 1 to `<device>/reset` if it exists. A failing write (EBUSY, EIO...) throws LifecycleError. */
export function resetDevice(sysfsRoot: string, info: { address: PciAddress }, writer: SysfsWriter = fileSysfsWriter): ResetResult {
  const bdf = formatAddress(info.address);
  const dir = deviceDir(sysfsRoot, info.address);
  const resetPath = join(dir, 'reset');
  if (!existsSync(resetPath)) {
    return {
      performed: false,
      message: `${bdf}: not reset: the device has no sysfs reset file (the kernel knows no FLR, PM or bus reset for it), so the next user gets it in whatever state it was left`,
    };
  }
  writer.write(resetPath, '1');
  const methods = readResetMethods(dir);
  return { performed: true, message: `${bdf}: reset${methods ? ` (methods: ${methods})` : ''}` };
}

/** Newer kernels list the reset methods they will try in `reset_method`. */
function readResetMethods(dir: string): string | null {
  try {
    return readFileSync(join(dir, 'reset_method'), 'utf8').trim() || null;
  } catch {
    return null;
  }
}
