/**
 * Guest-side probe: with CONFIG_IO_STRICT_DEVMEM the kernel refuses to mmap a BAR that a driver
 * owns. Usage: testbed-owned-mmap.js BDF... For each BDF: its bound driver and the outcome of
 * mapping `resource0` read-only (the error's code/syscall/path/message, or the mapping's length).
 */
import { readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import { native, isNativeError } from '../../../src/native/binding.js';

const driverOf = (dir: string): string | null => {
  try {
    return basename(readlinkSync(`${dir}/driver`));
  } catch {
    return null;
  }
};

const report = process.argv.slice(2).map((bdf) => {
  const dir = `/sys/bus/pci/devices/${bdf}`;
  const driver = driverOf(dir);
  try {
    const bar = native().mapResource(`${dir}/resource0`, false);
    const length = bar.length;
    bar.unmap();
    return { bdf, driver, mapped: true, length };
  } catch (error) {
    if (!isNativeError(error)) throw error;
    return { bdf, driver, mapped: false, code: error.code, syscall: error.syscall, path: error.path, message: error.message };
  }
});
process.stdout.write(JSON.stringify(report) + '\n');
