/**
 * An emulated device: the lifecycle state machine, the glue to its vfio-user transport, and the API
 * back-ends and users call (info, memory table, queues, IRQs, doorbells, attributes, region access,
 * selftest, events).
 */
import { EventEmitter } from 'node:events';
import { resolve as resolvePath } from 'node:path';
import {
  consoleLogger,
  emptyServerStats,
  IRQ_INDEX_NAMES,
  type IrqIndexName,
  type Logger,
  type LogRateLimit,
  PCI_NUM_REGIONS,
  PciRegion,
  rateLimitedLogger,
  type ServerOptions,
  type ServerStats,
  VfioUserServer,
} from '@emu/vfio-user';
import type { DeviceContext, DeviceImpl, EmudevDriver } from './driver.js';
import { EmudevError } from './errors.js';
import { GuestMemory } from './memory.js';
import { showText, showValue, textProblem, valueTextProblem } from './operator-text.js';
import { QueueTable } from './queues.js';
import {
  type DeviceCounters,
  type DeviceEvents,
  type DeviceInfo,
  type DeviceState,
  type DoorbellInfo,
  type IrqInfo,
  type MemRegion,
  memRegionOf,
  type QueueInfo,
  type SelftestResult,
} from './types.js';
import { buildSteps } from './undo.js';

export interface DeviceOptions {
  /** The vfio-user socket the device serves on. */
  path: string;
  logger?: Logger;
  /**
   * What a guest or client can make the device log: per kind of message and per level, per interval
   * (vfio-user's rateLimitedLogger; default DEFAULT_LOG_RATE_LIMIT, Linux's 10 per 5 s). false: no limit.
   */
  logRateLimit?: LogRateLimit | false;
  /** Transport settings: the socket's mode, owner and allowed peers, memory policy, limits. */
  server?: Omit<ServerOptions, 'path' | 'logger'>;
}

/** Which states each operation may start from. */
const ALLOWED: Record<'configure' | 'start' | 'stop' | 'reset', readonly DeviceState[]> = {
  configure: ['allocated', 'configured', 'stopped'],
  start: ['configured', 'stopped'],
  stop: ['started'],
  reset: ['configured', 'started', 'stopped'],
};

export class EmuDevice extends EventEmitter<DeviceEvents> {
  readonly path: string;
  readonly log: Logger;
  private current: DeviceState = 'allocated';
  private impl?: DeviceImpl;
  private server?: VfioUserServer;
  private readonly memory = new GuestMemory();
  private readonly queueTable: QueueTable;

  constructor(
    readonly name: string,
    readonly driver: EmudevDriver,
    private readonly options: DeviceOptions,
  ) {
    super();
    const badName = typeof name === 'string' ? textProblem(name, 'name') : 'is not a string';
    if (badName !== undefined)
      throw new EmudevError('EINVAL', `device name ${showText(String(name))} ${badName}`);
    if (typeof options.path !== 'string' || options.path === '') {
      throw new EmudevError('EINVAL', `${name}: a socket path is required`);
    }
    this.path = resolvePath(options.path);
    const badPath = textProblem(this.path, 'socketPath');
    if (badPath !== undefined) {
      throw new EmudevError('EINVAL', `${name}: socket path ${showText(this.path)} ${badPath}`);
    }
    const log = options.logger ?? consoleLogger('warn', name);
    this.log = options.logRateLimit === false ? log : rateLimitedLogger(log, options.logRateLimit);
    this.queueTable = new QueueTable((q) => this.emit('queue-state', q));
  }

  get state(): DeviceState {
    return this.current;
  }

  /** Validates `config` against the driver's schema and builds the device; replaces an earlier build. */
  async configure(config: unknown = {}): Promise<void> {
    this.expect('configure');
    const parsed = this.driver.config.safeParse(config);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
      throw new EmudevError(
        'EINVAL',
        `${this.name}: bad configuration: ${issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}`,
        issues,
      );
    }
    await this.release();
    // Each step's undo runs if a later one fails: a refused device leaves nothing behind.
    const { impl, server } = await buildSteps(async (undo) => {
      const impl = undo.push(await this.driver.probe(this.context(), parsed.data), (i) => this.discard(i));
      try {
        return { impl, server: this.transport(impl) };
      } catch (err) {
        throw new EmudevError(
          'EINVAL',
          `${this.name}: driver ${this.driver.name} built an invalid device: ${(err as Error).message}`,
        );
      }
    });
    this.server = server;
    this.impl = impl;
    impl.config.onFunctionLevelReset?.(() => this.resetState('flr'));
    this.transition('configured');
  }

  /** Starts serving on the socket. */
  async start(): Promise<void> {
    this.expect('start');
    const server = this.server!;
    await buildSteps(async (undo) => {
      try {
        undo.push(server.listen(), (s) => s.close());
      } catch (err) {
        const e = err as { code?: string; message: string };
        throw new EmudevError(e.code ?? 'EIO', `${this.name}: cannot serve on ${this.path}: ${e.message}`);
      }
      undo.push(this.memory.bind(server), () => this.memory.bind(undefined));
      await this.impl!.start?.();
    });
    this.transition('started');
  }

  /** Stops serving: the client (if any) is dropped, the socket file removed. Device state is kept. */
  async stop(): Promise<void> {
    this.expect('stop');
    await this.impl!.stop?.();
    this.server!.close();
    this.memory.bind(undefined);
    this.transition('stopped');
  }

  /** Stops if needed, releases the device, and fires 'destroyed'. Idempotent. */
  async close(): Promise<void> {
    if (this.current === 'closed') return;
    if (this.current === 'started') await this.stop();
    await this.release();
    this.transition('closed');
    this.emit('destroyed');
    this.removeAllListeners();
  }

  /** Back to power-on state: config space, the driver's state, the queues. */
  reset(): void {
    this.expect('reset');
    this.impl!.config.reset();
    this.resetState('api');
  }

  info(): DeviceInfo {
    const counts = this.server?.irqs.counts;
    return {
      name: this.name,
      driver: this.driver.name,
      type: this.driver.type,
      state: this.current,
      maxQueues: this.impl?.maxQueues ?? 0,
      numRegions: PCI_NUM_REGIONS,
      irqs: Object.fromEntries(IRQ_INDEX_NAMES.map((n) => [n, counts?.[n] ?? 0])) as DeviceInfo['irqs'],
      socket: {
        path: this.path,
        listening: this.server?.listening ?? false,
        connected: this.server?.client !== undefined,
      },
    };
  }

  /** The QEMU -device argument for this device. */
  qemuDeviceArg(): string {
    return JSON.stringify({ driver: 'vfio-user-pci', socket: { path: this.path, type: 'unix' } });
  }

  /** The driver's one-line summary (link, traffic, …), or '' if it has none or is not configured. */
  status(): string {
    try {
      return this.impl?.status?.() ?? '';
    } catch (err) {
      return `status unavailable: ${(err as Error).message}`;
    }
  }

  /** The driver's traffic counters; no queues for a driver that keeps none, or one whose counters fail. */
  counters(): DeviceCounters {
    try {
      return this.impl?.counters?.() ?? { queues: [] };
    } catch (err) {
      this.log.warn({ device: this.name }, `counters unavailable: ${(err as Error).message}`);
      return { queues: [] };
    }
  }

  stats(): ServerStats {
    const s = this.server?.stats;
    return s ? { ...s, commands: { ...s.commands }, errors: { ...s.errors } } : emptyServerStats();
  }

  memTable(): MemRegion[] {
    return this.memory.table();
  }

  queueInfo(id: number): QueueInfo | undefined {
    return this.queueTable.get(id);
  }

  queues(): QueueInfo[] {
    return this.queueTable.list();
  }

  irqInfo(vector: number, index: IrqIndexName = 'msix'): IrqInfo {
    const i = IRQ_INDEX_NAMES.indexOf(index);
    const count = this.server?.irqs.count(i) ?? 0;
    if (!Number.isInteger(vector) || vector < 0 || vector >= count) {
      throw new EmudevError('ENOENT', `${this.name}: no ${index} vector ${vector} (the device has ${count})`);
    }
    return { index, vector, enabled: this.server!.irqs.enabled(i, vector) };
  }

  doorbellInfo(id: number): DoorbellInfo | undefined {
    const d = this.impl?.doorbells?.find((x) => x.id === id);
    return d && { ...d };
  }

  /** The attributes the device has, with whether each can be set. */
  attributes(): Array<{ name: string; description: string; writable: boolean }> {
    return Object.entries(this.impl?.attributes ?? {}).map(([name, a]) => ({
      name,
      description: a.description,
      writable: a.set !== undefined,
    }));
  }

  getAttr(name: string): unknown {
    return this.attribute(name).get();
  }

  setAttr(name: string, value: unknown): void {
    const a = this.attribute(name);
    if (!a.set) throw new EmudevError('EACCES', `${this.name}: attribute ${name} is read-only`);
    // Text an operator gives (a pcap path, a label) follows emu's one rule before the schema sees it.
    const badText = valueTextProblem(value, 'value');
    if (badText !== undefined) throw new EmudevError('EINVAL', `${this.name}: attribute ${name}: ${badText}`);
    const parsed = a.schema.safeParse(value);
    if (!parsed.success) {
      throw new EmudevError(
        'EINVAL',
        `${this.name}: attribute ${name}: ${showValue(value)}: ${parsed.error.issues.map((i) => i.message).join('; ')}`,
      );
    }
    a.set(parsed.data);
  }

  /** on() that hands back its own undo. */
  subscribe<E extends keyof DeviceEvents>(
    event: E,
    listener: (...args: DeviceEvents[E]) => void,
  ): () => void {
    this.on(event, listener as never);
    return () => this.off(event, listener as never);
  }

  /** Reads a region of the device as the guest would (config space is region 7). */
  regionRead(index: number, offset: number, length: number): Buffer {
    const { read } = this.region(index, offset, length);
    const out = read(offset, length);
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  }

  regionWrite(index: number, offset: number, data: Uint8Array): void {
    this.region(index, offset, data.length).write(
      offset,
      Buffer.from(data.buffer, data.byteOffset, data.byteLength),
    );
  }

  /** Generic checks (config space, regions) and the driver's own. */
  async selftest(): Promise<SelftestResult> {
    if (!this.impl) throw new EmudevError('ESTATE', `${this.name}: selftest needs a configured device`);
    const checks: SelftestResult['checks'] = [];
    const check = (name: string, fn: () => string | undefined) => {
      try {
        const problem = fn();
        checks.push(problem ? { name, ok: false, detail: problem } : { name, ok: true });
      } catch (err) {
        checks.push({ name, ok: false, detail: (err as Error).message });
      }
    };
    check('config space identity', () => {
      const vendor = this.impl!.config.readU16(0);
      return vendor === 0xffff || vendor === 0 ? `vendor id 0x${vendor.toString(16)}` : undefined;
    });
    for (let i = 0; i <= PciRegion.ROM; i++) {
      const spec = this.impl.regions[i];
      if (!spec?.read) continue;
      check(`region ${i} reads`, () => {
        const got = spec.read!(0, 4).byteLength;
        return got === 4 ? undefined : `read of 4 bytes returned ${got}`;
      });
    }
    try {
      checks.push(...((await this.impl.selftest?.()) ?? []));
    } catch (err) {
      checks.push({ name: `${this.driver.name} selftest`, ok: false, detail: (err as Error).message });
    }
    return { ok: checks.every((c) => c.ok), checks };
  }

  private attribute(name: string) {
    const badName = typeof name === 'string' ? textProblem(name, 'key') : 'is not a string';
    if (badName !== undefined) {
      throw new EmudevError('EINVAL', `${this.name}: attribute name ${showText(String(name))} ${badName}`);
    }
    const attrs = this.impl?.attributes ?? {};
    // Own keys only: a name such as __proto__ or toString is an unknown name, not Object.prototype's.
    const a = Object.hasOwn(attrs, name) ? attrs[name] : undefined;
    if (!a) {
      const known = Object.keys(attrs);
      throw new EmudevError(
        'ENOENT',
        `${this.name}: no attribute ${name} (attributes: ${known.join(', ') || 'none'})`,
      );
    }
    return a;
  }

  private region(index: number, offset: number, length: number) {
    if (!this.impl) throw new EmudevError('ESTATE', `${this.name}: region access needs a configured device`);
    const cfg = this.impl.config;
    const spec =
      index === PciRegion.CONFIG
        ? {
            size: cfg.size,
            read: (o: number, n: number) => cfg.read(o, n),
            write: (o: number, d: Buffer) => cfg.write(o, d),
          }
        : this.impl.regions[index];
    const size = spec?.size ?? (index <= PciRegion.BAR5 ? Number(cfg.barSize(index) ?? 0) : 0);
    if (
      !spec?.read ||
      !spec.write ||
      !Number.isInteger(offset) ||
      offset < 0 ||
      length < 0 ||
      offset + length > size
    ) {
      throw new EmudevError(
        'EINVAL',
        `${this.name}: region ${index} access [${offset}, +${length}) is invalid`,
      );
    }
    return { read: spec.read, write: spec.write };
  }

  private context(): DeviceContext {
    return {
      name: this.name,
      log: this.log,
      memory: this.memory,
      queues: this.queueTable,
      irqs: {
        trigger: (vector, index = 'msix') => this.server?.triggerIrq(index, vector) ?? false,
        enabled: (vector, index = 'msix') =>
          this.server?.irqs.enabled(IRQ_INDEX_NAMES.indexOf(index), vector) ?? false,
        lines: (index = 'msix') => this.server?.irqs.lines(IRQ_INDEX_NAMES.indexOf(index)),
      },
    };
  }

  /** The vfio-user server for a device build, its events turned into the device's. */
  private transport(impl: DeviceImpl): VfioUserServer {
    const server = new VfioUserServer(
      {
        config: impl.config,
        regions: impl.regions,
        irqs: impl.irqs,
        reset: () => this.resetDeviceOnly(),
        disconnected: () => {
          impl.disconnected?.();
          this.queueTable.clear();
        },
      },
      { path: this.path, name: this.name, logger: this.log, ...this.options.server },
    );
    server.on('connect', () => this.emit('ready'));
    // The whole table only when a listener reads it: building it for every map would make a guest's
    // n maps cost n² (a vIOMMU guest maps tens of thousands).
    const device = this;
    server.on('dma-map', (r) => {
      if (this.listenerCount('mem-update') === 0) return;
      this.emit('mem-update', {
        kind: 'map',
        region: memRegionOf(r),
        get table() {
          return device.memTable();
        },
      });
    });
    server.on('dma-unmap', (r) => {
      if (this.listenerCount('mem-update') === 0) return;
      const region = memRegionOf(r);
      this.emit('mem-update', {
        kind: 'unmap',
        region,
        get table() {
          return device.memTable().filter((m) => m.iova !== region.iova);
        },
      });
    });
    server.on('irqs', (index) => this.emit('irq-update', { index }));
    server.on('reset', () => this.emit('reset', { cause: 'client' }));
    server.on('disconnect', (reason) => this.emit('disconnect', { reason: reason?.message }));
    return server;
  }

  /** A client DEVICE_RESET: the server already reset config space; the event follows from the server. */
  private resetDeviceOnly(): void {
    this.impl?.reset?.();
    this.queueTable.clear();
  }

  private resetState(cause: 'flr' | 'api'): void {
    this.resetDeviceOnly();
    this.emit('reset', { cause });
  }

  private async release(): Promise<void> {
    const impl = this.impl;
    this.impl = undefined;
    this.server = undefined;
    this.memory.bind(undefined);
    if (!impl) return;
    this.queueTable.clear();
    await this.discard(impl);
  }

  /** Releases what a driver's probe built: the device's own close, then the driver's remove. */
  private async discard(impl: DeviceImpl): Promise<void> {
    try {
      await impl.close?.();
    } finally {
      await this.driver.remove?.(impl);
    }
  }

  private expect(op: keyof typeof ALLOWED): void {
    if (!ALLOWED[op].includes(this.current)) {
      throw new EmudevError('ESTATE', `${this.name}: cannot ${op} a device that is ${this.current}`);
    }
  }

  private transition(to: DeviceState): void {
    const from = this.current;
    this.current = to;
    this.log.info({ device: this.name, from, to }, 'state');
    this.emit('state', { from, to });
  }
}
