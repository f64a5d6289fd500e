/**
 * lspci -v's texts for extended capabilities (pciutils' ls-ecaps.c).
 */
import type { Capability } from './capabilities.js';
import { dwordAt, wordAt } from './config-fields.js';
import { PCI_EXT_CAP_ID_DSN, PCI_EXT_CAP_ID_DVSEC, PCI_EXT_CAP_ID_VNDR } from './config-header.js';
import { hex } from './hex.js';

const EXTENDED_TEXTS: Record<number, string> = {
  0x00: 'Null', 0x01: 'Advanced Error Reporting', 0x02: 'Virtual Channel', 0x04: 'Power Budgeting <?>',
  0x05: 'Root Complex Link', 0x06: 'Root Complex Internal Link <?>', 0x07: 'Root Complex Event Collector Endpoint Association',
  0x08: 'Multi-Function Virtual Channel <?>', 0x09: 'Virtual Channel', 0x0a: 'Root Complex Register Block <?>',
  0x0d: 'Access Control Services', 0x0e: 'Alternative Routing-ID Interpretation (ARI)',
  0x0f: 'Address Translation Service (ATS)', 0x10: 'Single Root I/O Virtualization (SR-IOV)',
  0x11: 'Multi-Root I/O Virtualization <?>', 0x12: 'Multicast', 0x13: 'Page Request Interface (PRI)',
  0x15: 'Physical Resizable BAR', 0x16: 'Dynamic Power Allocation <?>', 0x17: 'Transaction Processing Hints',
  0x18: 'Latency Tolerance Reporting', 0x19: 'Secondary PCI Express', 0x1a: 'Protocol Multiplexing <?>',
  0x1b: 'Process Address Space ID (PASID)', 0x1c: 'LN Requester <?>', 0x1d: 'Downstream Port Containment',
  0x1e: 'L1 PM Substates', 0x1f: 'Precision Time Measurement', 0x20: 'PCI Express over M_PHY <?>',
  0x21: 'FRS Queueing <?>', 0x22: 'Readiness Time Reporting <?>', 0x24: 'VF Resizable BAR <?>',
  0x25: 'Data Link Feature <?>', 0x26: 'Physical Layer 16.0 GT/s <?>', 0x27: 'Lane Margining at the Receiver <?>',
  0x28: 'Hierarchy ID <?>', 0x29: 'Native PCIe Enclosure Management <?>', 0x2e: 'Data Object Exchange',
};

/** lspci -v's one-line text for an extended capability. */
export function extendedCapabilityText(cap: Capability, config: Uint8Array): string {
  const at = cap.offset;
  switch (cap.id) {
    case PCI_EXT_CAP_ID_DSN: {
      const low = dwordAt(config, at + 4);
      const high = dwordAt(config, at + 8);
      const bytes = [high >>> 24, (high >>> 16) & 0xff, (high >>> 8) & 0xff, high & 0xff, low >>> 24, (low >>> 16) & 0xff, (low >>> 8) & 0xff, low & 0xff];
      return `Device Serial Number ${bytes.map((b) => hex(b, 2)).join('-')}`;
    }
    case PCI_EXT_CAP_ID_VNDR: {
      const header = dwordAt(config, at + 4);
      return `Vendor Specific Information: ID=${hex(header & 0xffff, 4)} Rev=${(header >>> 16) & 0xf} Len=${hex(header >>> 20, 3)} <?>`;
    }
    case PCI_EXT_CAP_ID_DVSEC: {
      const header1 = dwordAt(config, at + 4);
      const vendor = header1 & 0xffff;
      return `Designated Vendor-Specific: Vendor=${hex(vendor, 4)} ID=${hex(wordAt(config, at + 8), 4)} Rev=${(header1 >>> 16) & 0xf} Len=${header1 >>> 20}${vendor === 0x1e98 ? ': CXL' : ' <?>'}`;
    }
    default: return EXTENDED_TEXTS[cap.id] ?? `Extended Capability ID 0x${cap.id.toString(16)}`;
  }
}
