/**
 * Which interrupt kind of one device reaches the frontend, and the masking the frontend asked for.
 * The host routes vectors to eventfds (HostInterrupts); this decides when, and what a fired vector
 * becomes: an Interrupt event, or a pending bit while the frontend has the vector masked.
 *
 * One kind at a time, as vfio-pci allows: INTx while the frontend has neither MSI nor MSI-X
 * enabled, otherwise the kind it enabled. MSI and MSI-X masks live in the frontend's view only
 * (vfio-pci masks nothing but INTx), so masking is done here: a masked vector's interrupts are
 * counted as pending and delivered when the frontend unmasks it, as QEMU does. INTx is masked by
 * the kernel when it fires and stays masked until the frontend unmasks it. INTx Disable in Command,
 * where the policy keeps it in the frontend's view (VFIO with an IOMMU), works as vfio-pci makes it
 * work for its own users: while it is set the kernel keeps INTx masked, whatever the unmasks.
 */
import type { HostInterrupts, InterruptKind } from '../../host/device-access.js';
import { debugLog } from '../../diagnostics/debug-log.js';
import { ErrorCode, XpciError, type InterruptRecord } from '../../protocol/ring/messages.js';

const debug = debugLog('xpci:interrupts');

export type MessageKind = Exclude<InterruptKind, 'intx'>;

export class InterruptRouter {
  private active: InterruptKind | null = null;
  private vectors = 0;
  private masked: boolean[] = [];
  /** Interrupts that arrived on a masked vector, per vector. */
  private pending: number[] = [];
  private intxMasked = false;
  /** INTx Disable as the frontend set it (vfio-pci's virq_disabled). */
  private intxDisabledByFrontend = false;

  constructor(
    private readonly host: HostInterrupts | undefined,
    /** Vectors per kind the device offers (host features). */
    private readonly offered: Partial<Record<InterruptKind, number>>,
    private readonly deliver: (record: InterruptRecord) => void,
  ) {}

  /** The kind routed to the frontend now, or null. */
  get routed(): InterruptKind | null {
    return this.active;
  }

  /** True when the frontend has enabled MSI or MSI-X (state the release path must undo). */
  get messageInterruptsEnabled(): boolean {
    return this.active === 'msi' || this.active === 'msix';
  }

  offers(kind: InterruptKind): number {
    return this.host ? this.offered[kind] ?? 0 : 0;
  }

  /** Route INTx (when the device has it): the state after export and after every reset. */
  routeIntx(): void {
    this.stop();
    if (this.offers('intx') === 0) return;
    this.host!.enable('intx', 1, this.onInterrupt);
    this.active = 'intx';
    this.intxMasked = false;
    if (this.intxDisabledByFrontend) this.host!.mask('intx', 0, true);
  }

  get intxDisabled(): boolean {
    return this.intxDisabledByFrontend;
  }

  /**
   * The frontend set or cleared INTx Disable: setting masks INTx in the kernel; clearing unmasks it
   * unless an interrupt still waits for the frontend's unmask.
   */
  setIntxDisabled(disabled: boolean): void {
    if (disabled === this.intxDisabledByFrontend) return;
    this.intxDisabledByFrontend = disabled;
    if (this.active !== 'intx' || (!disabled && this.intxMasked)) return;
    try {
      this.host!.mask('intx', 0, disabled);
    } catch (error) {
      // A vfio-user client routes the vectors itself and may have torn INTx down (it does when it
      // enables MSI, just before the guest sets INTx Disable): then there is nothing to mask.
      debug('INTx %s in the kernel failed: %s', disabled ? 'mask' : 'unmask', (error as Error).message);
    }
  }

  /** The frontend enabled MSI or MSI-X with `count` vectors and these masks: INTx goes off. */
  enable(kind: MessageKind, count: number, masked: readonly boolean[]): void {
    const offered = this.offers(kind);
    if (offered === 0) throw new XpciError(ErrorCode.NotImplemented, `${kind} is not offered for this device`);
    if (!Number.isInteger(count) || count < 1 || count > offered) {
      throw new XpciError(ErrorCode.InvalidSize, `${count} ${kind} vectors requested; the device offers ${offered}`);
    }
    this.stop();
    this.masked = Array.from({ length: count }, (_, v) => masked[v] ?? false);
    this.pending = new Array<number>(count).fill(0);
    this.vectors = count;
    this.host!.enable(kind, count, this.onInterrupt);
    this.active = kind;
  }

  /** The frontend disabled `kind`: back to INTx. */
  disable(kind: MessageKind): void {
    if (this.active !== kind) return;
    this.routeIntx();
  }

  /** Mask or unmask one MSI/MSI-X vector in the frontend's view; unmasking delivers what is pending. */
  setMasked(kind: MessageKind, vector: number, masked: boolean): void {
    if (this.active !== kind || vector >= this.vectors) return;
    this.masked[vector] = masked;
    if (!masked && this.pending[vector] > 0) {
      const count = this.pending[vector];
      this.pending[vector] = 0;
      this.deliver({ kind, vector, count });
    }
  }

  /** Pending bit of a vector of the routed kind (MSI Pending Bits, MSI-X PBA). */
  isPending(kind: MessageKind, vector: number): boolean {
    return this.active === kind && vector < this.vectors && this.pending[vector] > 0;
  }

  /** The frontend serviced the device: let INTx fire again. */
  unmask(kind: InterruptKind, vector: number): void {
    if (kind !== 'intx') {
      throw new XpciError(ErrorCode.NotImplemented, `${kind} vectors are unmasked in the frontend's view of the device (${kind === 'msi' ? 'MSI Mask Bits' : 'the MSI-X table'}), not with InterruptUnmask`);
    }
    if (this.offers('intx') === 0) throw new XpciError(ErrorCode.AccessDenied, 'the device offers no INTx interrupt');
    if (vector !== 0) throw new XpciError(ErrorCode.InvalidOffset, `INTx has one vector (0), not ${vector}`);
    if (this.active !== 'intx') {
      throw new XpciError(ErrorCode.AccessDenied, `INTx is not routed to the frontend while ${this.active ?? 'no interrupt'} is enabled`);
    }
    if (!this.intxMasked) return;
    this.intxMasked = false;
    if (!this.intxDisabledByFrontend) this.host!.mask('intx', 0, false);
  }

  /**
   * A client that routed the vectors to eventfds of its own (vfio-user) has left and torn its
   * routes down: route the kind the frontend's view has enabled back here, as it was.
   */
  restoreRoute(): void {
    const kind = this.active;
    if (kind === null) return;
    this.host!.enable(kind, kind === 'intx' ? 1 : this.vectors, this.onInterrupt);
    if (kind !== 'intx') return;
    this.intxMasked = false;
    if (this.intxDisabledByFrontend) this.host!.mask('intx', 0, true);
  }

  /** Tear every route down (release, frontend gone, before a reset). */
  stop(): void {
    if (this.active !== null) this.host!.disableAll();
    this.active = null;
    this.vectors = 0;
    this.masked = [];
    this.pending = [];
    this.intxMasked = false;
  }

  private readonly onInterrupt = (kind: InterruptKind, vector: number, count: number): void => {
    // An eventfd read racing a route change belongs to a route that no longer exists.
    if (kind !== this.active) return;
    if (kind === 'intx') {
      this.intxMasked = true;
      this.deliver({ kind, vector: 0, count });
      return;
    }
    if (vector >= this.vectors) return;
    if (this.masked[vector]) this.pending[vector] += count;
    else this.deliver({ kind, vector, count });
  };
}
