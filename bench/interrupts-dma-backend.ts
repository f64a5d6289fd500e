/**
 * The backend half of the interrupt and DMA figures (bench/interrupts-dma.ts), for a machine
 * without VFIO: the real BackendServer, ExportedDevice, interrupt router and DMA windows over a
 * fixture device with an MSI capability, with two host services replaced —
 * - interrupts: every vector of the enabled kind is the eventfd inherited as fd 3, watched on the
 *   event loop with the addon's poller and read as VFIO's eventfds are (the bench signals it);
 * - DMA: windows are memfd memory as with VFIO, but the IOMMU mapping is skipped (no IOMMU here).
 * Nothing else differs from `xpci export` on a vfio-pci device. Test infrastructure only: never a
 * way to export a real device.
 *
 * Usage: node interrupts-dma-backend.js SOCKET DIR   (prints {"socket","guest"} when listening)
 */
import { join } from 'node:path';
import { BackendServer } from '../src/backend/server/backend-server.js';
import { admitPeer, createExportHost } from '../src/backend/server/export-host.js';
import { openExportedDevice, type ExportedDevice } from '../src/backend/exported-device.js';
import { DmaBudget } from '../src/backend/dma/dma-windows.js';
import type { DeviceServicesHost } from '../src/backend/device-services.js';
import type { HostInterrupts, InterruptKind } from '../src/host/device-access.js';
import { allocateDmaMemory } from '../src/host/dma-memory.js';
import { native, type FdPoller } from '../src/native/binding.js';
import { formatAddress, parseAddress } from '../src/pci/address.js';
import { buildConfigImage, createFixtureTree } from '../test/support/fixture-sysfs.js';

const BENCH_DEVICE = '0000:00:04.0';
/** The inherited eventfd: stdio 0-2, then this. */
const EVENTFD = 3;

/** Every vector of the enabled kind fires through the one inherited eventfd (vector 0 reported). */
class InheritedEventfdInterrupts implements HostInterrupts {
  private poller: FdPoller | undefined;

  enable(kind: InterruptKind, _count: number, onInterrupt: (kind: InterruptKind, vector: number, count: number) => void): void {
    this.disableAll();
    this.poller = native().watchFd(EVENTFD, () => {
      const counter = native().eventfdRead(EVENTFD);
      if (counter !== null) onInterrupt(kind, 0, Number(counter));
    });
  }

  attachEventFds(): void {
    throw new Error('not used by the bench');
  }

  mask(): void {}

  disable(): void {
    this.disableAll();
  }

  disableAll(): void {
    this.poller?.close();
    this.poller = undefined;
  }
}

async function main(): Promise<void> {
  const [socket, dir] = process.argv.slice(2);
  const bars = [{ index: 0, kind: 'mem' as const, size: 0x10_0000, start: 0xfea0_0000 }];
  const tree = createFixtureTree([{
    address: BENCH_DEVICE, bars,
    // MSI, 64-bit address: control 0x0080.
    config: buildConfigImage({ vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00, bars, capabilities: [{ id: 0x05, body: [0x80, 0x00, ...new Array(12).fill(0)] }] }),
  }], join(dir, 'sysfs'));
  const services: DeviceServicesHost = {
    features: { interrupts: { msi: 1 }, dma: true, reset: false },
    interrupts: new InheritedEventfdInterrupts(),
    dma: { map: () => undefined, unmap: () => undefined, unmapAll: () => undefined },
  };
  const dma = { budget: new DmaBudget(), allocate: allocateDmaMemory };
  const backend = new BackendServer<ExportedDevice>({
    mode: 'vpci', socketPath: socket, devices: [{ address: parseAddress(BENCH_DEVICE), permissive: false }], permissive: false, readOnly: false,
    resetOnExport: false, resetOnRelease: false, allowUids: [], allowGids: [], verboseRequest: false, exitOnDisconnect: false,
  }, {
    host: {
      ...createExportHost({ sysfsRoot: tree.root, stateDir: join(dir, 'state'), mode: 'vpci', readOnly: false }),
      open: (info, guest, permissive) => openExportedDevice({ sysfsRoot: tree.root, info, guest, mode: 'vpci', readOnly: false, permissive, services, dma }),
    },
    admit: admitPeer,
    warn: (message) => process.stderr.write(`${message}\n`),
  });
  await backend.prepare();
  const { added, refused } = backend.exportDevices();
  if (refused.length > 0) throw new Error(`not exported: ${refused.map((r) => r.reason).join('; ')}`);
  await backend.listen();
  const stop = (): void => {
    void backend.stop('bench over').then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdout.write(`${JSON.stringify({ socket, guest: added.map((entry) => formatAddress(entry.guest)) })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`interrupts-dma-backend: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
