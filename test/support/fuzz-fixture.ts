/**
 * The device the fuzzer (and the benchmark's transport figures) export from a fixture sysfs tree:
 * an e1000e-like endpoint with every BAR kind (32-bit memory, I/O, 64-bit prefetchable memory, an
 * MSI-X table BAR, a ROM) and a realistic capability chain (PM, MSI, PCIe, MSI-X, VPD, vendor
 * specific, AER and DSN in extended space), plus a two-function sibling pair so vPCI slot sharing
 * and per-function lookups are exercised too. No driver is bound, so writes are allowed.
 */
import { buildConfigImage, createFixtureTree, type FixtureBar, type FixtureDeviceSpec, type FixtureTree } from './fixture-sysfs.js';

export const MAIN_DEVICE = '0000:00:03.0';
export const SIBLINGS = ['0000:00:05.0', '0000:00:05.1'] as const;

const MAIN_BARS: FixtureBar[] = [
  { index: 0, kind: 'mem', size: 0x20000, start: 0xfebc0000 },
  { index: 1, kind: 'io', size: 0x20, start: 0xc040 },
  { index: 2, kind: 'mem', size: 0x4000, start: 0x8_0000_0000, is64: true, prefetchable: true },
  { index: 4, kind: 'mem', size: 0x1000, start: 0xfebe0000 },
];

const PCIE_BODY = [
  0x02, 0x00, // PCIe capabilities: version 2, endpoint
  0xc1, 0x8c, 0x00, 0x10, // DevCap: FLR, max payload 256
  0x10, 0x28, 0x10, 0x00, // DevCtl, DevSta
  0x11, 0x5c, 0x43, 0x00, // LnkCap
  0x40, 0x00, 0x11, 0x10, // LnkCtl, LnkSta
  ...new Array(0x3c - 0x14).fill(0),
];

function mainConfig(): Uint8Array {
  return buildConfigImage({
    vendor: 0x8086, device: 0x10d3, classCode: 0x020000, revision: 0x01, headerType: 0x00,
    subsystemVendor: 0x8086, subsystemDevice: 0xa01f, command: 0x0000, status: 0x0010,
    cacheLineSize: 0x10, interruptLine: 11, interruptPin: 1,
    bars: MAIN_BARS,
    rom: { start: 0xfeb80000, size: 0x40000 },
    capabilities: [
      { id: 0x01, body: [0x03, 0xc8, 0x08, 0x00, 0x00, 0x00] }, // PM: PMC (PME from D0/D3hot/D3cold), PMCSR
      { id: 0x05, body: [0x80, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] }, // MSI, 64-bit
      { id: 0x10, body: PCIE_BODY },
      { id: 0x11, body: [0x04, 0x00, 0x04, 0x00, 0x00, 0x00, 0x04, 0x08, 0x00, 0x00] }, // MSI-X: 5 vectors in BAR4
      { id: 0x03, body: [0x00, 0x00, 0x00, 0x00, 0x00, 0x00] }, // VPD
      { id: 0x09, body: [0x08, 0x01, 0x02, 0x03, 0x04, 0x05] }, // vendor specific, 8 bytes
    ],
    extendedCapabilities: [
      { id: 0x0001, version: 2, body: new Array(0x44).fill(0) }, // AER
      { id: 0x0003, version: 1, body: [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88] }, // DSN
    ],
  });
}

function siblingConfig(fn: number): Uint8Array {
  return buildConfigImage({
    vendor: 0x1b36, device: 0x0100 + fn, classCode: 0x0c0330, revision: 0x02, headerType: 0x80,
    subsystemVendor: 0x1af4, subsystemDevice: 0x1100, status: 0x0010, interruptPin: fn + 1,
    bars: [{ index: 0, kind: 'mem', size: 0x1000, start: 0xfe000000 + fn * 0x1000 }],
    capabilities: [{ id: 0x01, body: [0x03, 0x00, 0x00, 0x00, 0x00, 0x00] }],
  });
}

export function fuzzDeviceSpecs(): FixtureDeviceSpec[] {
  return [
    { address: MAIN_DEVICE, config: mainConfig(), bars: MAIN_BARS, rom: { start: 0xfeb80000, size: 0x40000 }, driver: null, iommuGroup: 7 },
    ...SIBLINGS.map((address, fn) => ({
      address, config: siblingConfig(fn), bars: [{ index: 0, kind: 'mem' as const, size: 0x1000, start: 0xfe000000 + fn * 0x1000 }],
      driver: null, iommuGroup: 8,
    })),
  ];
}

export function createFuzzFixture(dir?: string): FixtureTree {
  return createFixtureTree(fuzzDeviceSpecs(), dir);
}
