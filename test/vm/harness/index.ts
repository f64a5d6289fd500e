/** The xpci VM test bed (docs/testing.md): throwaway QEMU guests with emulated PCI devices. */
export { Guest, QEMU_BINARY, type BootOptions, type ExecOptions, type ExecResult } from './guest.js';
export { runInGuest, type OneShotOptions, type OneShotResult } from './run-in-guest.js';
export { qemuAvailable, announceSkip } from './availability.js';
export { GuestError, GuestTimeoutError, GuestCrashedError, GuestAssetsUnavailableError } from './errors.js';
export { STANDARD_DEVICES, type DeviceSet, type XpciPortMode } from './devices.js';
export { ensureGuestAssets, GUEST_MODULES, type GuestAssets } from './assets.js';
export { startBackgroundExport, type BackgroundExport } from './background-export.js';
