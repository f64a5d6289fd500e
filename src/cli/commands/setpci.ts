/**
 * `xpci setpci [--connect PATH] -s SEL REG[.b|.w|.l][=VALUE[:MASK]]...`: setpci's syntax and output
 * through the ring. Reads print the value in hex (`0107`); a write with a mask is a
 * read-modify-write; `-D` (setpci's demo mode) writes nothing; `-v` traces like setpci -v.
 */
import type { Argv, CommandModule } from 'yargs';
import { formatAddress } from '../../pci/address.js';
import { readConfigBytes } from '../../pci/config-reader.js';
import { PCI_STD_HEADER_SIZE, PCI_CFG_SPACE_SIZE } from '../../pci/config-header.js';
import {
  formatRegisterValue,
  parseRegisterSpec,
  RegisterSpecError,
  resolveRegister,
  type RegisterSpec,
  type ResolvedRegister,
} from '../../pci/register-names.js';
import { RuntimeError, UsageError } from '../errors.js';
import { frontendOptions, parseSelection, requestFailure, selectDevices, withFrontend, type FrontendArgs, type SelectedDevice } from '../frontend-connection.js';

interface SetpciArgs extends FrontendArgs {
  operations: string[];
  s?: string;
  d?: string;
  D: boolean;
  v: boolean;
}

const hex2 = (value: number): string => value.toString(16).padStart(2, '0');
const WIDTH_MASK = { 1: 0xff, 2: 0xffff, 4: 0xffffffff } as const;

/** setpci -v names the capability a relative register resolved against: `(cap 01 @40) `. */
function capabilityTrace(spec: RegisterSpec, register: ResolvedRegister): string {
  if (!spec.capability) return '';
  const { kind, id } = spec.capability;
  const base = register.offset - spec.offset;
  return kind === 'standard' ? `(cap ${hex2(id)} @${hex2(base)}) ` : `(ecap ${id.toString(16).padStart(4, '0')} @${base.toString(16).padStart(3, '0')}) `;
}

/** How much config space resolving these specs needs: the header, or all of it for capability names. */
function snapshotLength(specs: RegisterSpec[], configSize: number): number {
  if (specs.some((s) => s.capability?.kind === 'extended')) return configSize;
  if (specs.some((s) => s.capability)) return Math.min(PCI_CFG_SPACE_SIZE, configSize);
  return PCI_STD_HEADER_SIZE;
}

async function runOnDevice(device: SelectedDevice, specs: RegisterSpec[], args: SetpciArgs, out: string[]): Promise<void> {
  const bdf = formatAddress(device.address);
  const { remote } = device;
  let config: Uint8Array;
  try {
    config = await readConfigBytes(remote, snapshotLength(specs, remote.configSize));
  } catch (error) {
    throw requestFailure(`${bdf}: reading config space`, error);
  }
  for (const spec of specs) {
    let register: ResolvedRegister;
    try {
      register = resolveRegister(spec, config);
    } catch (error) {
      if (error instanceof RegisterSpecError) throw new RuntimeError(`${bdf}: ${error.message}`);
      throw error;
    }
    const { width } = register;
    const where = (offset: number): string => `${bdf} ${spec.text} (@${offset.toString(16)}.${width === 1 ? 'b' : width === 2 ? 'w' : 'l'})`;
    const trace = `${bdf} ${capabilityTrace(spec, register)}@${hex2(register.offset)}`;
    if (register.values.length === 0) {
      let value: number;
      try {
        value = await remote.read(register.offset, width);
      } catch (error) {
        throw requestFailure(where(register.offset), error);
      }
      out.push(args.v ? `${trace} = ${formatRegisterValue(width, value)}` : formatRegisterValue(width, value));
      continue;
    }
    const all = WIDTH_MASK[width];
    const steps: string[] = [];
    for (const [i, { value, mask }] of register.values.entries()) {
      const offset = register.offset + i * width;
      try {
        let written = value;
        if (mask === all) {
          steps.push(formatRegisterValue(width, value));
        } else {
          const before = await remote.read(offset, width);
          written = ((before & ~mask) | value) >>> 0;
          steps.push(`${formatRegisterValue(width, before)}->(${formatRegisterValue(width, value)}:${formatRegisterValue(width, mask)})->${formatRegisterValue(width, written)}`);
        }
        if (!args.D) await remote.write(offset, width, written);
      } catch (error) {
        throw requestFailure(where(offset), error);
      }
    }
    if (args.v) out.push(`${trace} ${steps.join(' ')}`);
  }
}

export const setpciCommand: CommandModule<object, SetpciArgs> = {
  command: 'setpci <operations..>',
  describe: 'read or write config registers of devices behind a backend, in setpci syntax',
  builder: (yargs) => frontendOptions(yargs
    .usage('xpci setpci [--connect PATH] -s SEL REG[+OFF][.b|.w|.l][=VALUE[:MASK][,VALUE...]]...\n\n'
      + 'REG is a hex offset, a name (COMMAND, CACHE_LINE_SIZE, BASE_ADDRESS_0, ...), CAP_<name> or ECAP_<name> '
      + '(relative to that capability, e.g. CAP_PM+4.w), or CAP<id>/ECAP<id>. Values and masks are hex.')
    .positional('operations', { type: 'string', array: true, demandOption: true, describe: 'register reads and writes, executed in order' })
    .option('s', { type: 'string', describe: 'select devices: [[[domain]:][bus]:][slot][.[func]]' })
    .option('d', { type: 'string', describe: 'select devices by id: [vendor]:[device][:class]' })
    .option('D', { type: 'boolean', default: false, describe: 'demo mode: do not write anything (setpci -D)' })
    .option('v', { type: 'boolean', default: false, describe: 'trace each operation (setpci -v)' })) as unknown as Argv<SetpciArgs>,
  handler: async (args) => {
    if (args.s === undefined && args.d === undefined) throw new UsageError('setpci: select the devices with -s (or -d)');
    const matches = parseSelection(args.s, args.d);
    const specs = args.operations.map((text) => {
      try {
        return parseRegisterSpec(String(text));
      } catch (error) {
        if (error instanceof RegisterSpecError) throw new UsageError(`setpci: ${error.message}`);
        throw error;
      }
    });
    const out: string[] = [];
    try {
      await withFrontend(args, 'setpci', async (client) => {
        const devices = await selectDevices(client, matches);
        if (devices.length === 0) throw new RuntimeError('setpci: no devices selected');
        for (const device of devices) await runOnDevice(device, specs, args, out);
      });
    } finally {
      // What was done before a failure is still reported, as setpci prints as it goes.
      if (out.length > 0) process.stdout.write(out.join('\n') + '\n');
    }
  },
};
