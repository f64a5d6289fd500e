import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { checkPeer, decidePeerAccess, supplementaryGroups, type PeerDecision } from '../../src/backend/lifecycle/peer-access.js';
import { native } from '../../src/native/binding.js';

const peer = (uid: number, gid: number, pid = 4242) => ({ pid, uid, gid });
const noGroups = (): number[] => [];

describe('peer access policy', () => {
  test('root is always admitted, even with empty allow lists', () => {
    const decision = decidePeerAccess(peer(0, 0), { allowUids: [], allowGids: [] }, noGroups);
    assert.equal(decision.allowed, true);
    assert.equal(decision.reason, 'uid 0 (root)');
  });

  test("the backend's own user is admitted (it owns the 0600 socket); another user is not", () => {
    const none = { allowUids: [], allowGids: [] };
    const own = decidePeerAccess(peer(1500, 1500), none, noGroups, 1500);
    assert.deepEqual([own.allowed, own.reason], [true, 'uid 1500 runs this backend']);
    const other = decidePeerAccess(peer(1501, 1500), none, noGroups, 1500);
    assert.equal(other.allowed, false);
    assert.match(other.reason, /admits root; uid 1500 \(this backend's user\) \(widen/);
  });

  test('uid, primary gid and supplementary groups admit; anything else is refused with who and why', () => {
    const policy = { allowUids: [1000], allowGids: [27] };
    assert.equal(decidePeerAccess(peer(1000, 1000), policy, noGroups).reason, 'uid 1000 is allowed');
    assert.equal(decidePeerAccess(peer(1001, 27), policy, noGroups).reason, 'primary gid 27 is allowed');
    const asked: number[] = [];
    const viaGroups = decidePeerAccess(peer(1001, 1001, 777), policy, (pid) => {
      asked.push(pid);
      return [1001, 27];
    });
    assert.deepEqual([viaGroups.allowed, viaGroups.reason, asked], [true, 'supplementary group 27 is allowed', [777]]);
    const refused = decidePeerAccess(peer(1002, 1002, 778), policy, () => [100]);
    assert.equal(refused.allowed, false);
    assert.equal(refused.reason,
      'access denied: peer uid 1002 gid 1002 (pid 778) is not allowed; this backend admits root; uid 1000; gid 27 (widen with --allow-uid/--allow-gid)');
    assert.deepEqual(refused.credentials, peer(1002, 1002, 778));
    assert.match(decidePeerAccess(peer(5, 5), { allowUids: [], allowGids: [] }, noGroups).reason, /admits root \(widen/);
  });

  test('supplementary groups come from /proc/<pid>/status', () => {
    // Node's getgroups() also reports the effective gid, which the Groups: line lists only when it is
    // also a supplementary group.
    const fromProc = new Set([...supplementaryGroups(process.pid), process.getegid?.()]);
    assert.deepEqual(fromProc, new Set([...(process.getgroups?.() ?? []), process.getegid?.()]));
    assert.deepEqual(supplementaryGroups(0), []);
    assert.deepEqual(supplementaryGroups(2 ** 22 + 1), []);
  });
});

function addonWithPeerCredentials(): boolean {
  try {
    return typeof native().peerCredentials === 'function';
  } catch {
    return false;
  }
}

describe('checkPeer on a real Unix socket (SO_PEERCRED via the addon)', { skip: !addonWithPeerCredentials() && 'native addon not built' }, () => {
  /** Connect from a child running as `uid`/`gid` and return the server's decision. */
  async function decisionFor(uid: number, gid: number, policy: { allowUids: number[]; allowGids: number[] }): Promise<PeerDecision> {
    const dir = mkdtempSync(join(tmpdir(), 'xpci-peer-'));
    chmodSync(dir, 0o755);
    const path = join(dir, 'ring.sock');
    const server = createServer();
    server.listen(path);
    await once(server, 'listening');
    chmodSync(path, 0o777);
    try {
      const connected = once(server, 'connection') as Promise<[Socket]>;
      const child = spawn(process.execPath, ['-e', `require('net').connect(${JSON.stringify(path)}).on('connect', () => setInterval(() => {}, 1 << 30))`],
        { uid, gid, stdio: 'ignore' });
      const [socket] = await connected;
      const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd;
      const decision = checkPeer(fd, policy);
      assert.equal(decision.credentials.pid, child.pid);
      child.kill('SIGKILL');
      socket.destroy();
      return decision;
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  test('a nobody peer is refused, an allowed uid admitted, root admitted', { skip: process.getuid?.() !== 0 && 'needs root to run a peer as another uid' }, async () => {
    const refused = await decisionFor(65534, 65534, { allowUids: [], allowGids: [] });
    assert.equal(refused.allowed, false);
    assert.equal(refused.credentials.uid, 65534);
    assert.match(refused.reason, /peer uid 65534 gid 65534/);
    assert.equal((await decisionFor(65534, 65534, { allowUids: [65534], allowGids: [] })).allowed, true);
    assert.equal((await decisionFor(0, 0, { allowUids: [], allowGids: [] })).reason, 'uid 0 (root)');
  });
});
