/**
 * The persistent export configuration (`xpci export --config FILE`), a JSON object:
 *
 *   { "devices": ["06:01.0", { "address": "06:01.1", "permissive": true }],
 *     "mode": "vpci", "socket": "/run/xpci/xpci.sock", "permissive": false, "readOnly": false,
 *     "allowUids": [1000], "allowGids": [27], "stateDir": "/run/xpci", "sysfsRoot": "/sys",
 *     "reset": { "onExport": true, "onRelease": true } }
 *
 * Every key is optional; unknown keys are errors (a typo must not silently drop a setting). Each bad
 * field or list entry is named in the error, all of them at once, and a bad entry never makes the
 * loader skip the rest silently (xen-pciback.md §5, lesson 7). Relative paths are resolved against
 * the file's directory. Unset fields stay undefined so the export command can lay CLI options over.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { formatAddress, parseAddress, type PciAddress } from '../../pci/address.js';
import type { ExportMode } from '../../protocol/ring/messages.js';
import { LifecycleError } from './errors.js';

export interface ExportConfigDevice {
  address: PciAddress;
  /** "0000:06:01.0" */
  bdf: string;
  /** per-device permissive; undefined: the global setting applies */
  permissive?: boolean;
}

export interface ExportConfigReset {
  onExport?: boolean;
  onRelease?: boolean;
}

export interface ExportConfig {
  /** absolute path of the file it came from */
  source: string;
  devices: ExportConfigDevice[];
  mode?: ExportMode;
  socket?: string;
  permissive?: boolean;
  readOnly?: boolean;
  allowUids?: number[];
  allowGids?: number[];
  stateDir?: string;
  sysfsRoot?: string;
  reset?: ExportConfigReset;
}

/** All problems of one config file; `issues` has one entry per bad field or entry. */
export class ExportConfigError extends LifecycleError {
  constructor(readonly source: string, readonly issues: string[]) {
    super(`config ${source}: ${issues.join('; ')}`);
  }
}

const TOP_LEVEL_KEYS = ['devices', 'mode', 'socket', 'permissive', 'readOnly', 'allowUids', 'allowGids', 'stateDir', 'sysfsRoot', 'reset'];
const DEVICE_KEYS = ['address', 'permissive'];
const RESET_KEYS = ['onExport', 'onRelease'];
const MODES: readonly ExportMode[] = ['vpci', 'passthrough'];
/** (uid_t)-1 means "no change" to the kernel, so the largest real id is 2^32 - 2. */
const MAX_ID = 0xfffffffe;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const show = (value: unknown): string => {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 40 ? text.slice(0, 37) + '...' : text;
};

function unknownKeys(object: Record<string, unknown>, allowed: readonly string[], where: string, issues: string[]): void {
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) issues.push(`${where}${JSON.stringify(key)}: unknown key (expected one of ${allowed.join(', ')})`);
  }
}

function booleanField(value: unknown, where: string, issues: string[]): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'boolean') return value;
  issues.push(`${where}: expected true or false, got ${show(value)}`);
  return undefined;
}

function pathField(value: unknown, where: string, baseDir: string, issues: string[]): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string' && value !== '') return resolve(baseDir, value);
  issues.push(`${where}: expected a non-empty path string, got ${show(value)}`);
  return undefined;
}

function idList(value: unknown, where: string, kind: 'uid' | 'gid', issues: string[]): number[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) {
    issues.push(`${where}: expected an array of numeric ${kind}s, got ${show(value)}`);
    return undefined;
  }
  const ids: number[] = [];
  value.forEach((id, i) => {
    if (typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= MAX_ID) ids.push(id);
    else issues.push(`${where}[${i}]: expected a numeric ${kind} (0-${MAX_ID}), got ${show(id)}`);
  });
  return ids;
}

function deviceEntry(entry: unknown, where: string, issues: string[]): ExportConfigDevice | undefined {
  let text: unknown = entry;
  let permissive: boolean | undefined;
  let addressWhere = where;
  if (isObject(entry)) {
    unknownKeys(entry, DEVICE_KEYS, `${where}.`, issues);
    permissive = booleanField(entry.permissive, `${where}.permissive`, issues);
    text = entry.address;
    addressWhere = `${where}.address`;
    if (text === undefined) {
      issues.push(`${addressWhere}: missing (each device object needs "address")`);
      return undefined;
    }
  }
  if (typeof text !== 'string') {
    issues.push(`${addressWhere}: expected a PCI address string like "06:01.0" or an object {"address": ..., "permissive": ...}, got ${show(text)}`);
    return undefined;
  }
  let address: PciAddress;
  try {
    address = parseAddress(text);
  } catch (error) {
    issues.push(`${addressWhere}: ${(error as Error).message}`);
    return undefined;
  }
  return { address, bdf: formatAddress(address), ...(permissive === undefined ? {} : { permissive }) };
}

/** Validate an already-parsed JSON value; `source` names it in errors, `baseDir` anchors relative paths. */
export function parseExportConfig(value: unknown, source: string, baseDir: string): ExportConfig {
  const issues: string[] = [];
  if (!isObject(value)) throw new ExportConfigError(source, [`expected a JSON object at the top level, got ${show(value)}`]);
  unknownKeys(value, TOP_LEVEL_KEYS, '', issues);

  const devices: ExportConfigDevice[] = [];
  if (value.devices !== undefined) {
    if (!Array.isArray(value.devices)) issues.push(`devices: expected an array of PCI addresses, got ${show(value.devices)}`);
    else {
      value.devices.forEach((entry, i) => {
        const device = deviceEntry(entry, `devices[${i}]`, issues);
        if (!device) return;
        const first = devices.findIndex((d) => d.bdf === device.bdf);
        if (first >= 0) issues.push(`devices[${i}]: ${device.bdf} is listed twice (see the earlier entry with the same address)`);
        else devices.push(device);
      });
    }
  }

  let mode: ExportMode | undefined;
  if (value.mode !== undefined) {
    if (MODES.includes(value.mode as ExportMode)) mode = value.mode as ExportMode;
    else issues.push(`mode: expected "vpci" or "passthrough", got ${show(value.mode)}`);
  }

  let reset: ExportConfigReset | undefined;
  if (value.reset !== undefined) {
    if (!isObject(value.reset)) issues.push(`reset: expected an object {"onExport": bool, "onRelease": bool}, got ${show(value.reset)}`);
    else {
      unknownKeys(value.reset, RESET_KEYS, 'reset.', issues);
      const onExport = booleanField(value.reset.onExport, 'reset.onExport', issues);
      const onRelease = booleanField(value.reset.onRelease, 'reset.onRelease', issues);
      reset = { ...(onExport === undefined ? {} : { onExport }), ...(onRelease === undefined ? {} : { onRelease }) };
    }
  }

  const config: ExportConfig = {
    source,
    devices,
    mode,
    socket: pathField(value.socket, 'socket', baseDir, issues),
    permissive: booleanField(value.permissive, 'permissive', issues),
    readOnly: booleanField(value.readOnly, 'readOnly', issues),
    allowUids: idList(value.allowUids, 'allowUids', 'uid', issues),
    allowGids: idList(value.allowGids, 'allowGids', 'gid', issues),
    stateDir: pathField(value.stateDir, 'stateDir', baseDir, issues),
    sysfsRoot: pathField(value.sysfsRoot, 'sysfsRoot', baseDir, issues),
    reset,
  };
  if (issues.length > 0) throw new ExportConfigError(source, issues);
  for (const key of Object.keys(config) as (keyof ExportConfig)[]) {
    if (config[key] === undefined) delete config[key];
  }
  return config;
}

/** Read and validate the config file at `path`. */
export function loadExportConfig(path: string): ExportConfig {
  const source = resolve(path);
  let text: string;
  try {
    text = readFileSync(source, 'utf8');
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    throw new ExportConfigError(source, [`cannot read: ${e.code ?? e.message}`]);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ExportConfigError(source, [`not valid JSON: ${(error as Error).message}`]);
  }
  return parseExportConfig(value, source, dirname(source));
}
