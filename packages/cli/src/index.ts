/** @emu/cli: the `emu` command (bin/emu.js is a wrapper around main()). */

export { type ConfigFile, ConfigFileError, checkConfigDevices, readConfigFile } from './config-file.js';
export { ControlClient, ControlError } from './control/client.js';
export { type ControlContext, METHODS, type MethodName } from './control/methods.js';
export { MAX_LINE_BYTES, RpcErrorCode } from './control/protocol.js';
export {
  CONTROL_LIMITS,
  type ControlLimits,
  ControlServer,
  type ControlServerOptions,
} from './control/server.js';
export { type CtlIo, ctlMain, DEFAULT_CONTROL_PATH } from './ctl.js';
export {
  DriverModuleError,
  driverModuleUrl,
  loadDriverModule,
  registerBuiltinDrivers,
  registerDriverModules,
} from './drivers.js';
export { type LevelLogger, LOG_LEVELS, type LogLevel, streamLogger } from './logger.js';
export {
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  type MainOptions,
  main,
  SHUTDOWN_TIMEOUT_MS,
  statusLines,
} from './main.js';
export { METRICS_LIMITS, Metrics, type MetricsSource, parseListen } from './metrics.js';
export type { Output } from './output.js';
export { type ProcessSignal, processSignal } from './signals.js';
export {
  type DataPlaneSnapshot,
  type DeviceSnapshot,
  deviceSnapshot,
  linkText,
  queuePairs,
  queueTotal,
  type StatsSnapshot,
  statsSnapshot,
  statsSnapshotInSlices,
} from './snapshot.js';
export { type DeviceRates, deviceRates, renderStats, type StatsIo, si, statsMain } from './stats-view.js';
