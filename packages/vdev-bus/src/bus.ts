/**
 * The virtual-device bus: devargs in, serving devices out. probe() builds one device (parse, validate
 * against its driver's schema, check the socket path, allocate, configure, start) and undoes all of it
 * on failure; scan() probes a list all-or-nothing; remove() hot-removes a device, dropping its client.
 * Operations run one at a time, in call order, so a probe and a remove never interleave.
 */
import { EventEmitter } from 'node:events';
import { resolve } from 'node:path';
import {
  defaultRegistry,
  type EmuDevice,
  type EmudevDriver,
  EmudevError,
  type EmudevRegistry,
} from '@emu/emudev';
import { type Devargs, DevargsError, parseDevargs } from './devargs.js';
import { type Logger, stderrWarnings } from './logger.js';
import { BUS_KEYS, coerceArgs, PATH_KEY } from './schema.js';
import { parseSocketKeys, type SocketSettings } from './socket-access.js';
import { prepareSocketPath, showSocketPath, socketPathProblem } from './socket-path.js';

export interface VdevBusOptions {
  /** For the bus and the devices it creates; default: warnings and errors on stderr. */
  logger?: Logger;
  /** How long each vfio-user message took a device's JavaScript (ServerOptions.onHandled), by device. */
  onHandled?(device: string, command: string, seconds: number): void;
}

export interface VdevBusEvents {
  /** A device was probed and serves. */
  add: [EmuDevice];
  /** A device left the bus (remove(), removeAll(), or closed by someone else); it is closed. */
  remove: [EmuDevice];
}

/** Devargs checked against the registry and the driver: everything probe() needs but the socket. */
export interface DeviceRequest {
  /** The devargs as given, parsed. */
  devargs: Devargs;
  name: string;
  driver: EmudevDriver;
  /** Absolute socket path. */
  path: string;
  /** Who may reach the socket, and what memory it takes (the socket keys). */
  server: SocketSettings;
  /** The driver's config input: the devargs values in the schema's types (defaults applied by zod later). */
  config: Record<string, unknown>;
}

export class VdevBus extends EventEmitter<VdevBusEvents> {
  private readonly log: Logger;
  private readonly onHandled?: VdevBusOptions['onHandled'];
  private readonly deviceMap = new Map<string, EmuDevice>();
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    readonly registry: EmudevRegistry = defaultRegistry,
    options: VdevBusOptions = {},
  ) {
    super();
    this.log = options.logger ?? stderrWarnings;
    this.onHandled = options.onHandled;
  }

  /** The devices on the bus, in the order they were added. */
  devices(): EmuDevice[] {
    return [...this.deviceMap.values()];
  }

  get(name: string): EmuDevice | undefined {
    return this.deviceMap.get(name);
  }

  /** The device called `name`; EmudevError ENOENT naming the devices there are if there is none. */
  require(name: string): EmuDevice {
    const device = this.deviceMap.get(name);
    if (device) return device;
    const names = [...this.deviceMap.keys()];
    throw new EmudevError('ENOENT', `no device ${name} on the bus (devices: ${names.join(', ') || 'none'})`);
  }

  /**
   * Checks devargs without side effects: syntax, driver, name, keys, values, path. Throws a
   * DevargsError with the message a user should see.
   */
  validate(text: string): DeviceRequest {
    const devargs = parseDevargs(text);
    const { name } = devargs;
    const driver = this.registry.getDriver(devargs.driver);
    if (!driver) {
      const known = this.registry.drivers().map((d) => d.name);
      throw new DevargsError(
        'ENODRIVER',
        `unknown driver "${devargs.driver}" for device ${name} (drivers: ${known.join(', ') || 'none registered'})`,
        name,
      );
    }
    if (this.deviceMap.has(name) || this.registry.get(name)) {
      throw new DevargsError('EDUPLICATE', `duplicate device name ${name}`, name);
    }
    // No prototype: a key such as __proto__ is stored like any other, and so refused as unknown.
    const bus: Record<string, string | undefined> = Object.create(null);
    const rest: Record<string, string> = Object.create(null);
    for (const [key, value] of Object.entries(devargs.args)) {
      if (BUS_KEYS.some((k) => k.key === key)) bus[key] = value;
      else rest[key] = value;
    }
    const rawPath = bus[PATH_KEY.key];
    const config = coerceArgs(name, driver, rest);
    const server = parseSocketKeys(name, bus);
    if (rawPath === undefined || rawPath === '') {
      throw new DevargsError('EREQUIRED', `${name}: path is required`, name, PATH_KEY.key);
    }
    const path = resolve(rawPath);
    const badPath = socketPathProblem(path);
    if (badPath !== undefined) {
      throw new DevargsError(
        'EPATH',
        `${name}: socket path ${showSocketPath(path)}: ${badPath}`,
        name,
        'path',
      );
    }
    const user = this.registry.list().find((d) => d.path === path);
    if (user) {
      throw new DevargsError(
        'EADDRINUSE',
        `${name}: socket path ${path} is already used by ${user.name}`,
        name,
        'path',
      );
    }
    return { devargs, name, driver, path, server, config };
  }

  /**
   * Creates a device from devargs and starts serving it: hot-add when the bus already serves others.
   * On failure nothing is left behind (no device, no socket file) and the error says why: a
   * DevargsError for the devargs and the socket path, the EmudevError for what emudev refused.
   */
  probe(devargs: string): Promise<EmuDevice> {
    return this.run(() => this.probeOne(this.validate(devargs)));
  }

  /**
   * Probes every devargs of the list, in order, all-or-nothing: all are validated before any is built,
   * and if one fails the ones already built are removed before the error is thrown.
   */
  scan(list: readonly string[]): Promise<EmuDevice[]> {
    return this.run(async () => {
      const requests = list.map((text) => this.validate(text));
      const names = new Set<string>();
      const paths = new Map<string, string>();
      for (const r of requests) {
        if (names.has(r.name))
          throw new DevargsError('EDUPLICATE', `duplicate device name ${r.name}`, r.name);
        names.add(r.name);
        const other = paths.get(r.path);
        if (other) {
          throw new DevargsError(
            'EADDRINUSE',
            `${r.name}: socket path ${r.path} is already used by ${other}`,
            r.name,
            'path',
          );
        }
        paths.set(r.path, r.name);
      }
      const added: EmuDevice[] = [];
      try {
        for (const r of requests) added.push(await this.probeOne(r));
      } catch (err) {
        for (const d of added.reverse())
          await this.removeOne(d.name).catch((e) => this.logRemoveFailure(d.name, e));
        throw err;
      }
      return added;
    });
  }

  /**
   * Hot-remove: closes the device, which drops its client (if one is connected), removes its socket
   * file and releases it from the registry. The other devices keep serving.
   */
  remove(name: string): Promise<void> {
    return this.run(() => this.removeOne(name));
  }

  /** Removes every device, last added first; tries them all and throws the first failure. */
  removeAll(): Promise<void> {
    return this.run(async () => {
      let first: unknown;
      for (const d of this.devices().reverse()) {
        await this.removeOne(d.name).catch((err) => {
          this.logRemoveFailure(d.name, err);
          first ??= err;
        });
      }
      if (first !== undefined) throw first;
    });
  }

  private async probeOne(req: DeviceRequest): Promise<EmuDevice> {
    // Re-checked here: an earlier operation in the queue may have taken the name or the path.
    if (this.deviceMap.has(req.name) || this.registry.get(req.name)) {
      throw new DevargsError('EDUPLICATE', `duplicate device name ${req.name}`, req.name);
    }
    const path = await prepareSocketPath(req.name, req.path, this.log);
    const device = this.registry.allocate(req.name, req.driver.name, {
      path,
      logger: this.log,
      server: { ...req.server, onHandled: this.onHandled && ((c, s) => this.onHandled!(req.name, c, s)) },
    });
    try {
      await device.configure(req.config);
      await device.start();
    } catch (err) {
      await this.registry.release(req.name).catch((e) => this.logRemoveFailure(req.name, e));
      throw probeError(req, err);
    }
    this.deviceMap.set(device.name, device);
    device.once('destroyed', () => {
      this.deviceMap.delete(device.name);
      this.log.info({ device: device.name }, 'device removed');
      this.emit('remove', device);
    });
    this.log.info({ device: device.name, driver: req.driver.name, path }, 'device added');
    this.emit('add', device);
    return device;
  }

  private async removeOne(name: string): Promise<void> {
    const device = this.require(name);
    try {
      if (this.registry.get(name) === device) await this.registry.release(name);
      else await device.close();
    } finally {
      // A close that threw may not have fired 'destroyed': the device leaves the bus all the same.
      if (this.deviceMap.get(name) === device) {
        this.deviceMap.delete(name);
        this.emit('remove', device);
      }
    }
  }

  private logRemoveFailure(name: string, err: unknown): void {
    this.log.error(
      { device: name, err: (err as Error)?.message ?? String(err) },
      'removing the device failed',
    );
  }

  private run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.catch(() => {});
    return result;
  }
}

/** Devargs and emudev errors go out as they are (their messages name the device); others get named. */
function probeError(req: DeviceRequest, err: unknown): Error {
  if (err instanceof DevargsError || err instanceof EmudevError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const wrapped = new EmudevError('EPROBE', `${req.name}: driver ${req.driver.name} failed: ${message}`);
  (wrapped as Error).cause = err;
  return wrapped;
}
