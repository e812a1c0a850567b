/**
 * `--metrics HOST:PORT`: Prometheus text format at http://HOST:PORT/metrics, made with prom-client (the
 * Node client Prometheus lists). Counters are read from the devices at each scrape (statsSnapshot), so
 * nothing is counted twice or runs on the data path; vfio-user message handling times are observed as
 * they happen (VdevBus onHandled) into a histogram. Process metrics (RSS, fds, event loop lag) come
 * from prom-client's defaults.
 *
 * Whoever reaches the port may be hostile, and the event loop it shares is every device's: what one
 * connection may make emu hold and do is bounded (METRICS_LIMITS; one request per connection, see
 * metrics-http.ts), concurrent scrapes share one, and a scrape runs in slices.
 */
import type { AddressInfo } from 'node:net';
import { setImmediate } from 'node:timers/promises';
import { type EmuDevice, showText, textProblem } from '@emu/emudev';
import { type DataPlane, Watchdog } from '@emu/native';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { type OneRequestHttpLimits, OneRequestHttpServer } from './metrics-http.js';
import { type DeviceSnapshot, type StatsSnapshot, statsSnapshot, statsSnapshotInSlices } from './snapshot.js';

/** The metrics endpoint's bounds, one row each (docs/reliability.md, "Operator surfaces"). */
export const METRICS_LIMITS = {
  /** Connections answered at once; as many more are told 503, past that the kernel's are closed. */
  maxConnections: 16,
  /** Bytes of a request's head; nothing after the head is parsed (metrics-http.ts). */
  maxHeaderBytes: 8 * 1024,
  /** A request's head must arrive within this (a slow client gets 408). */
  headersTimeoutMs: 5_000,
  /** A connection with no traffic this long is destroyed: an answer left unread. */
  socketTimeoutMs: 10_000,
  /** After the answer, the client's leftovers (pipelined requests) are dropped for this long... */
  lingerMs: 2_000,
  /** ...or up to this many bytes, then the socket is closed. */
  lingerBytes: 256 * 1024,
  /** Command labels per device in the latency histogram: past it, "other" (a client picks the command). */
  maxCommandLabels: 24,
} as const;

/** Seconds: from a register read answered at once (~10 µs) to a slow DMA_MAP (~100 ms). */
const LATENCY_BUCKETS = [5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1, 1];

export interface MetricsSource {
  devices(): EmuDevice[];
  plane: DataPlane;
  startedAt: number;
}

/** `HOST:PORT` (an IPv6 host in brackets: `[::1]:9464`); throws a message for the user. */
export function parseListen(text: string): { host: string; port: number } {
  const bad = textProblem(text, 'value');
  if (bad !== undefined) throw new Error(`${showText(text)} ${bad}`);
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535)
    throw new Error(`expected HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464, not ${text}`);
  return { host: m[1] ?? m[2], port };
}

export class Metrics {
  readonly registry = new Registry();
  readonly #latency: Histogram<'device' | 'command'>;
  /** The commands timed per device, to drop a removed device's series. */
  readonly #timed = new Map<string, Set<string>>();
  #http?: OneRequestHttpServer;
  /** The devices read once for the scrape under way (scrape()). */
  #reading?: StatsSnapshot;
  /** The scrape under way, which every request arriving meanwhile shares. */
  #scraping?: Promise<string>;

  constructor(private readonly source: MetricsSource) {
    collectDefaultMetrics({ register: this.registry, prefix: 'emu_' });
    this.#latency = new Histogram({
      name: 'emu_vfio_user_message_duration_seconds',
      help: 'How long JavaScript took to handle a vfio-user message, by device and command (natively answered register accesses are not in it: see emu_vfio_user_trapped_total)',
      labelNames: ['device', 'command'],
      buckets: LATENCY_BUCKETS,
      registers: [this.registry],
    });
    this.#define();
  }

  /**
   * A message handling time (VdevBus's onHandled). The command is the client's choice: vfio-user
   * names one it does not know UNKNOWN(n), which is folded into UNKNOWN, and past maxCommandLabels
   * distinct ones a device's are counted as "other", so a client cannot make the series grow.
   */
  observe(device: string, command: string, seconds: number): void {
    const commands = this.#timed.get(device) ?? new Set<string>();
    this.#timed.set(device, commands);
    let label = command.startsWith('UNKNOWN(') ? 'UNKNOWN' : command;
    if (!commands.has(label)) {
      if (commands.size >= METRICS_LIMITS.maxCommandLabels - 1) label = 'other';
      commands.add(label);
    }
    this.#latency.observe({ device, command: label }, seconds);
  }

  /** A device went away: its histogram series go with it. */
  forget(device: string): void {
    for (const command of this.#timed.get(device) ?? []) this.#latency.remove({ device, command });
    this.#timed.delete(device);
  }

  /**
   * Serves GET /metrics; resolves with the address bound (port 0: one the kernel chose). `limits`
   * replaces the HTTP rows of METRICS_LIMITS it names (tests, the fuzz target).
   */
  async listen(host: string, port: number, limits: Partial<OneRequestHttpLimits> = {}): Promise<AddressInfo> {
    const http = new OneRequestHttpServer({ ...METRICS_LIMITS, ...limits }, async (_method, path) => {
      if (path !== '/metrics')
        return { status: 404, type: 'text/plain', body: 'emu serves metrics at /metrics\n' };
      return { status: 200, type: this.registry.contentType, body: await this.scrape() };
    });
    const address = await http.listen(host, port);
    this.#http = http;
    return address;
  }

  /**
   * The Prometheus text: the devices read once, for every metric of it. Scrapes asked for while one
   * runs get its text: however many come at once, one is made. It runs in slices (the devices a few at
   * a time, then each metric), with a turn of the event loop between them.
   */
  scrape(): Promise<string> {
    this.#scraping ??= this.#scrapeOnce().finally(() => {
      this.#scraping = undefined;
    });
    return this.#scraping;
  }

  async #scrapeOnce(): Promise<string> {
    const { devices, plane, startedAt } = this.source;
    this.#reading = await statsSnapshotInSlices(devices(), plane, startedAt);
    try {
      const texts: string[] = [];
      for (const metric of this.registry.getMetricsAsArray()) {
        await setImmediate();
        texts.push(await this.registry.getSingleMetricAsString((metric as { name: string }).name));
      }
      // As Registry.metrics() joins them (Prometheus text format).
      return `${texts.join('\n\n')}\n`;
    } finally {
      this.#reading = undefined;
    }
  }

  async close(): Promise<void> {
    const http = this.#http;
    this.#http = undefined;
    await http?.close();
  }

  /** Connections the endpoint holds now (for tests and the fuzz target). */
  get connections(): number {
    return this.#http?.connections ?? 0;
  }

  /** The metrics read from one snapshot per scrape. */
  #define(): void {
    // The reading scrape() took for every collect() of it; one of its own for a registry read otherwise.
    const read = () =>
      this.#reading ?? statsSnapshot(this.source.devices(), this.source.plane, this.source.startedAt);
    const registers = [this.registry];
    type DeviceField =
      | 'commands'
      | 'errors'
      | 'trapped'
      | 'irqs'
      | 'irqsDropped'
      | 'dmaReadBytes'
      | 'dmaWriteBytes'
      | 'memoryFaults';
    const deviceCounter = (name: string, help: string, field: DeviceField) =>
      new Counter({
        name,
        help,
        labelNames: ['device'],
        registers,
        collect() {
          this.reset();
          for (const d of read().devices) this.inc({ device: d.name }, d[field]);
        },
      });
    deviceCounter(
      'emu_vfio_user_messages_total',
      'vfio-user messages handled, natively answered ones included',
      'commands',
    );
    deviceCounter('emu_vfio_user_errors_total', 'vfio-user error replies sent', 'errors');
    deviceCounter(
      'emu_vfio_user_trapped_total',
      'register accesses answered by the native socket thread',
      'trapped',
    );
    deviceCounter('emu_interrupts_total', 'interrupts raised to the guest', 'irqs');
    deviceCounter(
      'emu_interrupts_dropped_total',
      "interrupts the client's eventfd could not take",
      'irqsDropped',
    );
    deviceCounter(
      'emu_dma_read_bytes_total',
      'bytes read from fd-less guest memory by DMA_READ',
      'dmaReadBytes',
    );
    deviceCounter(
      'emu_dma_write_bytes_total',
      'bytes written to fd-less guest memory by DMA_WRITE',
      'dmaWriteBytes',
    );
    deviceCounter('emu_memory_faults_total', 'faults in guest memory whose file shrank', 'memoryFaults');

    new Gauge({
      name: 'emu_device_info',
      help: 'one series per device, with its driver and type',
      labelNames: ['device', 'driver', 'type'],
      registers,
      collect() {
        this.reset();
        for (const d of read().devices) this.set({ device: d.name, driver: d.driver, type: d.type }, 1);
      },
    });
    // A value per device; undefined: the device has none (a GPIO has no link).
    const deviceGauge = (name: string, help: string, value: (d: DeviceSnapshot) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['device'],
        registers,
        collect() {
          this.reset();
          for (const d of read().devices) {
            const v = value(d);
            if (v !== undefined) this.set({ device: d.name }, v);
          }
        },
      });
    deviceGauge('emu_device_connected', 'whether a vfio-user client (QEMU) is connected', (d) =>
      d.socket.connected ? 1 : 0,
    );
    deviceGauge('emu_link_up', "a NIC's link as the guest is told it", (d) =>
      d.link ? (d.link.up ? 1 : 0) : undefined,
    );
    deviceGauge('emu_link_speed_mbps', "a NIC's link speed", (d) => d.link?.speedMbps);

    // The client's budget, per device and resource (docs/reliability.md, "The per-client budget").
    const budgetMetric = (
      kind: typeof Gauge | typeof Counter,
      name: string,
      help: string,
      field: 'used' | 'limit' | 'refused',
    ) =>
      new kind({
        name,
        help,
        labelNames: ['device', 'resource'],
        registers,
        collect() {
          this.reset();
          for (const d of read().devices) {
            for (const [resource, line] of Object.entries(d.budget)) {
              const labels = { device: d.name, resource };
              if (this instanceof Gauge) this.set(labels, line[field]);
              else (this as Counter).inc(labels, line[field]);
            }
          }
        },
      });
    budgetMetric(Gauge, 'emu_client_budget_used', "what a device's client holds of a resource", 'used');
    budgetMetric(Gauge, 'emu_client_budget_limit', "a device's client's limit of a resource now", 'limit');
    budgetMetric(Counter, 'emu_client_budget_refused_total', 'requests refused past the budget', 'refused');

    const queueCounter = (name: string, help: string, field: 'packets' | 'bytes' | 'drops' | 'errors') =>
      new Counter({
        name,
        help,
        labelNames: ['device', 'queue', 'direction'],
        registers,
        collect() {
          this.reset();
          for (const d of read().devices) {
            for (const q of d.queues)
              this.inc({ device: d.name, queue: String(q.queue), direction: q.direction }, q[field]);
          }
        },
      });
    queueCounter('emu_queue_packets_total', 'packets through a queue', 'packets');
    queueCounter('emu_queue_bytes_total', 'bytes through a queue', 'bytes');
    queueCounter(
      'emu_queue_drops_total',
      'packets a queue dropped (no buffers, disabled, host policy)',
      'drops',
    );
    queueCounter('emu_queue_errors_total', 'descriptors the guest got wrong', 'errors');

    const planeGauge = (name: string, help: string, field: 'workers' | 'running' | 'nics') =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read().dataPlane[field]);
        },
      });
    planeGauge('emu_dataplane_workers', 'data plane worker threads', 'workers');
    planeGauge('emu_dataplane_workers_running', 'data plane workers running now', 'running');
    planeGauge('emu_dataplane_nics', 'NICs the data plane forwards for', 'nics');
    new Counter({
      name: 'emu_dataplane_frames_total',
      help: 'frames the data plane workers took from TX rings',
      registers,
      collect() {
        this.reset();
        this.inc(read().dataPlane.frames);
      },
    });
    new Counter({
      name: 'emu_stalls_total',
      help: 'units of work a thread (or the event loop) stayed at for over a second (the stall detector), by thread',
      labelNames: ['thread'],
      registers,
      collect() {
        this.reset();
        for (const [thread, n] of Object.entries(Watchdog.stats())) this.inc({ thread }, n);
      },
    });
  }
}
