import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, truncateSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { native } from '../../src/native/binding.js';
import { buildConfigImage, createFixtureTree } from '../support/fixture-sysfs.js';

describe('native MemoryMapping on temp files', () => {
  let dir: string;
  let counter = 0;
  const bar = (length: number, fill?: (bytes: Buffer) => void): string => {
    const path = join(dir, `resource${counter++}`);
    const bytes = Buffer.alloc(length);
    fill?.(bytes);
    writeFileSync(path, bytes);
    return path;
  };
  /** A sparse file: no blocks allocated, reads as zeros. */
  const sparseBar = (length: number): string => {
    const path = join(dir, `resource${counter++}`);
    writeFileSync(path, '');
    truncateSync(path, length);
    return path;
  };

  before(() => { dir = mkdtempSync(join(tmpdir(), 'xpci-native-mm-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('maps the whole file by default and reports its shape', () => {
    const path = bar(4096);
    const mapping = native().mapResource(path, false);
    assert.equal(mapping.path, path);
    assert.equal(mapping.length, 4096);
    assert.equal(mapping.writable, false);
    assert.equal(mapping.mapped, true);
    mapping.unmap();
    const part = native().mapResource(path, true, 100);
    assert.equal(part.length, 100);
    assert.equal(part.writable, true);
    assert.throws(() => part.read(100, 1), { code: 'ERANGE' }, 'an explicit length bounds the accesses');
    part.unmap();
  });

  test('reads 1, 2, 4 and 8 bytes little-endian at several offsets', () => {
    const path = bar(4096, (bytes) => { for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + 3) & 0xff; });
    const bytes = readFileSync(path);
    const mapping = native().mapResource(path, false);
    for (const offset of [0, 1, 7, 2048, 4095]) assert.equal(mapping.read(offset, 1), bytes.readUInt8(offset));
    for (const offset of [0, 2, 6, 1000, 4094]) assert.equal(mapping.read(offset, 2), bytes.readUInt16LE(offset));
    for (const offset of [0, 4, 12, 2048, 4092]) assert.equal(mapping.read(offset, 4), bytes.readUInt32LE(offset));
    for (const offset of [0, 8, 64, 2048, 4088]) assert.equal(mapping.read64(offset), bytes.readBigUInt64LE(offset));
    mapping.unmap();
  });

  test('writes 1, 2, 4 and 8 bytes, visible through the file (MAP_SHARED)', () => {
    for (const [length, makeBar] of [[4096, bar], [1 << 20, sparseBar]] as const) {
      const path = makeBar(length);
      const mapping = native().mapResource(path, true);
      const expected = Buffer.alloc(length);
      const writes: Array<[number, 1 | 2 | 4 | 8, number | bigint]> = [
        [0, 1, 0xa5], [1, 1, 0xff], [2, 2, 0xbeef], [4, 4, 0xdeadbeef], [8, 8, 0x0123456789abcdefn],
        [length / 2, 4, 0xffffffff], [length - 16, 8, 0xffffffffffffffffn], [length - 8, 4, 0x11223344],
        [length - 2, 2, 0x5566], [length - 1, 1, 0x77],
      ];
      for (const [offset, width, value] of writes) {
        if (width === 8) {
          mapping.write64(offset, value as bigint);
          expected.writeBigUInt64LE(value as bigint, offset);
        } else {
          mapping.write(offset, width, value as number);
          expected.writeUIntLE(value as number, offset, width);
        }
      }
      assert.deepEqual(readFileSync(path), expected, `file of ${length} bytes`);
      // and back through the mapping
      assert.equal(mapping.read(4, 4), 0xdeadbeef);
      assert.equal(mapping.read64(length - 16), 0xffffffffffffffffn);
      mapping.unmap();
    }
  });

  test('file writes show through an existing mapping', () => {
    const path = bar(4096);
    const mapping = native().mapResource(path, false);
    const fd = openSync(path, 'r+');
    try {
      writeFileSync(fd, Buffer.from([0x10, 0x20, 0x30, 0x40]));
    } finally {
      closeSync(fd);
    }
    assert.equal(mapping.read(0, 4), 0x40302010);
    mapping.unmap();
  });

  test('bounds: the last in-range access works, one byte further is ERANGE', () => {
    const path = bar(4096);
    const mapping = native().mapResource(path, true);
    for (const width of [1, 2, 4] as const) {
      assert.equal(mapping.read(4096 - width, width), 0);
      mapping.write(4096 - width, width, 0);
      assert.throws(() => mapping.read(4096 - width + 1, width), { code: 'ERANGE', syscall: 'load', path });
      assert.throws(() => mapping.write(4096 - width + 1, width, 0), { code: 'ERANGE', syscall: 'store', path });
    }
    assert.equal(mapping.read64(4088), 0n);
    assert.throws(() => mapping.read64(4089), { code: 'ERANGE' });
    assert.throws(() => mapping.write64(4089, 0n), { code: 'ERANGE' });
    assert.throws(() => mapping.read(1 << 30, 4), { code: 'ERANGE' });
    assert.throws(() => mapping.read(-4, 4), { code: 'ERANGE' });
    assert.throws(() => mapping.read64(2 ** 53), { code: 'ERANGE' });
    mapping.unmap();

    const tiny = native().mapResource(bar(4096), false, 3);
    assert.throws(() => tiny.read(0, 4), { code: 'ERANGE' }, 'wider than the whole mapping');
    assert.equal(tiny.read(2, 1), 0);
    tiny.unmap();
  });

  test('misaligned offsets are EINVAL and never touch memory', () => {
    const path = bar(4096);
    const mapping = native().mapResource(path, true);
    assert.throws(() => mapping.read(1, 2), { code: 'EINVAL', syscall: 'load', message: /not aligned to width 2/ });
    assert.throws(() => mapping.read(2, 4), { code: 'EINVAL' });
    assert.throws(() => mapping.read(6, 4), { code: 'EINVAL' });
    assert.throws(() => mapping.read64(4), { code: 'EINVAL' });
    assert.throws(() => mapping.write(3, 2, 1), { code: 'EINVAL', syscall: 'store' });
    assert.throws(() => mapping.write(2, 4, 1), { code: 'EINVAL' });
    assert.throws(() => mapping.write64(12, 1n), { code: 'EINVAL' });
    assert.deepEqual(readFileSync(path), Buffer.alloc(4096));
    mapping.unmap();
  });

  test('argument checks on accesses', () => {
    const path = bar(4096);
    const mapping = native().mapResource(path, true);
    assert.throws(() => mapping.read(0, 8 as 4), { code: 'EINVAL', message: /width must be 1, 2 or 4/ });
    assert.throws(() => mapping.read(0, 3 as 4), { code: 'EINVAL' });
    assert.throws(() => mapping.read(0.5, 1), { code: 'EINVAL' });
    assert.throws(() => mapping.write(0, 1, 256), { code: 'ERANGE', message: /value must be in \[0, 255\]/ });
    assert.throws(() => mapping.write(0, 2, 65536), { code: 'ERANGE' });
    assert.throws(() => mapping.write(0, 4, 2 ** 32), { code: 'ERANGE' });
    assert.throws(() => mapping.write(0, 4, -1), { code: 'ERANGE' });
    assert.throws(() => mapping.write64(0, -1n), { code: 'ERANGE' });
    assert.throws(() => mapping.write64(0, 1n << 64n), { code: 'ERANGE' });
    assert.throws(() => mapping.write64(0, 1 as unknown as bigint), { code: 'EINVAL', message: /value must be a bigint/ });
    assert.deepEqual(readFileSync(path), Buffer.alloc(4096));
    mapping.unmap();
  });

  test('mapResource rejects length 0, length > file size and an empty file with EINVAL', () => {
    const path = bar(4096);
    assert.throws(() => native().mapResource(path, false, 4097), { code: 'EINVAL', syscall: 'mmap', path });
    assert.throws(() => native().mapResource(path, false, 0), { code: 'EINVAL', syscall: 'mmap', path });
    assert.throws(() => native().mapResource(path, false, 1.5), { code: 'EINVAL' });
    assert.throws(() => native().mapResource(path, false, -1), { code: 'ERANGE' });
    assert.throws(() => native().mapResource(bar(0), false), { code: 'EINVAL', message: /file size 0/ });
    const missing = join(dir, 'missing');
    assert.throws(() => native().mapResource(missing, false), { code: 'ENOENT', syscall: 'open', path: missing });
    assert.throws(() => native().mapResource(dir, false), { code: 'ENODEV', syscall: 'mmap', path: dir },
      'the kernel refuses mmap of a directory: its errno comes back unchanged');
  });

  test('a read-only mapping refuses writes before touching memory', () => {
    const path = bar(4096);
    const mapping = native().mapResource(path, false);
    assert.throws(() => mapping.write(0, 4, 1), { code: 'EBADF', syscall: 'store', message: /read-only/ });
    assert.throws(() => mapping.write64(0, 1n), { code: 'EBADF' });
    assert.equal(mapping.read(0, 4), 0);
    assert.deepEqual(readFileSync(path), Buffer.alloc(4096));
    mapping.unmap();
  });

  test('unmap is idempotent, later use is EBADF and the mapping is gone from the process', () => {
    const path = bar(4096);
    const mapping = native().mapResource(path, true);
    assert.equal(mappingsOf(path), 1);
    mapping.unmap();
    assert.equal(mapping.mapped, false);
    assert.equal(mappingsOf(path), 0);
    mapping.unmap();
    assert.throws(() => mapping.read(0, 4), { code: 'EBADF', syscall: 'load', message: /unmapped/ });
    assert.throws(() => mapping.read64(0), { code: 'EBADF' });
    assert.throws(() => mapping.write(0, 4, 0), { code: 'EBADF' });
    assert.throws(() => mapping.write64(0, 0n), { code: 'EBADF' });
    assert.equal(mapping.length, 4096);
  });

  test('mapResource keeps no file descriptor open, yet the mapping stays usable', () => {
    const path = bar(4096, (bytes) => bytes.writeUInt32LE(0xcafe, 0));
    const mapping = native().mapResource(path, false);
    assert.equal(descriptorsOf(path), 0);
    assert.equal(mapping.read(0, 4), 0xcafe);
    mapping.unmap();
  });
});

describe('native MemoryMapping when what backs it goes away', () => {
  test('accesses to a fixture resource0 truncated under its mapping fail with ENXIO instead of SIGBUS; the process lives on', (t) => {
    const bar = { index: 0, kind: 'mem' as const, size: 8192, start: 0xfe000000 };
    const address = '0000:00:04.0';
    const tree = createFixtureTree([{ address, bars: [bar], config: buildConfigImage({ vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00, bars: [bar] }) }]);
    t.after(() => tree.cleanup());
    const path = join(tree.deviceDir(address), 'resource0');
    const mapping = native().mapResource(path, true);
    mapping.write(4096, 4, 0x600dcafe);
    assert.equal(mapping.read(4096, 4), 0x600dcafe, 'mapped and working');

    truncateSync(path, 4096);
    const gone = { code: 'ENXIO', syscall: 'load', message: /SIGBUS/ };
    for (const width of [1, 2, 4] as const) assert.throws(() => mapping.read(8192 - width, width), gone);
    assert.throws(() => mapping.read64(4096), gone);
    assert.throws(() => mapping.write(4096, 4, 1), { ...gone, syscall: 'store' });
    assert.throws(() => mapping.write64(4096, 1n), { ...gone, syscall: 'store' });
    assert.equal(mapping.read(0, 4), 0, 'the page still backed reads as before');
    mapping.write(0, 4, 0x1234);
    assert.equal(readFileSync(path).readUInt32LE(0), 0x1234, 'and writes through');
    truncateSync(path, 0);
    assert.throws(() => mapping.read(0, 4), gone, 'again after a second fault: the handler stays in place');
    mapping.unmap();
  });

  test('a SIGBUS outside a guarded access still kills the process as SIGBUS does', () => {
    const script = `
      const { native } = await import(${JSON.stringify(new URL('../../src/native/binding.js', import.meta.url).href)});
      const { writeFileSync, truncateSync } = await import('node:fs');
      const path = ${JSON.stringify(join(tmpdir(), `xpci-sigbus-${process.pid}`))};
      writeFileSync(path, Buffer.alloc(4096));
      const mapping = native().mapResource(path, false);
      truncateSync(path, 0);
      try { mapping.read(0, 4); } catch (error) { console.log(error.code); }
      process.kill(process.pid, 'SIGBUS');
      setTimeout(() => console.log('survived'), 500);`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    rmSync(join(tmpdir(), `xpci-sigbus-${process.pid}`), { force: true });
    assert.equal(child.stdout, 'ENXIO\n', child.stderr);
    assert.equal(child.signal, 'SIGBUS');
  });
});

/** Lines of /proc/self/maps that map `path`. */
function mappingsOf(path: string): number {
  return readFileSync('/proc/self/maps', 'utf8').split('\n').filter((line) => line.endsWith(' ' + path)).length;
}

/** How many fds of this process point at `path`. */
function descriptorsOf(path: string): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false; // the fd readdir used is already closed
    }
  }).length;
}
