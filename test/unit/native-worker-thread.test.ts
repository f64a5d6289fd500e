// The addon is context-aware: it loads and works in a worker thread after the main thread loaded it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native, nativeAddonPath } from '../../src/native/binding.js';

test('loads and reads in a worker thread while the main thread holds it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xpci-native-worker-'));
  try {
    const path = join(dir, 'config');
    writeFileSync(path, Buffer.from([0x86, 0x80, 0x57, 0x0d]));
    const mainFile = native().openRegisterFile(path, false);
    const worker = new Worker(`
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.addon);
      const file = addon.openRegisterFile(workerData.path, false);
      parentPort.postMessage(file.read(0, 4));
      file.close();`, { eval: true, workerData: { addon: nativeAddonPath(), path } });
    const [value] = await once(worker, 'message') as [number];
    assert.equal(value, 0x0d578086);
    assert.equal(mainFile.read(0, 4), value, 'the main thread handle is unaffected');
    mainFile.close();
    await once(worker, 'exit');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
