import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExportConfigError, loadExportConfig, parseExportConfig } from '../../src/backend/lifecycle/export-config.js';

/** The issues a config value produces. */
function issues(value: unknown): string[] {
  try {
    parseExportConfig(value, 'test.json', '/etc/xpci');
  } catch (error) {
    assert.ok(error instanceof ExportConfigError, String(error));
    return error.issues;
  }
  assert.fail('expected an ExportConfigError');
}

describe('export config file', () => {
  test('a full config is typed, addresses normalised, relative paths anchored at the file', () => {
    const config = parseExportConfig({
      devices: ['06:01.0', { address: '0000:06:01.1', permissive: true }],
      mode: 'passthrough', socket: 'ring.sock', permissive: false, readOnly: true,
      allowUids: [1000, 0], allowGids: [27], stateDir: '/run/xpci', sysfsRoot: '../fixture',
      reset: { onExport: true, onRelease: false },
    }, '/etc/xpci/export.json', '/etc/xpci');
    assert.deepEqual(config, {
      source: '/etc/xpci/export.json',
      devices: [
        { address: { domain: 0, bus: 6, device: 1, function: 0 }, bdf: '0000:06:01.0' },
        { address: { domain: 0, bus: 6, device: 1, function: 1 }, bdf: '0000:06:01.1', permissive: true },
      ],
      mode: 'passthrough', socket: '/etc/xpci/ring.sock', permissive: false, readOnly: true,
      allowUids: [1000, 0], allowGids: [27], stateDir: '/run/xpci', sysfsRoot: '/etc/fixture',
      reset: { onExport: true, onRelease: false },
    });
  });

  test('unset fields stay absent so CLI options can be laid over', () => {
    assert.deepEqual(parseExportConfig({}, 'x', '/'), { source: 'x', devices: [] });
  });

  test('each bad field and entry is named, all at once', () => {
    assert.deepEqual(issues({
      devices: ['06:01.0', '06:1.x', { address: '06:02.0', permisive: true }, { permissive: true }, 42, '0000:06:01.0'],
      mode: 'vbus', allowUids: [1000, -1, '1001'], allowGids: 'wheel', readOnly: 'yes', socket: '',
      reset: { onExport: 1, onDetach: true }, extra: 1,
    }), [
      '"extra": unknown key (expected one of devices, mode, socket, permissive, readOnly, allowUids, allowGids, stateDir, sysfsRoot, reset)',
      "devices[1]: invalid PCI address '06:1.x': expected [DDDD:]BB:DD.F (hex), e.g. 0000:06:01.0",
      'devices[2]."permisive": unknown key (expected one of address, permissive)',
      'devices[3].address: missing (each device object needs "address")',
      'devices[4]: expected a PCI address string like "06:01.0" or an object {"address": ..., "permissive": ...}, got 42',
      'devices[5]: 0000:06:01.0 is listed twice (see the earlier entry with the same address)',
      'mode: expected "vpci" or "passthrough", got "vbus"',
      'reset."onDetach": unknown key (expected one of onExport, onRelease)',
      'reset.onExport: expected true or false, got 1',
      'socket: expected a non-empty path string, got ""',
      'readOnly: expected true or false, got "yes"',
      'allowUids[1]: expected a numeric uid (0-4294967294), got -1',
      'allowUids[2]: expected a numeric uid (0-4294967294), got "1001"',
      'allowGids: expected an array of numeric gids, got "wheel"',
    ]);
  });

  test('wrong shapes at the top level', () => {
    assert.deepEqual(issues([]), ['expected a JSON object at the top level, got []']);
    assert.deepEqual(issues({ devices: '06:01.0' }), ['devices: expected an array of PCI addresses, got "06:01.0"']);
    assert.deepEqual(issues({ reset: true }), ['reset: expected an object {"onExport": bool, "onRelease": bool}, got true']);
    assert.deepEqual(issues({ devices: [{ address: '06:01.0', permissive: 'on' }] }), ['devices[0].permissive: expected true or false, got "on"']);
  });

  test('loadExportConfig: one-line message with the file name; unreadable and malformed files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xpci-config-'));
    try {
      const path = join(dir, 'export.json');
      writeFileSync(path, JSON.stringify({ devices: ['06:01.0'], socket: 'xpci.sock' }));
      const config = loadExportConfig(path);
      assert.equal(config.socket, join(dir, 'xpci.sock'));
      assert.equal(config.source, path);

      writeFileSync(path, JSON.stringify({ devices: ['bad'], mode: 1 }));
      assert.throws(() => loadExportConfig(path), (error: Error) => {
        assert.equal(error.message, `config ${path}: devices[0]: invalid PCI address 'bad': expected [DDDD:]BB:DD.F (hex), e.g. 0000:06:01.0; mode: expected "vpci" or "passthrough", got 1`);
        assert.doesNotMatch(error.message, /\n/);
        return true;
      });
      writeFileSync(path, '{"devices": [');
      assert.throws(() => loadExportConfig(path), { message: new RegExp(`^config ${path}: not valid JSON: `) });
      assert.throws(() => loadExportConfig(join(dir, 'absent.json')), /absent\.json: cannot read: ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
