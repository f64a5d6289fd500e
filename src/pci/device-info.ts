/**
 * What discovery (src/host/sysfs/discovery.ts) learns about one host PCI function from sysfs.
 * Numbers, not bigints: physical addresses and BAR sizes stay below 2^53.
 */
import type { PciAddress } from './address.js';

export type BarKind = 'mem' | 'io';

/** One BAR as the kernel's `resource` table describes it (index 0-5; 6 is the ROM). */
export interface BarInfo {
  index: number;
  start: number;
  size: number;
  kind: BarKind;
  is64: boolean;
  prefetchable: boolean;
  /** raw flags column of the `resource` line (IORESOURCE_*) */
  flags: number;
}

export interface PciDeviceInfo {
  address: PciAddress;
  /** "0000:06:01.0" */
  bdf: string;
  vendor: number;
  device: number;
  subsystemVendor: number;
  subsystemDevice: number;
  /** 24-bit class code */
  classCode: number;
  revision: number;
  /** low 7 bits of config 0x0e: 0 normal, 1 PCI-PCI bridge, 2 CardBus */
  headerLayout: number;
  multiFunction: boolean;
  /** base class 0x06: refused by vPCI export (any bridge: host, ISA, P2P, ...) */
  isBridge: boolean;
  /** bound driver name from the `driver` link, or null */
  driver: string | null;
  /** size of the `config` file: 256 or 4096 (readable size can be less for non-root) */
  configSize: number;
  /** BARs with a non-zero size, by index; the ROM (index 6) is separate */
  bars: BarInfo[];
  rom: BarInfo | null;
  iommuGroup: number | null;
  /** sysfs `reset` exists */
  hasReset: boolean;
  /** An SR-IOV virtual function (it has a `physfn` link): vPCI gives a VF at function 0 a slot of its own. */
  isVirtualFunction: boolean;
  /** absolute path of the device's sysfs directory */
  sysfsPath: string;
}
