import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { formatAddress, packAddress, parseAddress, type PciAddress } from '../../src/pci/address.js';
import { DeviceTable, PlacementError, VPCI_SLOTS, type TableEntry } from '../../src/backend/server/device-table.js';
import { announcementOrder } from '../../src/backend/server/export-reconciler.js';

const a = parseAddress;

function exportAll(table: DeviceTable<string>, bdfs: string[]): Map<string, string> {
  const placed = new Map<string, string>();
  for (const bdf of bdfs) {
    const guest = table.place(a(bdf));
    table.insert(a(bdf), guest, bdf);
    placed.set(bdf, formatAddress(guest));
  }
  return placed;
}

describe('vPCI numbering (pciback rules)', () => {
  test('devices take slots in export order; functions keep their number', () => {
    const table = new DeviceTable<string>('vpci');
    const placed = exportAll(table, ['03:05.0', '02:1a.1']);
    assert.equal(placed.get('03:05.0'), '0000:00:00.0');
    assert.equal(placed.get('02:1a.1'), '0000:00:01.1');
  });

  test('functions of one physical slot share one virtual slot, whatever the export order', () => {
    const table = new DeviceTable<string>('vpci');
    const placed = exportAll(table, ['00:05.1', '00:07.0', '00:05.0', '00:05.3']);
    assert.equal(placed.get('00:05.1'), '0000:00:00.1');
    assert.equal(placed.get('00:07.0'), '0000:00:01.0');
    assert.equal(placed.get('00:05.0'), '0000:00:00.0');
    assert.equal(placed.get('00:05.3'), '0000:00:00.3');
  });

  test('an SR-IOV VF at function 0 gets a slot of its own, and no slot-mate joins it', () => {
    const table = new DeviceTable<string>('vpci');
    const place = (bdf: string, virtualFunction: boolean): string => {
      const guest = table.place(a(bdf), { virtualFunction });
      table.insert(a(bdf), guest, bdf, { virtualFunction });
      return formatAddress(guest);
    };
    assert.equal(place('07:10.0', true), '0000:00:00.0');
    // VFs 07:10.1 and 07:10.2 share a physical slot with the VF at function 0 but are not its functions.
    assert.equal(place('07:10.1', true), '0000:00:01.1');
    assert.equal(place('07:10.2', true), '0000:00:01.2');
    // A VF that is not at function 0 follows the ordinary rule: it joins its exported slot-mate.
    assert.equal(place('08:00.3', true), '0000:00:02.3');
    assert.equal(place('08:00.4', true), '0000:00:02.4');
    // Without the VF fact, the same function 0 would have pulled its slot-mates in.
    const plain = new DeviceTable<string>('vpci');
    assert.deepEqual([...exportAll(plain, ['07:10.0', '07:10.1']).values()], ['0000:00:00.0', '0000:00:00.1']);
  });

  test('a lone function 2 becomes 00:00.2 (no function 0 exists)', () => {
    const table = new DeviceTable<string>('vpci');
    assert.equal(exportAll(table, ['06:01.2']).get('06:01.2'), '0000:00:00.2');
  });

  test('the 33rd slot is refused with an error naming that device; the others stay', () => {
    const table = new DeviceTable<string>('vpci');
    const bdfs = Array.from({ length: VPCI_SLOTS }, (_, i) => `01:${i.toString(16).padStart(2, '0')}.0`);
    exportAll(table, bdfs);
    assert.throws(() => table.place(a('02:00.0')), (e: unknown) => e instanceof PlacementError && /0000:02:00\.0/.test(e.message) && /full/.test(e.message));
    // A sibling of an exported slot still fits: it joins its slot.
    assert.equal(formatAddress(table.place(a('01:1f.4'))), '0000:00:1f.4');
    assert.equal(table.size, VPCI_SLOTS);
  });

  test('a freed slot is reused and the other devices keep their addresses', () => {
    const table = new DeviceTable<string>('vpci');
    exportAll(table, ['00:03.0', '00:04.0', '00:05.0']);
    table.remove(a('00:04.0'));
    assert.equal(table.lookup(packAddress(a('00:04.0'))), undefined);
    assert.equal(formatAddress(table.place(a('00:09.0'))), '0000:00:01.0');
    assert.equal(table.lookup(packAddress(a('00:02.0'))), '00:05.0');
    assert.equal(table.lookup(packAddress(a('00:00.0'))), '00:03.0');
  });

  test('published entries and lookups come from the same table', () => {
    const table = new DeviceTable<string>('vpci');
    exportAll(table, ['00:05.1', '00:06.0', '00:05.0']);
    for (const entry of table.entries()) assert.equal(table.lookup(packAddress(entry.guest)), entry.device);
    assert.deepEqual(table.entries().map((e) => formatAddress(e.guest)), ['0000:00:00.0', '0000:00:00.1', '0000:00:01.0']);
    assert.deepEqual(table.roots(), ['0000:00']);
    // A host address is not an address the frontend can use in vPCI mode.
    assert.equal(table.lookup(packAddress(a('00:06.0'))), undefined);
  });

  test('the same host function cannot be placed twice', () => {
    const table = new DeviceTable<string>('vpci');
    exportAll(table, ['00:05.0']);
    assert.throws(() => table.place(a('00:05.0')), /already exported/);
  });

  test('insert refuses an address other than the one placement chose', () => {
    const table = new DeviceTable<string>('vpci');
    assert.throws(() => table.insert(a('00:05.0'), a('00:03.0'), 'x'), /must be placed at 0000:00:00\.0/);
  });
});

describe('passthrough', () => {
  test('addresses are unchanged and roots are each device\'s domain:bus, deduplicated and sorted', () => {
    const table = new DeviceTable<string>('passthrough');
    const placed = exportAll(table, ['0001:06:01.0', '00:1f.3', '06:00.0', '00:02.0', '0001:06:01.1']);
    for (const [host, guest] of placed) assert.equal(guest, formatAddress(a(host)));
    assert.deepEqual(table.roots(), ['0000:00', '0000:06', '0001:06']);
    assert.equal(table.lookup(packAddress(a('06:00.0'))), '06:00.0');
  });

  test('no devices: no roots', () => {
    assert.deepEqual(new DeviceTable<string>('passthrough').roots(), []);
    assert.deepEqual(new DeviceTable<string>('vpci').roots(), ['0000:00']);
  });
});

test('announcement order: slots in order, function 0 last within each slot', () => {
  const entry = (guest: string): TableEntry<string> => ({ host: a(guest), guest: a(guest), device: guest, virtualFunction: false });
  const order = announcementOrder(['00:01.0', '00:00.0', '00:00.3', '00:01.2', '00:00.1'].map(entry)).map((e) => e.device);
  assert.deepEqual(order, ['00:00.3', '00:00.1', '00:00.0', '00:01.2', '00:01.0']);
});
