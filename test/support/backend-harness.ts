/** Start a BackendServer the way `xpci export` does, and stop it and remove `dir` when the test ends. */
import type { TestContext } from 'node:test';
import { rmSync } from 'node:fs';
import type { BackendServer } from '../../src/backend/server/backend-server.js';
import type { ManagedDevice, ReconcileOutcome } from '../../src/backend/server/export-reconciler.js';

export async function serveForTest<D extends ManagedDevice>(t: TestContext, backend: BackendServer<D>, dir: string): Promise<ReconcileOutcome<D>> {
  t.after(async () => {
    await backend.stop('test over');
    rmSync(dir, { recursive: true, force: true });
  });
  await backend.prepare();
  const outcome = backend.exportDevices();
  await backend.listen();
  return outcome;
}
