/**
 * `xpci export --json ARGS` started in the guest in the background, as the VM suites need it: it
 * outlives the exec that starts it (a wrapper records its pid and exit status under
 * /tmp/NAME.{pid,out,err,status}), and the host polls in short execs for its JSON ready line,
 * because Node takes tens of seconds to start under TCG.
 */
import assert from 'node:assert/strict';
import type { Guest } from './guest.js';

export interface BackgroundExport {
  pid: number;
  /** the export's JSON ready line */
  ready: { socket?: string; mode: string; devices: { host: string; guest: string }[]; vfioUser?: string[] };
  /** frontend BDF of each exported host BDF */
  guestOf: Record<string, string>;
  /** stderr so far */
  stderr(): Promise<string>;
  /** SIGTERM, then the exit status */
  stop(): Promise<number>;
}

const XPCI = 'node dist/src/cli/main.js';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts it under `name` and resolves once it listens; fails with its stderr when it exits first. */
export async function startBackgroundExport(vm: Guest, name: string, args: string): Promise<BackgroundExport> {
  const files = `/tmp/${name}`;
  await vm.execOk(`setsid bash -c '${XPCI} export --json ${args} < /dev/null > ${files}.out 2> ${files}.err & echo $! > ${files}.pid; ` +
    `wait $!; echo $? > ${files}.status' < /dev/null > /dev/null 2>&1 &`);
  const pid = Number((await vm.execOk(`for i in $(seq 100); do test -s ${files}.pid && break; sleep 0.1; done; cat ${files}.pid`)).trim());
  let line = '';
  for (let attempt = 0; attempt < 180; attempt++) {
    const poll = await vm.exec(`head -1 ${files}.out; kill -0 ${pid} 2>/dev/null || echo exited`);
    line = poll.stdout.split('\n')[0];
    if (line.startsWith('{') || /exited/.test(poll.stdout)) break;
    await sleep(1000);
  }
  const stderr = async (): Promise<string> => (await vm.exec(`cat ${files}.err`)).stdout;
  assert.match(line, /^\{"(socket|vfioUser)"/, `backend ${name} did not become ready: ${await stderr()}`);
  const ready = JSON.parse(line) as BackgroundExport['ready'];
  return {
    pid,
    ready,
    guestOf: Object.fromEntries(ready.devices.map((d) => [d.host, d.guest])),
    stderr,
    stop: async () => Number((await vm.execOk(`kill -TERM ${pid}; for i in $(seq 600); do test -s ${files}.status && break; sleep 0.1; done; cat ${files}.status`,
      { timeoutMs: 90_000 })).trim()),
  };
}
