/**
 * The data path as iavf_txrx.c runs it: TX and RX rings in guest RAM (iavf_setup_all_tx/rx_resources),
 * transmit (iavf_xmit_frame_ring, iavf_tx_map), TX completion (iavf_clean_tx_irq), receive
 * (iavf_clean_rx_irq) and buffer posting (iavf_alloc_rx_buffers), one queue reset for a restart, and
 * the queue vectors' interrupts with the NAPI round that serves them.
 */
import type { EventFd } from '@emu/native';
import type { GuestRam } from '../guest-memory.js';
import {
  DYN_CTL_ENABLE,
  DYN_CTL_WB_ON_ITR,
  IAVF,
  IAVF_DEFAULT_TXD,
  IAVF_MAX_BUFFER_TXD,
  IAVF_MAX_DATA_PER_TXD_ALIGNED,
  IAVF_RX_DESC_SIZE,
  IAVF_TX_DESC_SIZE,
  LIBETH_RX_LL_LEN,
  RX_WB,
  TX_CMD,
  TX_DESC,
} from '../iavf-defs.js';
import type { QueuePairInfo, VectorMapEntry } from '../virtchnl-msgs.js';
import {
  parseRxWriteback,
  type RawTxDesc,
  type RxDescriptor,
  type RxFrame,
  rxChecksumVerdict,
  type TxOffload,
  txDataQw1,
  txOffload,
} from './descriptors.js';
import { type Bar0, pollPause, waitEventFd } from './io.js';

export interface RingOptions {
  /** TX/RX descriptors per ring (IAVF_DEFAULT_TXD / RXD). */
  ringLen?: number;
  /** The netdev MTU: sets databuffer_size as libeth does. */
  mtu?: number;
  /** Post RX buffers and write QRX_TAIL = count - 1, as iavf_alloc_rx_buffers (default true). */
  postRxBuffers?: boolean;
  /** RX databuffer_size (default: libeth's ALIGN(mtu + 26, 128)); a multiple of 128. */
  rxBufLen?: number;
  /** Bytes of guest RAM per TX queue for packet data (default 256 KiB). */
  txBufferBytes?: number;
}

/** What the rings take from the virtchnl negotiation (Virtchnl has them). */
export interface QueueLayout {
  readonly numActiveQueues: number;
  readonly numMsixVectors: number;
  /** Bytes per RX descriptor (16 or 32). */
  readonly rxDescSize: number;
  /** rxq_info.max_pkt_size and rxdid. */
  readonly maxFrame: number;
  readonly rxdid: number;
  readonly vectorMaps: readonly VectorMapEntry[];
}

export interface RingSet {
  tx: bigint;
  rx: bigint;
  /** RX data buffers, one per descriptor, `bufferSize` apart. */
  rxBuffers?: bigint;
  bufferSize: number;
}

export interface TransmitOptions extends TxOffload {
  /** TX queue (default 0). */
  queue?: number;
  /** Buffer sizes to cut the frame into, one data descriptor each (default: 12 KiB pieces). */
  buffers?: number[];
  /** Write QTX_TAIL after it (default true; false is netdev_xmit_more). */
  kick?: boolean;
  /** A VLAN tag (TCI) for the device to insert: IL2TAG1 with L2TAG1, as iavf_tx_map sets them. */
  vlan?: number;
}

/** Where a packet went on the TX ring. */
export interface TxPosted {
  queue: number;
  /** First descriptor (the context descriptor for TSO). */
  first: number;
  /** The descriptor carrying EOP|RS. */
  rs: number;
  descriptors: number;
}

interface TxPending {
  /** The RS descriptor. */
  rs: number;
  /** next_to_clean once it is done. */
  next: number;
  /** Packet-buffer bytes given back at completion. */
  release: number;
}

/** Packet buffers: a FIFO area of guest RAM, handed out in order and given back at completion. */
interface TxArena {
  base: bigint;
  size: number;
  head: number;
  free: number;
}

interface TxQueueState {
  ntu: number;
  ntc: number;
  pending: TxPending[];
  arena?: TxArena;
}

interface RxQueueState {
  ntu: number;
  ntc: number;
  /** Descriptors of a frame whose EOF has not come yet (rx_ring->skb across polls). */
  partial: Array<{ desc: RxDescriptor; data: Buffer }>;
}

export class DataPath {
  readonly ringLen: number;
  readonly mtu: number;
  readonly postRxBuffers: boolean;
  readonly txBufferBytes: number;
  /** rx_buf_len: the option, else as libeth computes it for the MTU, ALIGN(mtu + 26, 128). */
  readonly rxBufLen: number;
  rings: RingSet[] = [];
  /** Frames dropped by the guest because their EOF write-back had an error bit (RXE …), by queue. */
  readonly rxErrorFrames: number[] = [];
  private readonly txState: TxQueueState[] = [];
  private readonly rxState: RxQueueState[] = [];

  constructor(
    private readonly regs: Bar0,
    private readonly ram: GuestRam,
    private readonly layout: QueueLayout,
    /** MSI-X vector v's eventfd, once probe handed one over. */
    private readonly irqFd: (v: number) => EventFd | undefined,
    options: RingOptions,
  ) {
    this.ringLen = options.ringLen ?? IAVF_DEFAULT_TXD;
    this.mtu = options.mtu ?? 1500;
    this.postRxBuffers = options.postRxBuffers ?? true;
    this.txBufferBytes = options.txBufferBytes ?? 256 * 1024;
    this.rxBufLen = options.rxBufLen ?? Math.ceil((this.mtu + LIBETH_RX_LL_LEN) / 128) * 128;
  }

  /**
   * Rings for the active queues (iavf_setup_all_tx/rx_resources: 4 KiB-aligned, count × 16 / × 32
   * bytes), RX buffers posted and QRX_TAIL = count - 1 written (iavf_alloc_rx_buffers), as
   * iavf_configure does before it queues CONFIGURE_QUEUES. Allocations are kept across resets.
   */
  async setupRings(): Promise<RingSet[]> {
    const bufferSize = this.rxBufLen;
    for (let q = 0; q < this.layout.numActiveQueues; q++) {
      if (!this.rings[q] || this.rings[q].bufferSize < bufferSize) {
        this.rings[q] = {
          tx: this.ram.alloc(this.ringLen * IAVF_TX_DESC_SIZE),
          rx: this.ram.alloc(this.ringLen * IAVF_RX_DESC_SIZE),
          rxBuffers: this.ram.alloc(this.ringLen * bufferSize),
          bufferSize,
        };
      }
      await this.resetQueue(q, { rx: true, tx: true });
    }
    return this.rings.slice(0, this.layout.numActiveQueues);
  }

  /**
   * Queue q's rings cleared and its software state back to descriptor 0 (iavf_configure_tx/rx_ring:
   * next_to_use = next_to_clean = 0), the packet buffers all free, RX buffers posted again.
   */
  async resetQueue(q: number, which: { rx?: boolean; tx?: boolean }): Promise<void> {
    const ring = this.rings[q];
    if (which.tx) {
      this.ram.fill(ring.tx, this.ringLen * IAVF_TX_DESC_SIZE);
      const arena = this.txState[q]?.arena;
      if (arena) Object.assign(arena, { head: 0, free: arena.size });
      this.txState[q] = { ntu: 0, ntc: 0, pending: [], arena };
    }
    if (which.rx) {
      this.ram.fill(ring.rx, this.ringLen * IAVF_RX_DESC_SIZE);
      this.rxState[q] = { ntu: 0, ntc: 0, partial: [] };
      if (this.postRxBuffers) await this.refillRx(q);
    }
  }

  /** The queue pairs iavf_configure_queues describes. */
  queuePairInfo(): QueuePairInfo[] {
    const { maxFrame, rxdid } = this.layout;
    return this.rings.slice(0, this.layout.numActiveQueues).map((r, q) => ({
      txq: { queueId: q, ringLen: this.ringLen, dmaRingAddr: r.tx },
      rxq: {
        queueId: q,
        ringLen: this.ringLen,
        databufferSize: r.bufferSize,
        maxPktSize: maxFrame,
        rxdid,
        dmaRingAddr: r.rx,
      },
    }));
  }

  private txq(q: number): { ring: RingSet; st: TxQueueState } {
    const ring = this.rings[q];
    const st = this.txState[q];
    if (!ring || !st) throw new Error(`TX queue ${q} has no ring (setupRings first)`);
    return { ring, st };
  }

  private rxq(q: number): { ring: RingSet & { rxBuffers: bigint }; st: RxQueueState } {
    const ring = this.rings[q];
    const st = this.rxState[q];
    if (!ring || !st || ring.rxBuffers === undefined)
      throw new Error(`RX queue ${q} has no ring (setupRings first)`);
    return { ring: ring as RingSet & { rxBuffers: bigint }, st };
  }

  /** IAVF_DESC_UNUSED: free descriptors of a ring, one always kept empty. */
  private unused(ntc: number, ntu: number): number {
    return (ntc - ntu - 1 + this.ringLen) % this.ringLen;
  }

  /** TX next_to_use / next_to_clean and the packets in flight. */
  txRingState(q = 0): { ntu: number; ntc: number; inFlight: number } {
    const { st } = this.txq(q);
    return { ntu: st.ntu, ntc: st.ntc, inFlight: st.pending.length };
  }

  /** RX next_to_use (the tail) / next_to_clean (where the device writes next). */
  rxRingState(q = 0): { ntu: number; ntc: number } {
    const { st } = this.rxq(q);
    return { ntu: st.ntu, ntc: st.ntc };
  }

  /** Bytes from the queue's packet-buffer area, in FIFO order; `release` counts what completion gives back. */
  private txAlloc(q: number, size: number, charge: { release: number }): bigint {
    const { st } = this.txq(q);
    if (!st.arena) {
      const bytes = this.txBufferBytes;
      st.arena = { base: this.ram.alloc(bytes), size: bytes, head: 0, free: bytes };
    }
    const a = st.arena;
    if (a.head + size > a.size) {
      const waste = a.size - a.head;
      if (a.free < waste + size) throw new Error(`TX queue ${q}: packet buffers full (waitTxDone first)`);
      a.free -= waste;
      charge.release += waste;
      a.head = 0;
    }
    if (a.free < size) throw new Error(`TX queue ${q}: packet buffers full (waitTxDone first)`);
    const at = a.base + BigInt(a.head);
    a.head += size;
    a.free -= size;
    charge.release += size;
    return at;
  }

  /** A copy of `data` in guest RAM (never freed): for hand-made descriptors. */
  scratch(data: Uint8Array, align = 64): bigint {
    const at = this.ram.alloc(Math.max(1, data.length), align);
    if (data.length) this.ram.write(at, data);
    return at;
  }

  /**
   * iavf_xmit_frame_ring + iavf_tx_map: the frame into packet buffers, a context descriptor first for
   * TSO, data descriptors with ICRC (plus IIPT/L4T and MACLEN/IPLEN/L4LEN for offloads, see txOffload),
   * EOP|RS on the last, then QTX_TAIL = next_to_use unless kick is false.
   */
  async transmit(frame: Uint8Array, opts: TransmitOptions = {}): Promise<TxPosted> {
    const q = opts.queue ?? 0;
    const data = Buffer.from(frame);
    const offload = txOffload(data, opts);
    const cmd = TX_CMD.ICRC | offload.cmd;
    const descs: RawTxDesc[] = offload.context ? [offload.context] : [];
    const sizes = opts.buffers ?? [];
    if (!opts.buffers) {
      for (let off = 0; off < data.length; off += IAVF_MAX_DATA_PER_TXD_ALIGNED)
        sizes.push(Math.min(IAVF_MAX_DATA_PER_TXD_ALIGNED, data.length - off));
    }
    if (sizes.reduce((a, b) => a + b, 0) !== data.length)
      throw new RangeError(`buffers [${sizes}] do not add up to the ${data.length}-byte frame`);
    if (sizes.some((n) => n <= 0 || n > TX_DESC.MAX_BUF_SZ)) throw new RangeError(`buffer sizes [${sizes}]`);
    if (sizes.length > IAVF_MAX_BUFFER_TXD)
      throw new RangeError(`${sizes.length} buffers: Linux uses at most ${IAVF_MAX_BUFFER_TXD} per packet`);
    const charge = { release: 0 };
    let off = 0;
    sizes.forEach((size, i) => {
      const at = this.txAlloc(q, size, charge);
      this.ram.write(at, data.subarray(off, off + size));
      off += size;
      const last = i === sizes.length - 1 ? TX_CMD.EOP | TX_CMD.RS : 0;
      // iavf_tx_map puts IL2TAG1 and the tag on every data descriptor of the packet.
      const tag = opts.vlan === undefined ? 0 : TX_CMD.IL2TAG1;
      descs.push({ qw0: at, qw1: txDataQw1(cmd | last | tag, size, offload.offset, opts.vlan ?? 0) });
    });
    return this.postTx(q, descs, { kick: opts.kick, release: charge.release });
  }

  /**
   * Descriptors onto TX ring q at next_to_use, as given (for malformed ones), then QTX_TAIL unless kick
   * is false. Each data descriptor with RS becomes a completion waitTxDone waits for.
   */
  async postTx(
    q: number,
    descs: RawTxDesc[],
    opts: { kick?: boolean; release?: number } = {},
  ): Promise<TxPosted> {
    const { ring, st } = this.txq(q);
    if (descs.length > this.unused(st.ntc, st.ntu))
      throw new Error(`TX queue ${q}: ${descs.length} descriptors, ${this.unused(st.ntc, st.ntu)} free`);
    const first = st.ntu;
    let rs = -1;
    for (const d of descs) {
      const at = ring.tx + BigInt(st.ntu * IAVF_TX_DESC_SIZE);
      this.ram.setU64(at, d.qw0);
      this.ram.setU64(at + 8n, d.qw1);
      const next = (st.ntu + 1) % this.ringLen;
      const isData = (d.qw1 & TX_DESC.DTYPE_MASK) === BigInt(TX_DESC.DTYPE_DATA);
      if (isData && ((d.qw1 >> TX_DESC.CMD_SHIFT) & BigInt(TX_CMD.RS)) !== 0n) {
        st.pending.push({ rs: st.ntu, next, release: 0 });
        rs = st.ntu;
      }
      st.ntu = next;
    }
    const last = st.pending[st.pending.length - 1];
    if (last && opts.release) last.release += opts.release;
    if (opts.kick !== false) await this.writeTxTail(q, st.ntu);
    return { queue: q, first, rs, descriptors: descs.length };
  }

  /** TX ring q's next_to_use: where QTX_TAIL goes once what was posted is to go out. */
  txNextToUse(q = 0): number {
    return this.txq(q).st.ntu;
  }

  /** A raw QTX_TAIL write (the doorbell), e.g. beyond the ring. */
  async writeTxTail(q: number, value: number): Promise<void> {
    await this.regs.wr32(IAVF.QTX_TAIL1(q), value);
  }

  /** iavf_clean_tx_irq: completed packets (DTYPE 0xF on their RS descriptor) off the ring, in order. */
  cleanTx(q = 0): number {
    const { ring, st } = this.txq(q);
    let n = 0;
    while (st.pending.length) {
      const p = st.pending[0];
      const qw1 = this.ram.u64(ring.tx + BigInt(p.rs * IAVF_TX_DESC_SIZE) + 8n);
      if ((qw1 & TX_DESC.DTYPE_MASK) !== BigInt(TX_DESC.DTYPE_DESC_DONE)) break;
      st.pending.shift();
      st.ntc = p.next;
      if (st.arena) st.arena.free += p.release;
      n++;
    }
    return n;
  }

  /** Waits until every packet posted on TX queue q is done; returns how many were cleaned. */
  async waitTxDone(q = 0, timeoutMs = 2000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let n = 0;
    for (let polls = 0; ; polls++) {
      n += this.cleanTx(q);
      const { st } = this.txq(q);
      if (!st.pending.length) return n;
      if (Date.now() > deadline) {
        throw new Error(
          `TX queue ${q}: descriptor ${st.pending[0].rs} not done after ${timeoutMs} ms (${st.pending.length} packets in flight, next_to_use ${st.ntu})`,
        );
      }
      await pollPause(polls);
    }
  }

  /** Parses the RX write-back in slot i of queue q. */
  rxDescriptor(q: number, i: number): RxDescriptor {
    const at = this.rxq(q).ring.rx + BigInt(i * this.layout.rxDescSize);
    return parseRxWriteback(i, this.ram.u64(at), this.ram.u64(at + 8n));
  }

  /**
   * iavf_clean_rx_irq: write-backs with DD from next_to_clean on, buffers joined until EOF (a frame
   * whose EOF has not come yet is kept for the next call), frames with an error bit dropped (counted in
   * rxErrorFrames); then, unless refill is false, the buffers go back (refillRx).
   */
  async receiveFrames(q = 0, opts: { refill?: boolean } = {}): Promise<RxFrame[]> {
    const { ring, st } = this.rxq(q);
    const out: RxFrame[] = [];
    for (let cleaned = 0; cleaned < this.ringLen; cleaned++) {
      if (st.ntc === st.ntu) break; // not posted: the device cannot have written it
      const d = this.rxDescriptor(q, st.ntc);
      if (!d.dd) break;
      const buf = ring.rxBuffers + BigInt(st.ntc * ring.bufferSize);
      st.partial.push({ desc: d, data: this.ram.read(buf, Math.min(d.length, ring.bufferSize)) });
      st.ntc = (st.ntc + 1) % this.ringLen;
      if (!d.eof) continue;
      const parts = st.partial.splice(0);
      if (d.errors & RX_WB.ERROR_RXE) {
        this.rxErrorFrames[q] = (this.rxErrorFrames[q] ?? 0) + 1;
        continue;
      }
      out.push({
        queue: q,
        data: Buffer.concat(parts.map((p) => p.data)),
        descriptors: parts.map((p) => p.desc),
        hash: d.fltstat === RX_WB.FLTSTAT_RSS_HASH ? d.hash : undefined,
        ptype: d.ptype,
        checksum: rxChecksumVerdict(d),
        vlan: d.l2tag1,
      });
    }
    if (opts.refill !== false) await this.refillRx(q);
    return out;
  }

  /**
   * iavf_alloc_rx_buffers: pkt_addr of up to `count` (default: every free) descriptors from
   * next_to_use on, qword1 of the new next_to_use cleared, then QRX_TAIL = next_to_use.
   */
  async refillRx(q = 0, count?: number): Promise<number> {
    const { ring, st } = this.rxq(q);
    const n = Math.min(count ?? Number.POSITIVE_INFINITY, this.unused(st.ntc, st.ntu));
    if (n <= 0) return 0;
    const descSize = this.layout.rxDescSize;
    for (let i = 0; i < n; i++) {
      this.setRxBuffer(q, st.ntu);
      st.ntu = (st.ntu + 1) % this.ringLen;
      this.ram.setU64(ring.rx + BigInt(st.ntu * descSize) + 8n, 0n);
    }
    await this.writeRxTail(q, st.ntu);
    return n;
  }

  /** Overwrites pkt_addr of RX descriptor i (for malformed ones); the slot's own buffer by default. */
  setRxBuffer(q: number, i: number, addr?: bigint): void {
    const { ring } = this.rxq(q);
    this.ram.setU64(
      ring.rx + BigInt(i * this.layout.rxDescSize),
      addr ?? ring.rxBuffers + BigInt(i * ring.bufferSize),
    );
  }

  /** A raw QRX_TAIL write, e.g. beyond the ring. */
  async writeRxTail(q: number, value: number): Promise<void> {
    await this.regs.wr32(IAVF.QRX_TAIL1(q), value);
  }

  /** Receives on queue q until `count` frames came; throws after timeoutMs. */
  async waitFrames(q: number, count: number, timeoutMs = 2000): Promise<RxFrame[]> {
    return this.waitFramesOn([q], count, timeoutMs);
  }

  /** Receives on every active queue until `count` frames came in all; throws after timeoutMs. */
  async waitAnyFrames(count: number, timeoutMs = 2000): Promise<RxFrame[]> {
    const queues = Array.from({ length: this.layout.numActiveQueues }, (_, q) => q);
    return this.waitFramesOn(queues, count, timeoutMs);
  }

  private async waitFramesOn(queues: number[], count: number, timeoutMs: number): Promise<RxFrame[]> {
    const deadline = Date.now() + timeoutMs;
    const out: RxFrame[] = [];
    for (let polls = 0; ; polls++) {
      for (const q of queues) out.push(...(await this.receiveFrames(q)));
      if (out.length >= count) return out;
      if (Date.now() > deadline) {
        throw new Error(
          `${out.length} frames on queues [${queues}] within ${timeoutMs} ms, ${count} awaited`,
        );
      }
      await pollPause(polls);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Queue vectors (MSI-X 1..n)

  /** iavf_irq_enable_queues: DYN_CTLN1(v) = INTENA | ITR_INDX(3) for each queue vector. */
  async irqEnableQueues(): Promise<void> {
    for (let v = 1; v < this.layout.numMsixVectors; v++) await this.armVector(v);
  }

  /** iavf_irq_disable (queue vectors). */
  async irqDisableQueues(): Promise<void> {
    for (let v = 1; v < this.layout.numMsixVectors; v++) await this.regs.wr32(IAVF.VFINT_DYN_CTLN1(v - 1), 0);
  }

  /** The MSI-X vector CONFIG_IRQ_MAP put queue q's RX (or TX) on. */
  queueVector(q: number, dir: 'rx' | 'tx' = 'rx'): number {
    const m = this.layout.vectorMaps.find((v) => (dir === 'rx' ? v.rxqMap : v.txqMap) & (1 << q));
    if (!m) throw new Error(`no vector maps ${dir.toUpperCase()} queue ${q}`);
    return m.vectorId;
  }

  /** Interrupts of vector v since last asked (the eventfd counter, read and cleared); never waits. */
  takeIrqs(v: number): number {
    return Number(this.irqFd(v)?.read() ?? 0n);
  }

  /** Waits up to timeoutMs for vector v to fire; true if it did (the count is consumed). */
  async waitIrq(v: number, timeoutMs = 1000): Promise<boolean> {
    const fd = this.irqFd(v);
    if (!fd) throw new Error(`no eventfd for vector ${v}`);
    return waitEventFd(fd, timeoutMs);
  }

  /** Re-arms queue vector v as NAPI completion does: DYN_CTLN1(v - 1) = INTENA | ITR_INDX(3). */
  async armVector(v: number): Promise<void> {
    await this.writeDynCtln(v, DYN_CTL_ENABLE);
  }

  /**
   * iavf_enable_wb_on_itr, as iavf_napi_poll calls it when a poll ran out of budget with WB_ON_ITR
   * granted: DYN_CTLN1(v - 1) = WB_ON_ITR | ITR_INDX(3), the vector left unarmed while NAPI polls on.
   */
  async enableWbOnItr(v: number): Promise<void> {
    await this.writeDynCtln(v, DYN_CTL_WB_ON_ITR);
  }

  private async writeDynCtln(v: number, value: number): Promise<void> {
    if (v < 1) throw new RangeError(`vector ${v} is not a queue vector`);
    await this.regs.wr32(IAVF.VFINT_DYN_CTLN1(v - 1), value);
  }

  /**
   * One interrupt-driven NAPI round on vector v (iavf_msix_clean_rings → iavf_napi_poll): waits for the
   * interrupt, cleans the TX and RX queues mapped to it, re-arms. Returns what it found.
   */
  async napiPoll(
    v: number,
    timeoutMs = 1000,
  ): Promise<{ fired: boolean; txDone: number; frames: RxFrame[] }> {
    const fired = await this.waitIrq(v, timeoutMs);
    let txDone = 0;
    const frames: RxFrame[] = [];
    if (fired) {
      const map = this.layout.vectorMaps.find((m) => m.vectorId === v);
      for (let q = 0; q < this.layout.numActiveQueues; q++) {
        if (map && map.txqMap & (1 << q)) txDone += this.cleanTx(q);
        if (map && map.rxqMap & (1 << q)) frames.push(...(await this.receiveFrames(q)));
      }
      await this.armVector(v);
    }
    return { fired, txDone, frames };
  }
}
