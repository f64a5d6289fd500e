/**
 * One host function as a frontend may use it: every config and BAR request is validated once on
 * plain values (the decoded request is already a private copy, XSA-155), then judged by the
 * register table (config-policy/) or the BAR rules, then performed with one exact-width access.
 * Refusals are AccessDenied errors naming the register and the reason, never a silent success.
 * Error messages go to the frontend, so they name offsets and registers, never host addresses.
 */
import { debugLog } from '../diagnostics/debug-log.js';
import { isNativeError } from '../native/binding.js';
import { formatAddress, type PciAddress } from '../pci/address.js';
import { PCI_COMMAND, PCI_COMMAND_DISABLE_INTX, PCI_COMMAND_IO, PCI_COMMAND_MEMORY, PCI_ROM_ADDRESS, PCI_ROM_ADDRESS_ENABLE } from '../pci/config-header.js';
import type { PciDeviceInfo } from '../pci/device-info.js';
import type { HostDevice, HostDeviceMethod, HostDma, HostInterrupts } from '../host/device-access.js';
import { sysfsMethod } from '../host/sysfs/sysfs-device.js';
import type { DeviceOpRequest } from '../protocol/ring/device-ops-codec.js';
import { ErrorCode, MessageType, XpciError, type DeviceDescriptor, type ExportMode } from '../protocol/ring/messages.js';
import { BarAccess, type BarTarget } from './bar-access.js';
import { BarEmulation } from './bar-emulation.js';
import { VirtualConfigSpace } from './config-policy/config-space.js';
import { DenialLog, type DenialRecord } from './config-policy/denial-log.js';
import { layoutConfigSpace } from './config-policy/layout.js';
import { hex0x } from '../pci/hex.js';
import { DeviceServices, type DeviceServicesHost, type EventSink } from './device-services.js';
import { DmaBudget, type DmaMemoryAllocator } from './dma/dma-windows.js';

export type { DenialRecord } from './config-policy/denial-log.js';

const log = debugLog('xpci:policy');

export interface ExportOptions {
  sysfsRoot: string;
  /** from discovery */
  info: PciDeviceInfo;
  /** address as the frontend sees it */
  guest: PciAddress;
  mode: ExportMode;
  /** config reads only: no config writes, no BAR access at all; the config file is opened O_RDONLY */
  readOnly: boolean;
  /** unlisted writes pass to hardware (listed read-only fields stay read-only) */
  permissive: boolean;
  /** BAR registers accept any address (vfio-user guests assign BARs); see BarEmulation */
  guestAssignedBars?: boolean;
  /** how the host device is opened; the sysfs back end over `sysfsRoot` by default */
  method?: HostDeviceMethod;
  /** DMA windows: the export's budget and the memory behind windows (memfd); absent: no DMA windows */
  dma?: {
    budget: DmaBudget;
    allocate: DmaMemoryAllocator;
  };
  /** interrupts, DMA and reset from elsewhere than the opened host device (test doubles) */
  services?: DeviceServicesHost;
  /** told once when the host device is found gone (removed from the bus, its files cut short) */
  onGone?: (message: string) => void;
}

/** An fd that maps a whole memory BAR, for handing to a vfio-user client (the device keeps it). */
export interface MappableBar {
  fd: number;
  offset: bigint;
  size: number;
}

export interface ExportedDevice {
  readonly info: PciDeviceInfo;
  readonly guest: PciAddress;
  /** hostAddress only in passthrough mode */
  descriptor(): DeviceDescriptor;
  /** validated, virtualized; throws XpciError */
  configRead(offset: number, size: number): number;
  /** throws XpciError(AccessDenied) when any requested bit is filtered; then nothing is written */
  configWrite(offset: number, size: number, value: number): void;
  barRead(bar: number, offset: bigint, size: number): bigint;
  barWrite(bar: number, offset: bigint, size: number, value: bigint): void;
  /** A memory BAR's fd for mmap by another process; null for I/O BARs and read-only exports. */
  barMapping(bar: number): MappableBar | null;
  /** Interrupts, DMA and reset of the host back end (VFIO), for a protocol that hands them on (vfio-user); none for read-only exports. */
  hostFacilities(): { interrupts?: HostInterrupts; restoreInterrupts?(): void; dma?: HostDma; reset?(): void };
  /** interrupts, DMA windows, reset; throws XpciError */
  serveDeviceOp(request: DeviceOpRequest): Buffer;
  /** where Interrupt and DeviceReset events go */
  setEventSink(sink: EventSink): void;
  /** the frontend left: free its DMA windows and interrupts, reset if it used them; notes of failed steps */
  frontendGone(): string[];
  /** for the --json shutdown summary */
  denials(): DenialRecord[];
  /** restore changed registers (default true), unmap BARs, close files; idempotent */
  release(options?: { restore?: boolean }): void;
}

const MIN_CONFIG_SIZE = 64;
/**
 * How the host says its device is gone: a config file of a removed device answers ENODEV, and so
 * does the sysfs back end's presence check before a BAR access; a BAR mapping whose backing went
 * away faults, which the addon reports as ENXIO.
 */
const GONE_ERRNO_CODES: readonly string[] = ['ENODEV', 'ENXIO'];
const READ_ONLY_EXPORT = 'read-only export: config writes and BAR access are refused';


class Device implements ExportedDevice {
  private readonly configSize: number;
  private readonly space: VirtualConfigSpace;
  private readonly bars: BarAccess;
  private readonly log: DenialLog;
  private readonly services: DeviceServices;
  private released = false;
  /** The answer to every request once the host device is found gone, or null. */
  private gone: XpciError | null = null;

  constructor(
    readonly info: PciDeviceInfo,
    readonly guest: PciAddress,
    private readonly options: ExportOptions,
    private readonly host: HostDevice,
  ) {
    const where = formatAddress(guest);
    const file = host.config;
    this.configSize = file.size();
    const snapshot = file.readBlock(0, this.configSize);
    if (snapshot.length < MIN_CONFIG_SIZE) {
      throw new XpciError(ErrorCode.OperationFailed, `${info.bdf}: only ${snapshot.length} bytes of config space are readable`);
    }
    this.log = new DenialLog(`${info.bdf} (frontend ${where})`);
    this.services = new DeviceServices({
      host: options.services ?? host,
      snapshot, guest, readOnly: options.readOnly,
      budget: options.dma?.budget ?? new DmaBudget(0),
      allocate: options.dma?.allocate,
      resetView: () => {
        this.space.resetView();
        this.syncIntxDisable();
      },
    });
    this.space = new VirtualConfigSpace({
      file,
      layout: layoutConfigSpace(this.configSize, snapshot, { dma: this.services.busMasterAllowed, intx: this.services.intxDisableInView }),
      bars: new BarEmulation({
        mode: options.mode, guest, bars: info.bars, rom: info.rom,
        romEnabled: (snapshot[PCI_ROM_ADDRESS] & PCI_ROM_ADDRESS_ENABLE) !== 0,
        guestAssigned: options.guestAssignedBars ?? false,
      }),
      permissive: options.permissive,
      snapshot,
      denials: this.log,
    });
    this.bars = new BarAccess(host);
  }

  descriptor(): DeviceDescriptor {
    const { info, options } = this;
    const descriptor: DeviceDescriptor = {
      address: formatAddress(this.guest),
      vendor: info.vendor,
      device: info.device,
      classCode: info.classCode,
      revision: info.revision,
      headerType: info.headerLayout | (info.multiFunction ? 0x80 : 0),
      configSize: this.configSize,
      readOnly: options.readOnly,
      permissive: options.permissive,
      bars: info.bars.map(({ index, kind, is64, prefetchable, size }) => ({ index, kind, is64, prefetchable, size })),
      ...this.services.describe(),
    };
    if (options.mode === 'passthrough') descriptor.hostAddress = info.bdf;
    return descriptor;
  }

  configRead(offset: number, size: number): number {
    this.checkLive();
    this.checkConfigAccess(offset, size);
    try {
      const emulated = this.services.configRange(offset);
      if (emulated) return emulated.read(offset, size as 1 | 2 | 4);
      return this.space.read(offset, size as 1 | 2 | 4);
    } catch (error) {
      throw this.hostFailure(error, `config read of ${size} bytes at ${hex0x(offset)}`);
    }
  }

  configWrite(offset: number, size: number, value: number): void {
    this.checkLive();
    this.checkConfigAccess(offset, size);
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
      throw new XpciError(ErrorCode.Malformed, `config write value ${value} is not a 32-bit unsigned integer`);
    }
    // Only the low `size` bytes are written (docs/protocol.md §4.2).
    const written = size === 4 ? value >>> 0 : value & ((1 << (8 * size)) - 1);
    if (this.options.readOnly) {
      this.deny(this.space.registerAt(offset), offset, size, READ_ONLY_EXPORT);
    }
    try {
      const emulated = this.services.configRange(offset);
      if (emulated) {
        this.services.configWrite(emulated, offset, size as 1 | 2 | 4, written);
        return;
      }
      this.space.write(offset, size as 1 | 2 | 4, written);
      if (offset <= PCI_COMMAND + 1 && offset + size > PCI_COMMAND + 1) this.syncIntxDisable();
    } catch (error) {
      throw this.hostFailure(error, `config write of ${size} bytes at ${hex0x(offset)}`);
    }
  }

  barRead(bar: number, offset: bigint, size: number): bigint {
    const target = this.authorizeBar(bar, offset, size);
    try {
      const msix = this.services.msixFor(bar, offset, size);
      if (msix) return msix.barRead(bar, offset, size);
      return this.bars.read(target);
    } catch (error) {
      throw this.hostFailure(error, `BAR ${bar} read of ${size} bytes at ${hex0x(offset)}`);
    }
  }

  barWrite(bar: number, offset: bigint, size: number, value: bigint): void {
    if (typeof value !== 'bigint' || value < 0n || value >= 1n << 64n) {
      throw new XpciError(ErrorCode.Malformed, `BAR write value ${value} is not a 64-bit unsigned integer`);
    }
    const target = this.authorizeBar(bar, offset, size);
    const written = value & ((1n << BigInt(8 * size)) - 1n);
    try {
      const msix = this.services.msixFor(bar, offset, size);
      if (msix) {
        msix.barWrite(bar, offset, size, written);
        return;
      }
      this.bars.write(target, written);
    } catch (error) {
      throw this.hostFailure(error, `BAR ${bar} write of ${size} bytes at ${hex0x(offset)}`);
    }
  }

  barMapping(bar: number): MappableBar | null {
    this.checkLive();
    if (this.options.readOnly) return null;
    const info = this.info.bars.find((b) => b.index === bar);
    if (info === undefined || info.kind !== 'mem') return null;
    try {
      return this.host.bar(bar).mappable();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
      log('%s: opening BAR %d for mapping failed: %s', this.info.bdf, bar, (error as Error).message);
      throw new XpciError(ErrorCode.OperationFailed, `BAR ${bar} cannot be mapped: ${code}`, (error as NodeJS.ErrnoException).errno ? -((error as NodeJS.ErrnoException).errno as number) : 0);
    }
  }

  hostFacilities(): { interrupts?: HostInterrupts; restoreInterrupts?(): void; dma?: HostDma; reset?(): void } {
    this.checkLive();
    if (this.options.readOnly) return {};
    const host = this.options.services ?? this.host;
    const { dma } = host;
    const interrupts = host.interrupts && this.services.clientInterrupts(host.interrupts);
    // The device's reset, not the host's alone: the view goes back to export time too, as after a ring ResetDevice.
    const reset = this.services.describe().reset ? () => this.services.reset() : undefined;
    const restoreInterrupts = (): void => this.services.router.restoreRoute();
    return { ...(interrupts ? { interrupts, restoreInterrupts } : {}), ...(dma ? { dma } : {}), ...(reset ? { reset } : {}) };
  }

  serveDeviceOp(request: DeviceOpRequest): Buffer {
    this.checkLive();
    try {
      return this.services.serve(request);
    } catch (error) {
      throw this.hostFailure(error, `${request.type === MessageType.ResetDevice ? 'reset' : 'interrupt or DMA operation'}`);
    }
  }

  setEventSink(sink: EventSink): void {
    this.services.setEventSink(sink);
  }

  frontendGone(): string[] {
    if (this.released) return [];
    return this.services.frontendGone();
  }

  denials(): DenialRecord[] {
    return this.log.list();
  }

  release(options: { restore?: boolean } = {}): void {
    if (this.released) return;
    this.released = true;
    const failures: string[] = [];
    const attempt = (what: string, step: () => void): void => {
      try {
        step();
      } catch (error) {
        failures.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
      }
    };
    // Windows and interrupt routes first: the device must not reach the frontend's memory any more.
    attempt('releasing DMA windows and interrupts', () => this.services.release());
    // A device that is gone has no registers left to restore.
    if ((options.restore ?? true) && !this.options.readOnly && this.gone === null) attempt('restoring config registers', () => this.space.restore());
    attempt('closing the host device', () => this.host.close());
    if (failures.length > 0) {
      throw new XpciError(ErrorCode.OperationFailed, `release of ${this.info.bdf}: ${failures.join('; ')}`);
    }
  }

  /**
   * Where the policy keeps INTx Disable in the frontend's view (a device held through VFIO with an
   * IOMMU, or whose INTx the backend delivers: config-policy/rules.ts), the interrupt router applies
   * it in the kernel as vfio-pci does.
   */
  private syncIntxDisable(): void {
    if (!this.services.intxDisableInView) return;
    this.services.router.setIntxDisabled((this.space.read(PCI_COMMAND, 2) & PCI_COMMAND_DISABLE_INTX) !== 0);
  }

  private checkLive(): void {
    if (this.released) throw new XpciError(ErrorCode.DeviceNotFound, `${formatAddress(this.guest)} is no longer exported`);
    if (this.gone !== null) throw this.gone;
  }

  private checkConfigAccess(offset: number, size: number): void {
    if (size !== 1 && size !== 2 && size !== 4) throw new XpciError(ErrorCode.InvalidSize, `config access size ${size}: must be 1, 2 or 4`);
    if (!Number.isInteger(offset) || offset < 0) throw new XpciError(ErrorCode.InvalidOffset, `config offset ${offset} is not a non-negative integer`);
    if (offset % size !== 0) throw new XpciError(ErrorCode.Misaligned, `config offset ${hex0x(offset)} is not a multiple of ${size}`);
    if (offset + size > this.configSize) {
      throw new XpciError(ErrorCode.InvalidOffset, `config access of ${size} bytes at ${hex0x(offset)} ends past the config size ${hex0x(this.configSize)}`);
    }
  }

  /** Validation first, then the policy: read-only export, then decode as the frontend sees it. */
  private authorizeBar(bar: number, offset: bigint, size: number): BarTarget {
    this.checkLive();
    const target = this.bars.validate(bar, offset, size);
    const register = 0x10 + 4 * bar;
    if (this.options.readOnly) this.deny(`BAR${bar} access`, register, 4, READ_ONLY_EXPORT);
    const io = target.bar.kind === 'io';
    const decode = io ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY;
    if (!this.space.decodeEnabled(decode)) {
      this.deny(`BAR${bar} access`, register, 4, `${io ? 'I/O' : 'memory'} decode is off in the command register as the frontend set it`);
    }
    // Permissive writes to unlisted registers (an FLR through PCIe Device Control, say) can reset
    // the device behind the policy; touching a BAR that no longer decodes is the XSA-120 crash.
    if (this.options.permissive && !this.hardwareDecodes(decode)) {
      this.deny(`BAR${bar} access`, register, 4, `the device stopped ${io ? 'I/O' : 'memory'} decoding (reset behind the policy?)`);
    }
    return target;
  }

  private hardwareDecodes(bit: number): boolean {
    try {
      return this.space.hardwareDecodeEnabled(bit);
    } catch (error) {
      throw this.hostFailure(error, 'command register read');
    }
  }

  private deny(register: string, offset: number, size: number, reason: string): never {
    this.log.record(register, offset, size, reason);
    throw new XpciError(ErrorCode.AccessDenied, `${register}: ${reason}`);
  }

  /**
   * XpciErrors pass; addon errors become OperationFailed without the host path, except those that
   * say the device is gone: from then on the device answers DeviceNotFound without touching the
   * host (the kernel may hand its address ranges to another device). Anything else is a bug.
   */
  private hostFailure(error: unknown, what: string): unknown {
    if (error instanceof XpciError) return error;
    if (isNativeError(error)) {
      log('%s: %s failed: %s', this.info.bdf, what, error.message);
      if (GONE_ERRNO_CODES.includes(error.code)) return this.markGone(what, error.code, error.errno);
      return new XpciError(ErrorCode.OperationFailed, `${what} failed: ${error.code}`, error.errno);
    }
    return error;
  }

  private markGone(what: string, code: string, errno: number): XpciError {
    if (this.gone === null) {
      this.gone = new XpciError(ErrorCode.DeviceNotFound, `${formatAddress(this.guest)} is gone: the host device was removed (${what} failed: ${code})`, errno);
      this.options.onGone?.(`${this.info.bdf} (frontend ${formatAddress(this.guest)}) is gone from the host (${what} failed: ${code}); `
        + 'its requests are answered DeviceNotFound, the other devices are still served');
    }
    return this.gone;
  }
}

export function openExportedDevice(options: ExportOptions): ExportedDevice {
  const { info, sysfsRoot, readOnly } = options;
  // The reconciler refuses bridges first; this guard keeps them, and any header without a
  // register table, out of every other path.
  if (info.isBridge || info.headerLayout !== 0) {
    const what = info.isBridge ? 'a bridge' : `header type ${info.headerLayout}`;
    throw new XpciError(ErrorCode.NotImplemented, `${info.bdf}: ${what} cannot be exported: only endpoints (header type 0) are`);
  }
  const host = (options.method ?? sysfsMethod(sysfsRoot)).open(info, { writable: !readOnly });
  try {
    return new Device(info, options.guest, options, host);
  } catch (error) {
    host.close();
    throw error;
  }
}
