/**
 * The standard test device set, at pinned addresses (documented in docs/testing.md), and the
 * harness's own devices. Addresses are what the guest sees on q35 with `-nodefaults`.
 */

/** Guest addresses of the standard devices (sysfs names). */
export const STANDARD_DEVICES = {
  /** edu: BAR0 1 MiB MMIO; 0x00 identification 0x010000ed, 0x04 liveness (inverts) */
  edu: '0000:00:10.0',
  /** pci-testdev membar=1M: BAR0 4K MMIO, BAR1 I/O, BAR2 64-bit prefetchable 1 MiB */
  pciTestdev: '0000:00:11.0',
  /** e1000 multi-function pair: BAR0 128K MMIO, BAR1 64-byte I/O, ROM */
  e1000Fn0: '0000:00:05.0',
  e1000Fn1: '0000:00:05.1',
  /** conventional PCI-PCI bridge (secondary bus 1) and the edu behind it */
  pciBridge: '0000:00:06.0',
  eduBehindBridge: '0000:01:03.0',
  /** PCIe root port (secondary bus 2; 4096-byte config, AER at 0x100) and the e1000e behind it */
  rootPort: '0000:00:07.0',
  e1000e: '0000:02:00.0',
  /** virtio-serial controller: the harness's agent port and the test port xpci.0 */
  virtioSerial: '0000:00:09.0',
  /** ivshmem-plain: BAR2 is RAM shared with the host file Guest.ivshmemPath */
  ivshmem: '0000:00:12.0',
} as const;

/** Addresses of the harness's 9p shares: host root, then the read-write shares (repo first). */
export const ROOT_SHARE_SLOT = 0x18;
export const FIRST_RW_SHARE_SLOT = 0x19;
export const LAST_RW_SHARE_SLOT = 0x1e;

/** How the host side of the `xpci.0` virtio-serial port is wired. */
export type XpciPortMode =
  /** QEMU listens on a Unix socket (Guest.xpciSocketPath); the host connects as a client. */
  | { mode: 'server' }
  /** QEMU connects to a socket the test listens on, and retries every second until it can. */
  | { mode: 'client'; path: string };

export interface DeviceSet {
  /** Include the standard test devices (default true). */
  standard?: boolean;
  /** ivshmem-plain RAM size in bytes, a power of two (default 1 MiB). */
  ivshmemSize?: number;
  /** The xpci.0 port (default { mode: 'server' }); false leaves it out. */
  xpciPort?: XpciPortMode | false;
  /** Extra `-device` values, e.g. 'nvme,serial=x,bus=rp2' (the harness adds the `-device`). */
  extraDevices?: string[];
}

export const DEFAULT_IVSHMEM_SIZE = 1 << 20;

/** QEMU arguments for the standard devices; ivshmem is backed by `ivshmemPath`. */
export function standardDeviceArgs(ivshmemPath: string, ivshmemSize: number): string[] {
  const devices = [
    'edu,addr=0x10',
    'pci-testdev,addr=0x11,membar=1M',
    'e1000,addr=0x5.0,multifunction=on,mac=52:54:00:00:05:00',
    'e1000,addr=0x5.1,mac=52:54:00:00:05:01',
    'pci-bridge,id=bridge1,chassis_nr=1,addr=0x6',
    'edu,bus=bridge1,addr=0x3',
    'pcie-root-port,id=rootport1,chassis=2,addr=0x7',
    'e1000e,bus=rootport1,mac=52:54:00:00:07:00',
    'ivshmem-plain,memdev=ivshmem0,addr=0x12',
  ];
  return [
    '-object', `memory-backend-file,id=ivshmem0,share=on,mem-path=${ivshmemPath},size=${ivshmemSize}`,
    ...devices.flatMap((d) => ['-device', d]),
  ];
}

/** The virtio-serial controller with the agent port (QEMU connects to the harness) and xpci.0. */
export function serialPortArgs(agentSocketPath: string, xpciPort: { mode: 'server' | 'client'; path: string } | null): string[] {
  const args = [
    '-chardev', `socket,id=agent,path=${agentSocketPath},server=off`,
    '-device', 'virtio-serial-pci,id=vserial0,addr=0x9',
    '-device', 'virtserialport,bus=vserial0.0,chardev=agent,name=org.xpci.agent',
  ];
  if (xpciPort) {
    const socket = xpciPort.mode === 'server' ? 'server=on,wait=off' : 'server=off,reconnect=1';
    args.push('-chardev', `socket,id=xpci0,path=${xpciPort.path},${socket}`);
    args.push('-device', 'virtserialport,bus=vserial0.0,chardev=xpci0,name=xpci.0');
  }
  return args;
}
