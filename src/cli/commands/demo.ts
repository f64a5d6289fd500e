/**
 * `xpci demo`: the main job end to end on the bundled snapshot tree, with no root and no hardware.
 * A backend runs in this process on a private copy of fixtures/demo/ (vPCI mode, a socket in a
 * private temp directory); each frontend step is the real CLI run as a child process, printed with
 * the command line a user would type. Every step's outcome is checked, so the demo doubles as a
 * smoke test of an installation: exit 0 only when all of them came out as expected.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Argv, CommandModule } from 'yargs';
import { formatAddress } from '../../pci/address.js';
import { BackendServer } from '../../backend/server/backend-server.js';
import { admitPeer, createExportHost } from '../../backend/server/export-host.js';
import { RuntimeError } from '../errors.js';
import { materializeDemoTree } from '../demo/demo-tree.js';

const CLI = fileURLToPath(new URL('../main.js', import.meta.url));

interface DemoArgs {
  keep: boolean;
}

interface Step {
  title: string;
  args: string[];
  /** What the step must show; a string names what went wrong. */
  expect: (result: { code: number; stdout: string; stderr: string }) => string | undefined;
}

const say = (line = ''): void => void process.stdout.write(`${line}\n`);

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, DEBUG: '' } }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const shellWord = (word: string): string => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`);

function steps(socket: string): Step[] {
  const connect = ['--connect', socket];
  return [
    {
      title: "The frontend's view of the virtual bus: lspci -nn through the ring",
      args: ['lspci', '-nn', ...connect],
      expect: ({ code, stdout }) => (code === 0 && /^00:00\.0 .*\[1234:11e8\]/m.test(stdout) && stdout.trim().split('\n').length === 3
        ? undefined : 'expected three functions, edu first'),
    },
    {
      title: 'Moving a BAR is refused: the backend emulates BARs, the host BAR never moves (exit 1, AccessDenied)',
      args: ['setpci', ...connect, '-s', '00:00.0', 'BASE_ADDRESS_0=fe000000'],
      expect: ({ code, stderr }) => (code === 1 && /AccessDenied/.test(stderr) ? undefined : 'expected AccessDenied and exit 1'),
    },
    {
      title: 'A cache-line-size write lands in the device',
      args: ['setpci', ...connect, '-s', '00:00.0', 'CACHE_LINE_SIZE=10'],
      expect: ({ code }) => (code === 0 ? undefined : 'expected the write to succeed'),
    },
    {
      title: '... and reads back',
      args: ['setpci', ...connect, '-s', '00:00.0', 'CACHE_LINE_SIZE'],
      expect: ({ code, stdout }) => (code === 0 && stdout.trim() === '10' ? undefined : 'expected 10'),
    },
    {
      title: "A BAR read: edu's identification register (BAR 0, offset 0)",
      args: ['bar', ...connect, '-s', '00:00.0', '0:0.l'],
      expect: ({ code, stdout }) => (code === 0 && stdout.trim() === '0x010000ed' ? undefined : 'expected 0x010000ed'),
    },
  ];
}

async function runDemo(args: DemoArgs): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'xpci-demo-'));
  const sysfsRoot = join(dir, 'sysfs');
  const socketPath = join(dir, 'xpci.sock');
  const stateDir = join(dir, 'state');
  const warnings: string[] = [];
  let backend: BackendServer<any> | undefined;
  try {
    const devices = materializeDemoTree(sysfsRoot);
    const bdfs = devices.map(formatAddress);
    say('xpci demo: a backend and a frontend on a bundled snapshot of three QEMU devices (edu, pci-testdev,');
    say('e1000e with its 4 KiB PCIe config space). No root needed, no hardware touched.');
    say();
    say('== The backend: export the snapshot tree on a virtual PCI bus');
    say(`$ ${['xpci', 'export', '--sysfs-root', sysfsRoot, '--state-dir', stateDir, '--socket', socketPath, ...bdfs].map(shellWord).join(' ')}`);
    const options = {
      mode: 'vpci' as const,
      socketPath,
      devices: devices.map((address) => ({ address, permissive: false })),
      permissive: false,
      readOnly: false,
      resetOnExport: false,
      resetOnRelease: false,
      allowUids: [],
      allowGids: [],
      verboseRequest: false,
      exitOnDisconnect: false,
    };
    backend = new BackendServer(options, {
      host: createExportHost({ sysfsRoot, stateDir, mode: options.mode, readOnly: false }),
      admit: admitPeer,
      warn: (message) => warnings.push(message),
    });
    await backend.prepare();
    const outcome = backend.exportDevices();
    if (outcome.refused.length > 0) throw new RuntimeError(`demo: the backend refused ${outcome.refused.map((r) => `${r.bdf}: ${r.reason}`).join('; ')}`);
    await backend.listen();
    say(`exporting ${devices.length} devices (vpci):`);
    say('  host BDF        frontend BDF');
    for (const entry of backend.mapping()) say(`  ${entry.host}    ${entry.guest}`);
    say(`ready: listening on ${socketPath}`);

    for (const step of steps(socketPath)) {
      say();
      say(`== ${step.title}`);
      say(`$ ${['xpci', ...step.args].map(shellWord).join(' ')}`);
      const result = await runCli(step.args);
      if (result.stdout) process.stdout.write(result.stdout);
      if (result.stderr) process.stdout.write(result.stderr);
      const problem = step.expect(result);
      if (problem) throw new RuntimeError(`demo: step '${step.title}' went wrong: ${problem} (exit ${result.code})`);
    }
    say();
    say('Next: `xpci list` shows this host\'s devices; `xpci export --read-only BDF` (root) serves one for real,');
    say('config reads only, with its host driver left in place. See README.md.');
  } finally {
    if (backend) await backend.stop('demo finished');
    if (args.keep) say(`(kept ${dir})`);
    else rmSync(dir, { recursive: true, force: true });
    for (const warning of warnings) process.stderr.write(`xpci: demo backend: ${warning}\n`);
  }
}

export const demoCommand: CommandModule<object, DemoArgs> = {
  command: 'demo',
  describe: 'export a bundled snapshot of three devices and run the frontend against it (no root, no hardware)',
  builder: (yargs) => yargs
    .usage([
      'xpci demo [--keep]',
      '',
      'Runs the main job end to end on a snapshot tree shipped with xpci (edu, pci-testdev and an e1000e, '
        + 'taken with xpci snapshot in a QEMU guest): a backend exports a private copy of it on a virtual PCI '
        + 'bus over a socket in a private temp directory, and the frontend lists the bus, is refused a BAR '
        + 'move, writes the cache line size and reads a BAR. Each step prints the command a user would type '
        + 'and its output. Needs no root and touches no hardware; everything is removed afterwards.',
    ].join('\n'))
    .option('keep', { type: 'boolean', default: false, describe: 'keep the temp directory (snapshot copy, state) for a look afterwards' })
    .epilogue('Exit status: 0 every step came out as expected; 1 a step did not (the message names it).') as unknown as Argv<DemoArgs>,
  handler: runDemo,
};
