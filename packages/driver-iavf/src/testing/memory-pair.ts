/**
 * Two kinds of guest memory on one scenario: the same guest RAM, descriptors, tails and frames through
 * the one ring engine (@emu/native's C++, driven by datapath/data-path.ts) over directly mapped memory
 * (a memfd's mapping) and over fd-less memory (every access a DMA message, through a StagedMemory), and
 * everything compared afterwards: the frames on the wire, every byte of guest memory (descriptor
 * write-backs, RX buffers), the counters and the interrupts. The direct side is the declared oracle for
 * the staged one. For memory-paths.test.ts and the `fdless` fuzz target.
 */
import type { GuestMemory } from '@emu/emudev';
import { silentLogger } from '@emu/vfio-user';
import { expect } from 'chai';
import { DataPath } from '../datapath/data-path.js';
import type { VfConfig } from '../pf.js';
import { BufferGuestMemory } from './buffer-memory.js';

export const BASE = 0x1_0000_0000n;
export const RAM = 1 << 21;
export const VF_MAC = '02:00:00:00:00:0a';
export const PEER = '02:00:00:00:00:99';
export const EOP = 0x1;
export const RS = 0x2;
export const ICRC = 0x4;
export const IIPT_IPV4_CSUM = 0x60;
export const IIPT_IPV6 = 0x20;
export const L4T_TCP = 0x100;
export const L4T_UDP = 0x300;
export const LAST = EOP | RS | ICRC;
export const TX_RING = BASE;
export const RX_RING = BASE + 0x10000n;
export const RX_BUFS = BASE + 0x20000n;
export const SCRATCH = BASE + 0x100000n;
export const RING_LEN = 256;

export function config(queues = 1, rxDescSize: 16 | 32 = 32): VfConfig {
  const all = (1 << queues) - 1;
  return {
    numQueuePairs: queues,
    caps: 0,
    tx: Array.from({ length: queues }, (_, q) => ({
      ring: TX_RING + BigInt(q * RING_LEN * 16),
      length: RING_LEN,
    })),
    rx: Array.from({ length: queues }, (_, q) => ({
      ring: RX_RING + BigInt(q * RING_LEN * 32),
      length: RING_LEN,
      bufferSize: 2048,
      maxFrame: 9728,
      crcStrip: true,
      descSize: rxDescSize,
    })),
    txEnabled: all,
    rxEnabled: all,
    irqMap: new Map(
      Array.from({ length: queues }, (_, q) => [q + 1, { rx: 1 << q, tx: 1 << q, rxItr: 0, txItr: 1 }]),
    ),
    macs: new Set(),
    promisc: 0,
    vlans: new Set(),
    vlanStrip: false,
    vlanInsert: true,
    rssKey: Buffer.from(Array.from({ length: 52 }, (_, i) => (i * 37 + 11) & 0xff)),
    rssLut: Buffer.from(Array.from({ length: 64 }, (_, i) => i % queues)),
    rssHena: 0n,
  };
}

export type SideName = 'direct' | 'fd-less';

export interface Side {
  name: SideName;
  memory: BufferGuestMemory;
  dp: DataPath;
  sent: string[];
  raised: number[];
}

export function side(name: SideName, ram: Buffer, cfg: VfConfig): Side {
  const memory = new BufferGuestMemory(ram, BASE, name === 'direct');
  const s: Side = { name, memory, sent: [], raised: [], dp: undefined as never };
  s.dp = new DataPath({
    memory: memory as unknown as GuestMemory,
    log: silentLogger,
    config: () => cfg,
    mac: VF_MAC,
    raise: (v) => s.raised.push(v),
    transmit: (f) => s.sent.push(Buffer.from(f).toString('hex')),
  });
  return s;
}

/**
 * Three guest RAMs (the scenario, then each side's copy) kept for reuse by one Pair after another:
 * fresh 2 MiB buffers each time cost more in page faults than a fuzz input's whole run.
 */
export class ReusedRam {
  private readonly buffers = [Buffer.alloc(RAM), Buffer.alloc(RAM), Buffer.alloc(RAM)];
  zeroed(): Buffer {
    return this.buffers[0]!.fill(0);
  }
  copy(side: 0 | 1, from: Buffer): Buffer {
    const b = this.buffers[1 + side]!;
    from.copy(b);
    return b;
  }
}

/** The same scenario on both kinds of memory; returns both sides for comparison. */
export class Pair {
  readonly ram: Buffer;
  private scratchAt = 0;
  readonly cfg: VfConfig;
  sides: [Side, Side] | undefined;
  /** `reuse`: take the RAMs from there instead of allocating them (the previous Pair's are overwritten). */
  constructor(
    queues = 1,
    rxDescSize: 16 | 32 = 32,
    private readonly reuse?: ReusedRam,
  ) {
    this.ram = reuse ? reuse.zeroed() : Buffer.alloc(RAM);
    this.cfg = config(queues, rxDescSize);
  }
  /** Where the guest writes: the RAM to be forked, or both sides' copies once started. */
  private targets(): Buffer[] {
    return this.sides ? this.sides.map((s) => s.memory.bytes) : [this.ram];
  }
  put(data: Uint8Array): bigint {
    const at = SCRATCH + BigInt(this.scratchAt);
    for (const b of this.targets()) b.set(data, Number(at - BASE));
    this.scratchAt = Math.ceil((this.scratchAt + data.length) / 64) * 64;
    return at;
  }
  txDesc(q: number, i: number, qw0: bigint, qw1: bigint): void {
    const o = Number(this.cfg.tx[q]!.ring - BASE) + (i % RING_LEN) * 16;
    for (const b of this.targets()) {
      b.writeBigUInt64LE(qw0, o);
      b.writeBigUInt64LE(qw1, o + 8);
    }
  }
  postRx(q: number, count: number): void {
    const ring = this.cfg.rx[q]!;
    for (let i = 0; i < count; i++) {
      const o = Number(ring.ring - BASE) + i * ring.descSize;
      this.ram.writeBigUInt64LE(RX_BUFS + BigInt((q * RING_LEN + i) * 2048), o);
      this.ram.writeBigUInt64LE(0n, o + 8);
    }
  }
  /** Forks the memory prepared so far into the two sides. */
  start(): [Side, Side] {
    this.sides = [
      side('direct', this.reuse ? this.reuse.copy(0, this.ram) : Buffer.from(this.ram), this.cfg),
      side('fd-less', this.reuse ? this.reuse.copy(1, this.ram) : Buffer.from(this.ram), this.cfg),
    ];
    return this.sides;
  }
  /** Closes both sides: each native twin holds its callbacks until then, and so its DataPath. */
  close(): void {
    for (const s of this.sides ?? []) s.dp.close();
  }
  async step(fn: (s: Side) => void): Promise<void> {
    for (const s of this.sides!) {
      fn(s);
      await s.dp.settled();
    }
  }
  compare(): void {
    const [n, t] = this.sides!; // direct, fd-less
    expect(n.sent, 'frames on the wire').to.deep.equal(t.sent);
    expect(n.dp.tx, 'TX counters').to.deep.equal(t.dp.tx);
    expect(n.dp.rx, 'RX counters').to.deep.equal(t.dp.rx);
    expect(n.dp.filtered, 'filtered').to.equal(t.dp.filtered);
    expect(n.raised, 'interrupts').to.deep.equal(t.raised);
    if (!n.memory.bytes.equals(t.memory.bytes)) {
      let i = 0;
      while (n.memory.bytes[i] === t.memory.bytes[i]) i++;
      expect.fail(
        `guest memory differs first at IOVA 0x${(BASE + BigInt(i)).toString(16)}: direct ${n.memory.bytes[i]}, fd-less ${t.memory.bytes[i]}`,
      );
    }
    // Each side really took its own memory path.
    expect(n.dp.engineStats.stagedTx + n.dp.engineStats.stagedRx, 'the direct side staged').to.equal(0);
    expect(t.dp.engineStats.directTx + t.dp.engineStats.directRx, 'the fd-less side went direct').to.equal(0);
  }
}

export const dataQw1 = (cmd: number, size: number, offset = 0) =>
  (BigInt(cmd) << 4n) | (BigInt(offset) << 16n) | (BigInt(size) << 34n);
export const ctxQw1 = (tso: boolean, tsoLen: number, mss: number) =>
  1n | (BigInt(tso ? 1 : 0) << 4n) | (BigInt(tsoLen) << 30n) | (BigInt(mss) << 50n);
export const OFFSET_V4_TCP = 7 | (5 << 7) | (5 << 14);

/** A TCP/UDP flow from the VF to PEER (frames.ts's FlowSpec) with `payload` bytes of a pattern. */
export const txFlow = (payload: number, seed: number, extra: object = {}) => ({
  dstMac: PEER,
  srcMac: VF_MAC,
  srcIp: '10.0.0.2',
  dstIp: '10.0.0.9',
  sport: 40000 + seed,
  dport: 5201,
  payload: Buffer.from(Array.from({ length: payload }, (_, i) => (i * 7 + seed) & 0xff)),
  ...extra,
});
