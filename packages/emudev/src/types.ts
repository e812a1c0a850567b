/** The data types of the emudev model: what a device tells about itself, its queues, IRQs and doorbells. */
import type { DmaRegion, IrqIndexName } from '@emu/vfio-user';

/** Lifecycle states; see docs/emudev.md for the diagram. */
export type DeviceState = 'allocated' | 'configured' | 'started' | 'stopped' | 'closed';

export interface DeviceInfo {
  name: string;
  /** The driver's name, e.g. 'emu_gpio'. */
  driver: string;
  /** What kind of device, e.g. 'net', 'gpio'. */
  type: string;
  state: DeviceState;
  /** Most queues (queue pairs for a NIC) the device can have; 0 for a device without queues. */
  maxQueues: number;
  /** Regions as vfio-user counts them (9 for PCI: BAR0-5, ROM, config, VGA). */
  numRegions: number;
  /** IRQ vectors per index. */
  irqs: Record<IrqIndexName, number>;
  /** The vfio-user socket, and whether a client is connected to it now. */
  socket: { path: string; listening: boolean; connected: boolean };
}

/** A queue as the guest driver set it up; drivers report it, back-ends read it. */
export interface QueueInfo {
  id: number;
  /** Guest (IOVA) address of the ring. */
  base: bigint;
  /** Entries in the ring. */
  size: number;
  /** The doorbell (see DoorbellInfo) the guest rings for this queue, if any. */
  doorbell?: number;
  /** MSI-X vector the queue interrupts on, if any. */
  vector?: number;
  enabled: boolean;
}

/** An interrupt vector as the client set it up. */
export interface IrqInfo {
  index: IrqIndexName;
  vector: number;
  /** The client handed an eventfd for it: triggering reaches the guest. */
  enabled: boolean;
}

/** A doorbell: a register the guest writes to tell the device there is work. */
export interface DoorbellInfo {
  id: number;
  /** Region (BAR) index and offset of the register. */
  region: number;
  offset: number;
  /** Bytes the guest writes. */
  width: 1 | 2 | 4 | 8;
}

/** A range of guest memory the client mapped for the device. */
export interface MemRegion {
  iova: bigint;
  size: bigint;
  readable: boolean;
  writable: boolean;
  /** Reached directly (the client shared an fd) rather than by DMA messages. */
  direct: boolean;
}

export function memRegionOf(r: DmaRegion): MemRegion {
  return {
    iova: r.address,
    size: r.size,
    readable: r.readable,
    writable: r.writable,
    direct: r.memory !== undefined,
  };
}

/** One direction of one queue, as counted by the device: what `emu stats` and metrics show. */
export interface QueueCounters {
  /** The queue (a NIC's queue pair) number. */
  queue: number;
  direction: 'rx' | 'tx';
  packets: number;
  bytes: number;
  /** Work the device dropped: no buffers, queue disabled, host policy. */
  drops: number;
  /** What the guest got wrong (bad descriptors, addresses, lengths). */
  errors: number;
}

/** A device's traffic counters, for monitoring; every field but `queues` is optional. */
export interface DeviceCounters {
  /** A NIC's link as the guest sees it. */
  link?: { up: boolean; speedMbps: number };
  /** The queues in use now (a NIC: the pairs the guest enabled), each direction separately. */
  queues: QueueCounters[];
}

export interface SelftestResult {
  ok: boolean;
  /** One line per check. */
  checks: Array<{ name: string; ok: boolean; detail?: string }>;
}

/**
 * Events of a device, in the order they happen (docs/emudev.md):
 * state → ready → mem-update* / queue-state* / reset* → disconnect → … → destroyed.
 */
export interface DeviceEvents {
  /** Every lifecycle transition. */
  state: [{ from: DeviceState; to: DeviceState }];
  /** A client connected and negotiated: the guest can reach the device. */
  ready: [];
  /**
   * The guest memory table changed. `kind` says how; `table` is the whole table after the change,
   * built when read (a guest with a vIOMMU maps tens of thousands of ranges): read it in the listener,
   * not later.
   */
  'mem-update': [{ kind: 'map' | 'unmap'; region: MemRegion; table: MemRegion[] }];
  /** A queue was enabled or disabled (or its setup changed). */
  'queue-state': [QueueInfo];
  /** The device went back to its power-on state (client DEVICE_RESET, guest FLR, or reset()). */
  reset: [{ cause: 'client' | 'flr' | 'api' }];
  /** The IRQ setup changed (the client handed over or withdrew eventfds). */
  'irq-update': [{ index: IrqIndexName }];
  /** The client went away; its memory mappings and IRQ eventfds are gone. */
  disconnect: [{ reason?: string }];
  /** The device was closed and released; nothing fires after this. */
  destroyed: [];
}
