/**
 * The iavf data path: TX rings read from guest memory into frames for the network, frames from the
 * network written into RX rings, completions and interrupts as the Linux driver expects them.
 *
 * The ring rules exist once, in C++ (@emu/native's iavfTxRing / iavfRxRing over iavf_ring_core):
 * descriptors, gathering, the TX offloads (checksums, TSO, VLAN insertion), completions and RX
 * write-backs, every guest address, length and index checked against the table of guest memory. This
 * class runs them on one of two kinds of memory:
 * - directly mapped (memfd RAM the VMM shared with an fd): synchronously, in one call per pass;
 * - reached only by DMA messages (fd-less RAM): the same walk through a StagedMemory, which stops where
 *   it needs memory it does not hold yet; the range is fetched with DMA_READ and the walk goes on, and
 *   its stores (write-backs, RX data) are written with DMA_WRITE, in the order the walk made them.
 * Counters, logs and interrupts stay here; the VF's filters and RSS are the twin's (below), which this
 * class asks per frame (route), so their rules exist once too, in C++ (iavf_nic.h).
 *
 * Bounds, as hardware has them: a TX pass starts no new packet once it produced TX_PASS_FRAMES
 * frames (TSO segments count one each) or TX_PASS_BYTES bytes, then yields to the event loop and goes
 * on in a later turn, so one guest's doorbell (a ring of 64-byte-MSS TSO packets) cannot stall every
 * other device; frames waiting for the staged RX path are at most RX_BACKLOG, the rest are dropped
 * and counted. While DMA is disabled (Bus Master Enable clear, or no client), nothing touches guest
 * memory: TX waits (dmaResumed goes on with it), RX drops.
 *
 * With sharedTails, the tail registers live in a shared page the VMM maps into the guest (tail-page.ts):
 * TX tails written there are noticed by a native watcher thread, which wakes this loop.
 *
 * The data plane: the VF has a twin in @emu/native's data plane (IavfNic). With a shared page it is
 * offered to the network as `nativePort`; without, it only routes. When a switch attaches the twin,
 * the plane's worker thread owns the NIC's forwarding: it reads the TX tails from the page, walks the
 * rings, forwards through the switch's native MAC table and writes the RX rings of the NICs there, with
 * the VF's filters and RSS, all in C++ (iavf_ring_core, iavf_nic), and raises the queues' interrupts
 * itself through the VF's native vectors (IavfVectors, given with useVectors: automask and ITR as
 * iavf_vectors.h has them); this class configures it (twin-config.ts, after every virtchnl change) and
 * reads the counters and heads it keeps in the shared state buffer. When the worker meets memory it
 * cannot reach (fd-less RAM), the NIC comes back here from the heads where it stopped, until its
 * queues are next reset.
 */
import type { GuestMemory } from '@emu/emudev';
import {
  DataPlane,
  type GuestMemoryTable,
  IavfNic,
  type IavfNicConfig,
  type IavfNicEvents,
  type IavfRxQueue,
  type IavfRxResult,
  type IavfTxResult,
  type IavfVectors,
  iavfRxRing,
  iavfTxRing,
  StagedMemory,
  type StagedReport,
} from '@emu/native';
import type { NativePort } from '@emu/network';
import type { Logger, RegionSpec } from '@emu/vfio-user';
import { MAX_QUEUE_PAIRS } from '../constants.js';
import type { RxQueueConfig, TxQueueConfig, VfConfig } from '../pf.js';
import { NicState, type QueueStats } from './nic-state.js';
import { NO_RESETS, type QueueResets } from './queue-resets.js';
import { TailPage } from './tail-page.js';
import { twinConfig } from './twin-config.js';

export interface DataPathHost {
  memory: GuestMemory;
  log: Logger;
  /** The device's name, in the data plane's stall reports. */
  name?: string;
  config(): VfConfig;
  /** MAC address of the VF. */
  mac: string;
  /** Raises an MSI-X vector through its DYN_CTLN1 automask (the interrupts of passes run here). */
  raise(vector: number, itrIndex?: number): void;
  /** Hands a frame to the network. */
  transmit(frame: Uint8Array): void;
  /** The host's spoof check on what the VF sends (emu_iavf's `spoofchk`; default off here). */
  spoofCheck?: boolean;
  /** The host's port VLAN (emu_iavf's `vlan`; 0 or absent: none). */
  portVlan?: number;
  /** Offer the tail registers as a shared, mmap-able page watched by a native thread (see bar0()). */
  sharedTails?: boolean;
  /** The data plane the VF's twin joins (default the process's); needs sharedTails. */
  plane?: DataPlane;
}

/** Which memory path did what: for tests, benchmarks and status. */
export interface EngineStats {
  /** TX passes over directly mapped guest memory (synchronous), and over memory only DMA messages reach (staged). */
  directTx: number;
  stagedTx: number;
  /** Frames written into RX rings in directly mapped memory, and through DMA messages. */
  directRx: number;
  stagedRx: number;
  /** Wake-ups from the watcher thread (TX tails written to the shared page). */
  sharedDoorbells: number;
  /** TX passes that spent their budget and went on in a later turn of the event loop. */
  txYields: number;
  /** Events from the data plane's worker (exceptions: a bad tail, memory out of its reach), and times
   * the NIC came back from it. */
  planeEvents: number;
  planeFallbacks: number;
}

/** QTX_TAIL / QRX_TAIL hold 13 bits. */
const TAIL_MASK = 0x1fff;
/** What one TX pass may produce before it yields to the event loop (a ring's worth of full frames). */
export const TX_PASS_FRAMES = 512;
export const TX_PASS_BYTES = 4 << 20;
/** Frames that may wait for the staged RX path (fd-less memory); more are dropped, as by a full FIFO. */
export const RX_BACKLOG = 1024;

interface RxRoute {
  q: number;
  ring: RxQueueConfig;
  hash?: number;
  /** What to write instead of the frame received: it without its VLAN tag (stripped, or the port VLAN's). */
  frame?: Uint8Array;
  /** The stripped tag, for the descriptor. */
  l2tag1?: number;
}

/** What a TX pass has to do on a queue: its ring and the descriptors [head, tail) the driver handed over. */
interface TxWork {
  ring: TxQueueConfig;
  head: number;
  tail: number;
}

/** An RX queue's configuration as the ring walk takes it. */
function rxQueue(ring: RxQueueConfig): IavfRxQueue {
  return {
    iova: ring.ring,
    length: ring.length,
    bufferSize: ring.bufferSize,
    maxFrame: ring.maxFrame,
    descSize: ring.descSize,
  };
}

export class DataPath {
  /** Heads and counters, shared with the data plane's worker (nic-state.ts). */
  private readonly state = new NicState();
  readonly tx = this.state.tx;
  readonly rx = this.state.rx;
  /** Packets by destination kind, as virtchnl_eth_stats splits them. */
  readonly kinds = this.state.kinds;
  readonly engineStats: EngineStats = {
    directTx: 0,
    stagedTx: 0,
    directRx: 0,
    stagedRx: 0,
    sharedDoorbells: 0,
    txYields: 0,
    planeEvents: 0,
    planeFallbacks: 0,
  };
  private readonly txHead = this.state.txHead;
  private readonly rxHead = this.state.rxHead;
  /** QRX_TAIL1 as the guest wrote it: the shared page's words when there is one. */
  readonly rxTail: Uint32Array;
  /** The TX tail of each queue's last doorbell. */
  readonly txTail = new Uint32Array(MAX_QUEUE_PAIRS);
  private readonly txBusy = new Array<boolean>(MAX_QUEUE_PAIRS).fill(false);
  /** A native TX pass that spent its budget, to go on in a later turn. */
  private readonly txLater = new Array<NodeJS.Immediate | undefined>(MAX_QUEUE_PAIRS).fill(undefined);
  private rxChain: Promise<void> = Promise.resolve();
  /** Frames waiting in rxChain: while there are any, new frames queue behind them (order). */
  private rxQueued = 0;
  /** Moves at a reset of the whole data path (VF reset, close): every pass in flight gives up. */
  private generation = 0;
  /** Move at a reset of one queue (reconfigured, or enabled again): that queue's passes give up. */
  private readonly txGeneration = new Array<number>(MAX_QUEUE_PAIRS).fill(0);
  private readonly rxGeneration = new Array<number>(MAX_QUEUE_PAIRS).fill(0);
  private closed = false;
  private readonly tails?: TailPage;
  /**
   * The VF's twin in the data plane: the worker's NIC with a shared page, else one that only routes;
   * what the network is offered of it (undefined without a shared page).
   */
  private readonly nic: IavfNic;
  readonly nativePort?: NativePort;
  /** A switch attached the twin; and whether the worker runs it now (not fallen back to this class). */
  private planeAttached = false;
  private planeNative = true;
  private warnedBadTail = false;

  constructor(private readonly host: DataPathHost) {
    if (host.sharedTails) this.tails = TailPage.create(host.log);
    this.rxTail = this.tails?.rx ?? new Uint32Array(MAX_QUEUE_PAIRS);
    const plane = host.plane ?? DataPlane.shared();
    const options = {
      state: this.state.buffer,
      onEvents: (e: IavfNicEvents) => this.planeEvent(e),
      label: host.name,
    };
    let nic: IavfNic | undefined;
    if (this.tails) {
      try {
        nic = new IavfNic(plane, { ...options, tailFd: this.tails.fd });
        this.nativePort = { nic, attached: (on) => this.planeAttach(on) };
      } catch (err) {
        host.log.warn({ err: (err as Error).message }, 'no data plane twin: frames go through JavaScript');
      }
    }
    this.nic = nic ?? new IavfNic(plane, options);
    this.configChanged();
  }

  /** Frames the filters turned away. */
  get filtered(): number {
    return this.state.filtered;
  }
  set filtered(v: number) {
    this.state.filtered = v;
  }

  /** TX frames the spoof check dropped (also counted in their queue's drops). */
  get spoofed(): number {
    return this.state.spoofed;
  }

  /**
   * Whether the data plane's worker forwards this NIC now, its bursts, and the most frames one turn of
   * the worker produced for it (bounded by the plane's burst, one packet past it at most).
   */
  get plane(): { attached: boolean; native: boolean; started: boolean; bursts: number; largestTurn: number } {
    const info = this.nic.info();
    return {
      attached: this.planeAttached,
      native: this.planeOwns,
      started: info?.started ?? false,
      bursts: info?.bursts ?? 0,
      largestTurn: info?.largestTurn ?? 0,
    };
  }

  /** The worker, not this class, runs the NIC's rings. */
  private get planeOwns(): boolean {
    return this.planeAttached && this.planeNative && !this.closed;
  }

  /** The memfd of the tail page (QTX_TAIL1, QRX_TAIL1, VFINT_ITRN1), if there is one. */
  get tailFd(): number | undefined {
    return this.tails?.fd;
  }

  /** The VF's interrupt vectors, which the twin raises itself (without them its interrupts are lost). */
  useVectors(vectors: IavfVectors): void {
    this.nic.setVectors(vectors);
  }

  /** A switch attached (or detached) the twin. */
  private planeAttach(on: boolean): void {
    this.planeAttached = on;
    if (!on) this.nic.stop();
    this.configured(this.host.config());
  }

  /**
   * The VF's configuration changed (any virtchnl message may have changed filters, RSS or queues): the
   * twin gets it. Cheap: a plain copy under the plane's lock.
   */
  configChanged(resets: Pick<IavfNicConfig, 'resetTx' | 'resetRx' | 'resume'> = {}): void {
    if (this.closed) return;
    this.nic.setTable(this.table);
    this.nic.configure({ ...twinConfig(this.host.config(), this.host), ...resets });
  }

  /** The worker's news: a bad tail, or the NIC came back to this class. */
  private planeEvent(e: IavfNicEvents): void {
    if (this.closed) return;
    this.engineStats.planeEvents++;
    if (e.badTail && !this.warnedBadTail) {
      this.warnedBadTail = true;
      this.host.log.warn({}, 'a TX tail beyond its ring (counted as errors; logged once)');
    }
    if (e.fault) {
      this.host.log.error(
        {},
        'the data plane failed on this NIC (out of memory); its rings go on from the JavaScript thread',
      );
    }
    if (e.slow && this.planeNative) {
      // Memory the worker cannot reach: this class goes on from the heads where it stopped.
      this.planeNative = false;
      this.engineStats.planeFallbacks++;
      this.configured(this.host.config());
      this.dmaResumed();
    }
  }

  /**
   * BAR0 as the device serves it: `registers` for the trapped registers and, with sharedTails, the tail
   * pages from shared memory (mmap-able by the VMM; REGION_READ/WRITE reach the same bytes, and a TX
   * tail written that way rings its doorbell at once).
   */
  bar0(registers: Required<Pick<RegionSpec, 'read' | 'write'>>): RegionSpec {
    const tails = this.tails;
    if (!tails) return { read: registers.read, write: registers.write };
    return tails.region(registers, (q) => this.txDoorbell(q, tails.tx[q] & TAIL_MASK));
  }

  /** Whether the tail registers are in a shared page, and whether its watcher thread runs. */
  get sharedTails(): { shared: boolean; watching: boolean } {
    return { shared: this.tails !== undefined, watching: this.tails?.watching ?? false };
  }

  /**
   * The queue setup changed: the watcher thread runs while any TX queue is enabled (ENABLE_QUEUES) and
   * is stopped, and joined, when none is (DISABLE_QUEUES, VF reset). The queues in `reset` were
   * reconfigured or enabled again: they start from descriptor 0, in the same step as the configuration
   * (under the plane's lock), and whatever of them was under way here gives up; every other queue goes
   * on where it is (DPDK starts and stops single queues under traffic).
   */
  configured(cfg: VfConfig, reset: QueueResets = NO_RESETS): void {
    this.configChanged(this.resetQueues(reset));
    if (this.planeOwns) {
      // The worker reads the tails itself.
      this.tails?.unwatch();
      if (cfg.txEnabled === 0) this.nic.stop();
      else this.nic.start();
      return;
    }
    if (!this.tails) return;
    if (cfg.txEnabled === 0) {
      this.tails.unwatch();
      return;
    }
    if (this.tails.watching) return;
    this.tails.watch((mask) => this.tailsMoved(mask));
    // Tails written before the watcher looked are not news to it: look now.
    this.tailsMoved(0xffff);
  }

  /**
   * This side of a queue reset (the native heads are reset with the configuration): passes under way
   * on those queues give up. When no other queue is active either, nothing of the NIC runs here any
   * more, and the worker takes it back (`resume`) until its memory proves out of reach again.
   */
  private resetQueues(reset: QueueResets): Pick<IavfNicConfig, 'resetTx' | 'resetRx' | 'resume'> {
    if ((reset.tx | reset.rx) === 0) return {};
    for (let q = 0; q < MAX_QUEUE_PAIRS; q++) {
      if (reset.tx & (1 << q)) {
        this.txGeneration[q]++;
        clearImmediate(this.txLater[q]);
        this.txLater[q] = undefined;
      }
      if (reset.rx & (1 << q)) this.rxGeneration[q]++;
    }
    const resume =
      (reset.tx & reset.active.tx) === reset.active.tx && (reset.rx & reset.active.rx) === reset.active.rx;
    if (resume) {
      this.generation++;
      this.cancelLater();
      this.planeNative = true;
    }
    return { resetTx: reset.tx, resetRx: reset.rx, resume };
  }

  /** A pass's ticket: it goes on while neither the data path nor its queue was reset since it began. */
  private ticket(dir: 'tx' | 'rx', q: number): () => boolean {
    const generations = dir === 'tx' ? this.txGeneration : this.rxGeneration;
    const all = this.generation;
    const mine = generations[q];
    return () => all === this.generation && mine === generations[q];
  }

  /** The VF reset: every queue from descriptor 0; tails are kept. */
  resetHeads(): void {
    this.generation++;
    this.cancelLater();
    // Under the plane's lock (the worker may be inside a burst); it runs the NIC again.
    this.nic.resetHeads();
    this.planeNative = true;
  }

  /**
   * Power-on: heads and tails (the whole shared page, VFINT_ITRN1 included), watcher released. Counters
   * run on across VF resets, as a PF's per-VSI statistics do, so `emu`'s status and GET_STATS show the
   * device's whole life.
   */
  reset(): void {
    this.nic.stop();
    this.resetHeads();
    // Released, not only stopped: a device whose client went keeps nothing of it (the watcher's own
    // mapping of the page included); the next ENABLE_QUEUES makes a new one.
    this.tails?.releaseWatcher();
    this.tails?.clear();
    this.rxTail.fill(0);
    this.txTail.fill(0);
    this.configChanged();
  }

  /** The device goes: watcher joined, shared page unmapped and closed. Nothing runs after this. */
  close(): void {
    this.closed = true;
    this.generation++;
    this.cancelLater();
    this.nic.close();
    this.tails?.close();
  }

  private cancelLater(): void {
    for (let q = 0; q < MAX_QUEUE_PAIRS; q++) {
      clearImmediate(this.txLater[q]);
      this.txLater[q] = undefined;
    }
  }

  /** The table of guest memory the ring walks look addresses up in (undefined: no client). */
  private get table(): GuestMemoryTable | undefined {
    return this.host.memory.nativeTable;
  }

  /** Resolves once no TX pass runs or waits and no frame waits for the staged RX path (for tests). */
  async settled(): Promise<void> {
    for (;;) {
      await this.rxChain;
      if (this.rxQueued === 0 && !this.txBusy.includes(true) && !this.txLater.some((t) => t)) return;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** The TX doorbell: process descriptors from the head up to the new tail. */
  txDoorbell(q: number, tail: number): void {
    this.txTail[q] = tail;
    if (this.planeOwns) {
      // The tail is in the shared page already: the worker looks now rather than at its next poll.
      this.nic.kick();
      return;
    }
    // A running pass, or one waiting for its next turn, picks the new tail up.
    if (this.txBusy[q] || this.txLater[q]) return;
    // No DMA now (Bus Master Enable clear, no client): the descriptors wait (dmaResumed goes on).
    if (this.closed || !this.host.memory.dmaEnabled || !this.table) return;
    // Synchronous: whatever fails in it (the network included) is logged here, never thrown at the
    // doorbell's caller (a REGION_WRITE handler, or the watcher's wake-up).
    try {
      if (this.txDirect(q)) return;
    } catch (err) {
      this.host.log.warn({ queue: q, err: (err as Error).message }, 'tx');
      return;
    }
    this.txBusy[q] = true;
    this.engineStats.stagedTx++;
    const live = this.ticket('tx', q);
    void this.txStaged(q)
      // Guest memory can go away under a pass (the device stopped): log it, never let it escape.
      .catch((err) => this.host.log.warn({ queue: q, err: (err as Error).message }, 'tx'))
      .finally(() => {
        this.txBusy[q] = false;
        // A pass the queue's reset cut short took the doorbells rung meanwhile with it: look again.
        if (!live() && !this.closed) this.txDoorbell(q, this.txTail[q]);
      });
  }

  /**
   * DMA is allowed again (the guest set Bus Master Enable): doorbells rung while it was not left their
   * descriptors waiting, as on hardware, which now goes on with them.
   */
  dmaResumed(): void {
    if (this.planeOwns) {
      this.nic.kick();
      return;
    }
    for (let q = 0; q < MAX_QUEUE_PAIRS; q++) {
      if (this.txTail[q] !== this.txHead[q]) this.txDoorbell(q, this.txTail[q]);
    }
  }

  /** A frame from the network for this VF. */
  receive(frame: Uint8Array): void {
    // A frame that waited for JavaScript (escaped) while the worker ran the NIC, or runs it again.
    if (this.planeOwns && this.nic.receive(frame)) return;
    if (!this.host.memory.dmaEnabled) {
      // Nowhere to write it: the guest has not (re)enabled bus mastering.
      this.drop(frame);
      return;
    }
    if (this.table && this.rxQueued === 0) {
      try {
        const route = this.route(frame);
        if (!route || this.rxDirect(frame, route)) return;
        this.queueRx(() => this.rxStaged(frame, route));
      } catch (err) {
        this.host.log.warn({ err: (err as Error).message }, 'rx');
      }
      return;
    }
    if (this.rxQueued >= RX_BACKLOG) {
      this.drop(frame);
      return;
    }
    this.queueRx(async () => {
      const route = this.route(frame);
      if (route) await this.rxStaged(frame, route);
    });
  }

  /** A frame the device cannot take now: counted on the queue it would have gone to. */
  private drop(frame: Uint8Array): void {
    const route = this.route(frame);
    if (route) this.rx[route.q].drops++;
  }

  /** The watcher saw TX tails move in the shared page. */
  private tailsMoved(mask: number): void {
    const tails = this.tails;
    if (!tails) return;
    this.engineStats.sharedDoorbells++;
    for (let q = 0; q < MAX_QUEUE_PAIRS && mask !== 0; q++, mask >>>= 1) {
      if (!(mask & 1)) continue;
      const tail = tails.tx[q] & TAIL_MASK;
      if (tail !== this.txTail[q]) this.txDoorbell(q, tail);
    }
  }

  /** Raises the vector the IRQ map gives this queue, with the ITR index of that cause. */
  private raiseFor(q: number, dir: 'rx' | 'tx'): void {
    for (const [vector, map] of this.host.config().irqMap) {
      if (map[dir] & (1 << q)) {
        this.host.raise(vector, dir === 'rx' ? map.rxItr : map.txItr);
        return;
      }
    }
  }

  /**
   * What a TX pass has to do on queue q: its ring and the descriptors [head, tail) the driver handed
   * over; undefined when there is nothing (queue unconfigured or disabled, caught up, or a tail beyond
   * the ring, which is counted and logged).
   */
  private txWork(q: number): TxWork | undefined {
    const cfg = this.host.config();
    const ring = cfg.tx[q];
    if (!ring || !(cfg.txEnabled & (1 << q))) return undefined;
    const tail = this.txTail[q];
    if (tail >= ring.length) {
      this.tx[q].errors++;
      this.host.log.warn({ queue: q, tail }, `TX tail ${tail} beyond the ${ring.length}-entry ring`);
      return undefined;
    }
    const head = this.txHead[q];
    return head === tail ? undefined : { ring, head, tail };
  }

  /**
   * A TX pass over directly mapped memory, synchronously, of at most TX_PASS_FRAMES frames or
   * TX_PASS_BYTES bytes; the rest goes on in a later turn of the event loop. False when the ring or a
   * buffer is reachable only by DMA messages (fd-less RAM): txStaged goes on from txHead.
   */
  private txDirect(q: number): boolean {
    const work = this.txWork(q);
    if (!work) return true;
    const r = this.txWalk(this.table!, work, 0, 0);
    if (r.stop === 'indirect' && r.head === work.head) return false; // nothing reachable directly
    this.engineStats.directTx++;
    this.txDone(q, r);
    if (r.counts.completed > 0) this.raiseFor(q, 'tx');
    if (r.stop === 'indirect') return false;
    if (r.stop === 'budget') this.txYield(q);
    return true; // caught up, a packet waiting for its EOP, a ring or tail the guest got wrong (counted)
  }

  /**
   * A TX pass over memory only DMA messages reach: the same walk, through a StagedMemory. Each time
   * the walk stops for a range it cannot reach, the range is fetched (DMA_READ) and the walk goes on;
   * its stores (RS write-backs) are written (DMA_WRITE), in order, and the pass's one interrupt comes
   * after the last of them.
   */
  private async txStaged(q: number): Promise<void> {
    const live = this.ticket('tx', q);
    const stage = new StagedMemory();
    let frames = 0;
    let bytes = 0;
    let completed = 0;
    for (;;) {
      const table = this.table;
      const work = this.txWork(q);
      if (!live() || !work || !table || !this.host.memory.dmaEnabled) break;
      if (frames >= TX_PASS_FRAMES || bytes >= TX_PASS_BYTES) {
        this.txYield(q);
        break;
      }
      const r = this.txWalk(table, work, frames, bytes, stage);
      this.txDone(q, r);
      for (const f of r.frames) bytes += f.length;
      frames += r.frames.length;
      completed += r.counts.completed;
      if (!(await this.flush(r.writes, live, this.tx[q]))) return;
      if (r.stop === 'indirect' && r.need) {
        if (!(await this.fetch(stage, r.need, live))) return;
        continue;
      }
      if (r.stop === 'budget') {
        this.txYield(q);
        break;
      }
      // Doorbells rung while this pass waited for its writes found it busy: it goes on with their tail.
      if (this.txTail[q] === work.tail) break;
    }
    if (completed > 0 && live()) this.raiseFor(q, 'tx');
  }

  /**
   * The TX walk from the queue's head to its tail, within what the pass has left of its budget (it
   * produced `frames` frames and `bytes` bytes so far); through `stage` for fd-less memory.
   */
  private txWalk(
    table: GuestMemoryTable,
    work: TxWork,
    frames: number,
    bytes: number,
    stage?: StagedMemory,
  ): IavfTxResult {
    return iavfTxRing(table, { iova: work.ring.ring, length: work.ring.length }, work.head, work.tail, {
      maxFrames: TX_PASS_FRAMES - frames,
      maxBytes: TX_PASS_BYTES - bytes,
      stage,
    });
  }

  /** What a TX walk did: the head, the counters, its frames to the network (the caller raises the interrupt). */
  private txDone(q: number, r: IavfTxResult): void {
    const s = this.tx[q];
    this.txHead[q] = r.head;
    const c = r.counts;
    s.errors += c.badAddress + c.badLength + c.noEop + c.badTso;
    s.drops += c.dropped;
    // A ring the device cannot read and write (outside guest memory) has nothing to walk.
    if (r.stop === 'ring') s.errors++;
    for (const f of r.frames) this.egress(q, s, f);
  }

  /** A pass spent its budget: it goes on in a later turn of the event loop. */
  private txYield(q: number): void {
    this.engineStats.txYields++;
    const live = this.ticket('tx', q);
    this.txLater[q] = setImmediate(() => {
      this.txLater[q] = undefined;
      if (live()) this.txDoorbell(q, this.txTail[q]);
    });
  }

  /**
   * A staged walk's stores into guest memory, in order (a descriptor's qword1 after the rest). False
   * when the pass gave up meanwhile (its queue or the data path was reset): the rest are not written.
   */
  private async flush(
    writes: StagedReport['writes'] | undefined,
    live: () => boolean,
    s: QueueStats,
  ): Promise<boolean> {
    for (const w of writes ?? []) {
      await this.host.memory.write(w.iova, w.bytes).catch(() => {
        s.errors++;
      });
      if (!live()) return false;
    }
    return live();
  }

  /** The range a staged walk needs, fetched into its stage (a failed fetch reads as outside guest memory). */
  private async fetch(
    stage: StagedMemory,
    need: NonNullable<StagedReport['need']>,
    live: () => boolean,
  ): Promise<boolean> {
    const bytes = await this.host.memory.read(need.iova, need.length).catch(() => null);
    return live() && stage.add(need.iova, bytes, need.length);
  }

  /** A frame the VF sent, through the host's policy (the twin's rules) to the network. */
  private egress(q: number, s: QueueStats, frame: Uint8Array): void {
    const out = this.nic.egress(frame, q);
    if (!out) return;
    this.count('tx', s, out);
    this.host.transmit(out);
  }

  private queueRx(job: () => Promise<void>): void {
    const gen = this.generation;
    this.rxQueued++;
    this.rxChain = this.rxChain
      // A frame that waited through a reset of the data path is dropped (one queue's: rxStaged's ticket).
      .then(() => (gen === this.generation ? job() : undefined))
      .catch((err) => this.host.log.warn({ err: (err as Error).message }, 'rx'))
      .finally(() => {
        this.rxQueued--;
      });
  }

  /** Filters and RSS (the twin's rules): the queue a frame goes to, or undefined (counted) if none takes it. */
  private route(frame: Uint8Array): RxRoute | undefined {
    const r = this.nic.route(frame);
    if (!r) return undefined;
    const ring = this.host.config().rx[r.queue];
    if (!ring) {
      this.rx[r.queue].drops++;
      return undefined;
    }
    return { q: r.queue, ring, hash: r.hash, frame: r.frame, l2tag1: r.l2tag1 };
  }

  /** The frame into its RX ring in directly mapped memory; false when it must go to rxStaged. */
  private rxDirect(received: Uint8Array, route: RxRoute): boolean {
    const { q, frame = received } = route;
    const r = this.rxWalk(this.table!, route, frame);
    if (r.status === 'indirect') return false;
    if (r.status === 'ok') this.engineStats.directRx++;
    if (this.rxDone(q, frame, r)) this.raiseFor(q, 'rx');
    return true;
  }

  /** The frame into its RX ring in memory only DMA messages reach: the same walk, through a StagedMemory. */
  private async rxStaged(received: Uint8Array, route: RxRoute): Promise<void> {
    const { q, frame = received } = route;
    const live = this.ticket('rx', q);
    const stage = new StagedMemory();
    for (;;) {
      const table = this.table;
      if (!table || !this.host.memory.dmaEnabled) {
        this.rx[q].drops++;
        return;
      }
      const r = this.rxWalk(table, route, frame, stage);
      if (r.status === 'indirect' && r.need) {
        if (!(await this.fetch(stage, r.need, live))) return;
        continue;
      }
      if (r.status === 'ok') this.engineStats.stagedRx++;
      const raise = this.rxDone(q, frame, r);
      // The interrupt after the write-backs, as the driver reads them when it comes.
      if ((await this.flush(r.writes, live, this.rx[q])) && raise) this.raiseFor(q, 'rx');
      return;
    }
  }

  /** The RX write of one frame into its route's ring, from the queue's head; through `stage` for fd-less memory. */
  private rxWalk(
    table: GuestMemoryTable,
    route: RxRoute,
    frame: Uint8Array,
    stage?: StagedMemory,
  ): IavfRxResult {
    const q = route.q;
    return iavfRxRing(table, rxQueue(route.ring), this.rxHead[q], this.rxTail[q] & TAIL_MASK, frame, {
      hash: route.hash,
      l2tag1: route.l2tag1,
      stage,
    });
  }

  /** What an RX write did: the head and the counters; whether the queue's interrupt is owed. */
  private rxDone(q: number, frame: Uint8Array, r: IavfRxResult): boolean {
    const s = this.rx[q];
    switch (r.status) {
      case 'ok':
        this.rxHead[q] = r.head;
        this.count('rx', s, frame);
        return true;
      case 'no-buffers':
      case 'too-big':
        s.drops++;
        return false;
      case 'bad-buffer':
        // Its descriptors went back to the driver as a dropped packet, so that the ring moves on.
        this.rxHead[q] = r.head;
        s.errors++;
        s.drops++;
        return true;
      default:
        // A tail beyond the ring, or a ring (or buffer) outside guest memory.
        s.errors++;
        s.drops++;
        return false;
    }
  }

  /**
   * One more packet on a queue: its counters and, for TX, the per-kind totals (the twin's route counts
   * the RX kinds, of every frame the filters took).
   */
  private count(dir: 'rx' | 'tx', s: QueueStats, frame: Uint8Array): void {
    s.packets++;
    s.bytes += frame.length;
    if (dir === 'rx') return;
    const kinds = this.kinds.tx;
    if (!(frame[0] & 1)) kinds.unicast++;
    else if ((frame[0] & frame[1] & frame[2] & frame[3] & frame[4] & frame[5]) === 0xff) kinds.broadcast++;
    else kinds.multicast++;
  }
}
