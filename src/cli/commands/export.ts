/**
 * `xpci export <BDF...>`: the backend. Exports host PCI functions to one frontend over a Unix
 * socket ring, in virtual-bus (vpci) or passthrough mode, until SIGINT/SIGTERM (or, with
 * --exit-on-disconnect, until the frontend leaves). Options come from --config FILE with the
 * command line laid over it. Prints the mapping table, then a ready line once the socket listens
 * (with --json: one JSON line each at start and at shutdown).
 */
import type { Argv, CommandModule } from 'yargs';
import { formatAddress, parseAddress, type PciAddress } from '../../pci/address.js';
import { DEFAULT_SYSFS_ROOT } from '../../host/sysfs/paths.js';
import type { ExportMode } from '../../protocol/ring/messages.js';
import type { DenialRecord, ExportedDevice } from '../../backend/exported-device.js';
import { loadExportConfig, type ExportConfig } from '../../backend/lifecycle/export-config.js';
import { ensureStateDir, resolveStateDir, userRuntimeDir } from '../../backend/lifecycle/state-dir.js';
import { registerExport } from '../../backend/lifecycle/export-registry.js';
import { BackendServer, type BackendOptions, type MappingEntry, type ShutdownSummary } from '../../backend/server/backend-server.js';
import { admitPeer, createExportHost } from '../../backend/server/export-host.js';
import type { DesiredDevice, Refusal } from '../../backend/server/export-reconciler.js';
import { resolveSocketPath } from '../../backend/server/socket-file.js';
import { describeError, RuntimeError, UsageError } from '../errors.js';
import { onProcessEnd, writeOutput } from '../process-endings.js';
import { stateDirFailure } from '../permission-errors.js';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { parseTlsEndpoint } from '../../protocol/ring/tls-endpoint.js';
import type { TlsListenOptions } from '../../backend/server/tls-listener.js';

interface ExportArgs {
  devices?: string[];
  mode?: string;
  socket?: string;
  'read-only'?: boolean;
  permissive?: boolean;
  'verbose-request'?: boolean;
  'sysfs-root'?: string;
  'state-dir'?: string;
  json?: boolean;
  'allow-uid'?: string[];
  'allow-gid'?: string[];
  'reset-on-export'?: boolean;
  'reset-on-release'?: boolean;
  'exit-on-disconnect'?: boolean;
  strict?: boolean;
  config?: string;
  listen?: string;
  cert?: string;
  key?: string;
  'client-ca'?: string;
  'allow-subject'?: string[];
  'dma-limit'?: number;
  'unsafe-noiommu'?: boolean;
  'vfio-user'?: string;
  ring?: boolean;
}

const PERMISSIVE_SUFFIX = ':permissive';

/** `06:01.0` or `06:01.0:permissive`; a bad address is a usage error naming the argument. */
export function parseDeviceArgument(text: string): { address: PciAddress; permissive: boolean } {
  const permissive = text.endsWith(PERMISSIVE_SUFFIX);
  const bdf = permissive ? text.slice(0, -PERMISSIVE_SUFFIX.length) : text;
  try {
    return { address: parseAddress(bdf), permissive };
  } catch (error) {
    throw new UsageError(`${(error as Error).message} (a device is BDF or BDF:permissive)`);
  }
}

function idList(values: string[] | undefined, option: string): number[] {
  return (values ?? []).map((value) => {
    const text = String(value);
    const id = /^\d+$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(id) || id > 0xfffffffe) throw new UsageError(`--${option} takes a numeric id, got '${text}'`);
    return id;
  });
}

const MODES: readonly ExportMode[] = ['vpci', 'passthrough'];

function exportMode(text: string | undefined): ExportMode | undefined {
  if (text === undefined || MODES.includes(text as ExportMode)) return text as ExportMode | undefined;
  throw new UsageError(`--mode must be vpci or passthrough, got '${text}'`);
}

const union = (a: readonly number[], b: readonly number[]): number[] => [...new Set([...a, ...b])];

const TLS_OPTIONS = ['cert', 'key', 'client-ca'] as const;

/** --listen and its certificates: all or nothing, TLS only, and at least one allowed subject. */
export function tlsListenOptions(args: ExportArgs, readFile: (path: string) => Buffer = readPem): TlsListenOptions | undefined {
  const given = [...TLS_OPTIONS, 'allow-subject'].filter((name) => args[name as keyof ExportArgs] !== undefined);
  if (args.listen === undefined) {
    if (given.length > 0) throw new UsageError(`${given.map((n) => `--${n}`).join(', ')} ${given.length === 1 ? 'goes' : 'go'} only with --listen tls://HOST:PORT`);
    return undefined;
  }
  let endpoint;
  try {
    endpoint = parseTlsEndpoint(args.listen, { anyPort: true });
  } catch (error) {
    throw new UsageError(`--listen: ${(error as Error).message}; frontends on other hosts connect over mutually authenticated TLS only, never plaintext TCP`);
  }
  const missing = TLS_OPTIONS.filter((name) => args[name] === undefined);
  if (missing.length > 0) throw new UsageError(`--listen needs ${missing.map((n) => `--${n}`).join(', ')}: this backend's certificate and key, and the CA that signs its clients' certificates`);
  const allowSubjects = (args['allow-subject'] ?? []).map(String);
  if (allowSubjects.length === 0) throw new UsageError("--listen needs at least one --allow-subject (e.g. --allow-subject CN=ci-runner): a certificate the CA signed is not enough on its own");
  return { ...endpoint, cert: readFile(args.cert as string), key: readFile(args.key as string), clientCa: readFile(args['client-ca'] as string), allowSubjects };
}

function readPem(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new RuntimeError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/** Lay the command line over the config file: CLI scalars win; device and allow lists are merged. */
export function resolveExportOptions(args: ExportArgs, config: ExportConfig | null, env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0): BackendOptions & { sysfsRoot: string; stateDir: string; json: boolean; vfioUserDir?: string; guestAssignedBars: boolean; dmaLimit?: number; unsafeNoiommu: boolean } {
  const sysfsRoot = args['sysfs-root'] ?? config?.sysfsRoot ?? DEFAULT_SYSFS_ROOT;
  // A non-root user exporting a fixture tree (no hardware) gets private defaults instead of root's /run/xpci.
  const privateDir = uid !== 0 && sysfsRoot !== DEFAULT_SYSFS_ROOT ? userRuntimeDir(env, uid) : undefined;
  const stateDir = args['state-dir'] ?? config?.stateDir ?? (env.XPCI_STATE_DIR ? undefined : privateDir);
  const socket = args.socket ?? config?.socket ?? (env.XPCI_SOCKET || privateDir === undefined ? undefined : join(privateDir, 'xpci.sock'));
  const globalPermissive = args.permissive ?? config?.permissive ?? false;
  const devices = new Map<string, DesiredDevice>();
  for (const entry of config?.devices ?? []) {
    devices.set(entry.bdf, { address: entry.address, permissive: entry.permissive ?? globalPermissive });
  }
  for (const text of args.devices ?? []) {
    const { address, permissive } = parseDeviceArgument(String(text));
    const previous = devices.get(formatAddress(address));
    devices.set(formatAddress(address), { address, permissive: permissive || (previous?.permissive ?? globalPermissive) });
  }
  if (args.ring === false && args['vfio-user'] === undefined) throw new UsageError('--no-ring needs --vfio-user DIR: nothing would serve the devices');
  if (devices.size === 0) throw new UsageError('no device to export: name at least one BDF (e.g. xpci export 06:01.0) or a --config file with devices');
  const readOnly = args['read-only'] ?? config?.readOnly ?? false;
  const dmaLimit = args['dma-limit'];
  if (dmaLimit !== undefined && (!Number.isSafeInteger(dmaLimit) || dmaLimit < 0)) {
    throw new UsageError(`--dma-limit takes a number of bytes, got '${dmaLimit}'`);
  }
  return {
    mode: exportMode(args.mode) ?? config?.mode ?? 'vpci',
    socketPath: resolveSocketPath(socket, env),
    devices: [...devices.values()],
    permissive: globalPermissive,
    readOnly,
    resetOnExport: args['reset-on-export'] ?? config?.reset?.onExport ?? true,
    resetOnRelease: args['reset-on-release'] ?? config?.reset?.onRelease ?? true,
    allowUids: union(config?.allowUids ?? [], idList(args['allow-uid'], 'allow-uid')),
    allowGids: union(config?.allowGids ?? [], idList(args['allow-gid'], 'allow-gid')),
    verboseRequest: args['verbose-request'] ?? false,
    exitOnDisconnect: args['exit-on-disconnect'] ?? false,
    sysfsRoot,
    stateDir: resolveStateDir(stateDir, env),
    json: args.json ?? false,
    tls: tlsListenOptions(args),
    dmaLimit,
    unsafeNoiommu: args['unsafe-noiommu'] ?? false,
    vfioUserDir: args['vfio-user'],
    ring: args.ring ?? true,
    guestAssignedBars: args['vfio-user'] !== undefined,
  };
}

const say = (line: string): void => writeOutput(process.stdout, line + '\n');
const warn = (message: string): void => writeOutput(process.stderr, `xpci: ${message}\n`);

function printMapping(mapping: MappingEntry[], options: BackendOptions): void {
  const flags = [options.mode, ...(options.readOnly ? ['read-only'] : [])].join(', ');
  say(`exporting ${mapping.length} device${mapping.length === 1 ? '' : 's'} (${flags}):`);
  say('  host BDF        frontend BDF');
  for (const entry of mapping) say(`  ${entry.host}    ${entry.guest}${entry.permissive ? '    permissive' : ''}`);
}

const denialCount = (denials: DenialRecord[]): number => denials.reduce((sum, d) => sum + d.count, 0);

function printSummary(summary: ShutdownSummary, json: boolean): void {
  if (json) {
    say(JSON.stringify({ shutdown: summary.reason, devices: summary.devices, ...(summary.notes.length > 0 ? { notes: summary.notes } : {}) }));
    return;
  }
  for (const note of summary.notes) warn(note);
  const denied = summary.devices.filter((d) => denialCount(d.denials) > 0).map((d) => `${d.host} ${denialCount(d.denials)}`);
  say(`shutdown (${summary.reason}): released ${summary.devices.length} device${summary.devices.length === 1 ? '' : 's'}${denied.length > 0 ? `; denied accesses: ${denied.join(', ')}` : ''}`);
}

async function run(args: ExportArgs): Promise<void> {
  const config = args.config === undefined ? null : loadExportConfig(args.config);
  const options = resolveExportOptions(args, config);
  checkPrivileges(options);
  // The vfio-user server loads only when asked for: a ring-only backend stays smaller.
  const vfioUserServer = options.vfioUserDir === undefined ? undefined : await import('../../backend/vfio-user/vfio-user-server.js');
  const vfioUser = vfioUserServer && new vfioUserServer.VfioUserServer({
    dir: options.vfioUserDir!,
    access: options,
    admit: (fd) => admitPeer(fd, options),
    warn,
    extras: (device) => device.hostFacilities(),
  });
  const backend = new BackendServer<ExportedDevice>(options, {
    host: createExportHost({ ...options, warn }),
    admit: admitPeer,
    warn,
    endpoints: vfioUser && {
      attach: (guest, device) => vfioUser.attach(guest, device),
      detach: (guest) => vfioUser.detach(guest),
      close: () => vfioUser.close(),
    },
  });
  await backend.prepare();

  // stop() releases every device synchronously before its first await, as the 'exit' ending needs.
  const stopWatching = onProcessEnd((reason) => void backend.stop(reason));
  try {
    const outcome = backend.exportDevices();
    const mapping = backend.mapping();
    // --strict (for CI): a partial export must not pass; every device is released again first.
    if (mapping.length === 0 || (args.strict && outcome.refused.length > 0)) {
      await backend.stop(mapping.length === 0 ? 'nothing to export' : 'a device could not be exported (--strict)');
      // One line; a reason shared by every device (a bad --sysfs-root) is said once.
      const reasons = [...new Set(outcome.refused.map((r: Refusal) => r.reason))].join('; ');
      throw new RuntimeError(mapping.length === 0 ? reasons : `--strict: ${reasons}; nothing is exported`);
    }
    for (const refusal of outcome.refused) warn(`${refusal.reason} (the other devices are exported)`);
    if (!options.json) printMapping(mapping, options);
    // A signal while exporting: shut down without ever listening.
    let withdraw = (): void => undefined;
    if (!backend.isStopping) {
      await listenOrStop(backend, options.socketPath);
      if (!backend.isStopping) {
        withdraw = register(options, backend.controlPath);
        const vfioUserPaths = vfioUserServer ? mapping.map(({ guest }) => vfioUserServer.vfioUserSocketPath(options.vfioUserDir!, parseAddress(guest))) : [];
        announceReady(options, mapping, outcome.refused, backend.controlPath, backend.tlsEndpoint, vfioUserPaths);
      }
    }
    const summary = await backend.stopped;
    withdraw();
    printSummary(summary, options.json);
  } finally {
    stopWatching();
  }
}

/**
 * Refuse, before anything is touched, what cannot work: a non-root export of host devices (reading
 * config space past 64 bytes, BARs and resets need root, as do the default socket and state
 * directory), and a state directory this user cannot use.
 */
function checkPrivileges(options: { sysfsRoot: string; stateDir: string }): void {
  const uid = process.getuid?.();
  if (uid !== undefined && uid !== 0 && options.sysfsRoot === DEFAULT_SYSFS_ROOT) {
    throw new RuntimeError(`exporting host devices needs root (running as uid ${uid}): full config space, BAR access and `
      + `resets need CAP_SYS_ADMIN, and the state directory ${options.stateDir} is root's; run it as root (sudo xpci export ...), `
      + 'or export a fixture tree (--sysfs-root DIR, e.g. made by xpci snapshot) as any user');
  }
  try {
    ensureStateDir(options.stateDir);
  } catch (error) {
    throw stateDirFailure(options.stateDir, error);
  }
}

/** List this export for `xpci status`; a failure only costs that listing. Returns the withdrawal. */
function register(options: BackendOptions & { stateDir: string }, control: string): () => void {
  try {
    return registerExport(options.stateDir, { socket: options.socketPath, control, mode: options.mode, readOnly: options.readOnly });
  } catch (error) {
    warn(`xpci status will not list this export: ${describeError(error)}`);
    return () => undefined;
  }
}

async function listenOrStop(backend: BackendServer<ExportedDevice>, socketPath: string): Promise<void> {
  try {
    await backend.listen();
  } catch (error) {
    await backend.stop('could not listen');
    throw new RuntimeError(`cannot listen on ${socketPath}: ${(error as Error).message}`);
  }
}

function announceReady(options: BackendOptions & { json: boolean; vfioUserDir?: string }, mapping: MappingEntry[], refused: Refusal[], controlPath: string, tls: string | null, vfioUser: string[]): void {
  if (!options.json) {
    for (const path of vfioUser) say(`vfio-user: serving ${path}`);
    const remote = tls ? ` and ${tls} (TLS)` : '';
    say(options.ring === false ? `ready: vfio-user only (control: ${controlPath})${remote}` : `ready: listening on ${options.socketPath} (control: ${controlPath})${remote}`);
    return;
  }
  say(JSON.stringify({
    ...(options.ring === false ? {} : { socket: options.socketPath }),
    ...(tls ? { listen: tls } : {}),
    ...(options.vfioUserDir === undefined ? {} : { vfioUser }),
    mode: options.mode,
    devices: mapping.map(({ host, guest }) => ({ host, guest })),
    ...(refused.length > 0 ? { refused } : {}),
  }));
}

export const exportCommand: CommandModule<object, ExportArgs> = {
  command: 'export [devices..]',
  describe: 'export host PCI functions to a frontend over a Unix-socket ring (the backend)',
  builder: (yargs: Argv<object>) =>
    yargs
      .usage([
        'xpci export [--mode vpci|passthrough] [--socket PATH] [--read-only] [options] BDF[:permissive]...',
        'xpci export --config FILE [options] [BDF[:permissive]...]',
        '',
        'The backend side. Exports host PCI functions to one frontend at a time (xpci lspci/setpci/bar, '
          + 'or the frontend library in a test VM) over a Unix-socket request ring, and serves them until '
          + 'SIGINT/SIGTERM. Run it on the host that has the devices, normally as root: a writable export '
          + 'opens config space for writing and maps the BARs the frontend uses, and the default socket and '
          + 'state directory are in /run/xpci; a non-root user is refused up front. Any user may export a fixture tree '
          + '(--sysfs-root DIR): without --socket/--state-dir its socket and state go to $XDG_RUNTIME_DIR/xpci, else '
          + '<tmpdir>/xpci-<uid>. Each BDF is [DDDD:]BB:DD.F (hex; domain 0000 when omitted); append :permissive '
          + "to let that device's unlisted config writes reach the hardware. Devices may also come from "
          + '--config; at least one is needed.',
      ].join('\n'))
      .positional('devices', { type: 'string', array: true, describe: 'host functions to export: BDF or BDF:permissive, [DDDD:]BB:DD.F (hex)' })
      .option('mode', { type: 'string', describe: 'vpci: one virtual bus 0000:00, host addresses hidden (default); passthrough: the frontend sees host addresses' })
      .option('socket', { type: 'string', describe: 'ring socket to create; hot-plug control uses PATH.ctl (default $XPCI_SOCKET, else /run/xpci/xpci.sock)' })
      .option('read-only', { type: 'boolean', describe: 'config reads only: every config write and BAR access is refused, nothing is reset; allows devices bound to host drivers' })
      .option('permissive', { type: 'boolean', describe: 'for every device, let config writes the policy refuses by default reach the hardware: unlisted registers, command bits beyond decode and bus master, clearing status error bits (BDF:permissive does it for one device)' })
      .option('verbose-request', { type: 'boolean', describe: "log every frontend request and its result on stderr, one 'xpci:request' line each (as DEBUG=xpci:request)" })
      .option('sysfs-root', { type: 'string', describe: 'folder that contains bus/pci/devices/ (default /sys); a fixture tree for tests (xpci snapshot makes one)' })
      .option('state-dir', { type: 'string', describe: "where per-device export locks are kept (locks/); use the one the assignable-* commands use (default $XPCI_STATE_DIR, else /run/xpci)" })
      .option('json', { type: 'boolean', describe: 'print one JSON line when listening and one at shutdown (fields below) instead of text' })
      .option('allow-uid', { type: 'string', array: true, describe: 'also admit peers with this numeric uid (repeatable; makes the socket 0666)' })
      .option('allow-gid', { type: 'string', array: true, describe: 'also admit peers with this numeric gid, primary or supplementary (repeatable; one alone makes the socket 0660 with that group)' })
      .option('reset-on-export', { type: 'boolean', describe: 'reset each device through its sysfs reset file before handing it out (default on; --no-reset-on-export)' })
      .option('reset-on-release', { type: 'boolean', describe: 'reset each device through its sysfs reset file after taking it back (default on; --no-reset-on-release)' })
      .option('exit-on-disconnect', { type: 'boolean', describe: 'shut down (releasing every device) when the frontend disconnects' })
      .option('listen', { type: 'string', describe: 'also serve a frontend on another host: tls://HOST:PORT (port 0: any free port, printed when ready); mutual TLS only, needs --cert, --key, --client-ca and --allow-subject' })
      .option('cert', { type: 'string', describe: "with --listen: this backend's certificate (PEM); frontends check it against their --ca" })
      .option('key', { type: 'string', describe: 'with --listen: the private key of --cert (PEM)' })
      .option('client-ca', { type: 'string', describe: "with --listen: the CA certificate (PEM) that signs frontends' certificates; a client without one it signed fails the handshake" })
      .option('allow-subject', { type: 'string', array: true, describe: "with --listen: admit client certificates with this subject, ATTR=value[,ATTR=value] (e.g. CN=ci-runner), every attribute matching (repeatable; at least one)" })
      .option('vfio-user', { type: 'string', describe: 'also serve each device to a vfio-user client (QEMU vfio-user-pci) on DIR/<frontend BDF>.sock; BAR registers then accept any address the guest assigns (docs/vfio-user.md)' })
      .option('ring', { type: 'boolean', describe: 'serve the ring socket (default on; --no-ring with --vfio-user serves vfio-user only)' })
      .option('strict', { type: 'boolean', describe: 'fail the whole export (exit 1, every device released) when any device cannot be exported, instead of serving the others; for CI' })
      .option('config', { type: 'string', describe: 'JSON config file (keys below); command-line options override it, device and allow lists are merged' })
      .option('dma-limit', { type: 'number', describe: 'bytes of DMA window memory the whole export may map for frontends (default 64 MiB)' })
      .option('unsafe-noiommu', { type: 'boolean', describe: "also export vfio-pci devices held in VFIO's no-IOMMU mode (the vfio module's enable_unsafe_noiommu_mode), refused without it: INTx and reset, never DMA windows, bus mastering or MSI/MSI-X. No isolation: opt-in only" })
      .example('xpci export --read-only 00:03.0', 'a device on its host driver: config reads only')
      .example('xpci export 06:01.0 06:01.1', 'a slot on pci-stub (xpci assignable-add first)')
      .example('xpci export --mode passthrough 06:01.0:permissive', 'host addresses; unlisted writes reach it')
      .example('xpci export --config /etc/xpci/export.json --json', 'persistent export, JSON status lines')
      .epilogue([
        'MODES',
        '  vpci (default)  \tOne virtual bus 0000:00 with 32 slots, as Xen pciback: devices take slots in '
          + 'export order; functions of one physical slot share a slot and keep their function numbers '
          + '(exporting only 06:01.2 gives 00:00.2); an SR-IOV VF at function 0 takes a slot of its own. '
          + 'Host addresses are not revealed. A 33rd slot is refused for that device only.',
        "  passthrough  \tFrontend addresses are the host addresses; the roots to scan are each device's domain:bus.",
        '  Bridges (class 06xx) are never exported in either mode.',
        '',
        'SAFETY',
        "  A device bound to a host driver is refused (bind it to pci-stub first with 'xpci assignable-add "
          + "BDF') unless --read-only: then the frontend may read config space only, and nothing is reset. "
          + 'Each device is locked in the state directory: a second backend exporting it is refused with the '
          + "holder's pid; a lock left by a dead backend is cleared.",
        '  Frontend writes pass a per-register policy (docs/security.md): a write that would change a '
          + 'refused bit is refused whole (AccessDenied, nothing applied), BARs never move, and decode '
          + 'turned off by the frontend stays off only in its own view.',
        '',
        'ACCESS',
        "  The socket is created mode 0600 (owned by the backend's user, normally root) and removed on exit; "
          + 'a stale socket with no listener is replaced, a live one is an error. --allow-gid G (alone, once) '
          + "makes it 0660 with group G; any other --allow-uid/--allow-gid makes it 0666. Either way every peer's "
          + 'SO_PEERCRED credentials are checked before any op, and a refused peer gets PermissionDenied. Root '
          + "and the backend's own user are always admitted. "
          + 'Hot-plug control (xpci attach/detach) uses <socket>.ctl, always 0600 and root only.',
        '',
        'REMOTE FRONTENDS',
        '  --listen tls://HOST:PORT --cert F --key F --client-ca F --allow-subject CN=NAME serves frontends on other '
          + 'hosts (xpci lspci --connect tls://HOST:PORT --cert F --key F --ca F) over TLS 1.2 or later with mutual '
          + 'authentication: a client must present a certificate the --client-ca signed, whose subject matches an '
          + '--allow-subject entry; others are refused (the handshake fails, or PermissionDenied), and the backend '
          + 'keeps serving. There is no plaintext TCP listener. The Unix socket stays, and one frontend at a time is '
          + 'served across both.',
        'VFIO',
        "  A device held by vfio-pci ('xpci assignable-add' picks it where the device has an IOMMU group) is "
          + 'opened through VFIO: the frontend also gets its interrupts, DMA windows (up to --dma-limit, mapped '
          + 'in the IOMMU) and reset. A device on pci-stub offers config space and BARs only.',
        '',
        'RESET',
        '  Where the device has a sysfs reset file, a writable export resets it before handing it out and '
          + 'after taking it back (after restoring the registers the frontend changed). Turn either off with '
          + '--no-reset-on-export / --no-reset-on-release. A --read-only export never resets.',
        '',
        'CONFIG FILE',
        '  --config FILE (JSON: devices, mode, socket, permissive, readOnly, allowUids, allowGids, stateDir, '
          + 'sysfsRoot, reset) is read first; command-line options override its settings, and devices and '
          + 'allow lists from both are merged.',
        '',
        'OUTPUT',
        "  The mapping table (host BDF -> frontend BDF), then 'ready: listening on PATH (control: PATH.ctl)'; "
          + "at shutdown 'shutdown (REASON): released N devices', followed by '; denied accesses: BDF COUNT, ...' "
          + 'when the policy refused requests. A device that cannot be exported is reported on stderr and the '
          + 'others are served (with --strict, the export fails instead).',
        '  --json: one line {"socket","mode","devices":[{"host","guest"}]} (and "listen": the bound tls://HOST:PORT with --listen, "refused":[{"bdf","reason"}] '
          + 'when some were) once listening and, at shutdown, one line {"shutdown": reason, "devices": '
          + '[{"host","guest","permissive","denials":[...]}]}.',
        '',
        'Exit status: 0 after a clean shutdown (SIGINT/SIGTERM, or the frontend left with --exit-on-disconnect); '
          + '1 no device could be exported (with --strict: some device could not), the socket is in use or cannot be created, or the config file is '
          + 'unreadable or invalid; 2 bad usage: a bad BDF, --mode or id, an unknown option, or no device named.',
      ].join('\n')),
  handler: (args) => run(args),
};
