/**
 * A BAR reached through sysfs: a memory BAR mapped from `resourceN` (one volatile load/store of the
 * exact width), an I/O BAR through pread/pwrite on `resourceN`. The file is opened on first access,
 * so a BAR nobody touches is never mapped.
 *
 * Every access first asks `checkPresent` (device-presence.ts) whether the device is still there.
 * A mapping whose backing goes away (a fixture file truncated, a kernel that revokes it) faults on
 * the next access; the addon turns that SIGBUS into an ENXIO error for that access.
 */
import { closeSync, openSync } from 'node:fs';
import { native, type MemoryMapping, type RegisterFile } from '../../native/binding.js';
import type { BarInfo } from '../../pci/device-info.js';
import type { AccessWidth, BarRegion } from '../device-access.js';

export class SysfsBarRegion implements BarRegion {
  private mapping: MemoryMapping | undefined;
  private port: RegisterFile | undefined;
  private handOffFd: number | undefined;

  constructor(readonly bar: BarInfo, private readonly path: string, private readonly checkPresent: () => void) {}

  read(offset: number, width: AccessWidth): bigint {
    this.checkPresent();
    if (this.bar.kind === 'io') return BigInt(this.portFile().read(offset, width as 1 | 2 | 4));
    const mapping = this.memory();
    return width === 8 ? mapping.read64(offset) : BigInt(mapping.read(offset, width));
  }

  write(offset: number, width: AccessWidth, value: bigint): void {
    this.checkPresent();
    if (this.bar.kind === 'io') {
      this.portFile().write(offset, width as 1 | 2 | 4, Number(value));
      return;
    }
    const mapping = this.memory();
    if (width === 8) mapping.write64(offset, value);
    else mapping.write(offset, width, Number(value));
  }

  mappable(): { fd: number; offset: bigint; size: number } | null {
    if (this.bar.kind === 'io') return null;
    this.checkPresent();
    this.handOffFd ??= openSync(this.path, 'r+');
    return { fd: this.handOffFd, offset: 0n, size: this.bar.size };
  }

  /** Unmap and close; idempotent. */
  close(): void {
    this.mapping?.unmap();
    this.port?.close();
    if (this.handOffFd !== undefined) closeSync(this.handOffFd);
    this.mapping = undefined;
    this.port = undefined;
    this.handOffFd = undefined;
  }

  private memory(): MemoryMapping {
    this.mapping ??= native().mapResource(this.path, true, this.bar.size);
    return this.mapping;
  }

  private portFile(): RegisterFile {
    this.port ??= native().openRegisterFile(this.path, true);
    return this.port;
  }
}
