/**
 * The bare half of the interrupt latency figure (bench/interrupts-dma.ts): a Node process with no
 * protocol work that waits on the same eventfd as the backend (inherited as fd 3, watched with the
 * addon's poller as the VFIO back end does) and, on each wake-up, reads the counter and writes one
 * frame the size of an Interrupt event to the bench over a Unix socket.
 *
 * Usage: node eventfd-wake.js SOCKET   (prints "ready" once connected and watching)
 */
import { connect } from 'node:net';
import { native } from '../src/native/binding.js';
import { HEADER_SIZE } from '../src/protocol/ring/messages.js';
import { INTERRUPT_EVENT } from '../src/protocol/ring/device-ops-codec.js';

export const WAKE_FRAME_BYTES = HEADER_SIZE + INTERRUPT_EVENT.length;
const EVENTFD = 3;

const socket = connect(process.argv[2], () => {
  socket.setNoDelay?.(true);
  const frame = Buffer.alloc(WAKE_FRAME_BYTES);
  const poller = native().watchFd(EVENTFD, () => {
    const counter = native().eventfdRead(EVENTFD);
    if (counter !== null) {
      frame.writeUInt32LE(Number(counter), WAKE_FRAME_BYTES - 4);
      socket.write(frame);
    }
  });
  socket.once('close', () => {
    poller.close();
    process.exit(0);
  });
  process.stdout.write('ready\n');
});
socket.on('error', () => process.exit(1));
