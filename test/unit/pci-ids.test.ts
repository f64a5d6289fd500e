import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { classText, PciIds, progIfText, subsystemText, vendorDeviceText } from '../../src/pci/pci-ids.js';
import { describeDevice } from '../../src/pci/lspci-device-line.js';
import { listDevices } from '../../src/host/sysfs/discovery.js';

const IDS = [
  '#\tList of PCI IDs (test)',
  '',
  '1af4  Red Hat, Inc.',
  '\t1041  Virtio 1.0 network device',
  '\t\t1af4 1100  QEMU Virtual Machine',
  '\t1045  Virtio 1.0 memory balloon',
  '# a comment inside a block',
  '8086  Intel Corporation',
  '\t100e  82540EM Gigabit Ethernet Controller ',
  '\t\t1028 0002  PowerEdge 2550',
  'abcd  Vendor With\tTabs',
  'C 01  Mass storage controller',
  '\t01  IDE interface',
  '\t\t8a  ISA Compatibility mode controller, supports both channels switched to PCI native mode, supports bus mastering',
  '\t06  SATA controller',
  '\t\t01  AHCI 1.0',
  'C 02  Network controller',
  '\t00  Ethernet controller',
  'C 06  Bridge',
  '\t00  Host bridge',
  'C ff  Unassigned class',
  'S 8086',
  '\t5678  Generic Intel subsystem',
  'X 12  Unknown future block',
  '\t34  skipped',
  '',
].join('\n');

const dir = mkdtempSync(join(tmpdir(), 'xpci-ids-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const plain = join(dir, 'pci.ids');
writeFileSync(plain, IDS);
const gz = join(dir, 'compressed.ids.gz');
writeFileSync(gz, gzipSync(IDS));

describe('PciIds lookups', () => {
  const ids = new PciIds(plain);
  test('vendors, devices, subsystems, classes', () => {
    assert.equal(ids.source, plain);
    assert.equal(ids.vendor(0x1af4), 'Red Hat, Inc.');
    assert.equal(ids.device(0x1af4, 0x1041), 'Virtio 1.0 network device');
    assert.equal(ids.device(0x8086, 0x100e), '82540EM Gigabit Ethernet Controller', 'one trailing blank is dropped');
    assert.equal(ids.vendor(0xabcd), 'Vendor With\tTabs');
    assert.equal(ids.device(0x1af4, 0x1042), undefined);
    assert.equal(ids.vendor(0x1234), undefined);
    assert.equal(ids.subsystem(0x1af4, 0x1041, 0x1af4, 0x1100), 'QEMU Virtual Machine');
    assert.equal(ids.subsystem(0x1af4, 0x1045, 0x1af4, 0x1045), 'Virtio 1.0 memory balloon', 'subsystem = device falls back to the device name');
    assert.equal(ids.subsystem(0x1af4, 0x1041, 0x8086, 0x5678), 'Generic Intel subsystem', 'generic S block');
    assert.equal(ids.subsystem(0x1af4, 0x1041, 0x8086, 0x9999), undefined);
    assert.equal(ids.baseClass(0x02), 'Network controller');
    assert.equal(ids.subclass(0x01, 0x06), 'SATA controller');
    assert.equal(ids.progIf(0x01, 0x06, 0x01), 'AHCI 1.0');
    assert.equal(ids.subclass(0x12, 0x34), undefined, 'unknown top-level blocks are skipped');
  });

  test('gzip files, and .gz names falling back to the plain name like libpci', () => {
    assert.equal(new PciIds(gz).vendor(0x1af4), 'Red Hat, Inc.');
    const fallback = new PciIds(`${plain}.gz`);
    assert.equal(fallback.vendor(0x8086), 'Intel Corporation');
    assert.equal(fallback.source, plain);
  });

  test('a missing file gives no names and hex fallbacks', () => {
    const none = new PciIds(join(dir, 'absent'));
    assert.equal(none.source, null);
    assert.equal(none.vendor(0x8086), undefined);
    assert.equal(vendorDeviceText(none, 0x8086, 0x0d57, 'names'), 'Device 8086:0d57');
    assert.equal(classText(none, 0x0600, 'names'), 'Class 0600');
  });
});

describe('pci_lookup_name formatting', () => {
  const ids = new PciIds(plain);
  test('vendor/device pairs in the three modes', () => {
    assert.equal(vendorDeviceText(ids, 0x1af4, 0x1041, 'names'), 'Red Hat, Inc. Virtio 1.0 network device');
    assert.equal(vendorDeviceText(ids, 0x1af4, 0x1041, 'mixed'), 'Red Hat, Inc. Virtio 1.0 network device [1af4:1041]');
    assert.equal(vendorDeviceText(ids, 0x1af4, 0x1041, 'numeric'), '1af4:1041');
    assert.equal(vendorDeviceText(ids, 0x8086, 0x0d57, 'names'), 'Intel Corporation Device 0d57');
    assert.equal(vendorDeviceText(ids, 0x8086, 0x0d57, 'mixed'), 'Intel Corporation Device [8086:0d57]');
    assert.equal(vendorDeviceText(ids, 0x1234, 0x5678, 'names'), 'Device 1234:5678');
    assert.equal(vendorDeviceText(ids, 0x1234, 0x5678, 'mixed'), 'Device [1234:5678]');
  });

  test('classes: subclass name, base class only with the number, unknown', () => {
    assert.equal(classText(ids, 0x0200, 'names'), 'Ethernet controller');
    assert.equal(classText(ids, 0x0200, 'mixed'), 'Ethernet controller [0200]');
    assert.equal(classText(ids, 0x0200, 'numeric'), '0200');
    assert.equal(classText(ids, 0xffff, 'names'), 'Unassigned class [ffff]');
    assert.equal(classText(ids, 0x0280, 'names'), 'Network controller [0280]');
    assert.equal(classText(ids, 0x0280, 'numeric'), '0280');
    assert.equal(classText(ids, 0x4200, 'names'), 'Class 4200');
    assert.equal(classText(ids, 0x4200, 'mixed'), 'Class [4200]');
  });

  test('subsystems and prog-if', () => {
    assert.equal(subsystemText(ids, 0x1af4, 0x1041, 0x1af4, 0x1100, 'names'), 'Red Hat, Inc. QEMU Virtual Machine');
    assert.equal(subsystemText(ids, 0x1af4, 0x1041, 0x1af4, 0x1234, 'names'), 'Red Hat, Inc. Device 1234');
    assert.equal(subsystemText(ids, 0x1af4, 0x1041, 0x4444, 0x1234, 'mixed'), 'Device [4444:1234]');
    assert.equal(progIfText(ids, 0x0106, 0x01), 'AHCI 1.0');
    assert.equal(progIfText(ids, 0x0106, 0x02), null);
    assert.equal(progIfText(ids, 0x0101, 0x8a), 'ISA Compatibility mode controller, supports both channels switched to PCI native mode, supports bus mastering');
    assert.equal(progIfText(ids, 0x0101, 0x85), 'Master PriP PriO', 'IDE bits when the file has no entry');
    assert.equal(progIfText(ids, 0x0101, 0x00), null);
  });
});

describe("names match lspci for this machine's devices (read-only)", () => {
  const haveLspci = spawnSync('lspci', ['--version']).status === 0 && existsSync('/sys/bus/pci/devices');
  const systemIds = ['/usr/share/misc/pci.ids', '/usr/share/hwdata/pci.ids', '/usr/share/pci.ids'].find((p) => existsSync(p));
  test('default, -n, -nn with the system file, /dev/null and a private file', { skip: haveLspci ? false : 'lspci or /sys/bus/pci not available' }, () => {
    const devices = listDevices('/sys');
    const files: (string | undefined)[] = [undefined, '/dev/null', plain, ...(systemIds ? [systemIds] : [])];
    for (const file of files) {
      const ids = new PciIds(file);
      for (const [flag, names] of [[[], 'names'], [['-n'], 'numeric'], [['-nn'], 'mixed']] as const) {
        const args = ['-D', ...flag, ...(file ? ['-i', file] : [])];
        const expected = spawnSync('lspci', args, { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
        const mine = devices.map((d) => describeDevice(d, { ids, names, domains: true }));
        assert.deepEqual(mine, expected, `lspci ${args.join(' ')}`);
      }
    }
  });
});
