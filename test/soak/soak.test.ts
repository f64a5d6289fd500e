/** One minute of the soak run (`npm run soak -- --minutes N` runs it longer): it must pass. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { soak } from '../support/soak.js';

test('one minute of mixed load, kills, hot-plug and garbage leaves no trace and no growth', { timeout: 180_000 }, async () => {
  const figures = await soak(1, (line) => process.stdout.write(`# ${line}\n`));
  assert.deepEqual(figures.problems, []);
  assert.ok(figures.sessions > 0 && figures.kills > 0 && figures.hotplugRounds > 0 && figures.garbageBursts > 0);
});
