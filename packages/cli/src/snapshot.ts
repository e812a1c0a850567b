/**
 * One reading of everything an operator watches: every device's transport counters, link and queues,
 * and the data plane's. Plain JSON (no bigint), so the control socket sends it as is; `emu stats` and
 * the metrics endpoint are built on it.
 */
import { setImmediate } from 'node:timers/promises';
import type { EmuDevice, QueueCounters } from '@emu/emudev';
import type { DataPlane } from '@emu/native';
import type { BudgetStats } from '@emu/vfio-user';

export interface DeviceSnapshot {
  name: string;
  driver: string;
  type: string;
  state: string;
  socket: { path: string; connected: boolean };
  /** vfio-user messages handled (natively answered register accesses included), error replies. */
  commands: number;
  errors: number;
  /** Interrupts raised to the guest, and those its eventfd could not take. */
  irqs: number;
  irqsDropped: number;
  /** Register accesses the native socket thread answered. */
  trapped: number;
  dmaReadBytes: number;
  dmaWriteBytes: number;
  memoryFaults: number;
  /** What its client holds of each resource of its budget, the limit now, refusals. */
  budget: BudgetStats;
  link?: { up: boolean; speedMbps: number };
  queues: QueueCounters[];
  /** The driver's one-line summary. */
  status: string;
}

export interface DataPlaneSnapshot {
  workers: number;
  running: number;
  nics: number;
  /** Frames the workers took from TX rings. */
  frames: number;
}

export interface StatsSnapshot {
  /** When it was read (ms since the epoch), for rates between two readings. */
  time: number;
  uptimeSeconds: number;
  devices: DeviceSnapshot[];
  dataPlane: DataPlaneSnapshot;
}

const sum = (record: Record<string, number>) => Object.values(record).reduce((a, b) => a + b, 0);

export function deviceSnapshot(d: EmuDevice): DeviceSnapshot {
  const stats = d.stats();
  const info = d.info();
  const { link, queues } = d.counters();
  return {
    name: d.name,
    driver: d.driver.name,
    type: d.driver.type,
    state: d.state,
    socket: { path: d.path, connected: info.socket.connected },
    commands: sum(stats.commands),
    errors: sum(stats.errors),
    irqs: stats.irqsTriggered,
    irqsDropped: stats.irqsDropped,
    trapped: stats.trapped,
    dmaReadBytes: stats.dmaReadBytes,
    dmaWriteBytes: stats.dmaWriteBytes,
    memoryFaults: stats.memoryFaults,
    budget: structuredClone(stats.budget),
    ...(link ? { link: { ...link } } : {}),
    queues: queues.map((q) => ({ ...q })),
    status: d.status(),
  };
}

/** The reading, a device at a time: each step reads one device, the last returns the snapshot. */
function* snapshotSteps(
  devices: EmuDevice[],
  plane: DataPlane,
  startedAt: number,
): Generator<void, StatsSnapshot> {
  const read: DeviceSnapshot[] = [];
  for (const d of devices) {
    read.push(deviceSnapshot(d));
    yield;
  }
  const p = plane.stats();
  const now = Date.now();
  return {
    time: now,
    uptimeSeconds: Math.round((now - startedAt) / 1000),
    devices: read,
    dataPlane: {
      workers: p.workers.length,
      running: p.workers.filter((w) => w.running).length,
      nics: p.nics,
      frames: p.frames,
    },
  };
}

export function statsSnapshot(devices: EmuDevice[], plane: DataPlane, startedAt: number): StatsSnapshot {
  const steps = snapshotSteps(devices, plane, startedAt);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/** How long an operator's reading may run before it lets the event loop turn. */
export const SLICE_MS = 2;

/**
 * statsSnapshot for the operator's requests (the control socket, metrics): the devices are read in
 * slices of at most `sliceMs`, with a turn of the event loop between them, so that reading many devices
 * never holds up the devices' own work for long.
 */
export async function statsSnapshotInSlices(
  devices: EmuDevice[],
  plane: DataPlane,
  startedAt: number,
  sliceMs = SLICE_MS,
): Promise<StatsSnapshot> {
  const steps = snapshotSteps(devices, plane, startedAt);
  let sliceStart = performance.now();
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    if (performance.now() - sliceStart >= sliceMs) {
      await setImmediate();
      sliceStart = performance.now();
    }
  }
}

type Counter = 'packets' | 'bytes' | 'drops' | 'errors';

/** One counter summed over queues: of one direction, or of both. */
export function queueTotal(
  queues: readonly QueueCounters[],
  counter: Counter,
  direction?: 'rx' | 'tx',
): number {
  let n = 0;
  for (const q of queues) if (direction === undefined || q.direction === direction) n += q[counter];
  return n;
}

/** A device's queues by queue number, each pair's RX and TX entries together. */
export function queuePairs(
  queues: readonly QueueCounters[],
): Array<{ queue: number; queues: QueueCounters[] }> {
  const pairs = new Map<number, QueueCounters[]>();
  for (const q of queues) pairs.set(q.queue, [...(pairs.get(q.queue) ?? []), q]);
  return [...pairs.entries()].sort((a, b) => a[0] - b[0]).map(([queue, list]) => ({ queue, queues: list }));
}

/** A NIC's link as `emu ctl` and `emu stats` show it; `-` for a device without one. */
export function linkText(link?: { up: boolean; speedMbps: number }): string {
  if (!link) return '-';
  return link.up ? `up ${link.speedMbps}Mb/s` : 'down';
}
