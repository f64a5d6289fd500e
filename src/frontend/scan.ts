/**
 * pcifront-style discovery of the published roots (Linux drivers/pci/xen-pcifront.c):
 * 1. the standard scan: per slot, function 0, and functions 1-7 only when function 0's header type
 *    has the multi-function bit;
 * 2. then a sweep of every devfn 0x00-0xff not yet probed, because the standard scan skips a slot
 *    whose function 0 is absent (a lone 00:00.2 in vPCI mode).
 * An absent devfn answers DeviceNotFound; like the PCI core, an all-ones or zero vendor ID also
 * means "nothing here". Any other error is real and propagates. All probes of a phase are issued
 * at once so the ring keeps them in flight together.
 */
import { compareAddresses, formatAddress, packAddress, parseAddress, type PciAddress } from '../pci/address.js';
import { PCI_HEADER_TYPE, PCI_HEADER_TYPE_MULTI_FUNCTION, PCI_VENDOR_ID } from '../pci/config-header.js';
import { ErrorCode, XpciError } from '../protocol/ring/messages.js';
import type { FrontendClient } from './client.js';

export interface ScanResult {
  /** Every function found, sorted by address. */
  addresses: PciAddress[];
  /** Found by the scan but absent from the backend's device list. */
  unlisted: PciAddress[];
  /** In the backend's device list on a scanned root but not found by the scan. */
  missing: PciAddress[];
}

export function parseRoot(root: string): { domain: number; bus: number } {
  const m = /^([0-9a-fA-F]{4}):([0-9a-fA-F]{2})$/.exec(root);
  if (!m) throw new XpciError(ErrorCode.Malformed, `root bus '${root}' is not DDDD:BB`);
  return { domain: parseInt(m[1], 16), bus: parseInt(m[2], 16) };
}

const at = (domain: number, bus: number, devfn: number): PciAddress => ({ domain, bus, device: devfn >> 3, function: devfn & 7 });

/** Resolves true when a function answers at `address`. */
async function probe(client: FrontendClient, address: PciAddress): Promise<boolean> {
  try {
    const ids = await client.configRead(address, PCI_VENDOR_ID, 4);
    const vendor = ids & 0xffff;
    return vendor !== 0xffff && vendor !== 0x0000;
  } catch (error) {
    if (error instanceof XpciError && error.code === ErrorCode.DeviceNotFound) return false;
    throw error;
  }
}

async function scanRoot(client: FrontendClient, domain: number, bus: number): Promise<PciAddress[]> {
  const found = new Map<number, PciAddress>();
  const probed = new Set<number>();
  const probeAll = async (devfns: number[]): Promise<number[]> => {
    for (const devfn of devfns) probed.add(devfn);
    const present = await Promise.all(devfns.map((devfn) => probe(client, at(domain, bus, devfn))));
    const hits = devfns.filter((_, i) => present[i]);
    for (const devfn of hits) found.set(devfn, at(domain, bus, devfn));
    return hits;
  };

  const slots = Array.from({ length: 32 }, (_, slot) => slot << 3);
  const functionZeros = await probeAll(slots);
  const headerTypes = await Promise.all(functionZeros.map((devfn) => client.configRead(at(domain, bus, devfn), PCI_HEADER_TYPE, 1)));
  const siblings = functionZeros
    .filter((_, i) => headerTypes[i] & PCI_HEADER_TYPE_MULTI_FUNCTION)
    .flatMap((devfn) => [1, 2, 3, 4, 5, 6, 7].map((fn) => devfn | fn));
  await probeAll(siblings);

  const rest = Array.from({ length: 256 }, (_, devfn) => devfn).filter((devfn) => !probed.has(devfn));
  await probeAll(rest);
  return [...found.values()];
}

export async function scanBus(client: FrontendClient, roots: readonly string[] = client.roots): Promise<ScanResult> {
  const parsed = roots.map(parseRoot);
  const perRoot = await Promise.all(parsed.map(({ domain, bus }) => scanRoot(client, domain, bus)));
  const addresses = perRoot.flat().sort(compareAddresses);
  const foundKeys = new Set(addresses.map(packAddress));
  const rootKeys = new Set(parsed.map(({ domain, bus }) => (domain << 8) | bus));
  const listed = client.devices().map((d) => parseAddress(d.address));
  const listedKeys = new Set(listed.map(packAddress));
  return {
    addresses,
    unlisted: addresses.filter((a) => !listedKeys.has(packAddress(a))),
    missing: listed.filter((a) => rootKeys.has((a.domain << 8) | a.bus) && !foundKeys.has(packAddress(a))),
  };
}

export function describeScanMismatch(result: ScanResult): string[] {
  return [
    ...result.unlisted.map((a) => `${formatAddress(a)} answers on the bus but is not in the backend's device list`),
    ...result.missing.map((a) => `${formatAddress(a)} is in the backend's device list but did not answer the scan`),
  ];
}
