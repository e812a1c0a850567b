// The data plane (src/dataplane/) without any device around it: the test plays two guests, each
// with memfd RAM and a tail page, and checks what the worker does with their rings.
import { ftruncateSync } from 'node:fs';
import { expect } from 'chai';
import {
  DataPlane,
  IavfNic,
  type IavfNicConfig,
  type IavfNicEvents,
  NIC_STATE,
  SwitchCore,
} from './dataplane.js';
import { EventFd } from './eventfd.js';
import { injectFault } from './fault-injection.js';
import { closeFd, dupAll } from './fd.js';
import { guardStats } from './guard.js';
import { GuestMemoryTable, iavfGuestPostRx, iavfGuestPostTx } from './iavf-rings.js';
import { IavfVectors } from './iavf-vectors.js';
import { IrqLines } from './irq-lines.js';
import { memfdCreate } from './memfd.js';
import { MappedMemory } from './mmap.js';

const IOVA = 0x1_0000_0000n;
const RAM = 1 << 20;
const RING = 64;
const TX_RING = 0x0000;
const RX_RING = 0x1000;
const TX_BUF = 0x10000;
const BUF = 2048;
/** RX buffers live in a mapping of their own (a second DMA_MAP), so a test can unmap them alone. */
const BUF_IOVA = 0x2_0000_0000n;
const BUF_BYTES = RING * BUF;
/** With `rxRingInBuffers`, the RX ring sits in that mapping too, after the buffers. */
const RX_RING_IN_BUFS = BUF_IOVA + BigInt(BUF_BYTES);

/** What iavf_irq_enable_queues writes to VFINT_DYN_CTLN1: INTENA | CLEARPBA | ITR_NONE. */
const REARM = 0x19;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(1);
  }
}

function frame(dst: number[], src: number[], length: number, seed: number): Buffer {
  const f = Buffer.alloc(length);
  Buffer.from(dst).copy(f, 0);
  Buffer.from(src).copy(f, 6);
  f.writeUInt16BE(0x88b5, 12);
  for (let i = 14; i < length; i++) f[i] = (i * 7 + seed) & 0xff;
  return f;
}

/** One guest: RAM, the device's table of it, its own table (to post descriptors), a tail page, a NIC. */
class Guest {
  readonly ramFd = memfdCreate('dataplane-test-ram', RAM);
  readonly ram = MappedMemory.map(this.ramFd, 0, RAM);
  readonly bytes = new Uint8Array(this.ram.buffer);
  readonly bufFd = memfdCreate('dataplane-test-rx-buffers', BUF_BYTES + 0x1000);
  bufs = MappedMemory.map(this.bufFd, 0, BUF_BYTES + 0x1000);
  bufBytes = new Uint8Array(this.bufs.buffer);
  /** What the device sees. */
  readonly table = new GuestMemoryTable();
  /** The guest's own view, to post descriptors through. */
  readonly own = new GuestMemoryTable();
  readonly tailFd = memfdCreate('dataplane-test-tails', 0x3000);
  readonly tailMap = MappedMemory.map(this.tailFd, 0, 0x3000);
  readonly tails = new Uint32Array(this.tailMap.buffer);
  readonly state = new ArrayBuffer(NIC_STATE.stateBytes);
  readonly counters = new Float64Array(this.state, NIC_STATE.headsBytes, NIC_STATE.counterCount);
  readonly events: IavfNicEvents[] = [];
  /** The VF's vectors (0 misc, 1 for queue pair 0), and the eventfd of vector 1 as a VMM would read it. */
  readonly vectors: IavfVectors;
  readonly lines = new IrqLines(2);
  readonly irq = EventFd.create();
  readonly nic: IavfNic;
  txNext = 0;
  rxNext = 0;
  rxSeen = 0;

  constructor(
    plane: DataPlane,
    readonly mac: number[],
    readonly rxRingInBuffers = false,
    /** Time for ITR moves only by vectors.advance(): throttling does not depend on the machine's speed. */
    manualClock = false,
  ) {
    this.vectors = new IavfVectors({ count: 2, tailFd: this.tailFd, manualClock });
    this.lines.assign(1, dupAll([this.irq.fd])[0]);
    this.vectors.setLines(this.lines);
    this.vectors.write(1, REARM);
    this.table.add(IOVA, this.ram);
    this.table.add(BUF_IOVA, this.bufs);
    this.own.add(IOVA, this.ram);
    this.own.add(BUF_IOVA, this.bufs);
    this.nic = new IavfNic(plane, {
      tailFd: this.tailFd,
      state: this.state,
      onEvents: (e) => this.events.push(e),
    });
    this.nic.setTable(this.table);
    this.nic.setVectors(this.vectors);
    this.nic.configure(this.config());
  }

  config(over: Partial<IavfNicConfig> = {}): IavfNicConfig {
    return {
      mac: Uint8Array.from(this.mac),
      macs: [],
      promisc: 0,
      spoofCheck: false,
      vlans: [],
      vlanStrip: false,
      portVlan: 0,
      rssKey: new Uint8Array(52),
      rssLut: new Uint8Array(64),
      numQueuePairs: 1,
      tx: [{ ring: IOVA + BigInt(TX_RING), length: RING }],
      rx: [{ ring: this.rxRing, length: RING, bufferSize: BUF, maxFrame: 9728, descSize: 32 }],
      txEnabled: 1,
      rxEnabled: 1,
      irqMap: [{ vector: 1, rx: 1, tx: 1, rxItr: 3, txItr: 3 }],
      ...over,
    };
  }

  get rxRing(): bigint {
    return this.rxRingInBuffers ? RX_RING_IN_BUFS : IOVA + BigInt(RX_RING);
  }

  /** Maps the RX buffers (and ring) again, after a test unmapped them. */
  remapBuffers(): void {
    this.own.remove(BUF_IOVA);
    this.bufs = MappedMemory.map(this.bufFd, 0, BUF_BYTES + 0x1000);
    this.bufBytes = new Uint8Array(this.bufs.buffer);
    this.own.add(BUF_IOVA, this.bufs);
    this.table.add(BUF_IOVA, this.bufs);
  }

  /** Posts `count` RX buffers and bumps QRX_TAIL1(0). */
  postRx(count = RING - 1): void {
    this.rxNext = iavfGuestPostRx(
      this.own,
      { iova: this.rxRing, length: RING },
      this.rxNext,
      count,
      BUF_IOVA,
      BUF,
    );
    Atomics.store(this.tails, 0x2000 / 4, this.rxNext);
  }

  /** Sends `f` `count` times (one buffer each) and bumps QTX_TAIL1(0). */
  send(f: Buffer, count = 1): void {
    this.bytes.set(f, TX_BUF);
    this.txNext = iavfGuestPostTx(
      this.own,
      { iova: IOVA + BigInt(TX_RING), length: RING },
      this.txNext,
      count,
      IOVA + BigInt(TX_BUF),
      f.length,
    );
    Atomics.store(this.tails, 0, this.txNext);
  }

  /** The frames written back done (DD) since the last call, in ring order. */
  received(): Buffer[] {
    const out: Buffer[] = [];
    const view = this.rxRingInBuffers ? new DataView(this.bufs.buffer) : new DataView(this.ram.buffer);
    const ring = this.rxRingInBuffers ? BUF_BYTES : RX_RING;
    for (;;) {
      const qw1 = view.getBigUint64(ring + this.rxSeen * 32 + 8, true);
      if (!(qw1 & 1n)) return out;
      const length = Number((qw1 >> 38n) & 0x3fffn);
      out.push(Buffer.from(this.bufBytes.subarray(this.rxSeen * BUF, this.rxSeen * BUF + length)));
      view.setBigUint64(ring + this.rxSeen * 32 + 8, 0n, true);
      this.rxSeen = (this.rxSeen + 1) % RING;
    }
  }

  rx(stat: number): number {
    return this.counters[NIC_STATE.rxStats + stat];
  }

  tx(stat: number): number {
    return this.counters[NIC_STATE.txStats + stat];
  }

  /** Interrupts on vector 1 since the last look (some may still be on their way: see settled). */
  interrupts(): number {
    return Number(this.irq.read() ?? 0n);
  }

  /** Interrupts on vector 1 since the last look, once every one raised so far is written. */
  async settled(): Promise<number> {
    await this.lines.settled();
    return this.interrupts();
  }

  close(): void {
    this.nic.close();
    this.vectors.close();
    this.lines.close();
    this.irq.close();
    this.table.clear();
    this.own.clear();
    this.ram.unmap();
    this.bufs.unmap();
    this.tailMap.unmap();
    closeFd(this.ramFd);
    closeFd(this.bufFd);
    closeFd(this.tailFd);
  }
}

const MAC_A = [2, 0, 0, 0, 0xa, 0xa];
const MAC_B = [2, 0, 0, 0, 0xa, 0xb];
const BCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

describe('data plane: NICs forwarding on a native worker', () => {
  let plane: DataPlane;
  let guests: Guest[] = [];
  const escaped: Array<{ port: number; frame: Buffer; copy?: boolean }> = [];
  let sw: SwitchCore;

  beforeEach(() => {
    plane = new DataPlane({ maxSleepUs: 200 });
    escaped.length = 0;
    sw = new SwitchCore(plane, {
      agingMs: 300_000,
      maxMacs: 64,
      now: performance.now(),
      onEscape: (ports, frames, copies) => {
        for (let i = 0; i < ports.length; i++) {
          escaped.push(
            copies[i]
              ? { port: ports[i], frame: frames[i], copy: true }
              : { port: ports[i], frame: frames[i] },
          );
        }
      },
    });
  });

  afterEach(() => {
    for (const g of guests) g.close();
    guests = [];
    sw.close();
    plane.close();
  });

  function pair(bRingInBuffers = false, manualClock = false): [Guest, Guest, number, number] {
    const a = new Guest(plane, MAC_A, false, manualClock);
    const b = new Guest(plane, MAC_B, bRingInBuffers, manualClock);
    guests = [a, b];
    const pa = a.nic.attach(sw, 1500);
    const pb = b.nic.attach(sw, 1500);
    a.postRx();
    b.postRx();
    a.nic.start();
    b.nic.start();
    return [a, b, pa, pb];
  }

  it("writes A's frames into B's RX ring, in order, counts them and interrupts both guests", async () => {
    const [a, b, pa, pb] = pair();
    const sent: Buffer[] = [];
    for (let i = 0; i < 40; i++) {
      const f = frame(MAC_B, MAC_A, 60 + i * 30, i);
      sent.push(f);
      a.send(f);
      await until(`frame ${i} at B`, () => b.rx(0) === i + 1);
    }
    const got = b.received();
    expect(got.map((f) => f.toString('hex'))).to.deep.equal(sent.map((f) => f.toString('hex')));
    const bytes = sent.reduce((n, f) => n + f.length, 0);
    expect([a.tx(0), a.tx(1), a.tx(2), a.tx(3)]).to.deep.equal([40, bytes, 0, 0]);
    expect([b.rx(0), b.rx(1), b.rx(2), b.rx(3)]).to.deep.equal([40, bytes, 0, 0]);
    // Heads in the state buffer: TX head of A and RX head of B moved by 40.
    expect(new Uint32Array(a.state, 0, 1)[0]).to.equal(40);
    expect(new Uint32Array(b.state, 16 * 4, 1)[0]).to.equal(40);
    // Both vectors were armed: each fired (A for TX completions, B for frames), and automask disarmed it.
    await until('interrupts', () => a.vectors.counts().fired[1] >= 1 && b.vectors.counts().fired[1] >= 1);
    expect(a.vectors.read(1) & 1, 'automask').to.equal(0);
    expect(a.events, 'no JavaScript events for interrupts').to.deep.equal([]);
    expect(sw.lookup(0x02000000_0a0a, performance.now())).to.equal(pa);
    expect(sw.portCounters(pa)).to.include({ rxFrames: 40, rxBytes: bytes });
    expect(sw.portCounters(pb)).to.include({ txFrames: 40, txBytes: bytes });
    expect(plane.stats()).to.include({ running: true, nics: 2 });
    expect(escaped).to.deep.equal([]);
  });

  it('raises interrupts itself: one per armed vector, a disarmed vector holding its cause until re-armed', async () => {
    const [a, b] = pair();
    b.vectors.write(1, 0); // B's guest polls (NAPI): its vector is not armed
    for (let i = 0; i < 5; i++) a.send(frame(MAC_B, MAC_A, 60, i));
    await until('the frames at B', () => b.rx(0) === 5);
    await until("A's TX interrupt", () => a.interrupts() === 1);
    await sleep(20);
    expect(await a.settled(), 'automask: once until re-armed').to.equal(0);
    expect(await b.settled()).to.equal(0);
    b.vectors.write(1, REARM); // NAPI done: the cause that waited fires now
    expect(await b.settled()).to.equal(1);
    a.vectors.write(1, REARM);
    b.vectors.write(1, REARM);
    a.send(frame(MAC_B, MAC_A, 60, 9));
    await until("A's next TX interrupt", () => a.interrupts() === 1);
    await until("B's next RX interrupt", () => b.interrupts() === 1);
    expect([a.events, b.events]).to.deep.equal([[], []]);
  });

  it('raises a queue on the vector its map names, with that map ITR index; none without a map or vectors', async () => {
    const [a, b] = pair(false, true);
    b.nic.configure(b.config({ irqMap: [] }));
    a.vectors.writeItr(1, 0, 2500); // 5 ms
    a.nic.configure(a.config({ irqMap: [{ vector: 1, rx: 1, tx: 1, rxItr: 3, txItr: 0 }] }));
    a.send(frame(MAC_B, MAC_A, 60, 1));
    await until("A's first TX interrupt", () => a.interrupts() === 1);
    a.vectors.write(1, REARM);
    a.send(frame(MAC_B, MAC_A, 60, 2));
    await until('the second frame at B', () => b.rx(0) === 2);
    // No time passed on the vectors' clock since the first interrupt: ITR 0 holds the cause.
    await until('the throttled cause', () => a.vectors.counts().throttled[1] === 1);
    expect(await a.settled(), 'within ITR 0').to.equal(0);
    a.vectors.advance(4999);
    expect(await a.settled(), 'still within ITR 0').to.equal(0);
    a.vectors.advance(1);
    expect(await a.settled(), "A's throttled TX interrupt, at the end of the interval").to.equal(1);
    expect(b.vectors.counts().fired[1], 'B maps no queue').to.equal(0);
    a.nic.setVectors(null);
    a.vectors.write(1, REARM);
    a.send(frame(MAC_B, MAC_A, 60, 3));
    await until('the third frame at B', () => b.rx(0) === 3);
    await sleep(20);
    expect(await a.settled(), 'no vectors: no interrupt').to.equal(0);
  });

  /** A NIC that only routes (no tail page), configured with one RX queue and `extra` (`base`: both). */
  function routingNic(extra: Partial<IavfNicConfig> = {}) {
    const state = new ArrayBuffer(NIC_STATE.stateBytes);
    const counters = new Float64Array(state, NIC_STATE.headsBytes, NIC_STATE.counterCount);
    const nic = new IavfNic(plane, { state, onEvents: () => {} });
    const ring = { ring: IOVA, length: RING, bufferSize: BUF, maxFrame: 9728, descSize: 32 as const };
    const base: IavfNicConfig = {
      mac: Uint8Array.from(MAC_A),
      macs: [],
      promisc: 0,
      spoofCheck: false,
      vlans: [],
      vlanStrip: false,
      portVlan: 0,
      rssKey: new Uint8Array(52),
      rssLut: new Uint8Array(64),
      numQueuePairs: 1,
      tx: [],
      rx: [ring],
      txEnabled: 0,
      rxEnabled: 0b1,
      irqMap: [],
    };
    const config = { ...base, ...extra };
    nic.configure(config);
    return {
      nic,
      counters,
      base: config,
      ring,
      txDrops: (q: number) => counters[NIC_STATE.txStats + NIC_STATE.queueStats * q + 2],
    };
  }

  /** frame() with an 802.1Q tag (TCI tci) after the MAC addresses. */
  function tagged(dst: number[], src: number[], length: number, tci: number): Buffer {
    const f = frame(dst, src, length - 4, 1);
    return Buffer.concat([
      f.subarray(0, 12),
      Buffer.from([0x81, 0x00, tci >> 8, tci & 0xff]),
      f.subarray(12),
    ]);
  }

  it('routes for a TypeScript path without a tail page: filters and RSS counted in the state; never starts or joins a switch', () => {
    const { nic, counters, base: one, ring } = routingNic();
    const base: IavfNicConfig = { ...one, numQueuePairs: 2, rx: [ring, ring], rxEnabled: 0b11 };
    try {
      nic.configure(base);
      expect(nic.route(frame(MAC_A, MAC_B, 60, 1))).to.deep.equal({ queue: 0 });
      expect(nic.route(frame(BCAST, MAC_B, 60, 1))).to.deep.equal({ queue: 0 });
      expect(nic.route(frame(MAC_B, MAC_A, 60, 1)), 'not its MAC').to.equal(undefined);
      expect(nic.route(new Uint8Array(10)), 'a runt').to.equal(undefined);
      expect(counters[NIC_STATE.filtered]).to.equal(2);
      // Microsoft's RSS verification key and its IPv4/TCP vector 66.9.149.187:2794 → 161.142.100.80:1766.
      const key = Buffer.from(
        '6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa',
        'hex',
      );
      const lut = Uint8Array.from({ length: 64 }, (_, i) => i & 1);
      nic.configure({ ...base, rssKey: Buffer.concat([key, Buffer.alloc(12)]), rssLut: lut });
      const tcp = Buffer.alloc(54);
      Buffer.from(MAC_A).copy(tcp, 0);
      Buffer.from(MAC_B).copy(tcp, 6);
      tcp.writeUInt16BE(0x0800, 12);
      tcp[14] = 0x45;
      tcp.writeUInt16BE(40, 16);
      tcp[23] = 6;
      Buffer.from([66, 9, 149, 187, 161, 142, 100, 80]).copy(tcp, 26);
      tcp.writeUInt16BE(2794, 34);
      tcp.writeUInt16BE(1766, 36);
      tcp[46] = 0x50;
      const hash = 0x51ccc178;
      expect(nic.route(tcp)).to.deep.equal({ queue: lut[hash % 64], hash });
      // A queue that is not enabled: dropped on it.
      nic.configure({
        ...base,
        rssKey: Buffer.concat([key, Buffer.alloc(12)]),
        rssLut: lut,
        rxEnabled: 0b01,
      });
      expect(nic.route(tcp), 'one queue enabled: RSS does not pick').to.deep.equal({ queue: 0, hash });
      nic.configure({ ...base, rxEnabled: 0 });
      expect(nic.route(frame(MAC_A, MAC_B, 60, 1))).to.equal(undefined);
      expect(counters[NIC_STATE.rxStats + NIC_STATE.queueStats * 0 + 2], 'queue 0 drops').to.equal(1);
      expect(() => nic.start()).to.throw(TypeError, /without a tail page cannot start/);
      expect(() => nic.attach(sw, 1500)).to.throw(TypeError, /without a tail page cannot join a switch/);
      expect(nic.receive(frame(MAC_A, MAC_B, 60, 1)), 'nothing to write into').to.equal(false);
    } finally {
      nic.close();
    }
    expect(() => nic.route(frame(MAC_A, MAC_B, 60, 1)))
      .to.throw()
      .with.property('code', 'EBADF');
  });

  it('checks what a TypeScript path sends against the spoof check: only the VF’s own sources, counted when dropped', () => {
    const listed = [0x02, 0, 0, 0, 0, 0x77];
    const { nic, counters, base, txDrops } = routingNic({
      spoofCheck: true,
      macs: [listed.reduce((n, b) => n * 256 + b, 0)],
      numQueuePairs: 2,
    });
    try {
      const own = frame(MAC_B, MAC_A, 60, 1);
      expect(nic.egress(own, 0), 'its MAC: the frame itself').to.equal(own);
      expect(nic.egress(frame(MAC_B, listed, 60, 1), 0), 'a unicast filter it holds').to.not.equal(undefined);
      expect(nic.egress(frame(MAC_A, MAC_B, 60, 1), 1), 'another NIC’s MAC').to.equal(undefined);
      expect(nic.egress(frame(MAC_A, BCAST, 60, 1), 1), 'a broadcast source').to.equal(undefined);
      expect(nic.egress(new Uint8Array(10), 0), 'a runt').to.equal(undefined);
      expect(counters[NIC_STATE.spoofed]).to.equal(3);
      expect([txDrops(0), txDrops(1)]).to.deep.equal([1, 2]);
      nic.configure({ ...base, spoofCheck: false, numQueuePairs: 2 });
      expect(nic.egress(frame(MAC_A, MAC_B, 60, 1), 0), 'no spoof check').to.not.equal(undefined);
      expect(counters[NIC_STATE.spoofed]).to.equal(3);
      expect(() => nic.egress(frame(MAC_A, MAC_B, 60, 1), NIC_STATE.queues)).to.throw(RangeError);
    } finally {
      nic.close();
    }
  });

  it('tags what the VF sends with the port VLAN, and drops what the VF tagged itself', () => {
    const { nic, counters, txDrops } = routingNic({ portVlan: 300 });
    try {
      const plain = frame(MAC_B, MAC_A, 60, 1);
      expect(Buffer.from(nic.egress(plain, 0)!).toString('hex')).to.equal(
        tagged(MAC_B, MAC_A, 64, 300).toString('hex'),
      );
      expect(nic.egress(tagged(MAC_B, MAC_A, 64, 5), 0), 'tagged by the VF').to.equal(undefined);
      expect(txDrops(0)).to.equal(1);
      // Shorter than the MAC addresses the tag goes after: nothing to tag, nothing read past it.
      expect(nic.egress(new Uint8Array(6), 0), 'a 6-byte frame').to.equal(undefined);
      expect(txDrops(0)).to.equal(2);
      expect(counters[NIC_STATE.spoofed]).to.equal(0);
    } finally {
      nic.close();
    }
  });

  it('routes by the VLAN filter (any tag while it is empty), strips tags when asked, and hides the port VLAN', () => {
    const { nic, counters, base } = routingNic();
    try {
      const t100 = tagged(MAC_A, MAC_B, 64, 100);
      const t200 = tagged(MAC_A, MAC_B, 64, 0x2000 | 200);
      const plain = frame(MAC_A, MAC_B, 60, 1);
      expect(nic.route(t200), 'no filter: any tag, left in the frame').to.deep.equal({ queue: 0 });
      nic.configure({ ...base, vlans: [100, 7] });
      expect(nic.route(t100)).to.deep.equal({ queue: 0 });
      expect(nic.route(t200), 'not in the filter').to.equal(undefined);
      expect(nic.route(plain), 'untagged').to.deep.equal({ queue: 0 });
      expect(nic.route(tagged(MAC_A, MAC_B, 64, 0x6000)), 'priority tag (VID 0)').to.deep.equal({ queue: 0 });
      expect(counters[NIC_STATE.filtered]).to.equal(1);
      nic.configure({ ...base, vlans: [100], vlanStrip: true });
      const r = nic.route(t100)!;
      expect(r.l2tag1).to.equal(100);
      expect(Buffer.from(r.frame!).toString('hex'), 'the frame without its tag').to.equal(
        plain.toString('hex'),
      );
      expect(nic.route(plain), 'nothing to strip').to.deep.equal({ queue: 0 });
      nic.configure({ ...base, portVlan: 300 });
      const p = nic.route(tagged(MAC_A, MAC_B, 64, 300))!;
      expect(p.l2tag1, 'the port VLAN is not reported').to.equal(undefined);
      expect(Buffer.from(p.frame!).toString('hex')).to.equal(plain.toString('hex'));
      expect(nic.route(plain), 'untagged: not in the port VLAN').to.equal(undefined);
      expect(nic.route(t100), 'another VLAN').to.equal(undefined);
      expect(() => nic.configure({ ...base, portVlan: 4095 })).to.throw(TypeError, /bad NIC configuration/);
      expect(() => nic.configure({ ...base, vlans: [4096] })).to.throw(TypeError, /vlans are ids/);
    } finally {
      nic.close();
    }
  });

  it('floods a broadcast to every other port, escaping it to the JavaScript one; JavaScript frames reach NICs inside forward()', async () => {
    const [a, b, pa] = pair();
    const js = sw.addPort(1500);
    const bcast = frame(BCAST, MAC_A, 100, 1);
    a.send(bcast);
    await until('broadcast at B and at the JavaScript port', () => b.rx(0) === 1 && escaped.length === 1);
    expect(escaped[0].port).to.equal(js);
    expect(escaped[0].frame.equals(bcast)).to.equal(true);
    expect(sw.counters().flooded).to.equal(1);
    // From the JavaScript port to A, whom the switch learned: written into A's ring during the call.
    const toA = frame(MAC_A, [2, 0, 0, 0, 0xa, 0x99], 80, 2);
    expect(sw.forward(js, toA, performance.now())).to.deep.equal([]);
    expect(a.rx(0)).to.equal(1);
    expect(a.received()[0].equals(toA)).to.equal(true);
    // To a MAC nobody has: flooded; the NICs' filters turn it away, and the JavaScript port is not
    // sent back its own frame.
    expect(
      sw.forward(js, frame([2, 0, 0, 0, 0xa, 0x77], [2, 0, 0, 0, 0xa, 0x99], 80, 3), performance.now()),
    ).to.deep.equal([]);
    expect(a.counters[NIC_STATE.filtered] + b.counters[NIC_STATE.filtered]).to.equal(2);
    expect(pa).to.not.equal(js);
  });

  it("mirrors a port's native frames to JavaScript for a capture: what it sends and what it gets", async () => {
    const [a, b, pa] = pair();
    sw.setMirror(pa, true);
    const out = frame(MAC_B, MAC_A, 70, 1);
    a.send(out);
    await until('the copy of what A sent', () => escaped.length === 1);
    expect(escaped[0]).to.deep.include({ port: pa, copy: true });
    expect(escaped[0].frame.equals(out)).to.equal(true);
    const back = frame(MAC_A, MAC_B, 80, 2);
    b.send(back);
    await until('the copy of what A got', () => escaped.length === 2);
    expect(escaped[1]).to.deep.include({ port: pa, copy: true });
    expect(escaped[1].frame.equals(back)).to.equal(true);
    expect(b.rx(0) + a.rx(0)).to.equal(2);
    expect(sw.counters().captureDrops).to.equal(0);
  });

  it('hands a NIC back to JavaScript (slow) when its rings are in memory the worker cannot reach', async () => {
    const [a, b] = pair();
    // An ArrayBuffer range: only the JS thread can tell when it goes, so the worker never touches one.
    a.table.clear();
    a.table.add(IOVA, new ArrayBuffer(RAM));
    a.send(frame(MAC_B, MAC_A, 60, 1));
    a.nic.kick();
    await until('the slow event', () => a.events.some((e) => e.slow));
    expect(a.nic.info()).to.include({ native: false });
    expect(b.rx(0)).to.equal(0);
    // Until its queues are reset (its memory reachable again): then the worker runs it again.
    a.table.clear();
    a.table.add(IOVA, a.ram);
    a.table.add(BUF_IOVA, a.bufs);
    a.nic.resetHeads();
    expect(a.nic.info()).to.include({ native: true });
  });

  it('counts a TX tail beyond the ring once per tail value, and never walks it', async () => {
    const [a] = pair();
    Atomics.store(a.tails, 0, 100);
    await until('the bad tail', () => a.events.some((e) => e.badTail));
    await sleep(20);
    expect(a.tx(3)).to.equal(1);
  });

  it('Bus Master Enable cleared while a burst is in flight: the clear waits for it, and nothing is written after', async () => {
    const [a, b] = pair();
    const received = b.rx(0);
    injectFault('workerHold'); // the next frame's RX write waits 300 ms inside the worker's burst
    a.send(frame(MAC_B, MAC_A, 60, 3));
    await sleep(50); // the worker is in the burst now, paused before it writes into B's ring
    const started = performance.now();
    b.table.enabled = false;
    const waited = performance.now() - started;
    const after = Buffer.from(b.bytes);
    const buffers = Buffer.from(b.bufBytes);
    await sleep(400);
    expect(
      Buffer.from(b.bytes).equals(after),
      "B's ring written after Bus Master Enable was cleared",
    ).to.equal(true);
    expect(Buffer.from(b.bufBytes).equals(buffers), "B's buffers written after it was cleared").to.equal(
      true,
    );
    expect(waited, 'ms the clear waited for the burst').to.be.above(100);
    expect(b.rx(0), 'the frame of the burst in flight, delivered before the clear returned').to.equal(
      received + 1,
    );
    b.table.enabled = true;
  });

  it('munmap while a burst writes into memory the client shrank: the SIGBUS guard covers the burst to its end', async () => {
    // Mapping::Unmap once left the guard before waiting for the worker: a burst still writing into
    // a file the client had truncated then took a SIGBUS nobody caught, and the process died.
    const [a, b] = pair();
    const faults = guardStats().faults;
    injectFault('workerHold'); // the next RX write waits 300 ms inside the worker's burst
    a.send(frame(MAC_B, MAC_A, 60, 5));
    await sleep(50); // the worker is in the burst, about to write into B's RX buffers
    ftruncateSync(b.bufFd, 0); // the client shrinks the memory under them
    b.bufs.unmap(); // waits for the burst, which faults on the vanished page: caught, a zero page
    expect(guardStats().faults - faults, 'faults the guard caught').to.equal(1);
    expect(plane.stats().running, 'the worker, and the process, live on').to.equal(true);
    await sleep(20);
    b.remapBuffers();
  });

  it('DMA_UNMAP under full traffic: the worker is quiesced, and never writes into memory once it left the table', async function () {
    this.timeout(20_000);
    const [a, b] = pair();
    const f = frame(MAC_B, MAC_A, 1500, 7);
    let stop = false;
    // The guests keep the rings full: A sends bursts, B keeps posting buffers.
    const load = (async () => {
      while (!stop) {
        a.send(f, 32);
        b.received();
        b.postRx(32);
        await new Promise((r) => setImmediate(r));
      }
    })();
    let lost = 0;
    for (let round = 0; round < 300; round++) {
      // B's RX buffers leave the table: from here on the worker may not write them, whatever A sends.
      expect(b.table.remove(BUF_IOVA)).to.equal(true);
      const before = Buffer.from(b.bufBytes);
      const errors = b.rx(3);
      await sleep(round % 10 === 0 ? 2 : 0);
      expect(
        Buffer.from(b.bufBytes).equals(before),
        `round ${round}: RX buffers written after the unmap`,
      ).to.equal(true);
      lost += b.rx(3) - errors;
      b.table.add(BUF_IOVA, b.bufs);
      await new Promise((r) => setImmediate(r));
    }
    const received = b.rx(0);
    await until('traffic after the last map', () => b.rx(0) > received + 1000, 5000);
    stop = true;
    await load;
    // Frames that met the unmapped buffers were dropped as bad buffers (counted), and B stayed native.
    expect(lost).to.be.greaterThan(0);
    expect(b.nic.info()).to.include({ native: true });
    // And A's memory unmapped outright while its twin is still listed: gone, never touched.
    a.ram.unmap();
    await sleep(20);
    expect(plane.stats().running).to.equal(true);
  });

  it('munmap under full traffic: a mapping unmapped while still in the table is never touched again', async function () {
    this.timeout(30_000);
    // B's RX ring and buffers in one mapping: the worker's lookups keep hitting it, burst after burst.
    const [a, b] = pair(true);
    const f = frame(MAC_B, MAC_A, 1500, 9);
    let stop = false;
    const load = (async () => {
      while (!stop) {
        a.send(f, 32);
        if (b.bufs.mapped) {
          b.received();
          b.postRx(32);
        }
        await new Promise((r) => setImmediate(r));
      }
    })();
    for (let round = 0; round < 500; round++) {
      // The mapping goes first (as when its owner drops it), the table learns later: munmap must wait
      // for the worker's burst, and no burst may reach it after. A write after the munmap is a SIGSEGV.
      b.bufs.unmap();
      await sleep(1); // A keeps sending meanwhile: B's frames find its ring gone
      b.table.remove(BUF_IOVA);
      b.remapBuffers();
      await new Promise((r) => setImmediate(r));
    }
    stop = true;
    await load;
    // B's ring was out of reach at times: the worker handed B to JavaScript rather than touch it.
    expect(a.tx(0)).to.be.greaterThan(1000);
  });

  it('spreads switches over workers: each switch is bound to the least loaded one, its NICs run there', async () => {
    const two = new DataPlane({ workers: 2, maxSleepUs: 200 });
    const cores = [0, 1].map(
      () =>
        new SwitchCore(two, { agingMs: 300_000, maxMacs: 64, now: performance.now(), onEscape: () => {} }),
    );
    const mine: Guest[] = [];
    try {
      for (const [i, core] of cores.entries()) {
        for (const mac of [MAC_A, MAC_B]) {
          const g = new Guest(two, [...mac.slice(0, 4), i, mac[5]]);
          mine.push(g);
          g.nic.attach(core, 1500);
          g.postRx();
          g.nic.start();
        }
      }
      const stats = two.stats();
      expect(stats.workers.map((w) => [w.running, w.nics])).to.deep.equal([
        [true, 2],
        [true, 2],
      ]);
      // Each pair forwards on its own worker.
      for (const i of [0, 1]) mine[2 * i].send(frame(mine[2 * i + 1].mac, mine[2 * i].mac, 60, i), 8);
      await until('frames on both switches', () => mine[1].rx(0) === 8 && mine[3].rx(0) === 8);
      for (const w of two.stats().workers) expect(w.frames).to.equal(8);
      // A worker whose NICs all stopped stops; the other goes on.
      mine[0].nic.stop();
      mine[1].nic.stop();
      expect(two.stats().workers.map((w) => w.running)).to.deep.equal([false, true]);
    } finally {
      for (const g of mine) g.close();
      for (const c of cores) c.close();
      two.close();
    }
    expect(() => new DataPlane({ workers: 0 })).to.throw(/workers/);
  });

  describe('an exception in native code (an allocation that failed) costs only what threw', () => {
    it("in a worker's burst: that NIC goes to JavaScript (slow, fault), the next NIC's frames go on", async () => {
      const [a, b] = pair();
      const c = new Guest(plane, [2, 0, 0, 0, 0xa, 0xc]);
      guests.push(c);
      c.nic.attach(sw, 1500);
      c.postRx();
      c.nic.start();
      injectFault('workerBurst');
      a.send(frame(MAC_B, MAC_A, 60, 1));
      await until("A's fault event", () => a.events.length + c.events.length > 0);
      const faulted = a.events.length > 0 ? a : c;
      expect(faulted.events).to.deep.equal([{ slow: true, badTail: false, fault: true }]);
      // The worker lives: a NIC still native forwards.
      const other = faulted === a ? c : a;
      other.send(frame(MAC_B, other.mac, 60, 2));
      await until('a frame at B after the fault', () => b.rx(0) >= 1);
      expect(plane.stats().running).to.equal(true);
    });

    it('in an N-API call: that call throws an Error, the object and the process go on', () => {
      const [a] = pair();
      injectFault('napiCall');
      expect(() => a.nic.configure(a.config())).to.throw(/bad_alloc/);
      a.nic.configure(a.config());
    });
  });
});
