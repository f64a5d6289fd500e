/**
 * Fuzzing the vfio-user server: random and mutated commands (every command, right and wrong payload
 * lengths, argsz, flags, indices, ranges, fd counts) sent pipelined over a real socket to a server
 * serving a fixture device in this process. Every reply is checked against the spec (reply type, id
 * and command echoed, size, an error reply is a bare header with an errno, a success carries the
 * payload its command defines); a server exception would end this process. At the end the server must
 * still answer a well-formed session and hold no fd it was sent.
 */
import { readdirSync, mkdtempSync, openSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfigImage, createFixtureTree } from './fixture-sysfs.js';
import { Random } from './fuzz-random.js';
import { VfioUserClient, type Reply } from './vfio-user-client.js';
import { openExportedDevice } from '../../src/backend/exported-device.js';
import { admitPeer } from '../../src/backend/server/export-host.js';
import { VfioUserServer } from '../../src/backend/vfio-user/vfio-user-server.js';
import { readDevice } from '../../src/host/sysfs/discovery.js';
import { parseAddress } from '../../src/pci/address.js';
import { encodeDmaMap, encodeDmaUnmap, encodeMessage, encodeRegionAccess, encodeSetIrqs, encodeVersion } from '../../src/protocol/vfio-user/codec.js';
import { Command, HEADER_SIZE, MessageFlags, PAYLOAD, RESERVED_FLAG_BITS } from '../../src/protocol/vfio-user/messages.js';

export interface VfioUserFuzzReport { seed: number; messages: number; errors: number; reconnects: number; findings: string[]; perSecond: number }

const DEVICE = '0000:00:04.0';
const IN_FLIGHT = 32;
const COMMANDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 0, 99, 0xffff];

/** One fuzzed message: a well-formed one of a random command, then maybe mutated. */
function generate(random: Random, id: number, nullFd: number): { message: Buffer; fds: number[] } {
  const command = random.pick(COMMANDS);
  const u32 = (): number => random.pick([0, 1, 2, 4, 7, 8, 9, 16, 20, 32, 0x1000, 0xffffffff, random.u32()]);
  const u64 = (): bigint => random.pick([0n, 0x1000n, 0x100000n, 0xfffffffffffff000n, random.u64()]);
  let payload: Buffer;
  let fds: number[] = [];
  switch (command) {
    case Command.Version:
      payload = encodeVersion(random.below(2), random.below(3), random.pick([
        Buffer.from('{"capabilities":{"max_msg_fds":8}}\0'), Buffer.from('{"capabilities":[]}\0'), Buffer.from('nope'), Buffer.alloc(0), random.bytes(random.below(64)),
      ]));
      break;
    case Command.DmaMap:
      payload = encodeDmaMap(random.below(4), u64(), u64() & ~0xfffn, random.pick([0x1000n, 0x2000n, u64()]));
      if (random.chance(0.5)) fds = [nullFd];
      break;
    case Command.DmaUnmap:
      payload = encodeDmaUnmap(random.pick([0, 2, u32()]), u64(), u64());
      break;
    case Command.DeviceSetIrqs: {
      const count = random.below(4);
      payload = encodeSetIrqs(random.pick([0x21, 0x22, 0x24, 0x11, 0x09, 0x12, u32()]), random.below(6), random.below(3), count,
        random.chance(0.3) ? Buffer.from(Array.from({ length: count }, () => random.below(3))) : undefined);
      if (random.chance(0.4)) fds = Array.from({ length: random.below(4) }, () => nullFd);
      break;
    }
    case Command.RegionRead:
      payload = encodeRegionAccess(random.below(10), random.pick([0n, 4n, 0x10n, 0xfcn, 0x100n, u64()]), random.pick([1, 2, 4, 8, 256, 4096, u32()]));
      break;
    case Command.RegionWrite: {
      const count = random.pick([1, 2, 4, 8]);
      payload = encodeRegionAccess(random.below(10), random.pick([0n, 4n, 0x0cn, 0x10n, 0x3cn, u64()]), count, random.bytes(count));
      break;
    }
    default: {
      payload = Buffer.alloc(random.pick([0, 16, 20, 32]));
      if (payload.length >= 4) payload.writeUInt32LE(random.pick([payload.length, u32()]) >>> 0, 0);
      if (payload.length >= 12) payload.writeUInt32LE(random.below(12), 8);
    }
  }
  if (random.chance(0.2)) payload = random.chance(0.5) ? payload.subarray(0, random.below(payload.length + 1)) : Buffer.concat([payload, random.bytes(random.int(1, 16))]);
  if (random.chance(0.1) && payload.length > 0) payload[random.below(payload.length)] ^= 1 << random.below(8);
  let flags: number = MessageFlags.request;
  if (random.chance(0.03)) flags = random.pick([MessageFlags.error, 0x2, 0x100]);
  const message = encodeMessage(id, command, flags, payload);
  if (random.chance(0.01)) message.writeUInt32LE(random.u32(), 12);
  return { message, fds };
}

/** The reply is valid per the spec for this request. Returns a finding or null. */
function check(request: Buffer, reply: Reply): string | null {
  const { header, payload } = reply;
  const command = request.readUInt16LE(2);
  const what = `${Command[command] ?? command} (id ${header.id})`;
  if ((header.flags & MessageFlags.typeMask) !== MessageFlags.reply) return `${what}: reply type ${header.flags & 0xf}`;
  if (header.flags & (RESERVED_FLAG_BITS | MessageFlags.noReply)) return `${what}: reply flags 0x${header.flags.toString(16)}`;
  if (header.command !== command) return `${what}: reply names command ${header.command}`;
  if (header.size !== HEADER_SIZE + payload.length) return `${what}: size field ${header.size} for ${payload.length} payload bytes`;
  if (header.flags & MessageFlags.error) {
    if (payload.length !== 0) return `${what}: error reply with ${payload.length} payload bytes`;
    if (header.error === 0) return `${what}: error reply without an errno`;
    return null;
  }
  if (reply.fds.length > 0 && command !== Command.DeviceGetRegionInfo) return `${what}: ${reply.fds.length} fds with the reply`;
  const expected: Partial<Record<number, number>> = {
    [Command.DeviceGetInfo]: PAYLOAD.deviceInfo, [Command.DeviceGetIrqInfo]: PAYLOAD.irqInfo, [Command.DmaMap]: 0, [Command.DmaUnmap]: PAYLOAD.dmaUnmap,
    [Command.DeviceSetIrqs]: 0, [Command.DeviceReset]: 0, [Command.RegionWrite]: PAYLOAD.regionAccess,
  };
  if (command === Command.RegionRead) {
    const count = request.readUInt32LE(HEADER_SIZE + 12);
    return payload.length === PAYLOAD.regionAccess + count ? null : `${what}: ${payload.length} bytes for a read of ${count}`;
  }
  if (command === Command.Version) {
    return payload.length > 4 && payload[payload.length - 1] === 0 && payload.readUInt16LE(0) === 0 ? null : `${what}: malformed version reply`;
  }
  if (command === Command.DeviceGetRegionInfo) {
    const asked = request.readUInt32LE(HEADER_SIZE);
    const needed = payload.readUInt32LE(0);
    return payload.length === (needed <= asked ? needed : PAYLOAD.regionInfo) ? null : `${what}: ${payload.length} bytes, argsz ${needed}, asked ${asked}`;
  }
  if (expected[command] === undefined) return `${what}: success for a command the server does not implement`;
  return payload.length === expected[command] ? null : `${what}: ${payload.length} payload bytes, expected ${expected[command]}`;
}

const openFds = (): number => readdirSync('/proc/self/fd').length;

export async function runVfioUserFuzz(options: { messages: number; seed: number; progress?: (line: string) => void }): Promise<VfioUserFuzzReport> {
  const random = new Random(options.seed);
  const tree = createFixtureTree([{
    address: DEVICE,
    config: buildConfigImage({
      vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00, interruptPin: 1,
      bars: [{ index: 0, kind: 'mem', size: 0x100000, start: 0xfea00000 }, { index: 1, kind: 'io', size: 0x20, start: 0xc000 }],
      capabilities: [{ id: 0x05, body: Array(12).fill(0) }],
    }),
    bars: [{ index: 0, kind: 'mem', size: 0x100000, start: 0xfea00000 }, { index: 1, kind: 'io', size: 0x20, start: 0xc000 }],
  }]);
  const dir = mkdtempSync(join(tmpdir(), 'xpci-vfio-user-fuzz-'));
  const access = { allowUids: [], allowGids: [] };
  const findings: string[] = [];
  const server = new VfioUserServer({ dir, access, admit: (fd) => admitPeer(fd, access), warn: () => undefined, extras: () => ({}) });
  const device = openExportedDevice({ sysfsRoot: tree.root, info: readDevice(tree.root, parseAddress(DEVICE)), guest: parseAddress('0000:00:00.0'), mode: 'vpci', readOnly: false, permissive: false, guestAssignedBars: true });
  const path = await server.attach(parseAddress('0000:00:00.0'), device);
  const fdsBefore = openFds();
  const nullFd = openSync('/dev/null', 'r');
  let errors = 0;
  let reconnects = 0;
  let sent = 0;
  const started = process.hrtime.bigint();
  const connect = async (): Promise<VfioUserClient> => {
    const client = VfioUserClient.connect(path);
    await client.version();
    return client;
  };
  let client = await connect();
  try {
    while (sent < options.messages && findings.length < 20) {
      const batch = Math.min(IN_FLIGHT, options.messages - sent);
      const requests = Array.from({ length: batch }, (_, i) => generate(random, 0x100 + ((sent + i) % 0x7e00), nullFd));
      // A size field below the header size breaks the stream: sent alone, and the client reconnects.
      if (random.chance(0.0005)) {
        const broken = encodeMessage(1, Command.DeviceGetInfo, 0);
        broken.writeUInt32LE(random.below(HEADER_SIZE), 4);
        void client.send(broken).catch(() => undefined);
        await client.closed;
        client = await connect();
        reconnects++;
      }
      const replies = await Promise.allSettled(requests.map(({ message, fds }) => client.send(message, fds)));
      replies.forEach((outcome, i) => {
        if (outcome.status === 'rejected') {
          findings.push(`no reply to ${Command[requests[i].message.readUInt16LE(2)] ?? 'command'}: ${(outcome.reason as Error).message}`);
          return;
        }
        for (const fd of outcome.value.fds) closeSync(fd);
        if (outcome.value.header.flags & MessageFlags.error) errors++;
        const finding = check(requests[i].message, outcome.value);
        if (finding) findings.push(`${finding} (request ${requests[i].message.toString('hex').slice(0, 96)})`);
      });
      if (findings.length > 0 && client !== null && (await Promise.race([client.closed.then(() => true), Promise.resolve(false)]))) client = await connect();
      sent += batch;
      if (options.progress && sent % 100_000 < batch) options.progress(`${sent} messages, ${errors} error replies, ${findings.length} findings`);
    }
    // Still serving: a clean session works after everything above.
    client.close();
    client = await connect();
    const info = await client.deviceInfo();
    if (info.regions !== 9) findings.push(`after fuzzing, DEVICE_GET_INFO says ${info.regions} regions`);
  } finally {
    client.close();
    closeSync(nullFd);
    await server.close();
    device.release({ restore: false });
    // Every fd the server was sent, and every one it opened for the device, is closed by now.
    const leaked = openFds() - fdsBefore;
    if (leaked > 0) findings.push(`${leaked} fds more open than before the run (fds sent to the server leaked)`);
    tree.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { seed: options.seed, messages: sent, errors, reconnects, findings, perSecond: Math.round(sent / seconds) };
}
