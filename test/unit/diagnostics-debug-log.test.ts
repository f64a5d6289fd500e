/**
 * The DEBUG channels load the `debug` package only when something is to be printed: a quiet
 * backend never carries it; --verbose-request (enabled = true) and DEBUG=xpci:* still print.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const DEBUG_LOG = fileURLToPath(new URL('../../src/diagnostics/debug-log.js', import.meta.url));

/** Runs `body` in a fresh Node with `log` = debugLog('xpci:probe'); `loaded()` says whether `debug` is in the module cache. */
function probe(body: string, env: NodeJS.ProcessEnv): { stdout: string; stderr: string } {
  const script = `import { createRequire } from 'node:module';
const { debugLog } = await import(${JSON.stringify(DEBUG_LOG)});
const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((p) => /node_modules\\/debug\\//.test(p));
const log = debugLog('xpci:probe');
${body}`;
  const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } });
  assert.equal(out.status, 0, out.stderr);
  return out;
}

test('with DEBUG unset, a channel prints nothing and does not load the debug package', () => {
  const { stdout, stderr } = probe(`log('quiet %d', 1); console.log(JSON.stringify({ enabled: log.enabled, loaded: loaded() }));`, {});
  assert.deepEqual(JSON.parse(stdout), { enabled: false, loaded: false });
  assert.equal(stderr, '');
});

test('turned on in code (--verbose-request), it loads debug and prints with its namespace', () => {
  const { stdout, stderr } = probe(`log.enabled = true; log('on %d', 2);
await new Promise((resolve) => setTimeout(resolve, 200));
log('later %d', 3);
console.log(JSON.stringify({ enabled: log.enabled, loaded: loaded() }));`, {});
  assert.deepEqual(JSON.parse(stdout), { enabled: true, loaded: true });
  assert.match(stderr, /xpci:probe on 2[^]*xpci:probe later 3/, 'a line written while debug loads is printed, in order');
});

test('a program that picks channels itself (enableDebugNamespaces) gets them, before or after they are made', () => {
  const { stderr } = probe(`const { enableDebugNamespaces } = await import(${JSON.stringify(DEBUG_LOG)});
await enableDebugNamespaces('xpci:probe,xpci:late');
log('made before');
debugLog('xpci:late')('made after');
debugLog('xpci:other')('not named');`, {});
  assert.match(stderr, /xpci:probe made before/);
  assert.match(stderr, /xpci:late made after/);
  assert.doesNotMatch(stderr, /not named/);
});

test('DEBUG=xpci:* prints through debug as before; other namespaces stay quiet', () => {
  assert.match(probe(`log('via env');`, { DEBUG: 'xpci:*' }).stderr, /xpci:probe via env/);
  assert.equal(probe(`log('not me');`, { DEBUG: 'other:*' }).stderr, '');
});
