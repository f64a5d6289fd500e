/**
 * What `xpci lspci`, `xpci setpci` and `xpci bar` share: the --connect / --verbose-request options,
 * opening a frontend session with one-line errors, and selecting devices the pcifront way (scan
 * the published roots, then filter with lspci's -s / -d).
 */
import type { Argv } from 'yargs';
import { connect, ConnectError, defaultConnectPath, describeScanMismatch, scanBus, type FrontendClient, type RemoteDevice } from '../frontend/index.js';
import { formatAddress, parseAddress, type PciAddress } from '../pci/address.js';
import { PCI_REVISION_ID, PCI_VENDOR_ID } from '../pci/config-header.js';
import { deviceSelector, type DeviceIdentity } from '../pci/selector.js';
import { ErrorCode, errorCodeName, XpciError } from '../protocol/ring/messages.js';
import { RuntimeError, UsageError } from './errors.js';
import { readFileSync } from 'node:fs';
import { isTlsEndpoint } from '../protocol/ring/tls-endpoint.js';
import type { TlsCredentials } from '../frontend/tls-transport.js';

/** Answers that mean a backend is there but will not serve this frontend. */
const REFUSALS = new Set([ErrorCode.Busy, ErrorCode.PermissionDenied, ErrorCode.VersionMismatch]);

export interface FrontendArgs {
  connect?: string;
  'verbose-request': boolean;
  cert?: string;
  key?: string;
  ca?: string;
}

export function frontendOptions<T>(yargs: Argv<T>): Argv<T & FrontendArgs> {
  return yargs
    .option('connect', {
      type: 'string',
      describe: "the backend: the Unix socket 'xpci export' listens on (its --socket), in a guest the virtio-serial "
        + 'port wired to it, e.g. /dev/virtio-ports/xpci.0, or tls://HOST:PORT for an export on another host '
        + '(its --listen; needs --cert, --key, --ca) (default $XPCI_SOCKET, else /run/xpci/xpci.sock)',
    })
    .option('cert', { type: 'string', describe: 'with --connect tls://HOST:PORT: this client\'s certificate (PEM), signed by the CA the backend\'s --client-ca names' })
    .option('key', { type: 'string', describe: 'with --connect tls://HOST:PORT: the private key of --cert (PEM)' })
    .option('ca', { type: 'string', describe: 'with --connect tls://HOST:PORT: the CA certificate (PEM) that signed the backend\'s --cert' })
    .option('verbose-request', {
      type: 'boolean',
      default: false,
      describe: "log every request sent (the bus scan's probes included) with its result or error on stderr, one "
        + "'xpci:request #ID ...' line each; IDs match the backend's --verbose-request lines",
    }) as Argv<T & FrontendArgs>;
}

/** Run `body` with a connected client and always close it afterwards. */
export async function withFrontend<T>(args: FrontendArgs, command: string, body: (client: FrontendClient) => Promise<T>): Promise<T> {
  const path = args.connect ?? defaultConnectPath();
  const tls = isTlsEndpoint(path) ? tlsCredentials(args, path) : undefined;
  let client: FrontendClient;
  try {
    client = await connect(path, {
      client: `xpci ${command}`,
      tls,
      logRequest: args['verbose-request'] ? (line) => process.stderr.write(`xpci:request ${line}\n`) : undefined,
    });
  } catch (error) {
    if (error instanceof ConnectError) {
      // Only a missing or dead socket suggests that no backend runs; a permission error says its own fix.
      const hint = error.code === 'ENOENT' || error.code === 'ECONNREFUSED' ? ' (is `xpci export` running?)' : '';
      throw new RuntimeError(`${error.message}${hint}`);
    }
    if (error instanceof XpciError && REFUSALS.has(error.code)) {
      throw new RuntimeError(`the backend at ${path} refused the session: ${errorCodeName(error.code)}: ${error.message}`);
    }
    if (error instanceof XpciError) throw new RuntimeError(`no session with a backend at ${path}: ${error.message} (is \`xpci export\` running?)`);
    throw error;
  }
  try {
    return await body(client);
  } finally {
    await client.close();
  }
}

/** The PEM files a tls:// backend needs, read now so a wrong path is said before any traffic. */
function tlsCredentials(args: FrontendArgs, url: string): TlsCredentials {
  const missing = (['cert', 'key', 'ca'] as const).filter((name) => args[name] === undefined);
  if (missing.length > 0) throw new UsageError(`--connect ${url} needs ${missing.map((name) => `--${name}`).join(', ')} (PEM files: this client's certificate and key, and the CA of the backend's certificate)`);
  const read = (name: 'cert' | 'key' | 'ca'): Buffer => {
    try {
      return readFileSync(args[name] as string);
    } catch (error) {
      throw new RuntimeError(`cannot read --${name} ${args[name]}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  };
  return { cert: read('cert'), key: read('key'), ca: read('ca') };
}

/** A protocol failure as one line naming what was being done. */
export function requestFailure(what: string, error: unknown): Error {
  if (error instanceof XpciError) {
    const errno = error.errno ? ` (errno ${error.errno})` : '';
    return new RuntimeError(`${what}: ${errorCodeName(error.code)}${errno}: ${error.message}`);
  }
  return error instanceof Error ? error : new Error(String(error));
}

export interface SelectedDevice {
  address: PciAddress;
  remote: RemoteDevice;
}

export type DeviceMatcher = ReturnType<typeof deviceSelector>;

/** Parse `-s` / `-d` before any traffic, so a bad selector fails as usage (exit 2) even without a backend. */
export const parseSelection = (slot: string | undefined, id: string | undefined): DeviceMatcher => deviceSelector(slot, id);

/**
 * The functions the selection matches. By default from the backend's device list (the Hello), which
 * costs no request: what setpci, bar and a selective lspci need. With `scan`, as pcifront finds
 * them, by probing every devfn of each published root, which also finds functions the list lacks
 * (warned about): what a full `xpci lspci` listing does.
 */
export async function selectDevices(client: FrontendClient, matches: DeviceMatcher, { scan = false } = {}): Promise<SelectedDevice[]> {
  if (!scan) {
    return client.devices()
      .map((descriptor) => ({ address: parseAddress(descriptor.address), descriptor }))
      .filter(({ address, descriptor }) => matches(address, descriptor))
      .map(({ address }) => ({ address, remote: client.remoteDevice(address) }));
  }
  let result;
  try {
    result = await scanBus(client);
  } catch (error) {
    throw requestFailure('scanning the backend\'s bus', error);
  }
  for (const line of describeScanMismatch(result)) process.stderr.write(`xpci: warning: ${line}\n`);
  const selected: SelectedDevice[] = [];
  for (const address of result.addresses) {
    const remote = client.remoteDevice(address);
    if (matches(address, remote.descriptor ?? await readIdentity(remote))) selected.push({ address, remote });
  }
  return selected;
}

/** The exit-status paragraph of a command acting on the one function `-s` selects; `failure` says what else exits 1. */
export function oneDeviceExitStatus(failure: string): string {
  return `Exit status: 0 done; 1 no backend at the path, the backend refused the session, -s selects no function, or ${failure}; `
    + '2 no -s, -s selecting more than one function, a bad selector or option.';
}

/** The one function `-s` selects, for commands that act on exactly one (bar, irq, reset). */
export async function selectOneDevice(client: FrontendClient, matches: DeviceMatcher, selector: string, command: string, options: { scan?: boolean } = {}): Promise<SelectedDevice> {
  const devices = await selectDevices(client, matches, options);
  if (devices.length === 0) throw new RuntimeError(`${command}: -s ${selector} selects no device`);
  if (devices.length > 1) {
    throw new UsageError(`${command}: -s ${selector} selects ${devices.length} devices (${devices.map((d) => formatAddress(d.address)).join(', ')}); name exactly one`);
  }
  return devices[0];
}

/** Vendor, device and class of a function the backend did not describe. */
async function readIdentity(remote: RemoteDevice): Promise<DeviceIdentity> {
  try {
    const [ids, classRevision] = await Promise.all([remote.read(PCI_VENDOR_ID, 4), remote.read(PCI_REVISION_ID, 4)]);
    return { vendor: ids & 0xffff, device: ids >>> 16, classCode: classRevision >>> 8 };
  } catch (error) {
    throw requestFailure(`reading ${formatAddress(remote.address)}`, error);
  }
}
