/**
 * The frontend as a library, the way a user gets it: `npm pack`, then `npm install` of the tarball
 * into a scratch project (offline from npm's cache, install scripts off: the frontend needs no native build), then
 * `import { connect, scanBus } from 'xpci/frontend'` by package name, which scans a real export of
 * a fixture tree with the example of docs/frontend-api.md; and TypeScript resolves the declarations through package.json "exports".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { materializeDemoTree } from '../../src/cli/demo/demo-tree.js';
import { runProcess, startExport, type XpciResult } from '../support/xpci-process.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const hasAddon = existsSync(join(REPO, 'build/Release/xpci_native.node'));

const npm = (args: string[], cwd: string): string =>
  execFileSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, encoding: 'utf8', env: { ...process.env, npm_config_update_notifier: 'false' } });

const node = (args: string[], cwd: string): Promise<XpciResult> => runProcess(process.execPath, args, { cwd });

/** The complete example of docs/frontend-api.md, run as a user would run it. */
const SCAN = /```js\n([\s\S]*?)```/.exec(readFileSync(join(REPO, 'docs/frontend-api.md'), 'utf8'))![1];

const TYPED = `import { connect, scanBus, type FrontendClient, type ScanResult } from 'xpci/frontend';
export async function count(path: string): Promise<number> {
  const client: FrontendClient = await connect(path, { requestTimeoutMs: 1000 });
  const scan: ScanResult = await scanBus(client);
  const value: number = await client.configRead(scan.addresses[0], 0, 4);
  // @ts-expect-error connect takes a path, not a number: the declarations are real, not 'any'
  await connect(42);
  return value + client.devices().length;
}
`;

/**
 * A scratch project depending on the tarball, with a lockfile that pins xpci's runtime dependencies
 * as the repository's lockfile does: `npm ci --offline` then installs them from npm's cache (the
 * one `npm ci` of this checkout filled), with no registry access.
 */
function writeScratchProject(project: string, spec: string): void {
  const repoLock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  const manifest = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> };
  const runtime = Object.entries(repoLock.packages).filter(([path, entry]) => path !== '' && !entry.dev);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module', dependencies: { xpci: spec } }));
  writeFileSync(join(project, 'package-lock.json'), JSON.stringify({
    name: 'scratch',
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { name: 'scratch', dependencies: { xpci: spec } },
      'node_modules/xpci': { version: manifest.version, resolved: spec, dependencies: manifest.dependencies, hasInstallScript: true },
      ...Object.fromEntries(runtime),
    },
  }));
}

test('npm pack + install into a scratch project: import by name, scan a fixture export, types resolve', { skip: !hasAddon && 'native addon not built (the export needs it)' }, async () => {
  const work = mkdtempSync(join(tmpdir(), 'xpci-package-'));
  try {
    npm(['pack', '--ignore-scripts', '--pack-destination', work], REPO);
    const [tarball] = readdirSync(work).filter((name) => name.endsWith('.tgz'));
    assert.ok(tarball, 'npm pack made a tarball');
    const project = join(work, 'scratch');
    execFileSync('mkdir', [project]);
    writeScratchProject(project, `file:../${tarball}`);
    npm(['ci', '--offline', '--ignore-scripts'], project);
    assert.ok(!existsSync(join(project, 'node_modules/xpci/build')), 'no native build in the installed package');

    const sysfs = join(work, 'sysfs');
    materializeDemoTree(sysfs);
    const backend = await startExport(['--sysfs-root', sysfs, '--state-dir', join(work, 'state'), '--socket', join(work, 'ring.sock'),
      '--no-reset-on-export', '--no-reset-on-release', '00:10.0', '00:11.0', '02:00.0']);
    try {
      writeFileSync(join(project, 'scan.mjs'), SCAN);
      const r = await node(['scan.mjs', backend.socket], project);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, '00:00.0 1234:11e8 config=256\n00:01.0 1b36:0005 config=256\n00:02.0 8086:10d3 config=4096\n'
        + 'BAR move refused: config write of 0xfe000000 at 0x10 (4 bytes) refused, nothing written\n');
    } finally {
      await backend.stop();
    }

    const internal = await node(['--input-type=module', '-e', "await import('xpci/dist/src/backend/snapshot.js')"], project);
    assert.match(internal.stderr, /ERR_PACKAGE_PATH_NOT_EXPORTED/, 'only the frontend is exported');

    writeFileSync(join(project, 'typed.ts'), TYPED);
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, types: ['node'], typeRoots: [join(REPO, 'node_modules/@types')] },
      files: ['typed.ts'],
    }));
    const tsc = await node([join(REPO, 'node_modules/typescript/bin/tsc'), '-p', project], project);
    assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
