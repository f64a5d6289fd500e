/**
 * The QEMU command line of a test guest. TCG only (KVM on this kind of host is kvm_pvm and cannot
 * boot a stock kernel), 1 vCPU (faster than 2 under TCG), q35 (PCIe extended config space), the
 * extracted vmlinux booted through PVH (the bzImage spends ~5 s decompressing itself under TCG).
 */
import { FIRST_RW_SHARE_SLOT, LAST_RW_SHARE_SLOT, ROOT_SHARE_SLOT, serialPortArgs, standardDeviceArgs } from './devices.js';

export interface QemuCommandInput {
  vmlinux: string;
  initramfs: string;
  memoryMiB: number;
  consoleLogPath: string;
  agentSocketPath: string;
  /** host directories shared read-write at the same path; the first is the repository */
  rwShares: string[];
  modules: string[];
  /** null: no standard devices */
  ivshmem: { path: string; size: number } | null;
  xpciPort: { mode: 'server' | 'client'; path: string } | null;
  extraDevices: string[];
  /** an emulated Intel IOMMU (intel-iommu + intel_iommu=on): IOMMU groups, VFIO type1, DMA remapping */
  iommu: boolean;
}

/** QEMU splits option values at ',' and reads ',,' as a literal comma. */
const optionValue = (text: string): string => text.replace(/,/g, ',,');

/** The guest's init parses the kernel command line on spaces and ','. */
function checkSharePath(path: string): void {
  if (!path.startsWith('/') || /[\s,]/.test(path)) {
    throw new Error(`test bed: cannot share '${path}': it must be absolute and contain no whitespace or ','`);
  }
}

export function qemuCommand(input: QemuCommandInput): string[] {
  const maxShares = LAST_RW_SHARE_SLOT - FIRST_RW_SHARE_SLOT + 1;
  if (input.rwShares.length > maxShares) throw new Error(`test bed: at most ${maxShares} read-write shares (got ${input.rwShares.length})`);
  input.rwShares.forEach(checkSharePath);

  const kernelArgs = [
    'console=ttyS0', 'quiet', 'loglevel=3', 'panic=-1', 'tsc=reliable', 'no_timer_check', 'cryptomgr.notests', 'mitigations=off',
    `xpci.shares=${input.rwShares.map((path, i) => `rw${i}:${path}`).join(',')}`,
  ];
  if (input.modules.length > 0) kernelArgs.push(`xpci.mods=${input.modules.join(',')}`);
  if (input.iommu) kernelArgs.push('intel_iommu=on');

  const args = [
    '-machine', 'q35', '-accel', 'tcg', '-cpu', 'max', '-smp', '1', '-m', String(input.memoryMiB),
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    // the IOMMU before any PCI device, so that every device is placed behind it
    ...(input.iommu ? ['-device', 'intel-iommu'] : []),
    '-chardev', `file,id=console,path=${optionValue(input.consoleLogPath)}`, '-serial', 'chardev:console',
    '-kernel', input.vmlinux, '-initrd', input.initramfs, '-append', kernelArgs.join(' '),
    '-fsdev', 'local,id=fsroot,path=/,security_model=none,readonly=on,multidevs=remap',
    '-device', `virtio-9p-pci,fsdev=fsroot,mount_tag=root,addr=${hexSlot(ROOT_SHARE_SLOT)}`,
  ];
  input.rwShares.forEach((path, i) => {
    args.push('-fsdev', `local,id=fsrw${i},path=${optionValue(path)},security_model=none,multidevs=remap`);
    args.push('-device', `virtio-9p-pci,fsdev=fsrw${i},mount_tag=rw${i},addr=${hexSlot(FIRST_RW_SHARE_SLOT + i)}`);
  });
  const xpciPort = input.xpciPort && { mode: input.xpciPort.mode, path: optionValue(input.xpciPort.path) };
  args.push(...serialPortArgs(optionValue(input.agentSocketPath), xpciPort));
  if (input.ivshmem) args.push(...standardDeviceArgs(optionValue(input.ivshmem.path), input.ivshmem.size));
  for (const device of input.extraDevices) args.push('-device', device);
  return args;
}

const hexSlot = (slot: number): string => `0x${slot.toString(16)}`;
