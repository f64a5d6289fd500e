/**
 * Register offsets and bits of the PCI configuration header, named as in pciutils' lib/header.h
 * (and the kernel's pci_regs.h) so code reads like the specifications it implements.
 */

// Common to all header types (0x00-0x0f)
export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_CLASS_DEVICE = 0x0a;
export const PCI_CACHE_LINE_SIZE = 0x0c;
export const PCI_LATENCY_TIMER = 0x0d;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BIST = 0x0f;

export const PCI_COMMAND_IO = 0x1;
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
export const PCI_COMMAND_SPECIAL = 0x8;
export const PCI_COMMAND_INVALIDATE = 0x10;
export const PCI_COMMAND_VGA_PALETTE = 0x20;
export const PCI_COMMAND_PARITY = 0x40;
export const PCI_COMMAND_WAIT = 0x80;
export const PCI_COMMAND_SERR = 0x100;
export const PCI_COMMAND_FAST_BACK = 0x200;
export const PCI_COMMAND_DISABLE_INTX = 0x400;

export const PCI_STATUS_INTX = 0x08;
export const PCI_STATUS_CAP_LIST = 0x10;
export const PCI_STATUS_66MHZ = 0x20;
export const PCI_STATUS_UDF = 0x40;
export const PCI_STATUS_FAST_BACK = 0x80;
export const PCI_STATUS_PARITY = 0x100;
export const PCI_STATUS_DEVSEL_MASK = 0x600;
export const PCI_STATUS_DEVSEL_FAST = 0x000;
export const PCI_STATUS_DEVSEL_MEDIUM = 0x200;
export const PCI_STATUS_DEVSEL_SLOW = 0x400;
export const PCI_STATUS_SIG_SYSTEM_ERROR = 0x4000;

export const PCI_HEADER_TYPE_MASK = 0x7f;
export const PCI_HEADER_TYPE_MULTI_FUNCTION = 0x80;
export const PCI_HEADER_TYPE_NORMAL = 0;
export const PCI_HEADER_TYPE_BRIDGE = 1;
export const PCI_HEADER_TYPE_CARDBUS = 2;

export const PCI_BIST_CODE_MASK = 0x0f;
export const PCI_BIST_START = 0x40;
export const PCI_BIST_CAPABLE = 0x80;

// Header type 0 (normal devices)
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_CARDBUS_CIS = 0x28;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_ROM_ADDRESS = 0x30;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;
export const PCI_MIN_GNT = 0x3e;
export const PCI_MAX_LAT = 0x3f;

export const PCI_BASE_ADDRESS_SPACE_IO = 0x01;
export const PCI_BASE_ADDRESS_MEM_TYPE_MASK = 0x06;
export const PCI_BASE_ADDRESS_MEM_TYPE_32 = 0x00;
export const PCI_BASE_ADDRESS_MEM_TYPE_1M = 0x02;
export const PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x04;
export const PCI_BASE_ADDRESS_MEM_PREFETCH = 0x08;
export const PCI_ROM_ADDRESS_ENABLE = 0x01;
/** Address bits of the expansion ROM register (the low 11 bits are flags/reserved). */
export const PCI_ROM_ADDRESS_MASK = 0xfffff800;

// Header type 1 (PCI-to-PCI bridges)
export const PCI_PRIMARY_BUS = 0x18;
export const PCI_SECONDARY_BUS = 0x19;
export const PCI_SUBORDINATE_BUS = 0x1a;
export const PCI_SEC_LATENCY_TIMER = 0x1b;
export const PCI_IO_BASE = 0x1c;
export const PCI_IO_LIMIT = 0x1d;
export const PCI_SEC_STATUS = 0x1e;
export const PCI_MEMORY_BASE = 0x20;
export const PCI_MEMORY_LIMIT = 0x22;
export const PCI_PREF_MEMORY_BASE = 0x24;
export const PCI_PREF_MEMORY_LIMIT = 0x26;
export const PCI_PREF_BASE_UPPER32 = 0x28;
export const PCI_PREF_LIMIT_UPPER32 = 0x2c;
export const PCI_IO_BASE_UPPER16 = 0x30;
export const PCI_IO_LIMIT_UPPER16 = 0x32;
export const PCI_ROM_ADDRESS1 = 0x38;
export const PCI_BRIDGE_CONTROL = 0x3e;

export const PCI_IO_RANGE_TYPE_MASK = 0x0f;
export const PCI_IO_RANGE_TYPE_16 = 0x00;
export const PCI_IO_RANGE_TYPE_32 = 0x01;
export const PCI_IO_RANGE_MASK = 0xf0;
export const PCI_MEMORY_RANGE_TYPE_MASK = 0x0f;
export const PCI_MEMORY_RANGE_MASK = 0xfff0;
export const PCI_PREF_RANGE_TYPE_MASK = 0x0f;
export const PCI_PREF_RANGE_TYPE_32 = 0x00;
export const PCI_PREF_RANGE_TYPE_64 = 0x01;
export const PCI_PREF_RANGE_MASK = 0xfff0;

// Header type 2 (CardBus bridges)
export const PCI_CB_CAPABILITY_LIST = 0x14;
export const PCI_CB_SEC_STATUS = 0x16;
export const PCI_CB_PRIMARY_BUS = 0x18;
export const PCI_CB_CARD_BUS = 0x19;
export const PCI_CB_SUBORDINATE_BUS = 0x1a;
export const PCI_CB_LATENCY_TIMER = 0x1b;
export const PCI_CB_MEMORY_BASE_0 = 0x1c;
export const PCI_CB_MEMORY_LIMIT_0 = 0x20;
export const PCI_CB_IO_BASE_0 = 0x2c;
export const PCI_CB_IO_LIMIT_0 = 0x30;
export const PCI_CB_BRIDGE_CONTROL = 0x3e;
export const PCI_CB_BRIDGE_CTL_PREFETCH_MEM0 = 0x100;
export const PCI_CB_SUBSYSTEM_VENDOR_ID = 0x40;
export const PCI_CB_SUBSYSTEM_ID = 0x42;
export const PCI_CB_LEGACY_MODE_BASE = 0x44;

/** Size of the header every function has; CardBus bridges use 128 (lspci -x shows that much). */
export const PCI_STD_HEADER_SIZE = 64;
export const PCI_CARDBUS_HEADER_SIZE = 128;
/** Conventional config space; PCIe and PCI-X 2.0 extend it to 4096 bytes. */
export const PCI_CFG_SPACE_SIZE = 256;
export const PCI_CFG_SPACE_EXP_SIZE = 4096;

/** Standard capability ids (PCI Code and ID Assignment; Linux's PCI_CAP_ID_* names). */
export const PCI_CAP_ID_PM = 0x01;
export const PCI_CAP_ID_AGP = 0x02;
export const PCI_CAP_ID_VPD = 0x03;
export const PCI_CAP_ID_SLOTID = 0x04;
export const PCI_CAP_ID_MSI = 0x05;
export const PCI_CAP_ID_CHSWP = 0x06;
export const PCI_CAP_ID_PCIX = 0x07;
export const PCI_CAP_ID_HT = 0x08;
export const PCI_CAP_ID_VNDR = 0x09;
export const PCI_CAP_ID_DBG = 0x0a;
export const PCI_CAP_ID_CCRC = 0x0b;
export const PCI_CAP_ID_SHPC = 0x0c;
export const PCI_CAP_ID_SSVID = 0x0d;
export const PCI_CAP_ID_AGP3 = 0x0e;
export const PCI_CAP_ID_SECDEV = 0x0f;
export const PCI_CAP_ID_EXP = 0x10;
export const PCI_CAP_ID_MSIX = 0x11;
export const PCI_CAP_ID_SATA = 0x12;
export const PCI_CAP_ID_AF = 0x13;
export const PCI_CAP_ID_EA = 0x14;

/** Extended capability ids the printers decode beyond their name. */
export const PCI_EXT_CAP_ID_DSN = 0x03;
export const PCI_EXT_CAP_ID_VNDR = 0x0b;
export const PCI_EXT_CAP_ID_DVSEC = 0x23;

/** Base class 0x06: any bridge (host, ISA, PCI-to-PCI, CardBus, ...). */
export const PCI_BASE_CLASS_BRIDGE = 0x06;
export const PCI_CLASS_BRIDGE_PCI = 0x0604;
