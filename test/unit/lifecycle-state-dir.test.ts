import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_STATE_DIR, ensureStateDir, resolveStateDir } from '../../src/backend/lifecycle/state-dir.js';

describe('state directory', () => {
  test('--state-dir wins over XPCI_STATE_DIR, which wins over /run/xpci', () => {
    assert.equal(resolveStateDir('/a', { XPCI_STATE_DIR: '/b' }), '/a');
    assert.equal(resolveStateDir(undefined, { XPCI_STATE_DIR: '/b' }), '/b');
    assert.equal(resolveStateDir(undefined, {}), DEFAULT_STATE_DIR);
    assert.equal(resolveStateDir('', { XPCI_STATE_DIR: '' }), '/run/xpci');
  });

  test('created 0700 with its subdirectories; group/other read and write removed, search kept; symlinks refused', () => {
    const base = mkdtempSync(join(tmpdir(), 'xpci-statedir-'));
    const previous = process.umask(0);
    try {
      const dir = join(base, 'run', 'xpci');
      ensureStateDir(dir);
      for (const d of [dir, join(dir, 'assignable'), join(dir, 'locks')]) assert.equal(statSync(d).mode & 0o777, 0o700, d);
      chmodSync(dir, 0o777);
      ensureStateDir(dir);
      assert.equal(statSync(dir).mode & 0o777, 0o711);
      chmodSync(dir, 0o755);
      ensureStateDir(dir);
      assert.equal(statSync(dir).mode & 0o777, 0o711);
      chmodSync(dir, 0o700);
      ensureStateDir(dir, 0o711);
      assert.equal(statSync(dir).mode & 0o777, 0o711, 'a backend admitting other users makes it searchable');
      assert.equal(statSync(join(dir, 'locks')).mode & 0o777, 0o700);
      mkdirSync(join(base, 'elsewhere'));
      symlinkSync(join(base, 'elsewhere'), join(base, 'link'));
      assert.throws(() => ensureStateDir(join(base, 'link')), /state directory .*link is not a directory/);
    } finally {
      process.umask(previous);
      rmSync(base, { recursive: true, force: true });
    }
  });
});
