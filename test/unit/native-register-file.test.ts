import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native, type RegisterFile } from '../../src/native/binding.js';

const BYTES = Buffer.from([0x86, 0x80, 0x57, 0x0d, 0x07, 0x04, 0x10, 0x00, 0x11, 0x22, 0x33, 0x44, 0xaa, 0xbb, 0xcc, 0xdd]);

describe('native RegisterFile on temp files', () => {
  let dir: string;
  let counter = 0;
  const fixture = (bytes: Buffer = BYTES): string => {
    const path = join(dir, `config-${counter++}`);
    writeFileSync(path, bytes);
    return path;
  };
  const withFile = (bytes: Buffer, writable: boolean, body: (file: RegisterFile, path: string) => void): void => {
    const path = fixture(bytes);
    const file = native().openRegisterFile(path, writable);
    try {
      body(file, path);
    } finally {
      file.close();
    }
  };

  before(() => { dir = mkdtempSync(join(tmpdir(), 'xpci-native-rf-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('reads 1, 2 and 4 bytes little-endian at several offsets', () => {
    withFile(BYTES, false, (file) => {
      for (const offset of [0, 1, 3, 5, 8, 12]) {
        assert.equal(file.read(offset, 1), BYTES.readUInt8(offset), `byte at ${offset}`);
      }
      for (const offset of [0, 2, 3, 9, 14]) {
        assert.equal(file.read(offset, 2), BYTES.readUInt16LE(offset), `word at ${offset}`);
      }
      for (const offset of [0, 1, 4, 8, 12]) {
        assert.equal(file.read(offset, 4), BYTES.readUInt32LE(offset), `dword at ${offset}`);
      }
      assert.equal(file.read(0, 4), 0x0d578086);
      assert.equal(file.read(12, 4), 0xddccbbaa, 'unsigned, not a negative int32');
    });
  });

  test('exposes path, writable, closed and size', () => {
    withFile(BYTES, false, (file, path) => {
      assert.equal(file.path, path);
      assert.equal(file.writable, false);
      assert.equal(file.closed, false);
      assert.equal(file.size(), BYTES.length);
    });
    withFile(Buffer.alloc(4096), true, (file) => {
      assert.equal(file.writable, true);
      assert.equal(file.size(), 4096);
    });
  });

  test('readBlock returns the whole block, or what pread returned when short', () => {
    withFile(BYTES, false, (file) => {
      assert.deepEqual(file.readBlock(0, BYTES.length), BYTES);
      assert.deepEqual(file.readBlock(4, 4), BYTES.subarray(4, 8));
      assert.deepEqual(file.readBlock(10, 64), BYTES.subarray(10), 'short block: only the bytes that exist');
      assert.equal(file.readBlock(BYTES.length, 4).length, 0, 'at end of file');
      assert.equal(file.readBlock(0, 0).length, 0);
    });
  });

  test('writes 1, 2 and 4 bytes little-endian, visible in the file', () => {
    withFile(Buffer.alloc(16), true, (file, path) => {
      file.write(0, 4, 0x12345678);
      file.write(5, 1, 0xab);
      file.write(6, 2, 0xcdef);
      file.write(10, 2, 0xffff);
      file.write(12, 4, 0xffffffff);
      assert.deepEqual(readFileSync(path), Buffer.from([
        0x78, 0x56, 0x34, 0x12, 0x00, 0xab, 0xef, 0xcd, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      ]));
      assert.equal(file.read(6, 2), 0xcdef);
    });
  });

  test('a read-only handle refuses writes with EBADF and leaves the file alone', () => {
    withFile(BYTES, false, (file, path) => {
      assert.throws(() => file.write(0, 1, 0), { code: 'EBADF', syscall: 'pwrite', path });
      assert.deepEqual(readFileSync(path), BYTES);
    });
  });

  test('argument checks: EINVAL for bad types and widths, ERANGE for out-of-range numbers', () => {
    withFile(BYTES, true, (file, path) => {
      assert.throws(() => file.read(-1, 1), { code: 'ERANGE', errno: 34, syscall: 'pread', path });
      assert.throws(() => file.read(2 ** 53, 1), { code: 'ERANGE' });
      assert.throws(() => file.read(1.5, 1), { code: 'EINVAL' });
      assert.throws(() => file.read(Number.NaN, 1), { code: 'EINVAL' });
      assert.throws(() => file.read('0' as unknown as number, 1), { code: 'EINVAL', message: /offset must be a number/ });
      assert.throws(() => file.read(0, 3 as 1), { code: 'EINVAL', errno: 22, message: /width must be 1, 2 or 4 \(got 3\)/ });
      assert.throws(() => file.read(0, 8 as 1), { code: 'EINVAL' });
      assert.throws(() => file.write(0, 1, 0x100), { code: 'ERANGE', syscall: 'pwrite', message: /value must be in \[0, 255\]/ });
      assert.throws(() => file.write(0, 2, 0x10000), { code: 'ERANGE' });
      assert.throws(() => file.write(0, 4, 2 ** 32), { code: 'ERANGE' });
      assert.throws(() => file.write(0, 4, -1), { code: 'ERANGE' });
      assert.throws(() => file.write(0, 4, 0.5), { code: 'EINVAL' });
      assert.throws(() => file.write(-4, 4, 0), { code: 'ERANGE' });
      assert.throws(() => file.readBlock(0, 2 ** 20 + 1), { code: 'ERANGE', message: /length/ });
      assert.throws(() => file.readBlock(0, -1), { code: 'ERANGE' });
      assert.deepEqual(readFileSync(path), BYTES, 'no rejected write touched the file');
    });
    assert.throws(() => native().openRegisterFile(42 as unknown as string, false), { code: 'EINVAL', syscall: 'open' });
    assert.throws(() => native().openRegisterFile('a\0b', false), { code: 'EINVAL', syscall: 'open' });
    assert.throws(() => native().openRegisterFile(fixture(), 'yes' as unknown as boolean), { code: 'EINVAL' });
  });

  test('a read past the end throws ESHORT with bytesRead, never padding', () => {
    withFile(Buffer.from([1, 2, 3]), false, (file, path) => {
      assert.equal(file.read(1, 2), 0x0302);
      assert.throws(() => file.read(0, 4), { code: 'ESHORT', errno: 0, syscall: 'pread', path, bytesRead: 3 });
      assert.throws(() => file.read(2, 2), { code: 'ESHORT', bytesRead: 1 });
      assert.throws(() => file.read(3, 1), { code: 'ESHORT', bytesRead: 0 });
      assert.throws(() => file.read(100, 4), { code: 'ESHORT', bytesRead: 0 });
    });
  });

  test('open errors carry the errno name, syscall and path', () => {
    const missing = join(dir, 'missing');
    assert.throws(() => native().openRegisterFile(missing, false), (error: Error) => {
      assert.equal(error.message, `open ${missing}: No such file or directory`);
      assert.deepEqual({ ...error }, { code: 'ENOENT', errno: 2, syscall: 'open', path: missing });
      return true;
    });
    assert.throws(() => native().openRegisterFile(dir, true), { code: 'EISDIR', syscall: 'open', path: dir });
  });

  test('close is idempotent and a closed handle throws EBADF', () => {
    const path = fixture();
    const file = native().openRegisterFile(path, true);
    file.close();
    assert.equal(file.closed, true);
    file.close();
    assert.equal(file.closed, true);
    assert.throws(() => file.read(0, 1), { code: 'EBADF', syscall: 'pread', path, message: /closed/ });
    assert.throws(() => file.readBlock(0, 1), { code: 'EBADF' });
    assert.throws(() => file.write(0, 1, 0), { code: 'EBADF' });
    assert.throws(() => file.size(), { code: 'EBADF', syscall: 'fstat' });
    assert.equal(file.path, path, 'accessors still answer');
  });

  test('close really releases the descriptor', () => {
    const path = fixture();
    const before = openDescriptorsOf(path);
    const file = native().openRegisterFile(path, false);
    assert.equal(openDescriptorsOf(path), before + 1);
    file.close();
    assert.equal(openDescriptorsOf(path), before);
  });
});

/** How many fds of this process point at `path` (Linux /proc). */
function openDescriptorsOf(path: string): number {
  let count = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === path) count++;
    } catch { /* the fd readdir used is already closed */ }
  }
  return count;
}

