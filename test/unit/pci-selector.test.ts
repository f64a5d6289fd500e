import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { parseAddress } from '../../src/pci/address.js';
import { deviceSelector, matchesId, matchesSlot, parseIdSelector, parseSlotSelector, SelectorError } from '../../src/pci/selector.js';
import { listDevices } from '../../src/host/sysfs/discovery.js';
import { exitCodeFor } from '../../src/cli/errors.js';

const addr = parseAddress;

describe('slot selector (-s)', () => {
  test('fields and omitted parts follow pciutils', () => {
    assert.deepEqual(parseSlotSelector('06:01.0'), { domain: null, bus: 6, device: 1, function: 0 });
    assert.deepEqual(parseSlotSelector('0000:06:01'), { domain: 0, bus: 6, device: 1, function: null });
    assert.deepEqual(parseSlotSelector('06:'), { domain: null, bus: 6, device: null, function: null });
    assert.deepEqual(parseSlotSelector('.2'), { domain: null, bus: null, device: null, function: 2 });
    assert.deepEqual(parseSlotSelector('3'), { domain: null, bus: null, device: 3, function: null });
    assert.deepEqual(parseSlotSelector('*:01.*'), { domain: null, bus: null, device: 1, function: null });
    assert.deepEqual(parseSlotSelector('*:*:*.*'), { domain: null, bus: null, device: null, function: null });
    assert.deepEqual(parseSlotSelector(''), { domain: null, bus: null, device: null, function: null });
    assert.deepEqual(parseSlotSelector('10000:00:1f.7'), { domain: 0x10000, bus: 0, device: 0x1f, function: 7 });
  });

  test('matching', () => {
    const f = parseSlotSelector('06:');
    assert.equal(matchesSlot(f, addr('0000:06:01.0')), true);
    assert.equal(matchesSlot(f, addr('0001:06:1f.7')), true);
    assert.equal(matchesSlot(f, addr('0000:07:01.0')), false);
    assert.equal(matchesSlot(parseSlotSelector('.2'), addr('06:01.2')), true);
    assert.equal(matchesSlot(parseSlotSelector('.2'), addr('06:01.1')), false);
    assert.equal(matchesSlot(parseSlotSelector('0001:06:01'), addr('0000:06:01.0')), false);
  });

  test('bad input names the text and the problem', () => {
    for (const [text, problem] of [
      ['0g:', /invalid bus number '0g'/], ['100:00.0', /invalid bus number/], ['00:20.0', /invalid slot number/],
      ['00:03.8', /invalid function number/], ['1:2:3:4', /too many fields/], ['00:03.0.1', /invalid slot\/function/],
      ['x'.repeat(70), /too long/], ['80000000:00:00.0', /invalid domain/],
    ] as const) {
      assert.throws(() => parseSlotSelector(text), (e: Error) => {
        assert.ok(e instanceof SelectorError);
        assert.match(e.message, problem);
        assert.ok(e.message.includes(`'${text}'`), e.message);
        assert.equal(exitCodeFor(e), 2);
        return true;
      });
    }
  });
});

describe('id selector (-d)', () => {
  test('vendor, device, class with x wildcards, prog-if', () => {
    assert.deepEqual(parseIdSelector('1af4:1041'), { vendor: 0x1af4, device: 0x1041, classValue: null, classMask: 0xffff, progIf: null });
    assert.deepEqual(parseIdSelector('8086:'), { vendor: 0x8086, device: null, classValue: null, classMask: 0xffff, progIf: null });
    assert.deepEqual(parseIdSelector('*:*'), { vendor: null, device: null, classValue: null, classMask: 0xffff, progIf: null });
    assert.deepEqual(parseIdSelector('::02xx'), { vendor: null, device: null, classValue: 0x0200, classMask: 0xff00, progIf: null });
    assert.deepEqual(parseIdSelector('::x6xx'), { vendor: null, device: null, classValue: 0x0600, classMask: 0x0f00, progIf: null });
    assert.deepEqual(parseIdSelector('::0106:01'), { vendor: null, device: null, classValue: 0x0106, classMask: 0xffff, progIf: 1 });
    const nic = { vendor: 0x1af4, device: 0x1041, classCode: 0x020000 };
    assert.equal(matchesId(parseIdSelector('::0200'), nic), true);
    assert.equal(matchesId(parseIdSelector('::02xx'), nic), true);
    // A short class compares all 16 bits, as pciutils does: "02" is class 0x0002.
    assert.equal(matchesId(parseIdSelector('::02'), nic), false);
    assert.equal(matchesId(parseIdSelector('1AF4:'), nic), true);
    assert.equal(matchesId(parseIdSelector('1af4:1042'), nic), false);
    assert.equal(matchesId(parseIdSelector('::0200:01'), nic), false);
    assert.equal(matchesId(parseIdSelector('::0200:00'), nic), true);
  });

  test('bad input', () => {
    for (const [text, problem] of [
      ['1af4', /at least two fields/], ['1af4:x', /invalid device ID 'x'/], ['g:1', /invalid vendor ID/],
      ['10000:1', /invalid vendor ID/], ['::0zz', /invalid class code/], ['::0200:100', /invalid programming interface/],
      ['1:2:3:4:5', /too many fields/],
    ] as const) {
      assert.throws(() => parseIdSelector(text), (e: Error) => e instanceof SelectorError && problem.test(e.message) && e.message.includes(`'${text}'`));
    }
  });

  test('deviceSelector combines both and parses eagerly', () => {
    const select = deviceSelector('00:', '1af4:');
    assert.equal(select(addr('00:03.0'), { vendor: 0x1af4, device: 1, classCode: 0 }), true);
    assert.equal(select(addr('01:03.0'), { vendor: 0x1af4, device: 1, classCode: 0 }), false);
    assert.equal(deviceSelector()(addr('01:03.0'), { vendor: 1, device: 1, classCode: 0 }), true);
    assert.throws(() => deviceSelector('zz:'), SelectorError);
  });
});

describe('selectors agree with lspci on this machine', () => {
  const haveLspci = spawnSync('lspci', ['--version']).status === 0 && existsSync('/sys/bus/pci/devices');
  test('same devices selected, same texts refused', { skip: haveLspci ? false : 'lspci or /sys/bus/pci not available' }, () => {
    const devices = listDevices('/sys');
    const cases: [string, string][] = [
      ['-s', '00:03'], ['-s', '3'], ['-s', '.0'], ['-s', '0:0:3.0'], ['-s', '*:*:*.*'], ['-s', '*:03.*'], ['-s', '3.'],
      ['-s', '00:'], ['-s', ':'], ['-s', '0000:00:03.0'], ['-s', '01:'], ['-s', '00:03.8'], ['-s', '00:20.0'], ['-s', '1:2:3:4'],
      ['-d', '1af4:'], ['-d', ':1041'], ['-d', '::0200'], ['-d', '::02xx'], ['-d', '::x6xx'], ['-d', '::02'], ['-d', ':'],
      ['-d', '1af4'], ['-d', '1af4:x'], ['-d', '::0200:00'], ['-d', '::0200:01'], ['-d', '8086:0d57'],
    ];
    for (const [option, text] of cases) {
      const lspci = spawnSync('lspci', ['-D', '-n', option, text], { encoding: 'utf8' });
      let mine: string[] | null;
      try {
        const select = option === '-s' ? deviceSelector(text) : deviceSelector(undefined, text);
        mine = devices.filter((d) => select(d.address, d)).map((d) => d.bdf);
      } catch (error) {
        assert.ok(error instanceof SelectorError);
        mine = null;
      }
      const theirs = lspci.status === 0 ? lspci.stdout.split('\n').filter(Boolean).map((line) => line.split(' ')[0]) : null;
      assert.deepEqual(mine, theirs, `${option} '${text}'`);
    }
  });
});
