/**
 * CI-sized fuzz run of the real backend: tens of thousands of random and mutated
 * frames against `xpci export --sysfs-root <fixture>`. The backend must never crash, answer every
 * frame as docs/protocol.md says, never write a fixture byte the register table forbids, restore
 * what it changed at shutdown, and still serve a valid frontend afterwards. The long run is
 * `npm run fuzz -- --frames 1000000 --seed N`. Replay a failure with XPCI_SEED=<seed>.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatReport, runFuzz } from '../support/fuzz.js';
import { seedFromEnv } from '../support/fuzz-random.js';

test('the backend survives 30 000 fuzzed frames and still serves a frontend', { timeout: 120_000 }, async () => {
  const seed = seedFromEnv(0x1f2e3d4c);
  const report = await runFuzz({ frames: 30_000, seed });
  const summary = `${formatReport(report)}\nreplay: XPCI_SEED=${seed} node --test dist/test/unit/fuzz-backend.test.js`;
  assert.deepEqual(report.findings, [], summary);
  // The run reached the devices, not only the decoder: writes and BAR accesses were served.
  for (const outcome of ['ConfigRead ok', 'ConfigWrite ok', 'ConfigWrite AccessDenied', 'BarRead ok', 'BarWrite ok', 'Hello ok', 'decode error Malformed']) {
    assert.ok((report.outcomes[outcome] ?? 0) > 0, `no '${outcome}' in the run\n${summary}`);
  }
  assert.ok(report.reconnects > 1, summary);
});
