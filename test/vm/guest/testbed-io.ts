/**
 * Guest-side probe: I/O BARs through the addon's pread/pwrite path (x86 I/O `resourceN` files can
 * be read and written, never mapped). Usage: testbed-io.js E1000_BDF TESTDEV_BDF
 * - e1000 `resource1` (64-byte I/O BAR): 4-byte reads at the first and last dword, and one past the end;
 * - pci-testdev `resource1`: writing 0 to offset 0 selects test 0, whose name (at 16) reads "portio-…".
 */
import { native, isNativeError } from '../../../src/native/binding.js';

const [e1000, testdev] = process.argv.slice(2);
const describeFailure = (fn: () => unknown) => {
  try {
    return { value: fn() };
  } catch (error) {
    if (!isNativeError(error)) throw error;
    return { code: error.code, syscall: error.syscall };
  }
};

const e1000Io = native().openRegisterFile(`/sys/bus/pci/devices/${e1000}/resource1`, false);
const e1000Report = {
  size: e1000Io.size(),
  first: e1000Io.read(0, 4),
  last: e1000Io.read(60, 4),
  pastEnd: describeFailure(() => e1000Io.read(64, 4)),
};
e1000Io.close();

const testdevIo = native().openRegisterFile(`/sys/bus/pci/devices/${testdev}/resource1`, true);
testdevIo.write(0, 4, 0);
const name = Buffer.alloc(32);
for (let at = 0; at < 32; at += 4) name.writeUInt32LE(testdevIo.read(16 + at, 4), at);
testdevIo.close();

process.stdout.write(JSON.stringify({ e1000: e1000Report, testdev: { name: name.toString('latin1').replace(/\0.*$/s, '') } }) + '\n');
