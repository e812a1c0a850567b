/** The driver registry and the devices allocated from it. */
import { resolve as resolvePath } from 'node:path';
import { type DeviceOptions, EmuDevice } from './device.js';
import { DRIVER_NAME, type EmudevDriver } from './driver.js';
import { EmudevError } from './errors.js';

export class EmudevRegistry {
  private readonly driverMap = new Map<string, EmudevDriver>();
  private readonly deviceMap = new Map<string, EmuDevice>();

  registerDriver(driver: EmudevDriver): void {
    if (!DRIVER_NAME.test(driver.name)) {
      throw new EmudevError(
        'EINVAL',
        `driver name "${driver.name}" must be lower-case letters and underscores`,
      );
    }
    if (this.driverMap.has(driver.name))
      throw new EmudevError('EEXIST', `driver ${driver.name} is already registered`);
    if (typeof driver.probe !== 'function' || !driver.config?.safeParse) {
      throw new EmudevError(
        'EINVAL',
        `driver ${driver.name} needs a zod object \`config\` and a \`probe\` function`,
      );
    }
    this.driverMap.set(driver.name, driver);
  }

  /** Forgets a driver; its devices must be released first. */
  unregisterDriver(name: string): void {
    const users = this.list().filter((d) => d.driver.name === name);
    if (users.length > 0) {
      throw new EmudevError(
        'EBUSY',
        `driver ${name} still has devices: ${users.map((d) => d.name).join(', ')}`,
      );
    }
    this.driverMap.delete(name);
  }

  getDriver(name: string): EmudevDriver | undefined {
    return this.driverMap.get(name);
  }

  drivers(): EmudevDriver[] {
    return [...this.driverMap.values()];
  }

  /** A new device of a registered driver, bound to its socket path; configure() and start() it next. */
  allocate(name: string, driverName: string, options: DeviceOptions): EmuDevice {
    if (this.deviceMap.has(name)) throw new EmudevError('EEXIST', `device name ${name} is already in use`);
    const driver = this.driverMap.get(driverName);
    if (!driver) {
      throw new EmudevError(
        'ENOENT',
        `unknown driver "${driverName}" (drivers: ${[...this.driverMap.keys()].join(', ') || 'none'})`,
      );
    }
    const taken = this.list().find((d) => d.path === resolvePath(options.path ?? ''));
    if (taken)
      throw new EmudevError('EADDRINUSE', `socket path ${taken.path} is already used by ${taken.name}`);
    const device = new EmuDevice(name, driver, options);
    this.deviceMap.set(name, device);
    device.once('destroyed', () => this.deviceMap.delete(name));
    return device;
  }

  get(name: string): EmuDevice | undefined {
    return this.deviceMap.get(name);
  }

  list(): EmuDevice[] {
    return [...this.deviceMap.values()];
  }

  /** Closes a device (if it is not closed yet) and forgets it. */
  async release(name: string): Promise<void> {
    const device = this.deviceMap.get(name);
    if (!device) throw new EmudevError('ENOENT', `no device named ${name}`);
    this.deviceMap.delete(name);
    await device.close();
  }
}

/** The registry the `emu` command and the vdev bus use unless given another. */
export const defaultRegistry = new EmudevRegistry();
