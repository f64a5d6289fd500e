/**
 * CI share of the vfio-user fuzz run (the long one: `npm run fuzz -- --vfio-user --frames 1000000`).
 * Replay a failure with XPCI_SEED=<seed>.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runVfioUserFuzz } from '../support/fuzz-vfio-user.js';
import { seedFromEnv } from '../support/fuzz-random.js';

test('the vfio-user server answers 20 000 fuzzed messages validly, leaks no fd and still serves', { timeout: 120_000 }, async () => {
  const seed = seedFromEnv();
  const report = await runVfioUserFuzz({ messages: 20_000, seed });
  assert.deepEqual(report.findings, [], `seed ${seed}: ${report.findings.join('\n')}`);
  assert.ok(report.errors > 0 && report.errors < report.messages, `seed ${seed}: ${report.errors} error replies of ${report.messages}`);
});
