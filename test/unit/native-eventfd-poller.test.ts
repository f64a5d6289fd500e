/**
 * eventfd and the uv_poll_t watcher, on this host (no VFIO needed): a signalled eventfd wakes the
 * callback from the event loop with the counter intact (coalesced signals stay visible), a drained
 * eventfd stays quiet, close() stops the watcher (also from inside the callback), and nothing is left
 * open or alive.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { native } from '../../src/native/binding.js';

const eventfdCount = (): number => readdirSync('/proc/self/fd').filter((fd) => {
  try { return readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:[eventfd]'; } catch { return false; }
}).length;

/** Resolves with the callback's argument and the drained counter on the next readable event. */
function nextWake(fd: number): Promise<{ error: string | null; counter: bigint | null }> {
  return new Promise((resolve) => {
    const poller = native().watchFd(fd, (error) => {
      const counter = native().eventfdRead(fd);
      poller.close();
      resolve({ error, counter });
    });
  });
}

describe('native eventfd', () => {
  test('counts signals; reading drains; an empty read is null', () => {
    const fd = native().eventfdCreate();
    try {
      assert.equal(native().eventfdRead(fd), null);
      native().eventfdWrite(fd, 1n);
      native().eventfdWrite(fd, 2n);
      assert.equal(native().eventfdRead(fd), 3n);
      assert.equal(native().eventfdRead(fd), null);
      const primed = native().eventfdCreate(5);
      assert.equal(native().eventfdRead(primed), 5n);
      native().closeFd(primed);
    } finally {
      native().closeFd(fd);
    }
  });

  test('bad arguments are NativeErrors, not crashes', () => {
    assert.throws(() => native().eventfdRead(-1), { code: 'ERANGE' });
    assert.throws(() => native().eventfdWrite(0, 1 as unknown as bigint), { code: 'EINVAL' });
    assert.throws(() => native().closeFd(1.5), { code: 'EINVAL' });
    const fd = native().eventfdCreate();
    native().closeFd(fd);
    assert.throws(() => native().closeFd(fd), { code: 'EBADF', syscall: 'close' });
    assert.throws(() => native().eventfdRead(fd), { code: 'EBADF', syscall: 'read' });
  });
});

describe('native fd poller', () => {
  test('a signal raised later wakes the callback with the coalesced counter', async () => {
    const fd = native().eventfdCreate();
    try {
      const wake = nextWake(fd);
      setImmediate(() => { native().eventfdWrite(fd, 1n); native().eventfdWrite(fd, 1n); });
      assert.deepEqual(await wake, { error: null, counter: 2n });
    } finally {
      native().closeFd(fd);
    }
  });

  test('level-triggered: a signal pending before the watch starts is delivered', async () => {
    const fd = native().eventfdCreate();
    try {
      native().eventfdWrite(fd, 7n);
      assert.deepEqual(await nextWake(fd), { error: null, counter: 7n });
    } finally {
      native().closeFd(fd);
    }
  });

  test('every signal is seen once; a closed poller calls nothing more', async () => {
    const fd = native().eventfdCreate();
    const seen: bigint[] = [];
    let done: () => void;
    const finished = new Promise<void>((resolve) => { done = resolve; });
    const poller = native().watchFd(fd, () => {
      const counter = native().eventfdRead(fd);
      if (counter !== null) seen.push(counter);
      if (seen.length < 3) setImmediate(() => native().eventfdWrite(fd, BigInt(seen.length + 1)));
      else done();
    });
    assert.equal(poller.active, true);
    assert.equal(poller.fd, fd);
    native().eventfdWrite(fd, 1n);
    await finished;
    poller.close();
    poller.close();
    assert.equal(poller.active, false);
    native().eventfdWrite(fd, 9n);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(seen, [1n, 2n, 3n]);
    assert.equal(native().eventfdRead(fd), 9n, 'the last signal was left for nobody');
    native().closeFd(fd);
  });

  test('pollers and eventfds leave nothing behind', async () => {
    const before = eventfdCount();
    for (let i = 0; i < 50; i++) {
      const fd = native().eventfdCreate();
      const wake = nextWake(fd);
      native().eventfdWrite(fd, 1n);
      await wake;
      native().closeFd(fd);
    }
    assert.equal(eventfdCount(), before);
  });

  test('bad arguments', () => {
    assert.throws(() => native().watchFd(0, 'nope' as unknown as () => void), { code: 'EINVAL' });
    assert.throws(() => native().watchFd(-3, () => {}), { code: 'ERANGE' });
  });
});
