/**
 * What a local user or a hostile frontend can try against a running backend, in process on fixture
 * trees: refused-peer floods, silent peers, Hello floods and peers that never read. Each test
 * reproduces an attack that used to work and checks the backend's defence.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { RawClient } from '../support/frontend-stub.js';
import { startBackend } from '../support/backend-harness.js';
import { controlSocketPath } from '../../src/protocol/control/hotplug-control.js';

/** Connect to `path`, wait for the backend to close the stream, return what it sent. */
async function refusedConnection(path: string): Promise<void> {
  const socket = connect(path);
  socket.on('error', () => undefined);
  socket.resume();
  await once(socket, 'close');
}

describe('refused peers', () => {
  test('a flood of refused connections logs once per cause, on the ring and on the control socket', async (t) => {
    let pid = 1000;
    const h = await startBackend(t, ['00:05.0'], {}, undefined, {
      admit: () => {
        pid++;
        return pid % 2 === 0
          ? { allowed: false, reason: `access denied: peer uid 4321 gid 4321 (pid ${pid}) is not allowed`, cause: 'peer uid 4321 gid 4321' }
          : { allowed: false, reason: `access denied: peer uid 4322 gid 4322 (pid ${pid}) is not allowed`, cause: 'peer uid 4322 gid 4322' };
      },
    });
    for (let round = 0; round < 20; round++) {
      await Promise.all(Array.from({ length: 20 }, () => refusedConnection(h.socket)));
      await Promise.all(Array.from({ length: 5 }, () => refusedConnection(controlSocketPath(h.socket))));
    }
    const ring = h.warnings.filter((w) => /refused a frontend/.test(w));
    const control = h.warnings.filter((w) => /refused a control connection/.test(w));
    assert.equal(ring.length, 2, ring.join('\n'));
    assert.equal(control.length, 2, control.join('\n'));
    assert.match(ring.join('\n'), /uid 4321/);
    assert.match(ring.join('\n'), /uid 4322/);
    const client = await RawClient.connect(h.socket).catch(() => null);
    void client?.destroy();
  });
});
