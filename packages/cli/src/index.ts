/** @emu/cli: the `emu` command (bin/emu.js is a wrapper around main()). */
export {
  DriverModuleError,
  driverModuleUrl,
  loadDriverModule,
  registerBuiltinDrivers,
  registerDriverModules,
} from './drivers.js';
export { LOG_LEVELS, type LogLevel, streamLogger } from './logger.js';
export {
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  type MainOptions,
  main,
  type Output,
  statusLines,
} from './main.js';
export { type ProcessSignal, processSignal } from './signals.js';
