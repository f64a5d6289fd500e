/**
 * vfio-user end to end on a real device, nested: in the test guest (intel-iommu), `xpci
 * assignable-add` hands edu to vfio-pci and `xpci export --vfio-user` serves it; the vfio-user QEMU
 * (built on the host by scripts/build-qemu-vfio-user.sh, and visible in the guest because the guest's
 * root is the host's, read-only) then starts an inner guest with `vfio-user-pci` on the socket. The
 * inner guest is a busybox initramfs of its own (test/vm/guest/nested-edu-init.sh): its kernel
 * enumerates edu, a factorial is computed on the real edu through BAR0 as QEMU mapped it (QEMU's own
 * trace shows the mapping and no proxied access of the factorial register), and with uio_pci_generic
 * bound, an interrupt raised through edu's 0x60 register is counted by /dev/uio0 (edu's INTx: vfio-pci
 * in the test guest signals the inner QEMU's eventfd, which xpci handed to VFIO_DEVICE_SET_IRQS).
 * Inner guest RAM is a shared memfd, so xpci maps it into edu's IOMMU domain (DMA_MAP fds with
 * VFIO_IOMMU_MAP_DMA): edu's DMA engine copies 16 bytes of inner guest RAM into its buffer and back
 * out over other RAM, at the inner guest's physical addresses, through the test guest's IOMMU. Before
 * QEMU, the test support's vfio-user client does the same with a memfd of its own
 * (test/vm/guest/vfio-user-dma-probe.ts), so a failure says which side it is on.
 * A nested TCG boot takes minutes: one boot, one inner run, several assertions on its record.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Guest, STANDARD_DEVICES, announceSkip, ensureGuestAssets, qemuAvailable } from './harness/index.js';
import { cacheDir, repoRoot } from './harness/cache.js';
import { encodeCpio, type CpioEntry } from './harness/cpio.js';
import { packageKey } from './harness/debian-packages.js';
import { moduleClosure } from './harness/kernel-modules.js';
import { VFIO_USER_QEMU_BUILD_TIMEOUT_MS, vfioUserQemu, type VfioUserQemu } from './harness/vfio-user-qemu.js';

const hasAddon = existsSync(new URL('../../../build/Release/xpci_native.node', import.meta.url));
const unavailable = (await qemuAvailable()) ?? (hasAddon ? null : 'the native addon is not built (npm run build:native)');
const qemu = unavailable === null ? vfioUserQemu() : { skip: unavailable };
const skip = 'skip' in qemu ? announceSkip('vfio-user nested', qemu.skip) : false;

const { edu } = STANDARD_DEVICES;
const VFIO_USER_DIR = '/run/xpci/vfio-user';
const INNER_SLOT = '0000:00:13.0';
const INNER_MEMORY_MIB = 128;
const INNER_RUN_TIMEOUT_MS = 600_000;
const INNER_TRACES = ['vfio_region_mmap', 'vfio_user_region_rw', 'vfio_user_set_irqs', 'vfio_intx_interrupt', 'vfio_pci_intx_eoi'];

/** The inner guest's initramfs: busybox, its init and uio_pci_generic's module closure (with its modules.dep). */
async function innerInitramfs(): Promise<Buffer> {
  const assets = await ensureGuestAssets();
  const release = `lib/modules/${assets.kernelRelease}`;
  const modulesDir = join(dirname(assets.vmlinux), release);
  const modules = moduleClosure(modulesDir, ['uio_pci_generic']);
  const dirs = new Set(['bin', 'dev', 'proc', 'sys', 'lib', 'lib/modules', release]);
  for (const path of modules) {
    for (let dir = dirname(path); dir !== '.'; dir = dirname(dir)) dirs.add(`${release}/${dir}`);
  }
  const depends = readFileSync(join(modulesDir, 'modules.dep'), 'utf8').split('\n').filter((line) => modules.includes(line.split(':')[0]));
  const entries: CpioEntry[] = [
    ...[...dirs].sort().map((path): CpioEntry => ({ path, kind: 'dir', mode: 0o755 })),
    { path: 'dev/console', kind: 'chardev', mode: 0o600, major: 5, minor: 1 },
    { path: 'bin/busybox', kind: 'file', mode: 0o755, data: readFileSync(join(cacheDir(), packageKey(assets.busyboxPackage), 'busybox')) },
    { path: 'bin/sh', kind: 'symlink', target: 'busybox' },
    { path: 'init', kind: 'file', mode: 0o755, data: readFileSync(join(repoRoot(), 'test', 'vm', 'guest', 'nested-edu-init.sh')) },
    ...modules.map((path): CpioEntry => ({ path: `${release}/${path}`, kind: 'file', mode: 0o644, data: readFileSync(join(modulesDir, path)) })),
    { path: `${release}/modules.dep`, kind: 'file', mode: 0o644, data: Buffer.from(depends.join('\n') + '\n') },
  ];
  return encodeCpio(entries);
}

const shellQuote = (text: string): string => `'${text.replace(/'/g, `'\\''`)}'`;

describe('vfio-user nested: a QEMU inside the test guest runs a guest on the real edu, exported by xpci', { skip, timeout: VFIO_USER_QEMU_BUILD_TIMEOUT_MS }, () => {
  let work: string;
  let vm: Guest;
  /** "INNER key value…" lines of the inner guest's console, by key */
  const inner = new Map<string, string>();
  let trace = '';
  let outerQemuStderr = '';
  let clientDma: { copied?: string; error?: string } = {};
  const file = (name: string): string => (existsSync(join(work, name)) ? readFileSync(join(work, name), 'utf8') : '');
  /** What went on, for a failing assertion's message. */
  const record = (): string => ['inner-console.log', 'inner-qemu.out', 'export.err', 'dmesg.out'].map((name) => `--- ${name}:\n${file(name).slice(-4000)}`).join('\n') +
    `\n--- test guest's QEMU:\n${outerQemuStderr}`;

  before(async () => {
    const { binary, firmwareArgs } = qemu as VfioUserQemu;
    const assets = await ensureGuestAssets();
    work = mkdtempSync(join(tmpdir(), 'xpci-vfio-user-nested-'));
    writeFileSync(join(work, 'inner.cpio'), await innerInitramfs());
    // The guest sees the host's / except /tmp (a tmpfs of its own): caches kept there are shared in.
    const hiddenInGuest = [dirname(assets.vmlinux), dirname(dirname(binary))].filter((dir) => dir.startsWith('/tmp/'));
    vm = await Guest.boot({ iommu: true, modules: ['vfio_pci', 'vfio_iommu_type1'], memoryMiB: 1536, shares: [work, ...hiddenInGuest], timeoutMs: 180_000 });

    await vm.execOk(`node dist/src/cli/main.js assignable-add ${edu}`, { timeoutMs: 180_000 });
    // The backend outlives this exec (its output in the shared folder); the host waits for its ready line.
    const exportCommand = `node dist/src/cli/main.js export --json --vfio-user ${VFIO_USER_DIR} ${edu}`;
    await vm.execOk(`setsid bash -c ${shellQuote(`DEBUG=xpci:vfio-user ${exportCommand} < /dev/null > ${work}/export.out 2> ${work}/export.err; echo $? > ${work}/export.status`)} < /dev/null > /dev/null 2>&1 &`);
    let ready: { vfioUser?: string[] } | null = null;
    for (let waited = 0; ready === null && waited < 240; waited++) {
      const line = file('export.out').split('\n')[0];
      if (line.startsWith('{')) ready = JSON.parse(line);
      else if (file('export.status') !== '') break;
      else await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    assert.ok(ready?.vfioUser?.length === 1, `xpci export did not become ready:\n${file('export.err')}`);

    // First the test support's vfio-user client (no QEMU): a memfd mapped at a file offset, as QEMU maps RAM.
    const probe = await vm.exec(`node dist/test/vm/guest/vfio-user-dma-probe.js ${ready!.vfioUser![0]}`, { timeoutMs: 180_000 });
    clientDma = JSON.parse(probe.stdout.trim().split('\n').pop() || '{}');

    const device = JSON.stringify({ driver: 'vfio-user-pci', socket: { path: ready!.vfioUser![0], type: 'unix' }, addr: '0x13' });
    const innerQemu = [
      binary, ...firmwareArgs,
      '-machine', 'q35', '-accel', 'tcg,tb-size=64', '-cpu', 'max', '-smp', '1', '-m', String(INNER_MEMORY_MIB),
      '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
      // shareable RAM: QEMU sends it with DMA_MAP as fds, which xpci maps into edu's IOMMU domain
      '-object', `memory-backend-memfd,id=mem,size=${INNER_MEMORY_MIB}M,share=on`, '-machine', 'memory-backend=mem',
      '-kernel', assets.vmlinux, '-initrd', `${work}/inner.cpio`,
      '-append', 'console=ttyS0 quiet loglevel=3 panic=-1 tsc=reliable no_timer_check cryptomgr.notests mitigations=off',
      '-serial', `file:${work}/inner-console.log`,
      '-device', device,
      '-D', `${work}/inner-trace.log`, ...INNER_TRACES.flatMap((event) => ['-trace', event]),
    ].map(shellQuote).join(' ');
    await vm.exec(`${innerQemu} < /dev/null > ${work}/inner-qemu.out 2>&1; (setpci -s ${edu.slice(5)} COMMAND; dmesg | grep -i -E 'dmar|vfio' | tail -n 20) > ${work}/dmesg.out`, { timeoutMs: INNER_RUN_TIMEOUT_MS });
    outerQemuStderr = vm.qemuStderrTail;
    for (const line of file('inner-console.log').split('\n')) {
      const match = /^INNER (\S+) ?(.*?)\r?$/.exec(line);
      if (match) inner.set(match[1], match[2]);
    }
    trace = file('inner-trace.log');
  });

  after(async () => {
    if (process.env.DEBUG && work) console.error(record());
    await vm?.shutdown();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("the inner guest's kernel enumerates edu on the vfio-user-pci slot", () => {
    assert.equal(inner.get('end'), '', `the inner guest did not run its checks to the end:\n${record()}`);
    assert.equal(inner.get('enumerated'), `${INNER_SLOT} 0x00ff00`);
  });

  test('a factorial on the real edu through BAR0 as QEMU mapped it (no access of it proxied)', () => {
    assert.equal(Number(inner.get('ident')), 0x010000ed);
    assert.equal(Number(inner.get('factorial5')), 120, record());
    assert.match(trace, /vfio_region_mmap Region .*BAR 0/);
    assert.doesNotMatch(trace, /vfio_user_region_rw region 0 offset 0x8 /, 'the factorial register was reached over the socket');
  });

  test("a vfio-user client's memfd, mapped with DMA_MAP at a file offset, is where edu's DMA goes (the test support's client)", () => {
    assert.equal(clientDma.error, undefined, clientDma.error);
    assert.equal(clientDma.copied, 'XPCI_DMA_SOURCE=0123456789abcdef');
  });

  test("edu's DMA reaches the inner guest's RAM through the IOMMU (its RAM mapped by xpci from the DMA_MAP fds)", () => {
    assert.equal(inner.get('bus-master'), '4', 'bus master on through the policy');
    // 16 bytes of XPCI_DMA_SOURCE=0123456789abcdef over XPCI_DMA_TARGET=................ (from `window`)
    const window = Number(inner.get('dma-window')?.split(' ')[0]);
    const expected = window === 0 ? 'XPCI_DMA_SOURCE=................' : 'XPCI_DMA_TARGET=0123456789abcdef';
    assert.equal(inner.get('dma'), expected, `16 bytes RAM -> edu -> RAM:\n${record()}`);
  });

  test("with uio_pci_generic bound, an interrupt raised through edu's 0x60 register is counted by /dev/uio0", () => {
    assert.equal(inner.get('driver'), 'uio_pci_generic', record());
    assert.ok(Number(inner.get('uio-count')) >= 1, `uio-count: ${inner.get('uio-count')}`);
    assert.match(trace, /vfio_intx_interrupt/);
  });
});
