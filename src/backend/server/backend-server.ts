/**
 * One running export: the reconciler (desired vs exported devices), the ring socket serving one
 * frontend, and the control operations (attach/detach/status) that hot-plug uses. The CLI drives
 * the phases so it can print between them: prepare() (refuse a live socket before touching any
 * device), exportDevices() (the mapping table), listen() (ready), then stop() on a signal or when
 * the last frontend leaves with exitOnDisconnect.
 *
 * Graceful end releases every device (restore registers, unmap, reset if configured, unlock) and
 * removes the socket files; the summary carries each device's denial counts.
 */
import { debugLog } from '../../diagnostics/debug-log.js';
import { formatAddress, parseAddress, type PciAddress } from '../../pci/address.js';
import { MessageType, type ExportMode, type Request } from '../../protocol/ring/messages.js';
import { controlSocketPath, type ControlReply, type ControlRequest, type ExportStatus } from '../../protocol/control/hotplug-control.js';
import { ControlServer } from './control-server.js';
import type { TlsListener, TlsListenOptions } from './tls-listener.js';
import type { TableEntry } from './device-table.js';
import type { DenialRecord } from '../exported-device.js';
import {
  ExportReconciler,
  type DesiredDevice,
  type ExportHost,
  type ExportPolicy,
  type ManagedDevice,
  type ReconcileOutcome,
  type Refusal,
} from './export-reconciler.js';
import { RequestTrace } from '../../protocol/ring/request-trace.js';
import { PARTIAL_FRAME_TIMEOUT_MS } from '../../protocol/ring/limits.js';
import type { Admission } from './peer-admission.js';
import { RingServer } from './ring-server.js';
import { listenOnSocket, prepareSocketPath, removeSocketFile, type SocketAccess } from './socket-file.js';

const debug = debugLog('xpci:server');

export interface BackendOptions extends ExportPolicy, SocketAccess {
  mode: ExportMode;
  socketPath: string;
  /** Per-device permissive already resolved (global --permissive or `BDF:permissive`). */
  devices: DesiredDevice[];
  /** Global --permissive: the default for devices attached later. */
  permissive: boolean;
  verboseRequest: boolean;
  /** Stop when a frontend that completed its Hello disconnects. */
  exitOnDisconnect: boolean;
  /** Also serve frontends on other hosts over mutually authenticated TLS (--listen tls://HOST:PORT). */
  tls?: TlsListenOptions;
  /** How long a partial frame may sit idle before it is dropped (default PARTIAL_FRAME_TIMEOUT_MS). */
  partialFrameTimeoutMs?: number;
  /** Silent-peer and unread-reply limits (defaults in protocol/ring/limits.ts; tests shorten them). */
  helloDeadlineMs?: number;
  idleYieldMs?: number;
  maxUnreadReplyBytes?: number;
  /** Serve the ring socket (default true; --no-ring leaves only the other endpoints, e.g. vfio-user). */
  ring?: boolean;
}

/** Another protocol serving the same exported devices (vfio-user: one socket per device). */
export interface DeviceEndpoints<D> {
  attach(guest: PciAddress, device: D): Promise<unknown>;
  detach(guest: PciAddress): Promise<void>;
  close(): Promise<void>;
}

export interface BackendHooks<D extends ManagedDevice> {
  host: ExportHost<D>;
  /** Peer-credential decision (SO_PEERCRED) for a connected socket fd under `access`. */
  admit(fd: number, access: SocketAccess): Admission;
  /** Operator-facing warnings and notes (the CLI prints them on stderr). */
  warn(message: string): void;
  /** Per-device endpoints beside the ring, attached and detached with the devices. */
  endpoints?: DeviceEndpoints<D>;
}

export interface MappingEntry {
  host: string;
  guest: string;
  permissive: boolean;
}

export interface ShutdownSummary {
  reason: string;
  devices: (MappingEntry & { denials: DenialRecord[] })[];
  /** Problems while releasing (a failed restore or reset); the devices were still unlocked. */
  notes: string[];
}

/** At most this many bug reports per window, so a frontend cannot flood the log through a bug. */
const BUG_REPORTS_PER_WINDOW = 10;
const BUG_WINDOW_MS = 10_000;

export class BackendServer<D extends ManagedDevice> {
  readonly reconciler: ExportReconciler<D>;
  private readonly ring: RingServer;
  private readonly control: ControlServer;
  /** Made when listening starts: node's TLS (and crypto) load only for an export with --listen. */
  private tls: TlsListener | null = null;
  private socketInode: number | null = null;
  private listening: Promise<void> | null = null;
  private stopping: Promise<ShutdownSummary> | null = null;
  private resolveStopped!: (summary: ShutdownSummary) => void;
  /** Resolves with the summary once stop() has released everything. */
  readonly stopped: Promise<ShutdownSummary>;
  private bugWindowStart = 0;
  private bugReports = 0;

  constructor(readonly options: BackendOptions, private readonly hooks: BackendHooks<D>) {
    this.reconciler = new ExportReconciler<D>(options.mode, options, hooks.host);
    this.stopped = new Promise((resolve) => (this.resolveStopped = resolve));
    this.ring = new RingServer({
      context: {
        mode: options.mode,
        table: this.reconciler.table,
        requestLog: RequestTrace.forBackend(options.verboseRequest),
        reportBug: (error, request) => this.reportBug(error, request),
        sessionRestarted: () => this.frontendGone(),
      },
      admit: (fd) => hooks.admit(fd, options),
      partialFrameTimeoutMs: options.partialFrameTimeoutMs ?? PARTIAL_FRAME_TIMEOUT_MS,
      helloDeadlineMs: options.helloDeadlineMs,
      idleYieldMs: options.idleYieldMs,
      maxUnreadReplyBytes: options.maxUnreadReplyBytes,
      warn: hooks.warn,
      onFrontendGone: () => {
        this.frontendGone();
        if (this.options.exitOnDisconnect) void this.stop('the frontend disconnected (--exit-on-disconnect)');
      },
    });
    this.control = new ControlServer(controlSocketPath(options.socketPath), (request) => this.handleControl(request), hooks.admit, hooks.warn);
  }

  /** Refuse a live socket (another backend) before any device is touched; replace a stale one. */
  async prepare(): Promise<void> {
    await prepareSocketPath(this.options.socketPath, this.options);
    await this.control.prepare();
  }

  /** Export the initial devices; the outcome's refusals name each device that could not be exported. */
  exportDevices(): ReconcileOutcome<D> {
    for (const device of this.options.devices) this.reconciler.want(device);
    const outcome = this.reconciler.reconcile();
    this.noteAll(outcome.notes);
    this.routeEvents(outcome.added);
    return outcome;
  }

  /** Device events go to whichever frontend is connected when they happen. */
  private routeEvents(entries: TableEntry<D>[]): void {
    for (const entry of entries) entry.device.setEventSink?.((frame) => this.ring.sendFrame(frame));
  }

  /** What a frontend held of each device (DMA windows, interrupts) goes with it. */
  private frontendGone(): void {
    for (const entry of this.reconciler.table.entries()) {
      const notes = entry.device.frontendGone?.() ?? [];
      this.noteAll(notes.map((note) => `${formatAddress(entry.host)}: after the frontend left: ${note}`));
    }
  }

  /** Listen on the control, endpoint, ring and TLS sockets; a stop() meanwhile waits for it, then removes them. */
  listen(): Promise<void> {
    this.listening = (async () => {
      await this.control.listen();
      for (const entry of this.reconciler.table.entries()) await this.hooks.endpoints?.attach(entry.guest, entry.device);
      if (this.options.ring === false) return;
      this.socketInode = await listenOnSocket(this.ring.server, this.options.socketPath, this.options);
      debug('listening on %s', this.options.socketPath);
      if (this.options.tls) {
        const { TlsListener } = await import('./tls-listener.js');
        this.tls = new TlsListener(this.options.tls, (socket, admission) => this.ring.acceptAdmitted(socket, admission), this.hooks.warn);
        await this.tls.listen();
      }
    })();
    const listening = this.listening;
    void listening.catch(() => undefined).finally(() => {
      if (this.listening === listening) this.listening = null;
    });
    return listening;
  }

  /** tls://HOST:PORT as bound, when listening for remote frontends. */
  get tlsEndpoint(): string | null {
    return this.tls?.endpoint ?? null;
  }

  get controlPath(): string {
    return this.control.path;
  }

  handleControl(request: ControlRequest): ControlReply {
    if (request.op === 'export-status') return { ok: true, export: this.exportStatus() };
    if (request.device === undefined) return { ok: false, error: `${request.op} needs a device` };
    const address = parseAddress(request.device);
    switch (request.op) {
      case 'attach':
        return this.attach(address, request.permissive);
      case 'detach':
        return this.detach(address);
      case 'status':
        return this.status(address);
    }
  }

  /** The export as `xpci status` shows it: devices with their denial counts, and the connected peer. */
  exportStatus(): ExportStatus {
    return {
      pid: process.pid,
      socket: this.options.socketPath,
      mode: this.options.mode,
      readOnly: this.options.readOnly,
      peer: this.ring.peer,
      devices: this.reconciler.table.entries().map((entry) => ({
        ...this.describe(entry),
        denied: entry.device.denials().reduce((sum, d) => sum + d.count, 0),
      })),
    };
  }

  mapping(): MappingEntry[] {
    return this.reconciler.table.entries().map((entry) => this.describe(entry));
  }

  /** Hot-plug: add `address` to the desired set and reconcile; the frontend gets DeviceAdded. */
  attach(address: PciAddress, permissive = this.options.permissive): ControlReply {
    if (this.stopping) return { ok: false, error: 'the backend is shutting down' };
    // Attaching what is already served is a no-op, whichever address names it; a host device wins
    // over a frontend address that happens to be the same.
    const existing = this.reconciler.table.byHostAddress(address)
      ?? (this.hostHas(address) ? undefined : this.reconciler.table.byGuestAddress(address));
    if (existing) return this.served(existing);
    this.reconciler.want({ address, permissive });
    const outcome = this.applyChange();
    const refusal = outcome.refused.find((r: Refusal) => r.bdf === formatAddress(address));
    if (refusal) return { ok: false, error: refusal.reason };
    const entry = this.reconciler.table.byHostAddress(address);
    return entry ? this.served(entry) : { ok: false, error: `${formatAddress(address)} was not exported` };
  }

  /** Hot-unplug: drop the device (host or frontend address) from the desired set; the frontend gets DeviceRemoved. */
  detach(address: PciAddress): ControlReply {
    const entry = this.exportedAt(address);
    if (!this.reconciler.unwant(entry?.host ?? address) && !entry) {
      return { ok: false, error: `${formatAddress(address)} is not exported by this backend (neither a host nor a frontend address of its devices)` };
    }
    this.applyChange();
    return entry ? this.served(entry) : { ok: true, host: formatAddress(address) };
  }

  status(address: PciAddress): ControlReply {
    const entry = this.exportedAt(address);
    return entry ? this.served(entry) : { ok: false, error: `${formatAddress(address)} is not exported by this backend` };
  }

  /** The served device with this host address, else the one with this frontend address. */
  private exportedAt(address: PciAddress): TableEntry<D> | undefined {
    return this.reconciler.table.byHostAddress(address) ?? this.reconciler.table.byGuestAddress(address);
  }

  private served(entry: TableEntry<D>): ControlReply {
    return { ok: true, host: formatAddress(entry.host), guest: formatAddress(entry.guest) };
  }

  private hostHas(address: PciAddress): boolean {
    try {
      this.hooks.host.readDevice(address);
      return true;
    } catch {
      return false;
    }
  }

  get isStopping(): boolean {
    return this.stopping !== null;
  }

  /** Idempotent graceful end; resolves with the same summary as `stopped`. */
  stop(reason: string): Promise<ShutdownSummary> {
    if (!this.stopping) this.stopping = this.shutdown(reason);
    return this.stopping;
  }

  /** Never rejects: a step that fails becomes a note, and every device is still released. */
  private async shutdown(reason: string): Promise<ShutdownSummary> {
    debug('stopping: %s', reason);
    const notes: string[] = [];
    const attempt = <T>(what: string, step: () => T, fallback: T): T => {
      try {
        return step();
      } catch (error) {
        notes.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
        return fallback;
      }
    };
    const devices = this.reconciler.table.entries().map((entry) => ({
      ...this.describe(entry),
      denials: attempt(`denials of ${formatAddress(entry.host)}`, () => entry.device.denials(), []),
    }));
    if (this.listening) {
      // Stopped while the sockets are being created (a signal, a closed stdout): release the
      // devices now, then let listen() finish so its socket files can be removed.
      notes.push(...this.reconciler.releaseAll().notes);
      await this.listening.catch(() => undefined);
    }
    const closed = Promise.all([this.ring.close(reason), this.control.close(), this.tls?.close(), this.hooks.endpoints?.close()]);
    notes.push(...this.reconciler.releaseAll().notes);
    const inode = this.socketInode;
    if (inode !== null) attempt('removing the socket', () => removeSocketFile(this.options.socketPath, inode), undefined);
    await closed;
    const summary: ShutdownSummary = { reason, devices, notes };
    this.resolveStopped(summary);
    return summary;
  }

  private applyChange(): ReconcileOutcome<D> {
    const outcome = this.reconciler.reconcile();
    this.noteAll(outcome.notes);
    this.routeEvents(outcome.added);
    for (const entry of outcome.removed) this.ring.sendEvent(MessageType.DeviceRemoved, entry.guest);
    for (const entry of outcome.added) this.ring.sendEvent(MessageType.DeviceAdded, entry.device.descriptor());
    const endpoints = this.hooks.endpoints;
    if (endpoints) {
      for (const entry of outcome.removed) void endpoints.detach(entry.guest);
      for (const entry of outcome.added) {
        endpoints.attach(entry.guest, entry.device).catch((error: Error) => this.hooks.warn(`${formatAddress(entry.guest)}: ${error.message}`));
      }
    }
    return outcome;
  }

  private describe(entry: TableEntry<D>): MappingEntry {
    return {
      host: formatAddress(entry.host),
      guest: formatAddress(entry.guest),
      permissive: this.reconciler.permissiveOf(entry.host),
    };
  }

  private noteAll(notes: string[]): void {
    for (const note of notes) this.hooks.warn(note);
  }

  private reportBug(error: unknown, request: Request): void {
    const now = Date.now();
    if (now - this.bugWindowStart > BUG_WINDOW_MS) {
      if (this.bugReports > BUG_REPORTS_PER_WINDOW) this.hooks.warn(`${this.bugReports - BUG_REPORTS_PER_WINDOW} more internal errors were not logged`);
      this.bugWindowStart = now;
      this.bugReports = 0;
    }
    if (++this.bugReports > BUG_REPORTS_PER_WINDOW) return;
    const where = 'address' in request ? ` for ${formatAddress(request.address)}` : '';
    const detail = error instanceof Error ? error.stack ?? error.message : String(error);
    this.hooks.warn(`internal error serving ${MessageType[request.type]}${where} (answered OperationFailed; please report): ${detail}`);
  }
}
