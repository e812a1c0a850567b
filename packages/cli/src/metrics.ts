/**
 * `--metrics HOST:PORT`: Prometheus text format at http://HOST:PORT/metrics, made with prom-client (the
 * Node client Prometheus lists). Counters are read from the devices at each scrape (statsSnapshot), so
 * nothing is counted twice or runs on the data path; vfio-user message handling times are observed as
 * they happen (VdevBus onHandled) into a histogram. Process metrics (RSS, fds, event loop lag) come
 * from prom-client's defaults.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type EmuDevice, showText, textProblem } from '@emu/emudev';
import type { DataPlane } from '@emu/native';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { type DeviceSnapshot, type StatsSnapshot, statsSnapshot } from './snapshot.js';

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
  #http?: Server;
  /** The devices read once for the scrape under way (scrape()). */
  #reading?: StatsSnapshot;

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

  /** A message handling time (VdevBus's onHandled). */
  observe(device: string, command: string, seconds: number): void {
    const commands = this.#timed.get(device) ?? new Set<string>();
    this.#timed.set(device, commands.add(command));
    this.#latency.observe({ device, command }, seconds);
  }

  /** A device went away: its histogram series go with it. */
  forget(device: string): void {
    for (const command of this.#timed.get(device) ?? []) this.#latency.remove({ device, command });
    this.#timed.delete(device);
  }

  /** Serves GET /metrics; resolves with the address bound (port 0: one the kernel chose). */
  async listen(host: string, port: number): Promise<AddressInfo> {
    const http = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('emu serves metrics at /metrics\n');
        return;
      }
      this.scrape().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(port, host, () => {
        http.off('error', reject);
        resolve();
      });
    });
    http.on('error', () => {});
    this.#http = http;
    return http.address() as AddressInfo;
  }

  /** The Prometheus text: the devices read once, for every metric of it. */
  async scrape(): Promise<string> {
    this.#reading = statsSnapshot(this.source.devices(), this.source.plane, this.source.startedAt);
    try {
      return await this.registry.metrics();
    } finally {
      this.#reading = undefined;
    }
  }

  async close(): Promise<void> {
    const http = this.#http;
    this.#http = undefined;
    if (!http) return;
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
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
  }
}
