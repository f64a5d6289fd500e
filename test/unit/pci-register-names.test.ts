import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  CAPABILITY_REGISTER_NAMES, formatRegisterValue, parseRegisterSpec, REGISTER_NAMES, RegisterSpecError, resolveRegister,
} from '../../src/pci/register-names.js';
import { buildConfigImage } from '../support/fixture-sysfs.js';

describe('parseRegisterSpec', () => {
  test('names give offset and natural width; suffixes override the width', () => {
    assert.deepEqual(parseRegisterSpec('COMMAND'), { text: 'COMMAND', name: 'COMMAND', capability: null, offset: 4, width: 2, headerTypes: 0, values: [] });
    assert.equal(parseRegisterSpec('command.b').width, 1);
    assert.equal(parseRegisterSpec('CACHE_LINE_SIZE').width, 1);
    assert.equal(parseRegisterSpec('BASE_ADDRESS_5').offset, 0x24);
    assert.equal(parseRegisterSpec('SECONDARY_BUS').offset, 0x19);
    assert.equal(parseRegisterSpec('CAPABILITY_LIST').offset, 0x34);
    assert.deepEqual(parseRegisterSpec('0c.b'), { text: '0c.b', name: null, capability: null, offset: 0x0c, width: 1, headerTypes: 0, values: [] });
    assert.equal(parseRegisterSpec('100.L').offset, 0x100);
  });

  test('values, masks and value lists', () => {
    assert.deepEqual(parseRegisterSpec('COMMAND=0x0406').values, [{ value: 0x406, mask: 0xffff }]);
    assert.deepEqual(parseRegisterSpec('04.w=4:4').values, [{ value: 4, mask: 4 }]);
    assert.deepEqual(parseRegisterSpec('04.w=7:4').values, [{ value: 4, mask: 4 }]);
    assert.deepEqual(parseRegisterSpec('40.b=1,2,3').values.map((v) => v.value), [1, 2, 3]);
    assert.equal(parseRegisterSpec('40.l=ffffffff').values[0].value, 0xffffffff);
  });

  test('capability-relative registers', () => {
    assert.deepEqual(parseRegisterSpec('CAP_PM+4.w').capability, { kind: 'standard', id: 1, instance: 0 });
    assert.equal(parseRegisterSpec('CAP_PM+4.w').offset, 4);
    assert.deepEqual(parseRegisterSpec('ECAP_AER+8.l').capability, { kind: 'extended', id: 1, instance: 0 });
    assert.deepEqual(parseRegisterSpec('CAP10+2.w').capability, { kind: 'standard', id: 0x10, instance: 0 });
    assert.deepEqual(parseRegisterSpec('ECAP0010.l@1').capability, { kind: 'extended', id: 0x10, instance: 1 });
    assert.deepEqual(parseRegisterSpec('cap_vndr+2.b@2=5').capability, { kind: 'standard', id: 9, instance: 2 });
  });

  test('errors read like setpci', () => {
    for (const [text, problem] of [
      ['COMMAND.x', /invalid width "x"/], ['COMMAND.bb', /invalid width/], ['FOO', /unknown register "FOO"/],
      ['CAP_PM', /missing width/], ['0c', /missing width/], ['03.w', /unaligned register address 03/],
      ['ffe.l', /out of range/], ['fff.b=1,2', /out of range/], ['CAP_PM+1000.w', /invalid offset "1000"/],
      ['COMMAND=', /missing value/], ['COMMAND=zz', /invalid value "zz"/], ['COMMAND=10000', /out of range for width 2/],
      ['COMMAND=1:10000', /mask "10000" is out of range/], ['COMMAND=1:2:3', /invalid value/], ['COMMAND=1:q', /invalid mask/],
      ['COMMAND.w@1', /instance number/], ['COMMAND@1.w', /invalid number "1.w"/], ['CAP_VNDR+2.l', /unaligned register address 02/], ['CAPzz.w', /unknown register/], ['CAP100.b', /unknown register/],
    ] as const) {
      assert.throws(() => parseRegisterSpec(text), (e: Error) => e instanceof RegisterSpecError && problem.test(e.message) && e.message.includes(`'${text}'`), text);
    }
  });

  test('the vocabulary matches setpci --dumpregs', { skip: spawnSync('setpci', ['--version']).status === 0 ? false : 'setpci not installed' }, () => {
    const dump = spawnSync('setpci', ['--dumpregs'], { encoding: 'utf8' }).stdout.trim().split('\n').slice(1);
    const widths: Record<string, number> = { B: 1, W: 2, L: 4 };
    for (const line of dump) {
      const m = /^(.{4}) ([0-9a-f]{2}) (.) (\S+)$/.exec(line);
      assert.ok(m, line);
      const [, cap, offset, width, name] = m;
      if (cap.trim() === '') {
        const ours = REGISTER_NAMES.find((r) => r.name === name);
        assert.ok(ours, `missing ${name}`);
        assert.deepEqual([ours.offset, ours.width], [parseInt(offset, 16), widths[width]], name);
      } else {
        const ours = CAPABILITY_REGISTER_NAMES.find((r) => r.name === name);
        assert.ok(ours, `missing ${name}`);
        assert.equal(ours.id, parseInt(cap, 16), name);
        assert.equal(ours.kind, cap.startsWith('  ') ? 'standard' : 'extended', name);
      }
    }
  });
});

describe('resolveRegister', () => {
  const config = buildConfigImage({
    vendor: 0x8086, device: 0x10c9, classCode: 0x020000,
    capabilities: [{ id: 0x01, body: [3, 0, 0, 0, 0, 0] }, { id: 0x09, body: [4, 0] }, { id: 0x09, body: [4, 0] }],
    extendedCapabilities: [{ id: 0x03, body: new Array(8).fill(0) }, { id: 0x01, body: new Array(0x40).fill(0) }],
  });

  test('absolute and capability-relative offsets', () => {
    assert.deepEqual(resolveRegister(parseRegisterSpec('COMMAND=1'), config), { offset: 4, width: 2, name: 'COMMAND', values: [{ value: 1, mask: 0xffff }] });
    assert.equal(resolveRegister(parseRegisterSpec('CAP_PM+4.w'), config).offset, 0x44);
    assert.equal(resolveRegister(parseRegisterSpec('CAP_VNDR.b@1'), config).offset, 0x4c);
    assert.equal(resolveRegister(parseRegisterSpec('ECAP_AER+8.l'), config).offset, 0x10c + 8);
  });

  test('missing capabilities and registers the header type lacks', () => {
    assert.throws(() => resolveRegister(parseRegisterSpec('CAP_MSI.w'), config), /instance #0 of capability 05 not found: the device has no capability with that id/);
    assert.throws(() => resolveRegister(parseRegisterSpec('CAP_VNDR.b@2'), config), /has only 2/);
    assert.throws(() => resolveRegister(parseRegisterSpec('ECAP_AER.l'), config.slice(0, 256)), /extended capability 0001 not found/);
    assert.throws(() => resolveRegister(parseRegisterSpec('SECONDARY_BUS'), config), /header type 0\) does not have register SECONDARY_BUS/);
    const bridge = buildConfigImage({ vendor: 1, device: 2, classCode: 0x060400, headerType: 1 });
    assert.equal(resolveRegister(parseRegisterSpec('SECONDARY_BUS'), bridge).offset, 0x19);
    assert.throws(() => resolveRegister(parseRegisterSpec('SUBSYSTEM_ID'), bridge), RegisterSpecError);
  });

  test('formatRegisterValue pads like setpci', () => {
    assert.equal(formatRegisterValue(1, 5), '05');
    assert.equal(formatRegisterValue(2, 0x406), '0406');
    assert.equal(formatRegisterValue(4, 0xffffffff), 'ffffffff');
  });
});
