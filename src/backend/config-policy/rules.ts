/**
 * The config-space policy as data: for every register the frontend can reach, what a read returns
 * and what a write may do, as bit masks. This table is the single source of truth: the engine
 * (config-space.ts) evaluates it, render.ts prints it into docs/security.md, and the tests walk it
 * row by row. Change a row here and the doc test tells you to re-render the doc.
 *
 * Bit classes of a row (masks over the row's width; a bit may be in several, see `hide`):
 * - pass:       the frontend's value is written to the hardware;
 * - emulate:    kept in the export's virtual copy; the hardware never sees it;
 * - decode:     emulated, and setting it also sets the hardware bit; clearing it never clears the
 *               hardware bit (XSA-120: decode goes off only in the frontend's view);
 * - rw1c:       write-1-to-clear in the hardware: a 1 is a request to clear, refused unless the
 *               export is permissive; the engine never writes back a 1 it read there;
 * - ignore:     read-only in the hardware too and defined to ignore writes (status bits): any value
 *               is accepted and has no effect, exactly as on real hardware;
 * - hide:       reads as 0 and cannot be set (capabilities the frontend is not offered, e.g. PME);
 * - permissive: refused by default, written to the hardware when the export is permissive;
 * - every other bit is read-only: a write must leave it at the value the frontend reads (so a
 *   read-modify-write of a neighbouring field succeeds), any change is refused;
 * - strict rows refuse any write to their read-only bits, even one that keeps the value: where
 *   the write itself may be an action (unknown registers, the VPD address), acknowledging it as a
 *   no-op would be a fake success.
 * A write that would change any refused bit is refused as a whole (AccessDenied) and applies
 * nothing, so the device is byte-identical after a refusal.
 */

export interface FieldRule {
  /** Header rows: absolute offset. Capability rows: offset from the capability's start. */
  readonly offset: number;
  /** Bytes (1-4), or 'rest': from `offset` to the end of the capability (read-only rows only). */
  readonly size: number | 'rest';
  readonly name: string;
  /** What a read returns (documentation). */
  readonly reads: string;
  readonly pass?: number;
  readonly emulate?: number;
  readonly decode?: number;
  readonly rw1c?: number;
  readonly ignore?: number;
  readonly hide?: number;
  readonly permissive?: number;
  /** Any write touching a read-only bit is refused, even one that keeps its value. */
  readonly strict?: boolean;
  /** Emulated as a whole by bar-emulation.ts: BAR registers and the expansion ROM register. */
  readonly bar?: 'bar' | 'rom';
  /** Why refused bits are refused: the reason in AccessDenied messages, denials() and the doc. */
  readonly refused: string;
}

export interface CapabilityRules {
  readonly id: number;
  readonly name: string;
  /** Rows after the two-byte capability header (CAPABILITY_HEADER_RULES). */
  readonly rows: readonly FieldRule[];
  /** Length of the capability in bytes, from its own registers (snapshot at export time). */
  readonly length: (config: Uint8Array, offset: number) => number;
}

const IDENTITY = 'identity and layout fields are read-only';
const HARDWARE = 'hardware value';
const HARDWARE_STATUS_BITS = 'error bits are the host\'s to clear: write 1 to clear only with --permissive';

const COMMAND: FieldRule = {
  offset: 0x04, size: 2, name: 'Command',
  reads: 'hardware value; I/O and memory decode (0x0003) from the frontend\'s own view',
  decode: 0x0003, permissive: 0x07f8,
  refused: 'only I/O and memory decode are frontend-controlled (others with --permissive); bus master only on a device with DMA through an IOMMU (VFIO); reserved bits are read-only',
};

/**
 * The Command row of a device the backend holds through VFIO with an IOMMU (descriptor `dma`):
 * bus master passes to the hardware both ways, since the device's DMA can reach nothing but the
 * frontend's DMA windows. Without an IOMMU bus mastering would let the device read and write any
 * host memory, so it stays read-only there (COMMAND), even with --permissive.
 */
export const DMA_COMMAND_RULE: FieldRule = {
  ...COMMAND,
  pass: 0x0004,
  emulate: 0x0400,
  permissive: 0x03f8,
  refused: 'only I/O decode, memory decode, bus master and INTx disable are frontend-controlled (others with --permissive); reserved bits are read-only',
};

/**
 * The Command row of a device whose INTx the backend delivers through VFIO with no IOMMU behind it
 * (VFIO no-IOMMU: descriptor `interrupts.intx` without `dma`): INTx disable is kept in the view as
 * with an IOMMU, since the hardware bit is vfio-pci's; bus master stays read-only as in COMMAND.
 */
export const INTX_COMMAND_RULE: FieldRule = {
  ...COMMAND,
  emulate: 0x0400,
  permissive: 0x03f8,
  refused: 'only I/O decode, memory decode and INTx disable are frontend-controlled (others with --permissive); bus master only on a device with DMA through an IOMMU (VFIO); reserved bits are read-only',
};

const COMMON_HEADER: readonly FieldRule[] = [
  { offset: 0x00, size: 2, name: 'Vendor ID', reads: HARDWARE, refused: IDENTITY },
  { offset: 0x02, size: 2, name: 'Device ID', reads: HARDWARE, refused: IDENTITY },
  COMMAND,
  {
    offset: 0x06, size: 2, name: 'Status', reads: HARDWARE,
    rw1c: 0xf900, ignore: 0x06ff,
    refused: HARDWARE_STATUS_BITS,
  },
  { offset: 0x08, size: 1, name: 'Revision ID', reads: HARDWARE, refused: IDENTITY },
  { offset: 0x09, size: 3, name: 'Class Code', reads: HARDWARE, refused: IDENTITY },
  { offset: 0x0c, size: 1, name: 'Cache Line Size', reads: HARDWARE, pass: 0xff, refused: '' },
  {
    offset: 0x0d, size: 1, name: 'Latency Timer', reads: HARDWARE,
    refused: 'bus-arbitration time is shared with other devices on a conventional PCI bus',
  },
  { offset: 0x0e, size: 1, name: 'Header Type', reads: HARDWARE, refused: IDENTITY },
  {
    offset: 0x0f, size: 1, name: 'BIST', reads: HARDWARE,
    refused: 'starting a built-in self test leaves the device unresponsive for up to 2 s and in a device-specific state',
  },
];

const BAR_READS = 'emulated: host address (passthrough) or the stable per-device vPCI address, hardware type bits; after a sizing write, the size mask';
const BAR_REFUSED = 'the frontend cannot move a BAR: write all address bits set to size it, or write back the value read';

const bar = (index: number): FieldRule => ({
  offset: 0x10 + 4 * index, size: 4, name: `BAR${index}`, reads: BAR_READS, bar: 'bar', refused: BAR_REFUSED,
});


/**
 * Type-0 header (endpoints): the only header xpci exports. Bridges (class 0x06, header types 1
 * and 2) are refused in every mode, since whoever controls a bridge controls every device behind it.
 */
export const HEADER_RULES: readonly FieldRule[] = [
  ...COMMON_HEADER,
  bar(0), bar(1), bar(2), bar(3), bar(4), bar(5),
  { offset: 0x28, size: 4, name: 'CardBus CIS Pointer', reads: HARDWARE, refused: IDENTITY },
  { offset: 0x2c, size: 2, name: 'Subsystem Vendor ID', reads: HARDWARE, refused: IDENTITY },
  { offset: 0x2e, size: 2, name: 'Subsystem ID', reads: HARDWARE, refused: IDENTITY },
  {
    offset: 0x30, size: 4, name: 'Expansion ROM',
    reads: 'emulated like a BAR (address bits 31:11); bit 0 (enable) from the frontend\'s own view',
    bar: 'rom', refused: BAR_REFUSED,
  },
  { offset: 0x34, size: 1, name: 'Capabilities Pointer', reads: HARDWARE, refused: IDENTITY },
  { offset: 0x35, size: 3, name: 'Reserved (0x35)', reads: HARDWARE, refused: IDENTITY },
  { offset: 0x38, size: 4, name: 'Reserved (0x38)', reads: HARDWARE, refused: IDENTITY },
  {
    offset: 0x3c, size: 1, name: 'Interrupt Line',
    reads: 'emulated: a per-export byte, initially the hardware value', emulate: 0xff, refused: '',
  },
  { offset: 0x3d, size: 1, name: 'Interrupt Pin', reads: HARDWARE, refused: IDENTITY },
  { offset: 0x3e, size: 1, name: 'Min_Gnt', reads: HARDWARE, refused: IDENTITY },
  { offset: 0x3f, size: 1, name: 'Max_Lat', reads: HARDWARE, refused: IDENTITY },
];

/** The ID and next-pointer bytes every standard capability starts with. */
export const CAPABILITY_HEADER_RULES: readonly FieldRule[] = [
  { offset: 0, size: 1, name: 'Capability ID', reads: HARDWARE, refused: 'the capability list is read-only' },
  { offset: 1, size: 1, name: 'Next Capability Pointer', reads: HARDWARE, refused: 'the capability list is read-only' },
];

/** The 32-bit header every extended capability (0x100 and up) starts with. */
export const EXTENDED_CAPABILITY_HEADER_RULE: FieldRule = {
  offset: 0, size: 4, name: 'Extended Capability Header', reads: HARDWARE, refused: 'the capability list is read-only',
};

const INTERRUPTS = 'interrupt delivery is not offered to the frontend yet: MSI/MSI-X cannot be enabled or programmed';

const msiLength = (config: Uint8Array, offset: number): number => {
  const control = config[offset + 2] | (config[offset + 3] << 8);
  const is64 = (control & 0x0080) !== 0;
  const masking = (control & 0x0100) !== 0;
  return (is64 ? 14 : 10) + (masking ? 10 : 0);
};

/**
 * MSI and MSI-X of a device whose interrupts the backend delivers (descriptor `interrupts`): the
 * frontend's own registers, kept by backend/interrupts/ (msi-capability.ts, msix-table.ts) instead
 * of the rows of CAPABILITY_RULES. Documentation rows: the mask engine never evaluates them.
 */
export const DELIVERED_INTERRUPT_RULES: readonly FieldRule[] = [
  {
    offset: 2, size: 2, name: 'MSI Message Control',
    reads: 'the frontend\'s view: MSI Enable and Multiple Message Enable as it wrote them, the hardware\'s capability bits',
    emulate: 0x0071, refused: 'enabling more vectors than the device offers, or changing the capability bits',
  },
  {
    offset: 4, size: 'rest', name: 'MSI Address, Data, Mask Bits',
    reads: 'the frontend\'s view (never the host\'s values); Pending Bits: interrupts held for masked vectors',
    emulate: 0xffffffff, refused: 'Pending Bits and reserved bits are read-only',
  },
  {
    offset: 2, size: 2, name: 'MSI-X Message Control',
    reads: 'the frontend\'s view: MSI-X Enable and Function Mask as it wrote them, the hardware table size',
    emulate: 0xc000, refused: 'the table size is read-only',
  },
  { offset: 4, size: 4, name: 'MSI-X Table Offset/BIR', reads: HARDWARE, refused: 'the table location is read-only' },
  { offset: 8, size: 4, name: 'MSI-X PBA Offset/BIR', reads: HARDWARE, refused: 'the PBA location is read-only' },
];

/** Capabilities with their own rows; any other capability is covered by UNLISTED_RULE. */
export const CAPABILITY_RULES: readonly CapabilityRules[] = [
  {
    id: 0x01, name: 'Power Management', length: () => 8,
    rows: [
      {
        offset: 2, size: 2, name: 'PM Capabilities (PMC)', reads: 'hardware value; PME support (bits 15:11) reads 0',
        hide: 0xf800, refused: 'the PM capabilities are read-only; PME is not offered',
      },
      {
        offset: 4, size: 2, name: 'PM Control/Status (PMCSR)',
        reads: 'hardware value; PME_En (bit 8) and PME_Status (bit 15) read 0',
        pass: 0x1e00, hide: 0x8100, rw1c: 0x8000,
        refused: 'power-state changes are refused (no kernel path from userspace; D3hot would stop BAR decode behind the host); PME is not offered',
      },
      { offset: 6, size: 1, name: 'PMCSR Bridge Extensions', reads: HARDWARE, refused: 'read-only' },
      { offset: 7, size: 1, name: 'PM Data', reads: HARDWARE, refused: 'read-only' },
    ],
  },
  {
    id: 0x03, name: 'VPD', length: () => 8,
    rows: [
      { offset: 2, size: 2, name: 'VPD Address', reads: HARDWARE, strict: true, refused: 'VPD is read-only to the frontend (an address write starts a VPD transfer)' },
      { offset: 4, size: 4, name: 'VPD Data', reads: HARDWARE, refused: 'VPD is read-only to the frontend' },
    ],
  },
  {
    id: 0x05, name: 'MSI', length: msiLength,
    rows: [
      { offset: 2, size: 2, name: 'MSI Message Control', reads: HARDWARE, refused: INTERRUPTS },
      { offset: 4, size: 'rest', name: 'MSI Address, Data, Mask and Pending', reads: HARDWARE, refused: INTERRUPTS },
    ],
  },
  {
    id: 0x11, name: 'MSI-X', length: () => 12,
    rows: [
      { offset: 2, size: 2, name: 'MSI-X Message Control', reads: HARDWARE, refused: INTERRUPTS },
      { offset: 4, size: 4, name: 'MSI-X Table Offset/BIR', reads: HARDWARE, refused: INTERRUPTS },
      { offset: 8, size: 4, name: 'MSI-X PBA Offset/BIR', reads: HARDWARE, refused: INTERRUPTS },
    ],
  },
];

/**
 * Every byte no row above covers: device-specific registers and unknown capability bodies in
 * 0x40-0xff, and all of extended space except the capability headers. Pciback's default
 * (XSA-131): readable, writable only in permissive mode.
 */
export const UNLISTED_RULE: FieldRule = {
  offset: 0, size: 1, name: 'unlisted register', reads: HARDWARE, permissive: 0xff, strict: true,
  refused: 'not in the register table (device-specific or unknown capability): writes reach the hardware only with --permissive',
};
