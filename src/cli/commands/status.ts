/**
 * `xpci status`: what xpci is doing on this machine, from one state directory: the running exports
 * (each asked over its control socket for its devices, connected peer and denial counts), the export
 * locks, and the devices seized with assignable-add. Reads only.
 */
import type { Argv, CommandModule } from 'yargs';
import { resolveStateDir } from '../../backend/lifecycle/state-dir.js';
import { listExports, type ExportRecord } from '../../backend/lifecycle/export-registry.js';
import { listLocks } from '../../backend/lifecycle/device-lock.js';
import { listRecords } from '../../backend/lifecycle/assignable-store.js';
import type { ExportStatus } from '../../protocol/control/hotplug-control.js';
import { sendControlRequest } from '../control-client.js';
import { stateDirFailure } from '../permission-errors.js';

interface StatusArgs {
  json: boolean;
  'state-dir'?: string;
}

/** A running backend answers at once; one that does not is reported, not waited for. */
const STATUS_TIMEOUT_MS = 3000;

interface ExportView {
  pid: number;
  socket: string;
  control: string;
  mode: string;
  readOnly: boolean;
  since: string;
  /** 'running', or 'stale' for a record left by a backend that died */
  state: 'running' | 'stale';
  peer: ExportStatus['peer'];
  devices: ExportStatus['devices'];
  /** why the backend could not be asked (not root, no reply) */
  error?: string;
}

async function describeExport(record: ExportRecord & { state: string }): Promise<ExportView> {
  const base = {
    pid: record.pid, socket: record.socket, control: record.control, mode: record.mode,
    readOnly: record.readOnly, since: record.since, peer: null, devices: [],
  };
  if (record.state !== 'alive') return { ...base, state: 'stale', error: `pid ${record.pid} is gone: a record left by a backend that was killed` };
  try {
    const reply = await sendControlRequest(record.control, { op: 'export-status' }, STATUS_TIMEOUT_MS);
    if (!reply.ok || !reply.export) return { ...base, state: 'running', error: reply.error ?? 'the backend sent no status' };
    return { ...base, state: 'running', peer: reply.export.peer, devices: reply.export.devices };
  } catch (error) {
    return { ...base, state: 'running', error: (error as Error).message };
  }
}

async function gather(stateDir: string) {
  try {
    const exports = await Promise.all(listExports(stateDir).map(describeExport));
    const locks = listLocks(stateDir).map(({ bdf, holder, state }) => ({ bdf, pid: holder?.pid ?? null, state, since: holder?.since ?? null }));
    const assignable = listRecords(stateDir).map(({ bdf, originalDriver, since }) => ({ bdf, originalDriver, since }));
    return { stateDir, exports, locks, assignable };
  } catch (error) {
    throw stateDirFailure(stateDir, error);
  }
}

function printText(status: Awaited<ReturnType<typeof gather>>): void {
  const lines: string[] = [`state directory ${status.stateDir}`];
  if (status.exports.length === 0) lines.push('no exports running');
  for (const e of status.exports) {
    const flags = [e.mode, ...(e.readOnly ? ['read-only'] : []), ...(e.state === 'stale' ? ['STALE'] : [])].join(', ');
    lines.push(`export pid ${e.pid} (${flags}) since ${e.since}: socket ${e.socket}`);
    if (e.error !== undefined) {
      lines.push(`  cannot ask it: ${e.error}`);
      continue;
    }
    lines.push(!e.peer ? '  frontend: none connected'
      : 'pid' in e.peer ? `  frontend: pid ${e.peer.pid} uid ${e.peer.uid} gid ${e.peer.gid}`
      : `  frontend: TLS ${e.peer.remote} subject ${e.peer.subject}`);
    for (const d of e.devices) {
      lines.push(`  ${d.host} -> ${d.guest}${d.permissive ? '  permissive' : ''}  denied accesses: ${d.denied}`);
    }
  }
  lines.push(status.locks.length === 0 ? 'no export locks' : 'export locks:');
  for (const l of status.locks) lines.push(`  ${l.bdf}  ${l.pid === null ? 'unreadable lock' : `pid ${l.pid} (${l.state})`}${l.since ? `  since ${l.since}` : ''}`);
  lines.push(status.assignable.length === 0 ? 'no devices held by xpci (assignable-add)' : 'held by xpci (assignable-add):');
  for (const a of status.assignable) lines.push(`  ${a.bdf}  original driver ${a.originalDriver ?? '(none)'}  since ${a.since}`);
  process.stdout.write(lines.join('\n') + '\n');
}

export const statusCommand: CommandModule<object, StatusArgs> = {
  command: 'status',
  describe: 'running exports (devices, connected frontend, denials), export locks and seized devices',
  builder: (yargs) => yargs
    .usage([
      'xpci status [--state-dir DIR] [--json]',
      '',
      "Shows what xpci is doing on this machine, from one state directory (the one 'xpci export' and the "
        + 'assignable-* commands use): each running export with its socket, mode and devices (host BDF -> '
        + 'frontend BDF, with how many accesses the policy denied), the frontend connected to it (pid, uid), '
        + 'the per-device export locks, and the devices seized with assignable-add. Running exports are asked '
        + 'over their control sockets, which admit root only; the state directory is mode 0700. So run it as '
        + 'root, or as the user that runs the exports. Reads only.',
    ].join('\n'))
    .option('state-dir', { type: 'string', describe: "state directory to look in (default $XPCI_STATE_DIR, else /run/xpci)" })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object (fields below) instead of text' })
    .example('xpci status', 'everything under /run/xpci (or $XPCI_STATE_DIR)')
    .example('xpci status --json --state-dir /tmp/xpci-state', 'a test setup, as JSON')
    .epilogue([
      'OUTPUT',
      '  --json: {"stateDir", "exports": [{pid, socket, control, mode, readOnly, since, state (running|stale), '
        + 'peer ({pid, uid, gid} on the Unix socket, {remote, subject} over TLS, or null), devices [{host, guest, permissive, denied}], error (when it could not '
        + 'be asked)}], "locks": [{bdf, pid, state (alive|dead|reused|unreadable), since}], "assignable": '
        + '[{bdf, originalDriver, since}]}.',
      '',
      'Exit status: 0 success, also when nothing runs; 1 the state directory cannot be read (the reason and '
        + 'the fix follow); 2 bad option.',
    ].join('\n')) as unknown as Argv<StatusArgs>,
  handler: async (args) => {
    const status = await gather(resolveStateDir(args['state-dir']));
    if (args.json) process.stdout.write(JSON.stringify(status) + '\n');
    else printText(status);
  },
};
