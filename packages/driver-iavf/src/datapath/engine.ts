/**
 * The iavf data path: TX rings read from guest memory into frames for the network, frames from the
 * network written into RX rings, completions and interrupts as the Linux driver expects them. Every
 * guest-supplied address, length and index is checked; a bad one drops the packet and is counted.
 */
import type { GuestMemory } from '@emu/emudev';
import type { Logger } from '@emu/vfio-user';
import { MAX_QUEUE_PAIRS } from '../constants.js';
import type { VfConfig } from '../pf.js';
import { fixIpv4Checksum, fixL4Checksum, parseLayers, segmentTcp } from './checksum.js';
import {
  decodeTx,
  markTxDone,
  RX_DESC_SIZE,
  rxDropped,
  rxWriteback,
  TX_DESC_SIZE,
  TxCmd,
} from './descriptors.js';
import { rssInput, toeplitz } from './rss.js';

export interface QueueStats {
  packets: number;
  bytes: number;
  /** Dropped: no buffers, queue disabled, or bad descriptors. */
  drops: number;
  /** Descriptors the guest got wrong (addresses, lengths, missing EOP, tails). */
  errors: number;
}

export interface DataPathHost {
  memory: GuestMemory;
  log: Logger;
  config(): VfConfig;
  /** MAC address of the VF. */
  mac: string;
  /** Raises an MSI-X vector through its DYN_CTLN1 automask. */
  raise(vector: number): void;
  /** Hands a frame to the network. */
  transmit(frame: Uint8Array): void;
}

/** Linux chains at most 8 buffers per packet, and a frame is at most 16 KiB. */
const MAX_TX_BUFFERS = 16;
const MAX_FRAME = 16 * 1024;
const MAX_TSO = 256 * 1024;
/** The smallest MSS iavf asks for: iavf_features_check turns GSO off below 64 bytes. */
const MIN_MSS = 64;

const stats = (): QueueStats => ({ packets: 0, bytes: 0, drops: 0, errors: 0 });

export class DataPath {
  readonly tx = Array.from({ length: MAX_QUEUE_PAIRS }, stats);
  readonly rx = Array.from({ length: MAX_QUEUE_PAIRS }, stats);
  /** Frames the filters turned away. */
  filtered = 0;
  private readonly txHead = new Uint32Array(MAX_QUEUE_PAIRS);
  private readonly rxHead = new Uint32Array(MAX_QUEUE_PAIRS);
  readonly rxTail = new Uint32Array(MAX_QUEUE_PAIRS);
  readonly txTail = new Uint32Array(MAX_QUEUE_PAIRS);
  private readonly txBusy = new Array<boolean>(MAX_QUEUE_PAIRS).fill(false);
  private rxChain: Promise<void> = Promise.resolve();
  private generation = 0;

  constructor(private readonly host: DataPathHost) {}

  /** Queue (re)configured or enabled: the hardware starts from descriptor 0; tails are kept. */
  resetHeads(): void {
    this.generation++;
    this.txHead.fill(0);
    this.rxHead.fill(0);
  }

  /**
   * Power-on: heads and tails. Counters run on across VF resets, as a PF's per-VSI statistics do, so
   * `emu`'s status and GET_STATS show the device's whole life.
   */
  reset(): void {
    this.resetHeads();
    this.rxTail.fill(0);
    this.txTail.fill(0);
  }

  /** The TX doorbell: process descriptors from the head up to the new tail. */
  txDoorbell(q: number, tail: number): void {
    this.txTail[q] = tail;
    if (this.txBusy[q]) return; // the running pass picks the new tail up
    this.txBusy[q] = true;
    void this.runTx(q)
      // Guest memory can go away under a pass (the device stopped): log it, never let it escape.
      .catch((err) => this.host.log.warn({ queue: q, err: (err as Error).message }, 'tx'))
      .finally(() => {
        this.txBusy[q] = false;
      });
  }

  /** A frame from the network for this VF. */
  receive(frame: Uint8Array): void {
    const gen = this.generation;
    this.rxChain = this.rxChain
      .then(() => (gen === this.generation ? this.deliver(frame) : undefined))
      .catch((err) => this.host.log.warn({ err: (err as Error).message }, 'rx'));
  }

  private vectorOf(q: number, dir: 'rx' | 'tx'): number | undefined {
    for (const [vector, map] of this.host.config().irqMap) if (map[dir] & (1 << q)) return vector;
    return undefined;
  }

  private async runTx(q: number): Promise<void> {
    const gen = this.generation;
    const s = this.tx[q];
    let completed = false;
    let parts: Uint8Array[] = [];
    let context: ReturnType<typeof decodeTx> | undefined;
    /** A buffer of this packet was bad: skip the rest of it, up to its EOP. */
    let dropping = false;
    for (;;) {
      const cfg = this.host.config();
      const ring = cfg.tx[q];
      if (!ring || !(cfg.txEnabled & (1 << q)) || gen !== this.generation) break;
      const tail = this.txTail[q];
      if (tail >= ring.length) {
        s.errors++;
        this.host.log.warn({ queue: q, tail }, `TX tail ${tail} beyond the ${ring.length}-entry ring`);
        break;
      }
      const head = this.txHead[q];
      if (head === tail) break;
      const at = ring.ring + BigInt(head * TX_DESC_SIZE);
      const desc = await this.host.memory.read(at, TX_DESC_SIZE).catch(() => undefined);
      if (gen !== this.generation) return;
      this.txHead[q] = (head + 1) % ring.length;
      if (!desc) {
        s.errors++;
        break;
      }
      const d = decodeTx(desc);
      let done = false;
      if (d.kind === 'context') context = d;
      else if (d.kind === 'data') {
        if (!dropping) {
          const buf =
            d.size === 0 || d.size > MAX_FRAME
              ? undefined
              : await this.host.memory.read(d.addr, d.size).catch(() => undefined);
          if (gen !== this.generation) return;
          if (!buf) {
            s.errors++;
            parts = [];
            context = undefined;
            dropping = true;
          } else parts.push(buf);
          if (parts.length > MAX_TX_BUFFERS) {
            // A packet that never ends: drop what we have and start again at the next descriptor.
            s.errors++;
            parts = [];
            context = undefined;
          }
        }
        if (d.cmd & TxCmd.EOP) {
          if (parts.length > 0) {
            this.sendPacket(q, Buffer.concat(parts), d, context?.kind === 'context' ? context : undefined);
          }
          parts = [];
          context = undefined;
          dropping = false;
        }
        done = (d.cmd & TxCmd.RS) !== 0;
      }
      if (done) {
        markTxDone(desc);
        await this.host.memory.write(at + 8n, desc.subarray(8, 16)).catch(() => {
          s.errors++;
        });
        completed = true;
      }
    }
    if (completed) {
      const v = this.vectorOf(q, 'tx');
      if (v !== undefined) this.host.raise(v);
    }
  }

  private sendPacket(
    q: number,
    frame: Uint8Array,
    d: ReturnType<typeof decodeTx> & { kind: 'data' },
    ctx?: { tso: boolean; mss: number; tsoLen: number },
  ): void {
    const s = this.tx[q];
    if (frame.length < 14 || (frame.length > MAX_FRAME && !ctx?.tso) || frame.length > MAX_TSO) {
      s.drops++;
      return;
    }
    const layers = parseLayers(frame);
    if (ctx?.tso) {
      // TSO needs the descriptor's header length to be the frame's Ethernet + IP + TCP headers, payload
      // after them, and an MSS iavf would use; anything else cannot be segmented (nor sent whole).
      const hdrLen = d.macLen + d.ipLen + d.l4Len;
      const tcpLen =
        layers?.proto === 6 && frame.length >= layers.l4 + 20 ? (frame[layers.l4 + 12] >> 4) * 4 : 0;
      if (
        !layers ||
        tcpLen < 20 ||
        hdrLen !== layers.l4 + tcpLen ||
        hdrLen >= frame.length ||
        ctx.mss < MIN_MSS
      ) {
        s.errors++;
        return;
      }
    }
    let out: Uint8Array[] = [frame];
    if (layers) {
      if (ctx?.tso) out = segmentTcp(frame, layers, d.macLen + d.ipLen + d.l4Len, ctx.mss);
      else {
        if ((d.cmd & TxCmd.IIPT_MASK) === TxCmd.IIPT_IPV4_CSUM) fixIpv4Checksum(frame, layers);
        if (d.cmd & TxCmd.L4T_MASK) fixL4Checksum(frame, layers);
      }
    }
    for (const f of out) {
      s.packets++;
      s.bytes += f.length;
      this.host.transmit(f);
    }
  }

  /** Filters, RSS, then the frame into the chosen RX ring. */
  private async deliver(frame: Uint8Array): Promise<void> {
    const cfg = this.host.config();
    if (!this.accepts(frame, cfg)) {
      this.filtered++;
      return;
    }
    const gen = this.generation;
    let q = 0;
    let hash: number | undefined;
    const enabled = cfg.rxEnabled;
    if (enabled & (enabled - 1)) {
      const input = rssInput(frame);
      if (input && cfg.rssKey.some((b) => b !== 0)) {
        hash = toeplitz(cfg.rssKey, input);
        q = cfg.rssLut[hash % cfg.rssLut.length] % cfg.numQueuePairs;
      }
    }
    const ring = cfg.rx[q];
    const s = this.rx[q];
    if (!ring || !(enabled & (1 << q))) {
      s.drops++;
      return;
    }
    const tail = this.rxTail[q];
    if (tail >= ring.length) {
      s.errors++;
      s.drops++;
      return;
    }
    const chunks = Math.ceil(frame.length / ring.bufferSize);
    const free = (tail - this.rxHead[q] + ring.length) % ring.length;
    if (frame.length > ring.maxFrame || chunks > 5) {
      s.drops++;
      return;
    }
    if (free < chunks) {
      s.drops++;
      return;
    }
    for (let i = 0; i < chunks; i++) {
      const head = this.rxHead[q];
      const at = ring.ring + BigInt(head * RX_DESC_SIZE);
      const desc = await this.host.memory.read(at, 8).catch(() => undefined);
      if (gen !== this.generation) return;
      const part = frame.subarray(i * ring.bufferSize, Math.min(frame.length, (i + 1) * ring.bufferSize));
      const pkt = desc ? Buffer.from(desc).readBigUInt64LE(0) : 0n;
      const ok =
        desc &&
        (await this.host.memory.write(pkt, part).then(
          () => true,
          () => false,
        ));
      if (gen !== this.generation) return;
      if (!ok) {
        s.errors++;
        s.drops++;
        if (desc) {
          // Hand the descriptor back as a dropped packet (DD|EOF with RXE, no data) so that the ring
          // moves on: the driver frees it, and any earlier buffers of this frame, instead of waiting on it.
          const wb = Buffer.alloc(8);
          wb.writeBigUInt64LE(rxDropped(), 0);
          await this.host.memory.write(at + 8n, wb).catch(() => undefined);
          if (gen !== this.generation) return;
          this.rxHead[q] = (head + 1) % ring.length;
          const v = this.vectorOf(q, 'rx');
          if (v !== undefined) this.host.raise(v);
        }
        return;
      }
      const last = i === chunks - 1;
      const wb = Buffer.alloc(RX_DESC_SIZE);
      if (hash !== undefined) wb.writeUInt32LE(hash, 4);
      wb.writeBigUInt64LE(rxWriteback(part.length, last, hash !== undefined), 8);
      // Everything but qword1 first; qword1 (with DD) last, as the driver polls it.
      await this.host.memory.write(at + 16n, wb.subarray(16)).catch(() => undefined);
      await this.host.memory.write(at, wb.subarray(0, 8)).catch(() => undefined);
      await this.host.memory.write(at + 8n, wb.subarray(8, 16)).catch(() => undefined);
      this.rxHead[q] = (head + 1) % ring.length;
    }
    s.packets++;
    s.bytes += frame.length;
    const v = this.vectorOf(q, 'rx');
    if (v !== undefined) this.host.raise(v);
  }

  private accepts(frame: Uint8Array, cfg: VfConfig): boolean {
    if (frame.length < 14) return false;
    const dst = Array.from(frame.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':');
    if (cfg.promisc & 0x1) return true;
    if (frame[0] & 1) {
      return dst === 'ff:ff:ff:ff:ff:ff' || (cfg.promisc & 0x2) !== 0 || cfg.macs.has(dst);
    }
    return dst === this.host.mac || cfg.macs.has(dst);
  }
}
