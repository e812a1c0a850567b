/**
 * @emu/driver-iavf: an emulated Intel Adaptive Virtual Function (8086:1889) the stock Linux iavf driver
 * binds to. Register it with an emudev registry, or use it through the `emu` command:
 * `emu --vdev emu_iavf0,path=/tmp/emu/iavf0.sock,mac=02:00:00:00:00:0a,queues=4`.
 */
import { defaultRegistry, type EmudevRegistry } from '@emu/emudev';
import { iavfDriver } from './driver.js';

export { AdminQueue, AqRetval } from './admin-queue.js';
export { type RegisterFamily, RegisterFile } from './bar0.js';
export * from './constants.js';
export { IavfDevice, type IavfOptions } from './device.js';
export { createIavfDriver, defaultMac, defaultNetworks, iavfConfig, iavfDriver } from './driver.js';
export { type VfConfig, VirtualFunction } from './pf.js';

/** Registers emu_iavf with a registry (the default one unless given), once. */
export function register(registry: EmudevRegistry = defaultRegistry): void {
  if (!registry.getDriver(iavfDriver.name)) registry.registerDriver(iavfDriver);
}
