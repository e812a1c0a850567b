/**
 * The emulated AVF: PCI identity and layout, the BAR0 register table, VF reset, and the wiring of the
 * admin queue to the PF logic and to the misc interrupt.
 */
import { type DeviceContext, type DeviceCounters, type DeviceImpl, UndoStack } from '@emu/emudev';
import { IAVF_VECTORS_LAYOUT, IavfVectors } from '@emu/native';
import type { NativePort } from '@emu/network';
import { PciConfigSpace } from '@emu/vfio-user';
import { z } from 'zod';
import { AdminQueue } from './admin-queue.js';
import { type RegisterFamily, RegisterFile } from './bar0.js';
import {
  BAR0_SIZE,
  ETH_FCS_LEN,
  IAVF_PCI,
  Icr0,
  MAX_QUEUE_PAIRS,
  MSIX_BAR,
  MSIX_BAR_SIZE,
  MSIX_PBA_OFFSET,
  Reg,
  VfrState,
} from './constants.js';
import { DataPath } from './datapath/data-path.js';
import { queueResets } from './datapath/queue-resets.js';
import { type VfConfig, VirtualFunction } from './pf.js';

/** Where the NIC's frames go: a network port the device sends to; the network calls `receive`. */
export interface NetworkLink {
  send(frame: Buffer): void;
  detach(): void;
  /** The pcap file capturing the NIC now, if the network can capture (NetworkRegistry's can). */
  readonly capture?: string | null;
  startCapture?(path: string, options?: { overwrite?: boolean }): void;
  stopCapture?(): void;
}

export interface IavfOptions {
  mac: string;
  /** Queue pairs (and so MSI-X vectors: one more). */
  queues: number;
  /** Link speed in Mbps. */
  speed: number;
  /** Largest MTU the VF may set. */
  mtu: number;
  /** The host's spoof check on the VF's TX source addresses (default on). */
  spoofCheck?: boolean;
  /** Whether the host trusts the VF: other unicast addresses, promiscuous mode (default off). */
  trusted?: boolean;
  /** The host's port VLAN, 1-4094 (default none): tagged on the wire, invisible to the VF. */
  portVlan?: number;
  /**
   * Joins the device's port to its network; called once, when the device is built. `native` is the
   * VF's twin in the data plane, for a network that can attach it (a switch).
   */
  connect?(receive: (frame: Uint8Array) => void, native?: NativePort): NetworkLink;
}

/**
 * VFINT_DYN_CTLN1 registers in BAR0 (Linux iavf_register.h: IAVF_VFINT_DYN_CTLN1(0..63)), all of them
 * served by the native vectors (their layout is checked against Reg in bar0.test.ts).
 */
const DYN_CTLN1_COUNT = IAVF_VECTORS_LAYOUT.dynCtln1Count;

/** How long a VF reset stays in progress before it completes, as a PF takes a while to rebuild. */
const RESET_STEP_MS = 5;

export class IavfDevice implements DeviceImpl {
  readonly config: PciConfigSpace;
  readonly regions: DeviceImpl['regions'];
  readonly maxQueues: number;
  readonly doorbells: DeviceImpl['doorbells'];
  readonly attributes: DeviceImpl['attributes'];
  readonly registers: RegisterFile;
  readonly aq: AdminQueue;
  /** The interrupt vectors (automask, ITR): native, raised by the data plane's worker too. */
  readonly vectors: IavfVectors;
  readonly vf: VirtualFunction;
  private rstat: number = VfrState.VFACTIVE;
  private icr0 = 0;
  private icr0Ena = 0;
  /**
   * Cause events that came while ICR0_ENA1 had them off: each fires vector 0 once when enabled. Not
   * ICR01 itself, which a driver may never read (DPDK does not): a latched ICR01 bit re-fired at every
   * enable would storm, and an event dropped because its cause was off loses a reply.
   */
  private icr0Undelivered = 0;
  readonly dataPath: DataPath;
  private readonly network?: NetworkLink;
  /** The queue setup last reported, to tell which queues were (re)configured or enabled. */
  private lastQueues?: VfConfig;
  private link = { up: true, speedMbps: 0 };
  private queuePairs: number;
  /** Bus Master Enable as the guest last left it (the transport clears it when the client goes). */
  private busMaster = false;
  private resetTimers: NodeJS.Timeout[] = [];
  /** VF resets done, by cause (disconnect: the client went away). */
  readonly resets = { vf: 0, flr: 0, disconnect: 0 };

  constructor(
    private readonly ctx: DeviceContext,
    readonly options: IavfOptions,
  ) {
    this.maxQueues = options.queues;
    this.queuePairs = options.queues;
    this.link.speedMbps = options.speed;
    this.config = new PciConfigSpace({
      identity: { ...IAVF_PCI },
      bars: [
        { index: 0, kind: 'mem64', size: BAR0_SIZE },
        { index: MSIX_BAR, kind: 'mem64', size: MSIX_BAR_SIZE },
      ],
      capabilities: [
        {
          id: 'msix',
          tableSize: options.queues + 1,
          tableBar: MSIX_BAR,
          tableOffset: 0,
          pbaBar: MSIX_BAR,
          pbaOffset: MSIX_PBA_OFFSET,
        },
        { id: 'pcie', flr: true, maxPayload: 256, linkSpeed: 8, linkWidth: 8 },
      ],
    });
    this.aq = new AdminQueue({
      memory: ctx.memory,
      log: ctx.log,
      onMessage: (vop, data) => {
        try {
          return this.vf.handle(vop, data);
        } finally {
          // Filters, RSS and queues live in the data plane too.
          this.dataPath.configChanged();
        }
      },
      onPosted: () => this.raiseCause(Icr0.ADMINQ),
    });
    this.vf = new VirtualFunction({
      mac: options.mac,
      trusted: options.trusted ?? false,
      portVlan: options.portVlan ?? 0,
      maxMtu: options.mtu,
      queuePairs: () => this.queuePairs,
      maxQueuePairs: options.queues,
      link: () => ({ ...this.link }),
      inGuestMemory: (iova, length) => ctx.memory.contains(iova, length, 'write'),
      post: (vop, status, payload) => this.aq.post(vop, status, payload),
      resetVf: (pairs) => this.startVfReset(pairs),
      queuesChanged: (cfg) => this.reportQueues(cfg),
      stats: () => this.ethStats(),
      warn: (obj, msg) => ctx.log.warn(obj, msg),
    });
    // The steps that take resources (the shared tail page, the native twin and vectors, the network
    // port and its capture) each record their undo: a later step that fails releases them all.
    const undo = new UndoStack();
    try {
      this.dataPath = undo.push(
        new DataPath({
          memory: ctx.memory,
          log: ctx.log,
          name: ctx.name,
          mac: options.mac,
          spoofCheck: options.spoofCheck ?? true,
          portVlan: options.portVlan ?? 0,
          config: () => this.vf.config,
          raise: (v, itr) => this.vectors.raise(v, itr),
          // The tail registers in a page the VMM maps into the guest, watched by a native thread.
          sharedTails: true,
          // The network wants Buffers it may keep: every frame here is fresh (copied out of guest memory).
          transmit: (frame) =>
            this.network?.send(
              Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength),
            ),
        }),
        (d) => d.close(),
      );
      // Queue vectors' VFINT_ITRN1 live in the shared tail page (the guest writes them there, untrapped).
      this.vectors = undo.push(
        new IavfVectors({ count: options.queues + 1, tailFd: this.dataPath.tailFd }),
        (v) => v.close(),
      );
      this.dataPath.useVectors(this.vectors);
      // Refused (a pcap file that exists, a folder that does not, a TAP that cannot open): undone above.
      this.network = undo.push(
        options.connect?.((frame) => this.dataPath.receive(frame), this.dataPath.nativePort),
        (n) => n?.detach(),
      );
      undo.commit();
    } catch (err) {
      undo.unwindSync();
      throw err;
    }
    // Bus Master Enable set again: TX descriptors that waited for it go out. After the write is done,
    // when the transport has opened its DMA gate (its listener runs after this one).
    this.config.onWrite(() => {
      const on = this.config.busMasterEnabled;
      if (on && !this.busMaster) queueMicrotask(() => this.dataPath.dmaResumed());
      this.busMaster = on;
    });
    this.config.onReset(() => {
      this.busMaster = this.config.busMasterEnabled;
    });
    this.registers = new RegisterFile(BAR0_SIZE, this.registerTable(), ctx.log);
    this.regions = {
      0: {
        ...this.dataPath.bar0({
          read: (o, n) => this.registers.read(o, n),
          write: (o, d) => this.registers.write(o, d),
        }),
        // The interrupt re-arm of every NAPI round, applied by the socket thread (the register table's
        // VFINT_DYN_CTLN1 row does the same for what reaches JavaScript).
        hot: [{ offset: Reg.VFINT_DYN_CTLN1(0), size: 4 * DYN_CTLN1_COUNT, registers: this.vectors }],
      },
      // The VMM emulates the MSI-X table; it only reads the PBA through us.
      [MSIX_BAR]: { read: (_o, n) => Buffer.alloc(n), write: () => {} },
    };
    this.doorbells = [
      { id: 0, region: 0, offset: Reg.VF_ATQT1, width: 4 },
      ...Array.from({ length: options.queues }, (_, q) => [
        { id: 1 + 2 * q, region: 0, offset: Reg.QRX_TAIL1(q), width: 4 as const },
        { id: 2 + 2 * q, region: 0, offset: Reg.QTX_TAIL1(q), width: 4 as const },
      ]).flat(),
    ];
    this.attributes = {
      mac: { description: 'MAC address the VF gets', schema: z.string(), get: () => options.mac },
      mtu: { description: 'largest MTU the VF may use', schema: z.number(), get: () => options.mtu },
      queues: { description: 'queue pairs the VF has now', schema: z.number(), get: () => this.queuePairs },
      link: {
        description: 'link up (true) or down (false); a change is sent to the VF',
        schema: z.boolean(),
        get: () => this.link.up,
        set: (up: boolean) => {
          this.link.up = up;
          this.vf.sendLinkEvent();
        },
      },
      speed: {
        description: 'link speed in Mbps; a change is sent to the VF',
        schema: z.number().int().min(10).max(800_000),
        get: () => this.link.speedMbps,
        set: (mbps: number) => {
          this.link.speedMbps = mbps;
          this.vf.sendLinkEvent();
        },
      },
      capture: {
        description:
          'the pcap file capturing what the NIC sends and receives, or null; set {path, overwrite?} to start, null to stop',
        schema: z.union([
          z.null(),
          z.object({ path: z.string().min(1), overwrite: z.boolean().default(false) }).strict(),
        ]),
        get: () => this.network?.capture ?? null,
        set: (to: { path: string; overwrite: boolean } | null) => {
          if (!this.network?.startCapture) throw new Error(`${ctx.name}: its network cannot capture`);
          if (to === null) this.network.stopCapture?.();
          else this.network.startCapture(to.path, { overwrite: to.overwrite });
        },
      },
      state: {
        description: "the VF's virtchnl state: reset, version, active",
        schema: z.string(),
        get: () => this.vf.phase,
      },
      stats: {
        description:
          'virtchnl messages, errors and ignored requests by op, admin queue and interrupt counters, host policy drops, which memory path ran the rings',
        schema: z.unknown(),
        get: () => ({
          virtchnl: structuredClone(this.vf.counters),
          // What the host's policy held back: TX frames with a foreign source MAC, frames no filter took.
          policy: { spoofed: this.dataPath.spoofed, filtered: this.dataPath.filtered },
          adminQueue: { ...this.aq.stats },
          interrupts: this.vectors.counts().fired,
          resets: { ...this.resets },
          unknownRegisterAccesses: this.registers.unknownAccesses,
          // Passes over directly mapped guest memory and over fd-less memory (DMA messages: slow).
          dataPath: { ...this.dataPath.engineStats },
        }),
      },
    };
  }

  /**
   * `link up 10000Mb/s  rx 12 pkts (q0 7, q1 5)  tx 9 pkts  drops 0  errors 0  path data plane`, for
   * `emu`'s status line; `path` says who forwards the NIC's frames: the data plane's worker, or
   * JavaScript (no switch took its twin, or its memory is out of the worker's reach).
   */
  status(): string {
    const queues = this.vf.config.numQueuePairs;
    const per = (list: typeof this.dataPath.rx) => list.slice(0, queues);
    const sum = (list: typeof this.dataPath.rx, k: 'packets' | 'drops' | 'errors') =>
      per(list).reduce((n, q) => n + q[k], 0);
    const rxQueues = per(this.dataPath.rx)
      .map((q, i) => `q${i} ${q.packets}`)
      .join(', ');
    const drops = sum(this.dataPath.rx, 'drops') + sum(this.dataPath.tx, 'drops') + this.dataPath.filtered;
    const errors = sum(this.dataPath.rx, 'errors') + sum(this.dataPath.tx, 'errors');
    // Among the drops, those of the spoof check: what an operator looks for when a guest "sends nothing".
    const spoofed = this.dataPath.spoofed ? ` (spoofed ${this.dataPath.spoofed})` : '';
    const link =
      this.vf.phase !== 'active' ? 'not up' : this.link.up ? `up ${this.link.speedMbps}Mb/s` : 'down';
    return `link ${link}  rx ${sum(this.dataPath.rx, 'packets')} pkts (${rxQueues})  tx ${sum(this.dataPath.tx, 'packets')} pkts  drops ${drops}${spoofed}  errors ${errors}  path ${this.dataPath.plane.native ? 'data plane' : 'javascript'}`;
  }

  /** The link as the VF is told it, and each queue pair the VF has in use, RX and TX. */
  counters(): DeviceCounters {
    const queues = Array.from({ length: this.vf.config.numQueuePairs }, (_, q) => [
      { queue: q, direction: 'rx' as const, ...this.dataPath.rx[q] },
      { queue: q, direction: 'tx' as const, ...this.dataPath.tx[q] },
    ]).flat();
    return { link: { ...this.link }, queues };
  }

  /** FLR, client DEVICE_RESET, or emudev reset(): back to power-on at once, ready (VFACTIVE). */
  reset(): void {
    this.resets.flr++;
    this.clearVfState(this.maxQueues);
    this.rstat = VfrState.VFACTIVE;
  }

  /**
   * The client went away: queues, admin queue and interrupt state go as in a VF reset, so no ring of
   * the old guest's is ever walked, or written, in the next client's memory. The next guest's driver
   * sets everything up again, as after an FLR.
   */
  disconnected(): void {
    this.resets.disconnect++;
    this.busMaster = false;
    for (const t of this.resetTimers.splice(0)) clearTimeout(t);
    this.clearVfState(this.maxQueues);
    this.rstat = VfrState.VFACTIVE;
  }

  /** Serving: interrupts go out on the client's MSI-X eventfds, from whichever thread raises them. */
  start(): void {
    this.vectors.setLines(this.ctx.irqs.lines() ?? null);
  }

  stop(): void {
    this.vectors.setLines(null);
  }

  close(): void {
    for (const t of this.resetTimers.splice(0)) clearTimeout(t);
    this.network?.detach();
    this.dataPath.close();
    this.vectors.close();
  }

  /**
   * virtchnl_eth_stats from the queues' counters, as an i40e/ice PF reports a VSI's: rx_bytes counts
   * each delivered frame with its 4-byte FCS (the MAC counts octets on the wire; DPDK's iavf takes 4
   * per packet off, Linux's shows them as they come), tx_bytes the frames as the VF posted them; the
   * RX kinds count every frame the filters took, rx_discards those of them dropped (DPDK's iavf
   * reports ipackets = unicast + multicast + broadcast - discards). Frames the filters turned away
   * reached no VSI: they are in no counter here (the data path counts them as `filtered`).
   */
  private ethStats() {
    const sum = (list: typeof this.dataPath.tx, key: 'packets' | 'bytes' | 'drops' | 'errors') =>
      BigInt(list.reduce((n, s) => n + s[key], 0));
    const { rx, tx } = this.dataPath.kinds;
    return {
      rxBytes: sum(this.dataPath.rx, 'bytes') + ETH_FCS_LEN * sum(this.dataPath.rx, 'packets'),
      rxUnicast: BigInt(rx.unicast),
      rxMulticast: BigInt(rx.multicast),
      rxBroadcast: BigInt(rx.broadcast),
      rxDiscards: sum(this.dataPath.rx, 'drops'),
      txBytes: sum(this.dataPath.tx, 'bytes'),
      txUnicast: BigInt(tx.unicast),
      txMulticast: BigInt(tx.multicast),
      txBroadcast: BigInt(tx.broadcast),
      txDiscards: sum(this.dataPath.tx, 'drops'),
      txErrors: sum(this.dataPath.tx, 'errors'),
    };
  }

  /** VFGEN_RSTAT, for tests. */
  get resetState(): number {
    return this.rstat;
  }

  /**
   * A VF reset as a PF does it (RESET_VF, or after granting REQUEST_QUEUES): queues, filters, IRQ
   * state and the admin queue go; ARQLEN.ENABLE reads 0, which is how the VF notices; VFGEN_RSTAT goes
   * INPROGRESS → COMPLETED → VFACTIVE.
   */
  private startVfReset(queuePairs?: number): void {
    this.resets.vf++;
    for (const t of this.resetTimers.splice(0)) clearTimeout(t);
    this.clearVfState(queuePairs ?? this.queuePairs);
    this.rstat = VfrState.INPROGRESS;
    this.resetTimers.push(
      setTimeout(() => {
        this.rstat = VfrState.COMPLETED;
      }, RESET_STEP_MS),
      setTimeout(() => {
        this.rstat = VfrState.VFACTIVE;
      }, 2 * RESET_STEP_MS),
    );
  }

  private clearVfState(queuePairs: number): void {
    this.queuePairs = Math.min(Math.max(1, queuePairs), this.maxQueues);
    this.aq.reset();
    this.vf.reset();
    this.vectors.reset();
    this.icr0 = 0;
    this.icr0Ena = 0;
    this.icr0Undelivered = 0;
    this.dataPath.reset();
    this.lastQueues = undefined;
  }

  /**
   * An interrupt cause event for the misc vector: latched in ICR01, and raised on vector 0 now if its
   * enable bit is set (held there until DYN_CTL01 arms it), else once ICR0_ENA1 enables it.
   */
  private raiseCause(cause: number): void {
    this.icr0 |= cause;
    if (this.icr0Ena & cause) this.vectors.raise(0);
    else this.icr0Undelivered |= cause;
  }

  /** Tells emudev's queue table: RX queue q is id 2q, TX queue q is id 2q+1. */
  private reportQueues(cfg: VfConfig): void {
    // A queue that was (re)configured or just enabled starts again from descriptor 0; the others go on.
    const before = this.lastQueues;
    this.lastQueues = cfg;
    this.dataPath.configured(cfg, queueResets(before, cfg));
    for (let q = 0; q < this.maxQueues; q++) {
      const rx = cfg.rx[q];
      const tx = cfg.tx[q];
      const vector = [...cfg.irqMap].find(([, m]) => m.rx & (1 << q))?.[0];
      this.ctx.queues.update(2 * q, {
        base: rx?.ring ?? 0n,
        size: rx?.length ?? 0,
        doorbell: 1 + 2 * q,
        vector,
        enabled: (cfg.rxEnabled & (1 << q)) !== 0,
      });
      this.ctx.queues.update(2 * q + 1, {
        base: tx?.ring ?? 0n,
        size: tx?.length ?? 0,
        doorbell: 2 + 2 * q,
        vector: [...cfg.irqMap].find(([, m]) => m.tx & (1 << q))?.[0],
        enabled: (cfg.txEnabled & (1 << q)) !== 0,
      });
    }
  }

  /** BAR0, one row per register family (iavf_register.h). */
  private registerTable(): RegisterFamily[] {
    const key = () => this.vf.config.rssKey;
    const lut = () => this.vf.config.rssLut;
    const aqReg = (name: string, offset: number): RegisterFamily => ({
      name,
      offset,
      read: () => this.aq.read(offset),
      write: (_i, v) => this.aq.write(offset, v),
    });
    return [
      {
        name: 'QTX_TAIL1',
        offset: Reg.QTX_TAIL1(0),
        count: MAX_QUEUE_PAIRS,
        read: (q) => this.dataPath.txTail[q],
        // The TX doorbell.
        write: (q, v) => this.dataPath.txDoorbell(q, v & 0x1fff),
      },
      {
        name: 'QRX_TAIL1',
        offset: Reg.QRX_TAIL1(0),
        count: MAX_QUEUE_PAIRS,
        read: (q) => this.dataPath.rxTail[q],
        write: (q, v) => {
          this.dataPath.rxTail[q] = v & 0x1fff;
        },
      },
      ...[0, 1, 2].map((i) => ({
        name: `VFINT_ITRN1_${i}`,
        offset: Reg.VFINT_ITRN1(i, 0),
        count: MAX_QUEUE_PAIRS,
        read: (v: number) => this.vectors.readItr(v + 1, i),
        write: (v: number, x: number) => this.vectors.writeItr(v + 1, i, x),
      })),
      {
        name: 'VFINT_DYN_CTLN1',
        offset: Reg.VFINT_DYN_CTLN1(0),
        count: DYN_CTLN1_COUNT,
        read: (v) => this.vectors.read(v + 1),
        write: (v, x) => this.vectors.write(v + 1, x),
      },
      {
        name: 'VFINT_ICR01',
        offset: Reg.VFINT_ICR01,
        // Read to clear, as the hardware's.
        read: () => {
          const v = this.icr0;
          this.icr0 = 0;
          // The driver has seen these causes: nothing of them is left to deliver.
          this.icr0Undelivered = 0;
          return v;
        },
      },
      {
        name: 'VFINT_ITR01',
        offset: Reg.VFINT_ITR01(0),
        count: 3,
        read: (i) => this.vectors.readItr(0, i),
        write: (i, x) => this.vectors.writeItr(0, i, x),
      },
      {
        name: 'VFINT_ICR0_ENA1',
        offset: Reg.VFINT_ICR0_ENA1,
        read: () => this.icr0Ena,
        write: (_i, v) => {
          this.icr0Ena = v;
          const due = this.icr0Undelivered & v;
          if (!due) return;
          this.icr0Undelivered &= ~due;
          this.vectors.raise(0);
        },
      },
      {
        name: 'VFINT_DYN_CTL01',
        offset: Reg.VFINT_DYN_CTL01,
        read: () => this.vectors.read(0),
        write: (_i, v) => this.vectors.write(0, v),
      },
      aqReg('VF_ARQBAH1', Reg.VF_ARQBAH1),
      aqReg('VF_ATQH1', Reg.VF_ATQH1),
      aqReg('VF_ATQLEN1', Reg.VF_ATQLEN1),
      aqReg('VF_ARQBAL1', Reg.VF_ARQBAL1),
      aqReg('VF_ARQT1', Reg.VF_ARQT1),
      aqReg('VF_ARQH1', Reg.VF_ARQH1),
      aqReg('VF_ATQBAH1', Reg.VF_ATQBAH1),
      aqReg('VF_ATQBAL1', Reg.VF_ATQBAL1),
      aqReg('VF_ARQLEN1', Reg.VF_ARQLEN1),
      aqReg('VF_ATQT1', Reg.VF_ATQT1),
      { name: 'VFGEN_RSTAT', offset: Reg.VFGEN_RSTAT, read: () => this.rstat },
      {
        name: 'VFQF_HENA',
        offset: Reg.VFQF_HENA(0),
        count: 2,
        read: (i) => Number((this.vf.config.rssHena >> BigInt(32 * i)) & 0xffffffffn),
        write: (i, v) => {
          const shift = BigInt(32 * i);
          const h = this.vf.config.rssHena & ~(0xffffffffn << shift);
          this.vf.config = { ...this.vf.config, rssHena: h | (BigInt(v) << shift) };
        },
      },
      {
        name: 'VFQF_HKEY',
        offset: Reg.VFQF_HKEY(0),
        count: 13,
        read: (i) => key().readUInt32LE(4 * i),
        write: (i, v) => key().writeUInt32LE(v, 4 * i),
      },
      {
        name: 'VFQF_HLUT',
        offset: Reg.VFQF_HLUT(0),
        count: 16,
        read: (i) => lut().readUInt32LE(4 * i),
        write: (i, v) => lut().writeUInt32LE(v, 4 * i),
      },
    ];
  }
}
