/**
 * The backend server in process for tests: a fixture sysfs tree, the real ExportedDevice, locks and
 * peer checks, a real Unix socket in a temporary folder, and raw clients built on the codec.
 */
import type { TestContext } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfigImage, createFixtureTree, type FixtureDeviceSpec, type FixtureTree } from './fixture-sysfs.js';
import { RawClient, replyError } from './raw-client.js';
import { parseAddress } from '../../src/pci/address.js';
import { decodeConfigReadReply } from '../../src/protocol/ring/codec.js';
import { MessageType } from '../../src/protocol/ring/messages.js';
import { BackendServer, type BackendHooks, type BackendOptions } from '../../src/backend/server/backend-server.js';
import type { ManagedDevice, ReconcileOutcome } from '../../src/backend/server/export-reconciler.js';
import { admitPeer, createExportHost } from '../../src/backend/server/export-host.js';
import type { ExportedDevice } from '../../src/backend/exported-device.js';

export const nic = (fn: number, extra: Partial<FixtureDeviceSpec> = {}): FixtureDeviceSpec => ({
  address: `0000:00:05.${fn}`,
  config: buildConfigImage({ vendor: 0x8086, device: 0x100e, classCode: 0x020000, headerType: 0x80, cacheLineSize: 0x10, interruptLine: 0x0b, interruptPin: 1 }),
  ...extra,
});
export const plain = (address: string, vendor: number, extra: Partial<FixtureDeviceSpec> = {}): FixtureDeviceSpec => ({
  address,
  config: buildConfigImage({ vendor, device: 0x11e8, classCode: 0x00ff00 }),
  ...extra,
});
const bridge: FixtureDeviceSpec = {
  address: '0000:00:1c.0',
  config: buildConfigImage({ vendor: 0x8086, device: 0x2448, classCode: 0x060400, headerType: 1 }),
};

export const DEVICES: FixtureDeviceSpec[] = [
  nic(0), nic(1),
  plain('0000:00:07.2', 0x1234),
  plain('0000:00:08.0', 0x1af4, { driver: 'virtio-pci' }),
  plain('0000:00:09.0', 0x1b36, { driver: 'pci-stub' }),
  plain('0000:06:00.0', 0x10ec),
  plain('0000:06:03.0', 0x10ec),
  plain('0001:02:00.0', 0x15b3),
  bridge,
];

export interface Harness {
  backend: BackendServer<ExportedDevice>;
  tree: FixtureTree;
  socket: string;
  dir: string;
  warnings: string[];
  refused: { bdf: string; reason: string }[];
  connect(): Promise<RawClient>;
}

/** Start a BackendServer the way `xpci export` does, and stop it and remove `dir` when the test ends. */
export async function serveForTest<D extends ManagedDevice>(t: TestContext, backend: BackendServer<D>, dir: string): Promise<ReconcileOutcome<D>> {
  t.after(async () => {
    await backend.stop('test over');
    rmSync(dir, { recursive: true, force: true });
  });
  await backend.prepare();
  const outcome = backend.exportDevices();
  await backend.listen();
  return outcome;
}

export async function startBackend(t: TestContext, devices: string[], options: Partial<BackendOptions> = {}, specs = DEVICES, hooks: Partial<BackendHooks<ExportedDevice>> = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'xpci-backend-'));
  const tree = createFixtureTree(specs, join(dir, 'sysfs'));
  const socket = join(dir, 'run', 'xpci.sock');
  const warnings: string[] = [];
  const warn = (message: string): void => {
    warnings.push(message);
  };
  const resolved: BackendOptions = {
    mode: 'vpci',
    socketPath: socket,
    devices: devices.map((text) => ({ address: parseAddress(text.replace(/:permissive$/, '')), permissive: text.endsWith(':permissive') })),
    permissive: false,
    readOnly: false,
    resetOnExport: true,
    resetOnRelease: true,
    allowUids: [],
    allowGids: [],
    verboseRequest: false,
    exitOnDisconnect: false,
    ...options,
  };
  const backend = new BackendServer<ExportedDevice>(resolved, {
    host: createExportHost({ sysfsRoot: tree.root, stateDir: join(dir, 'state'), mode: resolved.mode, readOnly: resolved.readOnly, warn }),
    admit: admitPeer,
    warn,
    ...hooks,
  });
  const { refused } = await serveForTest(t, backend, dir);
  return { backend, tree, socket, dir, warnings, refused, connect: () => RawClient.connect(socket) };
}

export const read = (client: RawClient, address: string, offset: number, size: number) =>
  client.request({ type: MessageType.ConfigRead, id: client.id(), address: parseAddress(address), offset, size });

export async function readValue(client: RawClient, address: string, offset: number, size: number): Promise<number> {
  const frame = await read(client, address, offset, size);
  const error = replyError(frame);
  if (error) throw error;
  return decodeConfigReadReply(frame);
}

