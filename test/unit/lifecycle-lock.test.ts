import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { acquireDeviceLock, deviceLockPath, DeviceBusyError, inspectDeviceLock } from '../../src/backend/lifecycle/device-lock.js';
import { processStartTime, processState } from '../../src/backend/lifecycle/process-identity.js';

const BDF = '0000:06:01.0';
const lockModule = fileURLToPath(new URL('../../src/backend/lifecycle/device-lock.js', import.meta.url));

function withStateDir(body: (stateDir: string) => Promise<void> | void): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xpci-lock-'));
    try {
      await body(join(dir, 'state'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

/** A child node process that takes the lock, says so, and holds it until killed. */
async function lockHolder(stateDir: string): Promise<ReturnType<typeof spawn>> {
  const script = `const { acquireDeviceLock } = await import(${JSON.stringify(lockModule)});
acquireDeviceLock(${JSON.stringify(stateDir)}, ${JSON.stringify(BDF)});
process.stdout.write('locked\\n');
setInterval(() => {}, 1 << 30);`;
  const path = join(stateDir, '..', 'holder.mjs');
  writeFileSync(path, script);
  const child = spawn(process.execPath, [path, 'export', BDF], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [chunk] = await once(child.stdout!, 'data');
  assert.equal(String(chunk), 'locked\n');
  return child;
}

describe('per-device export locks', () => {
  test('acquire writes pid and start time; release removes it; the short and long address share one lock', withStateDir((stateDir) => {
    const lock = acquireDeviceLock(stateDir, '06:01.0');
    assert.equal(lock.bdf, BDF);
    assert.equal(lock.path, deviceLockPath(stateDir, BDF));
    assert.equal(lock.staleNote, null);
    const content = JSON.parse(readFileSync(lock.path, 'utf8'));
    assert.equal(content.pid, process.pid);
    assert.equal(content.startTime, processStartTime(process.pid));
    assert.equal(statSync(lock.path).mode & 0o777, 0o600);
    assert.throws(() => acquireDeviceLock(stateDir, BDF), (error: unknown) =>
      error instanceof DeviceBusyError && /0000:06:01\.0 is already in use by this process/.test(error.message));
    lock.release();
    lock.release();
    assert.equal(lock.released, true);
    assert.equal(existsSync(lock.path), false);
    acquireDeviceLock(stateDir, BDF).release();
  }));

  test('a live holder in another process is named by pid; after kill -9 its lock is cleared as stale', withStateDir(async (stateDir) => {
    const child = await lockHolder(stateDir);
    try {
      assert.throws(() => acquireDeviceLock(stateDir, BDF), (error: unknown) => {
        assert.ok(error instanceof DeviceBusyError);
        assert.equal(error.holder.pid, child.pid);
        assert.match(error.message, new RegExp(`in use by pid ${child.pid} \\(.*holder\\.mjs export 0000:06:01\\.0, since `));
        return true;
      });
      assert.equal(inspectDeviceLock(stateDir, BDF)?.state, 'alive');
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    assert.equal(inspectDeviceLock(stateDir, BDF)?.state, 'dead');
    const lock = acquireDeviceLock(stateDir, BDF);
    assert.equal(lock.staleNote, `cleared stale lock of pid ${child.pid} (process gone)`);
    assert.equal(JSON.parse(readFileSync(lock.path, 'utf8')).pid, process.pid);
    lock.release();
  }));

  test('a lock whose pid now belongs to another process (start time differs) is stale', withStateDir((stateDir) => {
    acquireDeviceLock(stateDir, BDF).release();
    writeFileSync(deviceLockPath(stateDir, BDF), JSON.stringify({ pid: process.pid, startTime: '1', command: 'xpci export', since: 'then' }));
    assert.equal(processState(process.pid, '1'), 'reused');
    const lock = acquireDeviceLock(stateDir, BDF);
    assert.equal(lock.staleNote, `cleared stale lock of pid ${process.pid} (pid now belongs to another process)`);
    lock.release();
  }));

  test('an unreadable lock file is cleared and reported', withStateDir((stateDir) => {
    acquireDeviceLock(stateDir, BDF).release();
    writeFileSync(deviceLockPath(stateDir, BDF), '');
    assert.equal(inspectDeviceLock(stateDir, BDF)?.state, 'unreadable');
    const lock = acquireDeviceLock(stateDir, BDF);
    assert.equal(lock.staleNote, 'cleared unreadable lock file');
    lock.release();
  }));

  test('release leaves alone a lock file that is no longer this lock', withStateDir((stateDir) => {
    const lock = acquireDeviceLock(stateDir, BDF);
    unlinkSync(lock.path);
    const other = JSON.stringify({ pid: 1, startTime: processStartTime(1), command: 'init', since: 'boot' });
    writeFileSync(lock.path, other);
    lock.release();
    assert.equal(readFileSync(lock.path, 'utf8'), other);
  }));

  test('bad addresses are refused before anything is created', withStateDir((stateDir) => {
    assert.throws(() => acquireDeviceLock(stateDir, '06:01'), { name: 'AddressError' });
    assert.equal(existsSync(stateDir), false);
  }));

  test('process identity: this process is alive, an impossible pid is dead', () => {
    assert.equal(processState(process.pid, processStartTime(process.pid)), 'alive');
    assert.equal(processState(2 ** 22 + 1, null), 'dead');
    assert.equal(processStartTime(2 ** 22 + 1), null);
    assert.match(processStartTime(process.pid) ?? '', /^\d+$/);
  });

  test('a zombie (exited, not yet reaped) is a dead holder: its lock is cleared', withStateDir(async (stateDir) => {
    // `sleep 0` exits at once; its parent then execs a long sleep that never reaps it: a zombie.
    const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const [chunk] = await once(parent.stdout!, 'data');
      const pid = Number(String(chunk).trim());
      const startTime = processStartTime(pid);
      while (!/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) await new Promise((r) => setTimeout(r, 10));
      assert.equal(processState(pid, startTime), 'dead');
      acquireDeviceLock(stateDir, BDF).release();
      writeFileSync(deviceLockPath(stateDir, BDF), JSON.stringify({ pid, startTime, command: 'killed backend', since: 'then' }));
      const lock = acquireDeviceLock(stateDir, BDF);
      assert.match(lock.staleNote ?? '', new RegExp(`stale lock of pid ${pid} \\(process gone\\)`));
      lock.release();
    } finally {
      parent.kill('SIGKILL');
    }
  }));
});
