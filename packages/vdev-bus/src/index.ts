/**
 * @emu/vdev-bus: the virtual-device bus. DPDK-style devargs (`emu_gpio0,path=/tmp/emu/gpio0.sock,lines=8`)
 * checked against each driver's typed config schema, and the devices they describe probed, served and
 * removed, at startup or at runtime.
 */

export { type AccountFiles, gidOf, uidOf } from './accounts.js';
export { type DeviceRequest, VdevBus, type VdevBusEvents, type VdevBusOptions } from './bus.js';
export {
  type Devargs,
  DevargsError,
  type DevargsErrorCode,
  formatDevargs,
  parseDevargs,
  splitDeviceName,
} from './devargs.js';
export type { Logger } from './logger.js';
export {
  BUS_KEYS,
  coerceArgs,
  type DriverInfo,
  describeDriver,
  formatDefault,
  formatDriverHelp,
  formatKeys,
  type KeyInfo,
  PATH_KEY,
  parseBoolean,
  SOCKET_KEYS,
} from './schema.js';
export { parseSocketKeys, type SocketSettings } from './socket-access.js';
export { MAX_SOCKET_PATH_BYTES, prepareSocketPath, socketPathProblem } from './socket-path.js';
