/**
 * BarAccess over the sysfs back end on a fixture tree: only existing BARs, only inside them, only
 * the widths their type supports; exact-width accesses land in (and come from) the resourceN files;
 * files are opened on first use and released when the host device closes.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseAddress } from '../../src/pci/address.js';
import { readDevice } from '../../src/host/sysfs/discovery.js';
import { ErrorCode, XpciError } from '../../src/protocol/ring/messages.js';
import { BarAccess } from '../../src/backend/bar-access.js';
import type { HostDevice } from '../../src/host/device-access.js';
import { sysfsMethod } from '../../src/host/sysfs/sysfs-device.js';
import { buildConfigImage, createFixtureTree, type FixtureBar, type FixtureTree } from '../support/fixture-sysfs.js';

const DEVICE = '0000:00:10.0';
const BARS: FixtureBar[] = [
  { index: 0, kind: 'mem', size: 0x1000, start: 0xfea0_0000 },
  { index: 2, kind: 'io', size: 0x10, start: 0xd000 },
  { index: 3, kind: 'mem', size: 0x4000, start: 0x1_0000_0000, is64: true, prefetchable: true },
];

/** BAR indices whose resource file this process has open or mapped. */
function heldBars(): number[] {
  const paths = readdirSync('/proc/self/fd').flatMap((fd) => {
    try { return [readlinkSync(`/proc/self/fd/${fd}`)]; } catch { return []; }
  });
  const text = `${paths.join('\n')}\n${readFileSync('/proc/self/maps', 'utf8')}`;
  return [...new Set([...text.matchAll(new RegExp(`${DEVICE.replace(/[.]/g, '\\.')}/resource(\\d)`, 'g'))].map((m) => Number(m[1])))].sort();
}

const rejects = (code: ErrorCode) => (error: unknown): boolean => error instanceof XpciError && error.code === code;

describe('BarAccess', () => {
  let tree: FixtureTree;
  let host: HostDevice;
  let access: BarAccess;
  const resource = (index: number): string => join(tree.deviceDir(DEVICE), `resource${index}`);
  const fileRead = (index: number, offset: number, length: number): Buffer => {
    const fd = openSync(resource(index), 'r');
    try {
      const buffer = Buffer.alloc(length);
      readSync(fd, buffer, 0, length, offset);
      return buffer;
    } finally {
      closeSync(fd);
    }
  };
  const fileWrite = (index: number, offset: number, bytes: Buffer): void => {
    const fd = openSync(resource(index), 'r+');
    try { writeSync(fd, bytes, 0, bytes.length, offset); } finally { closeSync(fd); }
  };

  before(() => {
    tree = createFixtureTree([{ address: DEVICE, config: buildConfigImage({ vendor: 0x1b36, device: 0x0005, classCode: 0x00ff00, bars: BARS }), bars: BARS }]);
    const info = readDevice(tree.root, parseAddress(DEVICE));
    host = sysfsMethod(tree.root).open(info, { writable: true });
    access = new BarAccess(host);
  });
  after(() => {
    host.close();
    tree.cleanup();
  });

  test('validation: existing BARs, widths by type, alignment, range', () => {
    assert.throws(() => access.validate(1, 0n, 4), rejects(ErrorCode.InvalidOffset), 'no BAR1');
    assert.throws(() => access.validate(4, 0n, 4), rejects(ErrorCode.InvalidOffset), 'upper half of 64-bit BAR3');
    assert.throws(() => access.validate(6, 0n, 4), rejects(ErrorCode.InvalidOffset), 'ROM is not a BAR op target');
    assert.throws(() => access.validate(2, 0n, 8), rejects(ErrorCode.InvalidSize), 'I/O has no 8-byte access');
    assert.throws(() => access.validate(0, 0n, 3), rejects(ErrorCode.InvalidSize));
    assert.throws(() => access.validate(0, 0n, 16), rejects(ErrorCode.InvalidSize));
    assert.throws(() => access.validate(0, 2n, 4), rejects(ErrorCode.Misaligned));
    assert.throws(() => access.validate(3, 4n, 8), rejects(ErrorCode.Misaligned));
    assert.throws(() => access.validate(0, 0x1000n, 1), rejects(ErrorCode.InvalidOffset), 'one past the end');
    assert.throws(() => access.validate(0, 0xffcn, 8), rejects(ErrorCode.Misaligned));
    assert.throws(() => access.validate(3, 0x4000n, 8), rejects(ErrorCode.InvalidOffset));
    assert.throws(() => access.validate(2, 0x10n, 1), rejects(ErrorCode.InvalidOffset));
    assert.throws(() => access.validate(0, -4n, 4), rejects(ErrorCode.InvalidOffset));
    assert.throws(() => access.validate(0, 1n << 64n, 4), rejects(ErrorCode.InvalidOffset));
    assert.deepEqual(access.validate(3, 0x3ff8n, 8).offset, 0x3ff8);
    assert.deepEqual(heldBars(), [], 'validation opens nothing');
  });

  test('memory BARs: 1, 2, 4 and 8-byte accesses land exactly in the resource file', () => {
    access.write(access.validate(3, 0x3ff8n, 8), 0x1122334455667788n);
    assert.equal(fileRead(3, 0x3ff8, 8).readBigUInt64LE(), 0x1122334455667788n);
    access.write(access.validate(0, 0x10n, 4), 0xa1b2c3d4n);
    access.write(access.validate(0, 0x14n, 2), 0xbeefn);
    access.write(access.validate(0, 0x17n, 1), 0x7fn);
    assert.deepEqual([...fileRead(0, 0x10, 8)], [0xd4, 0xc3, 0xb2, 0xa1, 0xef, 0xbe, 0x00, 0x7f]);
    fileWrite(0, 0x20, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]));
    assert.equal(access.read(access.validate(0, 0x20n, 8)), 0x0807060504030201n);
    assert.equal(access.read(access.validate(0, 0x24n, 4)), 0x08070605n);
    assert.equal(access.read(access.validate(0, 0x22n, 2)), 0x0403n);
    assert.equal(access.read(access.validate(0, 0x21n, 1)), 0x02n);
  });

  test('I/O BARs: 1, 2 and 4-byte pread/pwrite on the resource file', () => {
    access.write(access.validate(2, 0xcn, 4), 0xfeedfacen);
    access.write(access.validate(2, 0x2n, 2), 0x1234n);
    assert.equal(fileRead(2, 0xc, 4).readUInt32LE(), 0xfeedface);
    assert.equal(fileRead(2, 0x2, 2).readUInt16LE(), 0x1234);
    assert.equal(access.read(access.validate(2, 0xdn, 1)), 0xfan);
  });

  test('a memory BAR hands out a mappable fd; I/O BARs none', () => {
    const mappable = host.bar(3).mappable();
    assert.ok(mappable !== null);
    assert.match(readlinkSync(`/proc/self/fd/${mappable.fd}`), /0000:00:10\.0\/resource3$/);
    assert.deepEqual({ offset: mappable.offset, size: mappable.size }, { offset: 0n, size: 0x4000 });
    assert.equal(host.bar(2).mappable(), null);
    assert.throws(() => host.bar(1), /BAR 1 does not exist/);
  });

  test('files are opened on first use and released when the host device closes', () => {
    assert.deepEqual(heldBars(), [0, 2, 3], 'the BARs used above');
    host.close();
    assert.deepEqual(heldBars(), []);
    assert.throws(() => host.config.read(0, 4), { code: 'EBADF' });
    host.close();
  });

  test('a device opened read-only reaches no BAR', () => {
    const readOnly = sysfsMethod(tree.root).open(readDevice(tree.root, parseAddress(DEVICE)), { writable: false });
    try {
      assert.throws(() => readOnly.bar(0), /opened read-only/);
      assert.throws(() => readOnly.config.write(0x3c, 1, 5), { code: 'EBADF' });
      assert.deepEqual(heldBars(), []);
    } finally {
      readOnly.close();
    }
  });
});
