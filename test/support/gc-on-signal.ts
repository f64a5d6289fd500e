/**
 * Preloaded into a backend under test (`node --expose-gc --import …/gc-on-signal.js`): SIGUSR2 runs
 * a full garbage collection, so a memory figure taken just after it measures what is live, not
 * where the collector's saw-tooth happens to be (the soak compares such figures for growth). With
 * XPCI_GC_REPORT set it also prints process.memoryUsage() on stderr: heap, external and array
 * buffers apart from RSS, to tell a JS leak from a native one.
 */
const collect = (globalThis as { gc?: () => void }).gc;
if (collect) {
  process.on('SIGUSR2', () => {
    collect();
    if (process.env.XPCI_GC_REPORT) process.stderr.write(`gc-report ${JSON.stringify(process.memoryUsage())}\n`);
  });
}
