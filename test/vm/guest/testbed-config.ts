/**
 * Guest-side probe (runs inside the test VM): config space accesses through the addon's
 * RegisterFile. Usage: testbed-config.js BDF OP... with OP one of `read:OFF:WIDTH` and
 * `write:OFF:WIDTH:VALUE` (numbers in any JS notation). Prints JSON: the config file size and one
 * result per OP, in order.
 */
import { native } from '../../../src/native/binding.js';

const [bdf, ...ops] = process.argv.slice(2);
const config = native().openRegisterFile(`/sys/bus/pci/devices/${bdf}/config`, ops.some((op) => op.startsWith('write:')));
const size = config.size();
const results = ops.map((op) => {
  const [kind, offset, width, value] = op.split(':');
  if (kind === 'write') {
    config.write(Number(offset), Number(width) as 1 | 2 | 4, Number(value));
    return null;
  }
  return config.read(Number(offset), Number(width) as 1 | 2 | 4);
});
config.close();
process.stdout.write(JSON.stringify({ size, results }) + '\n');
