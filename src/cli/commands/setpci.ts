/**
 * `xpci setpci [--connect PATH] -s SEL REG[.b|.w|.l][=VALUE[:MASK]]...`: setpci's syntax and output
 * through the ring. Reads print the value in hex (`0107`); a write with a mask is a
 * read-modify-write; `-D` (setpci's demo mode) writes nothing; `-v` traces like setpci -v.
 */
import type { Argv, CommandModule } from 'yargs';
import { formatAddress } from '../../pci/address.js';
import { readConfigBytes } from '../../pci/config-reader.js';
import { PCI_HEADER_TYPE, PCI_STD_HEADER_SIZE, PCI_CFG_SPACE_SIZE } from '../../pci/config-header.js';
import {
  formatRegisterTable,
  formatRegisterValue,
  parseRegisterSpec,
  RegisterSpecError,
  resolveRegister,
  type RegisterSpec,
  type ResolvedRegister,
} from '../../pci/register-names.js';
import { RuntimeError, UsageError } from '../errors.js';
import { batchOption, readBatchOperations } from '../batch-file.js';
import { frontendOptions, parseSelection, requestFailure, selectDevices, withFrontend, type FrontendArgs, type SelectedDevice } from '../frontend-connection.js';
import { hex } from '../../pci/hex.js';

interface SetpciArgs extends FrontendArgs {
  operations?: string[];
  batch?: string;
  f: boolean;
  dumpregs: boolean;
  s?: string;
  d?: string;
  D: boolean;
  v: boolean;
}

const WIDTH_MASK = { 1: 0xff, 2: 0xffff, 4: 0xffffffff } as const;

/** setpci -v names the capability a relative register resolved against: `(cap 01 @40) `. */
function capabilityTrace(spec: RegisterSpec, register: ResolvedRegister): string {
  if (!spec.capability) return '';
  const { kind, id } = spec.capability;
  const base = register.offset - spec.offset;
  return kind === 'standard' ? `(cap ${hex(id, 2)} @${hex(base, 2)}) ` : `(ecap ${hex(id, 4)} @${hex(base, 3)}) `;
}

/**
 * What resolving the specs needs: header names depend only on the header type, which the backend's
 * device list carries, so plain register operations cost no extra request; capability names need
 * the capability lists, read from config space.
 */
async function configForResolving(remote: SelectedDevice['remote'], specs: RegisterSpec[]): Promise<Uint8Array> {
  const headerType = remote.descriptor?.headerType;
  if (headerType === undefined || specs.some((s) => s.capability)) return readConfigBytes(remote, snapshotLength(specs, remote.configSize));
  const header = new Uint8Array(PCI_STD_HEADER_SIZE);
  header[PCI_HEADER_TYPE] = headerType;
  return header;
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
    config = await configForResolving(remote, specs);
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
    const trace = `${bdf} ${capabilityTrace(spec, register)}@${hex(register.offset, 2)}`;
    if (register.values.length === 0) {
      let value: number;
      try {
        // Past the function's config space, setpci prints all ones (libpci's answer to a short read); no request.
        value = register.offset + width > remote.configSize ? WIDTH_MASK[width] : await remote.read(register.offset, width);
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
  command: 'setpci [operations..]',
  describe: 'read or write config registers of devices behind a backend, in setpci syntax',
  builder: (yargs) => frontendOptions(yargs
    .usage([
      'xpci setpci [--connect PATH] [-D] [-v] {-s SEL | -d ID} REG[+OFF][.b|.w|.l][=VALUE[:MASK][,...]]...',
      '',
      "Reads and writes config registers of the PCI functions that a backend ('xpci export') serves, in "
        + "setpci's syntax and with its output, under the addresses the frontend sees. This is the frontend "
        + "side: run it in the guest (--connect /dev/virtio-ports/xpci.0) or on the host against the backend's "
        + 'socket. It needs no root, only permission to open that socket or device: the backend admits root and '
        + 'whoever its --allow-uid/--allow-gid name. -s and/or -d select the functions (at least one is '
        + 'required); every operation runs, in order, on each selected function in turn.',
      '',
      "Writes reach the real device, but only through the backend's register policy: a write that would "
        + 'change a bit the frontend does not control is refused whole (AccessDenied) and nothing is written, '
        + 'and a --read-only export refuses every write. Reads show the backend\'s view: BARs at the '
        + 'addresses it presents (virtual ones in vpci mode), decode bits as the frontend set them. -D shows '
        + 'what would be written without writing.',
    ].join('\n'))
    .option('batch', batchOption)
    .positional('operations', { type: 'string', array: true, describe: 'register reads and writes (syntax below), run in order on each selected function' })
    .option('s', { type: 'string', describe: 'functions in these slots: [[[domain]:][bus]:][slot][.[func]] (hex; empty or * = any)' })
    .option('d', { type: 'string', describe: 'functions with these ids: [vendor]:[device][:class[:prog-if]] (hex; empty or * = any; an x digit in the class = any)' })
    .option('D', { type: 'boolean', default: false, describe: 'demo mode, as setpci -D: send no writes (the reads that resolve names and masks still happen)' })
    .option('v', { type: 'boolean', default: false, describe: 'print one line per operation, as setpci -v (see OUTPUT)' })
    .option('f', { type: 'boolean', default: false, describe: 'as setpci -f: no warning when -s/-d select no function' })
    .option('dumpregs', { type: 'boolean', default: false, describe: "list the register names setpci knows, in setpci --dumpregs' format, and exit" })
    .example('xpci setpci -s 00:00.0 COMMAND', 'read the command register: 4 hex digits, e.g. 0006')
    .example('xpci setpci -s 00:00.0 CACHE_LINE_SIZE=10', 'write one byte (cache line size reaches the hardware)')
    .example('xpci setpci -s 00:00.0 COMMAND=0002:0002', "memory decode on, other bits kept (before 'xpci bar')")
    .example('xpci setpci -v -d 8086: CAP_PM+4.w', 'PM control/status of every Intel function, traced')
    .epilogue([
      'OPERATIONS',
      '  REG[+OFF][.b|.w|.l][@N][=VALUE[:MASK][,VALUE[:MASK]...]] as in setpci(8), all numbers hex:',
      '    REG  \ta hex offset (give a width); a header register name as setpci --dumpregs lists it '
        + '(COMMAND, STATUS, CACHE_LINE_SIZE, BASE_ADDRESS_0, ...), which brings its width; or a capability: '
        + 'CAP_<name>/ECAP_<name> (CAP_PM, CAP_MSI, ECAP_AER, ...) or CAP<id>/ECAP<id>, found by walking the '
        + "function's list (give a width; @N takes instance N, from 0)",
      '    +OFF  \tadded to REG, e.g. CAP_PM+4.w',
      '    .b .w .l  \t1, 2 or 4 bytes; the offset must be a multiple of the width',
      '    =VALUE  \twrite; VALUE,VALUE,... writes consecutive registers of that width',
      '    :MASK  \tchange only the bits of MASK: reads the register, writes (old & ~MASK) | VALUE',
      '  Without =, the register is read. A name a function does not have (BASE_ADDRESS_2 on a bridge, a '
        + "capability it lacks) fails for that function. To resolve names, each function's config space is read "
        + 'first: 64 bytes, 256 with capability names, all of it with extended capability names.',
      '',
      'REFUSED BY THE BACKEND',
      '  AccessDenied, naming the register and the reason, and nothing written: every write to a --read-only '
        + 'export; a write that would change a bit the policy keeps from the frontend: identity fields, '
        + 'capability headers, BARs '
        + '(only sizing, all address bits set, and writing back the value read are accepted), MSI/MSI-X, power state, '
        + 'LATENCY_TIMER, BIST; COMMAND bits other than I/O decode, memory decode and bus master, STATUS error '
        + 'bits (write 1 to clear) and unlisted registers (PCI Express, vendor-specific, extended space) unless '
        + 'the export is permissive. Writing back the value read is accepted, except to unlisted registers and '
        + 'the VPD address (the write itself may be an action). Full table: docs/security.md.',
      '  Clearing a decode bit in COMMAND changes only the frontend\'s view (the hardware keeps decoding); '
        + "'xpci bar' is refused for that kind of BAR until it is set again.",
      "  InvalidOffset: a write past the function's config space (256 bytes, 4096 for PCI Express); a read there "
        + 'prints all ones (ffffffff), as setpci does, without asking the backend.',
      '',
      'OUTPUT',
      '  Each read prints the value on a line of its own, 2, 4 or 8 hex digits without 0x (e.g. 0006); writes '
        + 'print nothing. With -v, as setpci -v: \'BDF @OFF = VALUE\' for a read, \'BDF @OFF VALUE...\' for a '
        + "write, 'OLD->(VALUE:MASK)->NEW' for a masked one, with '(cap ID @BASE) ' before @ for a capability "
        + 'register. At the first failure the lines so far are printed, then the error; the rest is not run.',
      '',
      'Exit status: 0 every operation done (also with -D), or -s/-d select no function (a warning, as setpci; '
        + '-f silences it); 1 no backend at the path, the backend refused the session, a function lacks a named register or capability, or a request '
        + 'failed (AccessDenied, InvalidOffset, ...); 2 no -s/-d, or a bad selector, register, width, value, '
        + 'mask or option (found before connecting).',
    ].join('\n'))) as unknown as Argv<SetpciArgs>,
  handler: async (args) => {
    if (args.dumpregs) {
      process.stdout.write(formatRegisterTable());
      return;
    }
    if (args.s === undefined && args.d === undefined) throw new UsageError('setpci: select the devices with -s (or -d)');
    const matches = parseSelection(args.s, args.d);
    const texts = [...(args.operations ?? []), ...(args.batch === undefined ? [] : readBatchOperations(args.batch))];
    if (texts.length === 0) throw new UsageError('setpci: no operation given (on the command line or with --batch FILE)');
    const specs = texts.map((text) => {
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
        // As setpci: a warning, not a failure (-f silences it), so a script may name optional devices.
        if (devices.length === 0 && !args.f) process.stderr.write('xpci: warning: setpci: no devices selected; nothing done\n');
        for (const device of devices) await runOnDevice(device, specs, args, out);
      });
    } finally {
      // What was done before a failure is still reported, as setpci prints as it goes.
      if (out.length > 0) process.stdout.write(out.join('\n') + '\n');
    }
  },
};
