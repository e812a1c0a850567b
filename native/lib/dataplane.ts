// The data plane (src/dataplane/): iavf NICs forwarding to each other through an emu switch on a
// native worker thread, with no JavaScript per frame. This module is its typed boundary; the policy
// around it (which NIC runs there, interrupts, logs) is driver-iavf's and network's.
import {
  binding,
  type NativeDataPlane,
  type NativeDataPlaneLayout,
  type NativeIavfNic,
  type NativePortCounters,
  type NativeSwitch,
  type NativeSwitchCounters,
} from './binding.js';
import { callNative, closedError } from './errors.js';
import type { GuestMemoryTable } from './iavf-rings.js';
import type { IavfVectors } from './iavf-vectors.js';
import {
  validateFd,
  validateFunction,
  validateInteger,
  validateOptions,
  validateString,
} from './validate.js';

/** Where an IavfNic's heads and counters live in its state buffer (one definition: src/dataplane/core.h). */
export const NIC_STATE: Readonly<NativeDataPlaneLayout> = Object.freeze({ ...binding.dataPlaneLayout });

export interface DataPlaneOptions {
  /**
   * Worker threads (1-64, default 1). A switch is bound to the least loaded worker when the first of its
   * NICs starts; all its NICs run there. More workers spread switches over cores.
   */
  workers?: number;
  /** Frames a worker takes from one TX queue before it turns to the next (default 32). */
  burst?: number;
  /** Polling, as DoorbellWatcher's: 20 us after work, doubling after busyPolls quiet polls, up to
   * warmSleepUs for warmMs, then maxSleepUs (defaults 20, 8, 250, 100, 1000). */
  minSleepUs?: number;
  busyPolls?: number;
  warmSleepUs?: number;
  warmMs?: number;
  maxSleepUs?: number;
}

export interface WorkerStats {
  /** Whether the thread runs (it does while any of its NICs is started). */
  running: boolean;
  nics: number;
  polls: number;
  /** Frames it took from TX rings. */
  frames: number;
}

/** The sums over the workers, and each worker's own. */
export interface DataPlaneStats extends WorkerStats {
  workers: WorkerStats[];
}

let processPlane: DataPlane | undefined;

/** A worker thread and the NICs and switches it serves. */
export class DataPlane {
  /** @internal */
  readonly native: NativeDataPlane;

  constructor(options: DataPlaneOptions = {}) {
    const o = validateOptions<DataPlaneOptions>(options, 'options');
    if (o.burst !== undefined) validateInteger(o.burst, 'options.burst', 1, 1024);
    if (o.workers !== undefined) validateInteger(o.workers, 'options.workers', 1, 64);
    this.native = new binding.DataPlane({ ...o });
  }

  /**
   * The process's plane, made on first use; `options` apply only to that first use (the `emu` command
   * makes it with `--workers` before any device).
   */
  static shared(options?: DataPlaneOptions): DataPlane {
    processPlane ??= new DataPlane(options);
    return processPlane;
  }

  stats(): DataPlaneStats {
    return this.native.stats();
  }

  /** Stops the worker (NICs started later start it again). */
  close(): void {
    this.native.close();
  }
}

export type { NativePortCounters as SwitchPortCounters, NativeSwitchCounters as SwitchCoreCounters };

export interface SwitchCoreOptions {
  agingMs: number;
  maxMacs: number;
  /** The caller's clock now (milliseconds): the worker's clock for this switch starts there. */
  now: number;
  /**
   * Frames a worker could not deliver itself (to JavaScript ports), in order, on the JS thread; with
   * copies[i], frames[i] is a capture's copy of a frame port ports[i] sent or got (see setMirror).
   */
  onEscape(ports: number[], frames: Buffer[], copies: boolean[]): void;
}

/**
 * A switch's MAC table and forwarding decisions, shared by JavaScript ports (forward()) and native
 * NICs (attached with IavfNic.attach): one table per switch. network's L2Switch is built on it.
 */
export class SwitchCore {
  #native: NativeSwitch | null;

  constructor(
    readonly plane: DataPlane,
    options: SwitchCoreOptions,
  ) {
    validateFunction(options.onEscape, 'options.onEscape');
    this.#native = new binding.NativeSwitch(plane.native, { ...options });
  }

  /** @internal */
  get native(): NativeSwitch {
    if (!this.#native) throw closedError('switch', 'the switch');
    return this.#native;
  }

  /** A JavaScript port; returns its id. */
  addPort(mtu: number): number {
    return this.native.addPort(mtu);
  }

  removePort(id: number): void {
    this.native.removePort(id);
  }

  /** A frame a JavaScript port sent: native NICs get it now; returns the ports JavaScript delivers it
   * to, or 'noDestination'. */
  forward(from: number, frame: Uint8Array, now: number): number[] | 'noDestination' {
    const to = this.native.forward(from, frame, now);
    return to === -1 ? 'noDestination' : to;
  }

  /** The port `mac` (as macAt gives it) was learned on, unless aged out; undefined if none. */
  lookup(mac: number, now: number): number | undefined {
    const port = this.native.lookup(mac, now);
    return port < 0 ? undefined : port;
  }

  /** The learned MACs, oldest learned first (aged entries removed first). */
  macTable(now: number): Array<{ mac: number; port: number; lastSeen: number }> {
    return this.native.macTable(now).map(([mac, port, lastSeen]) => ({ mac, port, lastSeen }));
  }

  counters(): NativeSwitchCounters {
    return this.native.counters();
  }

  /** What the switch counted itself on a NIC's port (the frames it forwarded without JavaScript). */
  portCounters(id: number): NativePortCounters {
    return this.native.portCounters(id);
  }

  flush(): void {
    this.native.flush();
  }

  /** Copies of every frame a native port sends or gets go to onEscape (a pcap capture keeps its NIC native). */
  setMirror(id: number, on: boolean): void {
    this.native.setMirror(id, on);
  }

  close(): void {
    this.#native?.close();
    this.#native = null;
  }
}

export interface IavfNicQueue {
  ring: bigint;
  length: number;
}

export interface IavfNicRxQueue extends IavfNicQueue {
  bufferSize: number;
  maxFrame: number;
  descSize: 16 | 32;
}

/** What the VF configured, as the data plane needs it. */
export interface IavfNicConfig {
  mac: Uint8Array;
  /** The filter list, as macAt numbers. */
  macs: number[];
  /** Bit 0 unicast, bit 1 multicast promiscuous. */
  promisc: number;
  /**
   * The host's spoof check: TX frames go out only with the VF's MAC or one of its unicast filters as
   * source; others are dropped (a TX drop and `NIC_STATE.spoofed`).
   */
  spoofCheck: boolean;
  /**
   * The VF's VLAN filter (ids 0-4095); empty: every tag passes (i40e's VF filters match any VLAN
   * until the VF adds one). Untagged frames always pass.
   */
  vlans: number[];
  /** Strip 802.1Q tags from received frames into the descriptor's L2TAG1. */
  vlanStrip: boolean;
  /**
   * The host's port VLAN (1-4094; 0: none): the VF's frames get its tag on the wire, only frames with
   * it are received, without it, and the VF never sees the tag; a frame the VF tagged itself is dropped.
   */
  portVlan: number;
  rssKey: Uint8Array;
  rssLut: Uint8Array;
  numQueuePairs: number;
  tx: Array<IavfNicQueue | undefined>;
  rx: Array<IavfNicRxQueue | undefined>;
  txEnabled: number;
  rxEnabled: number;
  /** CONFIG_IRQ_MAP: the queues (bit q) each vector interrupts for, and the ITR index of their causes. */
  irqMap: Array<{ vector: number; rx: number; tx: number; rxItr: number; txItr: number }>;
  /**
   * TX and RX queues (bit q) that start again from descriptor 0 with this configuration (reconfigured,
   * or enabled again), in the same step: the other queues' heads are untouched, and no burst walks a
   * new ring from an old head.
   */
  resetTx?: number;
  resetRx?: number;
  /** The worker takes the NIC back from JavaScript (nothing of it runs there any more). */
  resume?: boolean;
}

/** The exceptions a NIC's worker reports (its interrupts it raises itself, through setVectors). */
export interface IavfNicEvents {
  /** The NIC met memory the worker cannot reach: JavaScript runs it from the current heads on. */
  slow: boolean;
  /** A TX tail beyond its ring was seen (counted as an error). */
  badTail: boolean;
  /** The worker's burst failed (an allocation: the process is short of memory); `slow` comes with it. */
  fault: boolean;
}

export interface IavfNicOptions {
  /**
   * The memfd of the NIC's BAR0 tail page (QTX_TAIL1 at 0, QRX_TAIL1 at 0x2000); mapped read-only.
   * Without one the NIC only routes (route()): it cannot start or join a switch.
   */
  tailFd?: number;
  /** NIC_STATE.stateBytes: heads and counters. */
  state: ArrayBuffer;
  onEvents(events: IavfNicEvents): void;
  /** Its name in stall reports (the device's), e.g. `emu_iavf0`. */
  label?: string;
}

/** An iavf NIC in the data plane: its rings walked by the worker once attached and started. */
export class IavfNic {
  #native: NativeIavfNic | null;

  constructor(
    readonly plane: DataPlane,
    options: IavfNicOptions,
  ) {
    const o = validateOptions<IavfNicOptions>(options, 'options');
    if (o.tailFd !== undefined) validateFd(o.tailFd, 'options.tailFd');
    validateFunction(o.onEvents, 'options.onEvents');
    if (o.label !== undefined) validateString(o.label, 'options.label');
    const { eventSlow, eventBadTail, eventFault } = NIC_STATE;
    this.#native = callNative(
      () =>
        new binding.IavfNic(
          plane.native,
          o.tailFd ?? -1,
          o.state,
          (flags) =>
            o.onEvents({
              slow: (flags & eventSlow) !== 0,
              badTail: (flags & eventBadTail) !== 0,
              fault: (flags & eventFault) !== 0,
            }),
          o.label,
        ),
    );
  }

  get #n(): NativeIavfNic {
    if (!this.#native) throw closedError('nic', 'the NIC');
    return this.#native;
  }

  configure(config: IavfNicConfig): void {
    this.#n.configure(config);
  }

  /** The guest memory its rings and buffers are in (none: the worker leaves it alone). */
  setTable(table: GuestMemoryTable | undefined): void {
    this.#n.setTable(table?.native ?? null);
  }

  /** Becomes a port of `sw` (same plane); returns the port id. */
  attach(sw: SwitchCore, mtu: number): number {
    return this.#n.attach(sw.native, mtu);
  }

  detach(): void {
    this.#native?.detach();
  }

  /** The worker walks the NIC's TX rings (while attached); stop() returns once it no longer does. */
  start(): void {
    this.#n.start();
  }

  stop(): void {
    this.#native?.stop();
  }

  /** A TX tail was written by message: the worker looks now. */
  kick(): void {
    this.#native?.kick();
  }

  /** Every head to 0, and the worker runs the NIC again (a VF reset; one queue's is configure()'s). */
  resetHeads(): void {
    this.#n.resetHeads();
  }

  /** A frame for the NIC from JavaScript, written natively; false: the NIC runs in JavaScript now. */
  receive(frame: Uint8Array): boolean {
    return this.#n.receive(frame);
  }

  /**
   * The VF's VLAN and MAC filters and RSS for a frame a TypeScript path received: its queue and RSS
   * hash, or undefined when the filters refuse it or its queue is not configured and enabled (counted
   * in the state as the worker counts them: `filtered`, the queue's drops). `frame`, when present, is
   * what to write instead: the frame with its VLAN tag taken out, `l2tag1` the tag for the descriptor
   * (absent for a port VLAN's, which the VF does not see).
   */
  route(
    frame: Uint8Array,
  ): { queue: number; hash?: number; frame?: Uint8Array; l2tag1?: number } | undefined {
    return this.#n.route(frame) ?? undefined;
  }

  /**
   * The host's policy on a frame a TypeScript path sends from TX queue `queue` (the worker's own
   * rules): the frame to send (the one given, or a copy with the port VLAN's tag), or undefined when it
   * may not go out: a source the spoof check refuses (counted: the queue's drops, `spoofed`), or, with a
   * port VLAN, a frame the VF tagged itself (the queue's drops).
   */
  egress(frame: Uint8Array, queue: number): Uint8Array | undefined {
    validateInteger(queue, 'queue', 0, NIC_STATE.queues - 1);
    return this.#n.egress(frame, queue) ?? undefined;
  }

  /**
   * The VF's interrupt vectors: after each burst, the queues with work done raise theirs by irqMap
   * (null: none, their interrupts are lost).
   */
  setVectors(vectors: IavfVectors | null): void {
    this.#n.setVectors(vectors ? vectors.native : null);
  }

  /**
   * Whether the worker runs it (native), is polling it (started), its switch port, its queues' bursts,
   * and the most frames (TSO segments counted) one turn of it produced: a turn, which holds its switch
   * and the memory lock, stops at the plane's burst, one packet past it at most.
   */
  info(): { native: boolean; started: boolean; port: number; bursts: number; largestTurn: number } {
    const i = this.#native?.info() ?? {};
    return {
      native: i.native ?? false,
      started: i.started ?? false,
      port: i.port ?? -1,
      bursts: i.bursts ?? 0,
      largestTurn: i.largestTurn ?? 0,
    };
  }

  /** Leaves the worker and the switch, unmaps the tail page; idempotent. */
  close(): void {
    this.#native?.close();
    this.#native = null;
  }
}
