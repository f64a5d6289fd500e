/**
 * Guest-side probe: maps edu's BAR0 (`resource0`) through the addon and exercises it with 32-bit
 * accesses (edu ignores narrower ones below 0x80). Usage: testbed-mmio.js VALUE BDF...
 * For each BDF prints the identification register (0x00) and what the liveness register (0x04)
 * reads after VALUE was written to it.
 */
import { native } from '../../../src/native/binding.js';

const [value, ...bdfs] = process.argv.slice(2);
const report = bdfs.map((bdf) => {
  const bar = native().mapResource(`/sys/bus/pci/devices/${bdf}/resource0`, true);
  const identification = bar.read(0x00, 4);
  bar.write(0x04, 4, Number(value));
  const liveness = bar.read(0x04, 4);
  const length = bar.length;
  bar.unmap();
  return { bdf, length, identification, liveness };
});
process.stdout.write(JSON.stringify(report) + '\n');
