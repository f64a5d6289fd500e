// Handles dropped without close()/unmap() release their fd / mapping when garbage collected.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nativeAddonPath } from '../../src/native/binding.js';

let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), 'xpci-native-gc-')); });
after(() => rmSync(dir, { recursive: true, force: true }));

test('garbage collection closes forgotten register files and unmaps forgotten mappings', () => {
  const config = join(dir, 'config');
  const bar = join(dir, 'resource0');
  writeFileSync(config, Buffer.alloc(256));
  writeFileSync(bar, Buffer.alloc(4096));
  // The child counts its own fds on `config` and its mappings of `bar`, forgets 20 of each, then
  // collects until they are gone (finalizers may run after the gc() call, on a later tick).
  const script = `
    const fs = require('node:fs');
    const addon = require(process.argv[1]);
    const [config, bar] = process.argv.slice(2);
    const fds = () => fs.readdirSync('/proc/self/fd').filter((fd) => {
      try { return fs.readlinkSync('/proc/self/fd/' + fd) === config; } catch { return false; }
    }).length;
    const maps = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.endsWith(' ' + bar)).length;
    (() => { for (let i = 0; i < 20; i++) { addon.openRegisterFile(config, false); addon.mapResource(bar, false); } })();
    const forgotten = { fds: fds(), maps: maps() };
    (async () => {
      for (let round = 0; round < 200 && (fds() > 0 || maps() > 0); round++) {
        globalThis.gc();
        await new Promise((resolve) => setImmediate(resolve));
      }
      process.stdout.write(JSON.stringify({ forgotten, collected: { fds: fds(), maps: maps() } }));
    })();`;
  const child = spawnSync(process.execPath, ['--expose-gc', '-e', script, nativeAddonPath(), config, bar], { encoding: 'utf8' });
  assert.equal(child.status, 0, child.stderr);
  const { forgotten, collected } = JSON.parse(child.stdout) as Record<'forgotten' | 'collected', { fds: number; maps: number }>;
  assert.equal(forgotten.fds, 20);
  assert.ok(forgotten.maps >= 1, 'the mappings exist before collection');
  assert.deepEqual(collected, { fds: 0, maps: 0 });
});
