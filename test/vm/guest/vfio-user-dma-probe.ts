/**
 * Runs in the test guest against `xpci export --vfio-user` serving edu (held by vfio-pci): as a
 * vfio-user client (test/support's, not QEMU), maps a memfd with DMA_MAP the way QEMU maps guest
 * RAM (an fd at a file offset, at an IOVA of its own) and has edu copy 32 bytes from one address of
 * it to another through its buffer. Prints one JSON line.
 */
import { allocateDmaMemory } from '../../../src/host/dma-memory.js';
import { DmaMapFlags, PciRegion } from '../../../src/protocol/vfio-user/messages.js';
import { VfioUserClient } from '../../support/vfio-user-client.js';

const [socket] = process.argv.slice(2);
const client = VfioUserClient.connect(socket);
const u32 = (value: number): Buffer => {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32LE(value >>> 0);
  return buffer;
};
const write = (offset: number, value: number): Promise<void> => client.regionWrite(PciRegion.bar0, BigInt(offset), u32(value));
const read = async (offset: number): Promise<number> => (await client.regionRead(PciRegion.bar0, BigInt(offset), 4)).readUInt32LE(0);

async function dma(source: number, destination: number, command: number): Promise<void> {
  await write(0x80, source);
  await write(0x88, destination);
  await write(0x90, 32);
  await write(0x98, command);
  const deadline = Date.now() + 20_000;
  while ((await read(0x98)) & 1) if (Date.now() > deadline) throw new Error('edu DMA still running');
}

const out: Record<string, unknown> = {};
try {
  await client.version();
  const ram = allocateDmaMemory(8 << 20);
  const pattern = Buffer.from('XPCI_DMA_SOURCE=0123456789abcdef');
  ram.write(0x200000, pattern);
  await client.dmaMap(0x100000n, 0x700000n, DmaMapFlags.read | DmaMapFlags.write, { fd: ram.fd, offset: 0x100000n });
  const command = (await client.regionRead(PciRegion.config, 4n, 2)).readUInt16LE(0);
  const enable = Buffer.alloc(2);
  enable.writeUInt16LE(command | 0x6);
  await client.regionWrite(PciRegion.config, 4n, enable);
  await dma(0x200000, 0x40000, 1);
  await dma(0x40000, 0x300000, 3);
  out.copied = ram.read(0x300000, 32).toString('latin1');
} catch (error) {
  out.error = (error as Error).stack;
} finally {
  client.close();
}
console.log(JSON.stringify(out));
process.exit(0);
