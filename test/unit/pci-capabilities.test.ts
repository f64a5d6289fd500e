import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { findCapability, walkCapabilities, walkExtendedCapabilities } from '../../src/pci/capabilities.js';
import { buildConfigImage } from '../support/fixture-sysfs.js';

const base = { vendor: 0x8086, device: 0x10c9, classCode: 0x020000 };

describe('standard capability walk', () => {
  test('follows the chain from 0x34 with names and offsets', () => {
    const config = buildConfigImage({ ...base, capabilities: [{ id: 0x01, body: [3, 0, 0, 0, 0, 0] }, { id: 0x05, body: new Array(10).fill(0) }, { id: 0x11, body: new Array(10).fill(0) }, { id: 0x10, body: [2, 0] }, { id: 0x42 }] });
    const walk = walkCapabilities(config);
    assert.equal(walk.stop, null);
    assert.deepEqual(walk.capabilities.map((c) => [c.offset, c.id, c.name]), [[0x40, 1, 'PM'], [0x48, 5, 'MSI'], [0x54, 0x11, 'MSI-X'], [0x60, 0x10, 'PCIe'], [0x64, 0x42, '#42']]);
  });

  test('no list without status bit 4; CardBus uses 0x14', () => {
    const config = buildConfigImage({ ...base, capabilities: [{ id: 0x01 }] });
    config[0x06] &= ~0x10;
    assert.deepEqual(walkCapabilities(config).capabilities, []);
    const cardbus = buildConfigImage({ ...base, classCode: 0x060700, headerType: 2, capabilities: [{ id: 0x01 }] });
    assert.equal(cardbus[0x14], 0x40);
    assert.equal(cardbus[0x34], 0);
    assert.deepEqual(walkCapabilities(cardbus).capabilities.map((c) => c.offset), [0x40]);
  });

  test('pointers are masked with 0xfc; loops, 0xff ids, header pointers and short snapshots stop the walk', () => {
    const config = buildConfigImage({ ...base, capabilities: [{ id: 0x01 }, { id: 0x05 }] });
    config[0x34] = 0x43; // low bits are reserved
    assert.deepEqual(walkCapabilities(config).capabilities.map((c) => c.offset), [0x40, 0x44]);
    config[0x45] = 0x40; // second points back to first
    assert.deepEqual(walkCapabilities(config), { capabilities: walkCapabilities(config).capabilities, stop: 'looped', stopOffset: 0x40 });
    assert.equal(walkCapabilities(config).capabilities.length, 2);
    config[0x45] = 0x3c; // into the header
    assert.equal(walkCapabilities(config).stop, 'into-header');
    config[0x45] = 0x80;
    config[0x80] = 0xff;
    assert.equal(walkCapabilities(config).stop, 'broken');
    assert.equal(walkCapabilities(config.slice(0, 64)).stop, 'truncated');
  });

  test('a maximal self-consistent chain is bounded', () => {
    const config = new Uint8Array(256);
    config[0x06] = 0x10;
    config[0x34] = 0x40;
    for (let at = 0x40; at < 0x100; at += 4) {
      config[at] = 0x09;
      config[at + 1] = at + 4 < 0x100 ? at + 4 : 0x40;
    }
    const walk = walkCapabilities(config);
    assert.equal(walk.capabilities.length, 48);
    assert.ok(walk.stop === 'looped' || walk.stop === 'too-long');
  });
});

describe('extended capability walk', () => {
  test('from 0x100 with versions, stopping at next 0', () => {
    const config = buildConfigImage({ ...base, extendedCapabilities: [{ id: 0x01, version: 2, body: new Array(0x44).fill(0) }, { id: 0x03, body: new Array(8).fill(0) }, { id: 0x10, version: 1 }] });
    const walk = walkExtendedCapabilities(config);
    assert.equal(walk.stop, null);
    assert.deepEqual(walk.capabilities.map((c) => [c.offset, c.id, c.version, c.name]), [[0x100, 1, 2, 'AER'], [0x148, 3, 1, 'DSN'], [0x154, 0x10, 1, 'SR-IOV']]);
    assert.equal(findCapability(config, 'extended', 0x10)?.offset, 0x154);
    assert.equal(findCapability(config, 'extended', 0x10, 1), undefined);
    assert.deepEqual(walk.capabilities.map((c) => c.kind), ['extended', 'extended', 'extended']);
  });

  test('0 or all-ones header, 256-byte snapshots and loops', () => {
    const config = buildConfigImage({ ...base, extendedCapabilities: [{ id: 0x01 }, { id: 0x02 }] });
    assert.deepEqual(walkExtendedCapabilities(config.slice(0, 256)), { capabilities: [], stop: null });
    const allOnes = config.slice();
    allOnes.fill(0xff, 0x100, 0x104);
    assert.deepEqual(walkExtendedCapabilities(allOnes).capabilities, []);
    const looped = config.slice();
    looped[0x107] = 0x10; // second (at 0x104) -> ... make it point to 0x100
    new DataView(looped.buffer).setUint32(0x104, 0x02 | (1 << 16) | (0x100 << 20), true);
    const walk = walkExtendedCapabilities(looped);
    assert.equal(walk.stop, 'looped');
    assert.equal(walk.capabilities.length, 2);
    const intoHeader = config.slice();
    new DataView(intoHeader.buffer).setUint32(0x100, 0x01 | (1 << 16) | (0x40 << 20), true);
    assert.equal(walkExtendedCapabilities(intoHeader).stop, 'into-header');
  });

  test('instances: the n-th capability with an id', () => {
    const config = buildConfigImage({ ...base, capabilities: [{ id: 0x09, body: [4] }, { id: 0x01 }, { id: 0x09, body: [4] }] });
    assert.equal(findCapability(config, 'standard', 0x09, 0)?.offset, 0x40);
    assert.equal(findCapability(config, 'standard', 0x09, 1)?.offset, 0x48);
    assert.equal(findCapability(config, 'standard', 0x09, 2), undefined);
  });
});
