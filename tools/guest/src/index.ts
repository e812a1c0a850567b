export {
  type BootGuestOptions,
  type BootGuestResult,
  bootGuest,
  DEFAULT_KERNEL_ARGS,
  type GuestDevice,
  type VfioUserSocket,
} from './boot.js';
export { type CpioEntry, CpioWriter, type ParsedCpioEntry, readCpio } from './cpio.js';
export {
  buildBaseInitramfs,
  buildBootInitramfs,
  buildModulesInitramfs,
  GUEST_PROBE_PATH,
  initScript,
  type ParsedConsole,
  parseConsole,
} from './initramfs.js';
export {
  type ModuleIndex,
  type ModuleResolution,
  parseModulesDep,
  type ResolvedModule,
  resolveModules,
} from './modules.js';
export { awaitSignal, ncReceive, pingForever, signal, up, waitPing } from './scripts.js';
export {
  DEFAULT_CACHE_DIR,
  ensureGuestEnvironment,
  type GuestEnvironment,
  type GuestEnvironmentOptions,
  type GuestManifest,
  guestCacheDir,
} from './setup.js';
