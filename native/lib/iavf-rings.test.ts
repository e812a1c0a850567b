import { expect } from 'chai';
import { closeFd } from './fd.js';
import {
  GuestMemoryTable,
  iavfGuestPostRx,
  iavfGuestPostTx,
  iavfGuestReapRx,
  iavfGuestReapTx,
  iavfRxRing,
  iavfTxRing,
  StagedMemory,
  type StagedReport,
} from './iavf-rings.js';
import { memfdCreate } from './memfd.js';
import { MappedMemory } from './mmap.js';
import { crc32c } from './offloads.js';
import { pattern } from './test-helpers.js';

const BASE = 0x1_0000_0000n;
const EOP = 0x1;
const RS = 0x2;
const ICRC = 0x4;
const IL2TAG1 = 0x8;
const IIPT_IPV4_CSUM = 0x60;
const L4T_TCP = 0x100;
const L4T_UDP = 0x300;
const L4T_SCTP = 0x200;
const LAST = EOP | RS | ICRC;

/** Guest RAM in a Buffer at IOVA `base`, with a bump allocator. */
class Ram {
  readonly bytes: Buffer;
  private next = 0;
  constructor(
    size: number,
    readonly base = BASE,
  ) {
    this.bytes = Buffer.alloc(size);
  }
  alloc(n: number, align = 64): bigint {
    this.next = Math.ceil(this.next / align) * align;
    const at = this.base + BigInt(this.next);
    this.next += n;
    if (this.next > this.bytes.length) throw new Error('test RAM full');
    return at;
  }
  off(iova: bigint): number {
    return Number(iova - this.base);
  }
  put(data: Uint8Array): bigint {
    const at = this.alloc(data.length);
    this.bytes.set(data, this.off(at));
    return at;
  }
  read(iova: bigint, n: number): Buffer {
    return this.bytes.subarray(this.off(iova), this.off(iova) + n);
  }
  u64(iova: bigint): bigint {
    return this.bytes.readBigUInt64LE(this.off(iova));
  }
  setU64(iova: bigint, v: bigint): void {
    this.bytes.writeBigUInt64LE(v, this.off(iova));
  }
}

function dataQw1(cmd: number, size: number, offset = 0): bigint {
  return (BigInt(cmd) << 4n) | (BigInt(offset) << 16n) | (BigInt(size) << 34n);
}

function ctxQw1(tso: boolean, tsoLen: number, mss: number): bigint {
  return 1n | (BigInt(tso ? 1 : 0) << 4n) | (BigInt(tsoLen) << 30n) | (BigInt(mss) << 50n);
}

class TxRing {
  ntu = 0;
  constructor(
    readonly ram: Ram,
    readonly iova: bigint,
    readonly length: number,
  ) {}
  static make(ram: Ram, length = 64): TxRing {
    return new TxRing(ram, ram.alloc(length * 16, 4096), length);
  }
  post(...descs: Array<[bigint, bigint]>): number[] {
    const at: number[] = [];
    for (const [qw0, qw1] of descs) {
      const d = this.iova + BigInt(this.ntu * 16);
      this.ram.setU64(d, qw0);
      this.ram.setU64(d + 8n, qw1);
      at.push(this.ntu);
      this.ntu = (this.ntu + 1) % this.length;
    }
    return at;
  }
  qw1(i: number): bigint {
    return this.ram.u64(this.iova + BigInt(i * 16) + 8n);
  }
  done(i: number): boolean {
    return (this.qw1(i) & 0xfn) === 0xfn;
  }
}

function table(ram: Ram): GuestMemoryTable {
  const t = new GuestMemoryTable();
  t.add(ram.base, ram.bytes);
  return t;
}

/** One's complement sum over big-endian words (for checking checksums). */
function sum16(b: Uint8Array, start: number, end: number, init = 0): number {
  let s = init;
  for (let i = start; i < end; i += 2) s += (b[i] << 8) | (i + 1 < end ? b[i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

function ipv4Frame(proto: 6 | 17, payload: number, seed = 1): Buffer {
  const l4h = proto === 6 ? 20 : 8;
  const f = Buffer.alloc(14 + 20 + l4h + payload);
  Buffer.from('02000000009902000000000a0800', 'hex').copy(f, 0);
  f[14] = 0x45;
  f.writeUInt16BE(20 + l4h + payload, 16);
  f.writeUInt16BE(0x1234, 18);
  f[22] = 64;
  f[23] = proto;
  Buffer.from([10, 0, 0, 2, 10, 0, 0, 9]).copy(f, 26);
  f.writeUInt16BE(1111, 34);
  f.writeUInt16BE(2222, 36);
  if (proto === 6) {
    f.writeUInt32BE(1000, 38);
    f[46] = 0x50;
    f[47] = 0x18; // PSH|ACK
    f.writeUInt16BE(65535, 48);
  } else f.writeUInt16BE(8 + payload, 38);
  pattern(payload, seed).copy(f, 34 + l4h);
  return f;
}

function checksumsOk(f: Buffer): { ip: boolean; l4: boolean } {
  const ip = sum16(f, 14, 34) === 0xffff;
  const proto = f[23];
  const l4len = f.length - 34;
  const pseudo = sum16(f, 26, 34) + proto + l4len;
  return { ip, l4: sum16(f, 34, f.length, pseudo) === 0xffff };
}

describe('GuestMemoryTable', () => {
  it('finds accesses wholly inside one range, and nothing that crosses an edge or wraps', () => {
    const t = new GuestMemoryTable();
    t.add(0x1000n, new ArrayBuffer(0x1000));
    t.add(0x2000n, new ArrayBuffer(0x1000)); // adjacent
    t.add(0xffff_ffff_ffff_f000n, new ArrayBuffer(0x1000)); // the last page of the IOVA space
    expect(t.lookup(0x1000n, 0x1000n)).to.equal('ok');
    expect(t.lookup(0x1fffn, 1n)).to.equal('ok');
    expect(t.lookup(0x1fffn, 2n), 'crosses into the adjacent range').to.equal('miss');
    expect(t.lookup(0xfffn, 1n)).to.equal('miss');
    expect(t.lookup(0x3000n, 1n)).to.equal('miss');
    expect(t.lookup(0x1000n, 0n), 'zero length').to.equal('miss');
    expect(t.lookup(0x1000n, 2n ** 64n - 1n)).to.equal('miss');
    expect(t.lookup(0xffff_ffff_ffff_ffffn, 1n)).to.equal('ok');
    expect(t.lookup(0xffff_ffff_ffff_ffffn, 2n), 'wraps past 2^64').to.equal('miss');
    expect(t.lookup(0xffff_ffff_ffff_f000n, 0x1001n)).to.equal('miss');
    expect(t.list().map((r) => r.iova)).to.deep.equal([0x1000n, 0x2000n, 0xffff_ffff_ffff_f000n]);
  });

  it('refuses overlapping, empty and wrapping ranges', () => {
    const t = new GuestMemoryTable();
    t.add(0x1000n, new ArrayBuffer(0x2000));
    expect(() => t.add(0x2fffn, new ArrayBuffer(16))).to.throw(RangeError, /overlaps/);
    expect(() => t.add(0x0n, new ArrayBuffer(0x1001))).to.throw(RangeError, /overlaps/);
    expect(() => t.addIndirect(0x1800n, 1n)).to.throw(RangeError, /overlaps/);
    expect(() => t.add(0x5000n, new ArrayBuffer(0))).to.throw(TypeError, /empty/);
    expect(() => t.add(2n ** 64n - 8n, new ArrayBuffer(16))).to.throw(RangeError, /wraps/);
    expect(() => t.addIndirect(0x9000n, 0n)).to.throw(TypeError);
    expect(() => t.add(-1n, new ArrayBuffer(1))).to.throw(RangeError);
    expect(() => t.add(0n, 'x' as never)).to.throw(TypeError);
    expect(t.list()).to.have.length(1);
  });

  it('tells direct, indirect and access-denied ranges apart; views count from their offset', () => {
    const t = new GuestMemoryTable();
    const backing = new ArrayBuffer(0x3000);
    t.add(0x10000n, new Uint8Array(backing, 0x1000, 0x1000), { writable: false });
    t.addIndirect(0x20000n, 0x1000n);
    expect(t.lookup(0x10000n, 0x1000n, 'read')).to.equal('ok');
    expect(t.lookup(0x10000n, 0x1001n, 'read')).to.equal('miss');
    expect(t.lookup(0x10000n, 4n, 'write')).to.equal('denied');
    expect(t.lookup(0x20010n, 4n)).to.equal('indirect');
    expect(t.list().map((r) => [r.direct, r.writable])).to.deep.equal([
      [true, false],
      [false, true],
    ]);
    expect(t.remove(0x20000n)).to.equal(true);
    expect(t.remove(0x20000n)).to.equal(false);
    expect(t.lookup(0x20010n, 4n)).to.equal('miss');
    t.clear();
    expect(t.list()).to.deep.equal([]);
  });

  it('never reaches a range once its mapping is unmapped, even without remove()', () => {
    const fd = memfdCreate('emu-test-table', 0x2000);
    try {
      const m = MappedMemory.map(fd, 0, 0x2000);
      const t = new GuestMemoryTable();
      t.add(0x4000n, m);
      t.add(0x8000n, new ArrayBuffer(64));
      expect(t.lookup(0x4000n, 0x2000n)).to.equal('ok');
      m.unmap();
      expect(t.lookup(0x4000n, 1n)).to.equal('miss');
      expect(t.list().map((r) => r.iova)).to.deep.equal([0x8000n]);
      // The ring functions prune first too: a ring in the unmapped range is simply not there.
      expect(iavfTxRing(t, { iova: 0x4000n, length: 64 }, 0, 1).stop).to.equal('ring');
      expect(() => t.add(0x4000n, m)).to.throw(TypeError, /unmapped/);
      // Nor does a range whose ArrayBuffer was detached.
      const buffer = new ArrayBuffer(64);
      t.add(0xc000n, buffer);
      structuredClone(buffer, { transfer: [buffer] });
      expect(t.lookup(0xc000n, 4n)).to.equal('miss');
      expect(t.list().map((r) => r.iova)).to.deep.equal([0x8000n]);
    } finally {
      closeFd(fd);
    }
  });
});

describe('iavfTxRing', () => {
  it('gathers one- and multi-buffer packets up to EOP and marks only RS descriptors done (DTYPE 0xF)', () => {
    const ram = new Ram(1 << 20);
    const t = table(ram);
    const ring = TxRing.make(ram);
    const a = pattern(200, 1);
    const b = [pattern(100, 2), pattern(1000, 3), pattern(414, 4)];
    ring.post([ram.put(a), dataQw1(LAST, 200)]);
    const at = ring.post(
      [ram.put(b[0]), dataQw1(ICRC, 100)],
      [ram.put(b[1]), dataQw1(ICRC, 1000)],
      [ram.put(b[2]), dataQw1(LAST, 414)],
    );
    const r = iavfTxRing(t, ring, 0, ring.ntu);
    expect(r.stop).to.equal('caught-up');
    expect(r.head).to.equal(4);
    expect(r.frames.map((f) => f.toString('hex'))).to.deep.equal([
      a.toString('hex'),
      Buffer.concat(b).toString('hex'),
    ]);
    expect(r.counts).to.deep.equal({
      badAddress: 0,
      badLength: 0,
      noEop: 0,
      badTso: 0,
      dropped: 0,
      completed: 2,
    });
    expect([0, ...at].map((i) => ring.done(i))).to.deep.equal([true, false, false, true]);
    // The rest of qword1 is as the driver wrote it.
    expect(ring.qw1(3) & ~0xfn).to.equal(dataQw1(LAST, 414));
    // The frames are copies: the guest may reuse its buffers.
    ram.bytes.fill(0);
    expect(r.frames[0].equals(a)).to.equal(true);
  });

  it('walks around the end of the ring', () => {
    const ram = new Ram(1 << 20);
    const t = table(ram);
    const ring = TxRing.make(ram, 64);
    ring.ntu = 62;
    const f = pattern(64, 9);
    ring.post(
      [ram.put(f.subarray(0, 20)), dataQw1(ICRC, 20)],
      [ram.put(f.subarray(20, 40)), dataQw1(ICRC, 20)],
    );
    ring.post([ram.put(f.subarray(40)), dataQw1(LAST, 24)]);
    const r = iavfTxRing(t, ring, 62, 1);
    expect(r.head).to.equal(1);
    expect(r.frames).to.have.length(1);
    expect(r.frames[0].equals(f)).to.equal(true);
    expect(ring.done(0)).to.equal(true);
  });

  it('waits at a packet whose EOP is not posted yet, and takes it whole once it is', () => {
    const ram = new Ram(1 << 20);
    const t = table(ram);
    const ring = TxRing.make(ram);
    const f = pattern(300, 5);
    ring.post([ram.put(f.subarray(0, 100)), dataQw1(ICRC, 100)]);
    let r = iavfTxRing(t, ring, 0, 1);
    expect(r).to.deep.include({ head: 0, stop: 'incomplete', frames: [] });
    ring.post([ram.put(f.subarray(100)), dataQw1(LAST, 200)]);
    r = iavfTxRing(t, ring, 0, 2);
    expect(r.head).to.equal(2);
    expect(r.frames[0].equals(f)).to.equal(true);
  });

  it('drops a packet with a bad buffer whole (zero length, outside memory, or not readable) and completes its RS descriptor', () => {
    const ram = new Ram(1 << 20);
    const t = table(ram);
    const ring = TxRing.make(ram);
    const noRead = 0x9_0000_0000n;
    t.add(noRead, new ArrayBuffer(4096), { readable: false });
    const good = ram.put(pattern(100, 1));
    ring.post([good, dataQw1(ICRC, 100)], [good, dataQw1(ICRC, 0)], [good, dataQw1(LAST, 100)]);
    ring.post(
      [good, dataQw1(ICRC, 100)],
      [ram.base + (1n << 20n) - 50n, dataQw1(ICRC, 100)],
      [good, dataQw1(LAST, 100)],
    );
    ring.post([noRead, dataQw1(LAST, 64)]);
    ring.post([ram.put(pattern(64, 3)), dataQw1(LAST, 64)]);
    const r = iavfTxRing(t, ring, 0, ring.ntu);
    expect(r.head).to.equal(ring.ntu);
    expect(r.frames.map((f) => f.length)).to.deep.equal([64]);
    expect(r.counts).to.deep.include({ badAddress: 2, badLength: 1, completed: 4 });
    for (const i of [2, 5, 6, 7]) expect(ring.done(i), `descriptor ${i}`).to.equal(true);
  });

  it('counts a buffer in no range as a bad address: the packet is dropped and completed', () => {
    const ram = new Ram(1 << 20);
    const t = table(ram);
    const ring = TxRing.make(ram);
    ring.post([ram.put(pattern(64, 1)), dataQw1(LAST, 64)]);
    ring.post([0x5_0000_0000n, dataQw1(LAST, 64)]);
    const r = iavfTxRing(t, ring, 0, 2);
    expect(r).to.deep.include({ head: 2, stop: 'caught-up' });
    expect(r.frames).to.have.length(1);
    expect(r.counts.badAddress).to.equal(1);
    expect(ring.done(1)).to.equal(true);
  });

  it('ends a pass once it produced maxFrames frames or maxBytes bytes, at a packet boundary, and goes on from there', () => {
    const ram = new Ram(1 << 20);
    const t = table(ram);
    const ring = TxRing.make(ram);
    const buf = ram.put(pattern(100, 1));
    for (let i = 0; i < 10; i++) ring.post([buf, dataQw1(ICRC, 50)], [buf, dataQw1(LAST, 50)]);
    let r = iavfTxRing(t, ring, 0, 20, { maxFrames: 3 });
    expect(r).to.deep.include({ head: 6, stop: 'budget' });
    expect(r.frames).to.have.length(3);
    expect(r.counts.completed).to.equal(3);
    expect(ring.done(5)).to.equal(true);
    expect(ring.done(7)).to.equal(false);
    // 250 bytes: the pass stops before the packet after the one that crossed it.
    r = iavfTxRing(t, ring, 6, 20, { maxBytes: 250 });
    expect(r).to.deep.include({ head: 12, stop: 'budget' });
    expect(r.frames).to.have.length(3);
    r = iavfTxRing(t, ring, 12, 20, { maxFrames: 100 });
    expect(r).to.deep.include({ head: 20, stop: 'caught-up' });
    expect(r.frames).to.have.length(4);
    expect(() => iavfTxRing(t, ring, 0, 1, { maxFrames: -1 })).to.throw(RangeError);
  });

  it('stops at a packet with a buffer in an indirect (fd-less) range, before touching it', () => {
    const ram = new Ram(1 << 20);
    const t = table(ram);
    t.addIndirect(0x7_0000_0000n, 0x10000n);
    const ring = TxRing.make(ram);
    ring.post([ram.put(pattern(64, 1)), dataQw1(ICRC, 64)], [0x7_0000_0100n, dataQw1(LAST, 64)]);
    const r = iavfTxRing(t, ring, 0, 2);
    expect(r).to.deep.include({ head: 0, stop: 'indirect', frames: [] });
    expect(ring.done(1)).to.equal(false);
  });

  it('drops a packet of more than 16 buffers without EOP there, and goes on at the next descriptor', () => {
    const ram = new Ram(1 << 20);
    const t = table(ram);
    const ring = TxRing.make(ram);
    const buf = ram.put(pattern(64, 1));
    for (let i = 0; i < 17; i++) ring.post([buf, dataQw1(ICRC | (i === 16 ? RS : 0), 64)]);
    const good = pattern(70, 2);
    ring.post([ram.put(good), dataQw1(LAST, 70)]);
    const r = iavfTxRing(t, ring, 0, ring.ntu);
    expect(r.counts).to.deep.include({ noEop: 1, completed: 2 });
    expect(r.frames.map((f) => f.toString('hex'))).to.deep.equal([good.toString('hex')]);
    expect(ring.done(16)).to.equal(true);
  });

  it('drops runts and frames over 16 KiB without TSO (counted), keeps a frame of exactly 16 KiB', () => {
    const ram = new Ram(1 << 20);
    const t = table(ram);
    const ring = TxRing.make(ram);
    const big = ram.put(pattern(16384, 1));
    ring.post([big, dataQw1(LAST, 13)]);
    ring.post([big, dataQw1(ICRC, 9000)], [big, dataQw1(LAST, 9000)]);
    ring.post([big, dataQw1(ICRC, 8192)], [big + 8192n, dataQw1(LAST, 8192)]);
    const r = iavfTxRing(t, ring, 0, ring.ntu);
    expect(r.counts).to.deep.include({ dropped: 2, completed: 3 });
    expect(r.frames.map((f) => f.length)).to.deep.equal([16384]);
  });

  it('refuses head or tail beyond the ring, and a ring outside (or not writable in) guest memory', () => {
    const ram = new Ram(1 << 16);
    const t = table(ram);
    t.add(0x8_0000_0000n, new ArrayBuffer(4096), { writable: false });
    const ring = { iova: ram.base, length: 64 };
    expect(iavfTxRing(t, ring, 0, 64).stop).to.equal('bad-index');
    expect(iavfTxRing(t, ring, 64, 0).stop).to.equal('bad-index');
    expect(iavfTxRing(t, { iova: ram.base + (1n << 16n) - 512n, length: 64 }, 0, 1).stop).to.equal('ring');
    expect(iavfTxRing(t, { iova: 0x8_0000_0000n, length: 64 }, 0, 1).stop).to.equal('ring');
    expect(() => iavfTxRing(t, { iova: ram.base, length: 9000 }, 0, 1)).to.throw(TypeError);
    expect(() => iavfTxRing(t, ring, -1, 1)).to.throw(TypeError);
  });

  it("inserts SCTP's CRC32c (L4T SCTP): over the SCTP packet with the field zero, its bytes little-endian", () => {
    const ram = new Ram(1 << 20);
    const t = table(ram);
    const ring = TxRing.make(ram);
    // An IPv4/SCTP packet: common header (ports, verification tag, checksum) and one DATA chunk.
    const sctp = ipv4Frame(17, 40);
    sctp[23] = 132;
    sctp.writeUInt32BE(0xdeadbeef, 38); // verification tag
    sctp.writeUInt32BE(0x11223344, 42); // a stale checksum the device must replace
    const l4 = 34;
    ring.post([
      ram.put(sctp),
      dataQw1(LAST | IIPT_IPV4_CSUM | L4T_SCTP, sctp.length, 7 | (5 << 7) | (3 << 14)),
    ]);
    const r = iavfTxRing(t, ring, 0, ring.ntu);
    const got = r.frames[0];
    const zeroed = Buffer.from(got.subarray(l4));
    zeroed.writeUInt32LE(0, 8);
    expect(got.readUInt32LE(l4 + 8)).to.equal(crc32c(zeroed));
    expect(got.readUInt32LE(l4 + 8)).to.not.equal(0x44332211);
    expect(checksumsOk(got).ip, 'the IPv4 header checksum too').to.equal(true);
    expect(got.subarray(l4, l4 + 8).equals(sctp.subarray(l4, l4 + 8)), 'ports and tag kept').to.equal(true);
    expect(got.subarray(l4 + 12).equals(sctp.subarray(l4 + 12)), 'chunks kept').to.equal(true);
  });

  it('offloads the IPv4 header checksum (IIPT 0x60) and the TCP/UDP checksum (L4T), or leaves the frame alone', () => {
    const ram = new Ram(1 << 20);
    const t = table(ram);
    const ring = TxRing.make(ram);
    const tcp = ipv4Frame(6, 333);
    const udp = ipv4Frame(17, 101);
    const offset = 7 | (5 << 7) | (5 << 14);
    ring.post([ram.put(tcp), dataQw1(LAST | IIPT_IPV4_CSUM | L4T_TCP, tcp.length, offset)]);
    ring.post([ram.put(udp), dataQw1(LAST | IIPT_IPV4_CSUM | L4T_UDP, udp.length, 7 | (5 << 7) | (2 << 14))]);
    ring.post([ram.put(tcp), dataQw1(LAST, tcp.length, offset)]);
    const r = iavfTxRing(t, ring, 0, ring.ntu);
    expect(checksumsOk(r.frames[0])).to.deep.equal({ ip: true, l4: true });
    expect(checksumsOk(r.frames[1])).to.deep.equal({ ip: true, l4: true });
    expect(r.frames[2].equals(tcp), 'no offload bits: untouched').to.equal(true);
    // Without offload: the packets as gathered, with what the descriptors asked for.
    ring.ntu = 0;
    ring.post([ram.put(tcp), dataQw1(LAST | IIPT_IPV4_CSUM | L4T_TCP, tcp.length, offset)]);
    const raw = iavfTxRing(t, ring, 0, 1, { offload: false });
    expect(raw.frames[0].equals(tcp)).to.equal(true);
    expect(raw.meta).to.deep.equal([
      {
        cmd: LAST | IIPT_IPV4_CSUM | L4T_TCP,
        macLen: 14,
        ipLen: 20,
        l4Len: 20,
        tso: false,
        mss: 0,
        tsoLen: 0,
        l2tag1: 0,
      },
    ]);
  });

  it('inserts the VLAN tag IL2TAG1 asks for from the EOP descriptor’s L2TAG1, in every TSO segment too', () => {
    const ram = new Ram(1 << 20);
    const t = table(ram);
    const ring = TxRing.make(ram);
    const tag = (f: Buffer, tci: number) =>
      Buffer.concat([f.subarray(0, 12), Buffer.from([0x81, 0x00, tci >> 8, tci & 0xff]), f.subarray(12)]);
    const withTag = (qw1: bigint, tci: number) => qw1 | (BigInt(tci) << 48n);
    const udp = ipv4Frame(17, 101);
    const offset = 7 | (5 << 7) | (2 << 14);
    ring.post([ram.put(udp), withTag(dataQw1(LAST | IL2TAG1, udp.length), 0x2064)]);
    // L2TAG1 without IL2TAG1: nothing inserted.
    ring.post([ram.put(udp), withTag(dataQw1(LAST, udp.length), 0x2064)]);
    // Checksums are computed on the untagged packet, then the tag goes in.
    ring.post([
      ram.put(udp),
      withTag(dataQw1(LAST | IL2TAG1 | IIPT_IPV4_CSUM | L4T_UDP, udp.length, offset), 100),
    ]);
    const r = iavfTxRing(t, ring, 0, ring.ntu);
    expect(r.frames[0].toString('hex')).to.equal(tag(udp, 0x2064).toString('hex'));
    expect(r.frames[1].equals(udp)).to.equal(true);
    expect(r.frames[2].subarray(12, 16).toString('hex')).to.equal('81000064');
    const untagged = Buffer.concat([r.frames[2].subarray(0, 12), r.frames[2].subarray(16)]);
    expect(checksumsOk(untagged)).to.deep.equal({ ip: true, l4: true });

    const tcp = ipv4Frame(6, 3000, 7);
    const tso = ICRC | IIPT_IPV4_CSUM | L4T_TCP | IL2TAG1;
    const tcpOffset = 7 | (5 << 7) | (5 << 14);
    const start = ring.ntu;
    ring.post(
      [0n, ctxQw1(true, 3000, 1448)],
      [ram.put(tcp), withTag(dataQw1(tso | EOP | RS, tcp.length, tcpOffset), 7)],
    );
    const s = iavfTxRing(t, ring, start, ring.ntu);
    expect(s.frames.map((f) => f.length)).to.deep.equal([58 + 1448, 58 + 1448, 58 + 104]);
    for (const f of s.frames) {
      expect(f.subarray(12, 16).toString('hex')).to.equal('81000007');
      expect(checksumsOk(Buffer.concat([f.subarray(0, 12), f.subarray(16)]))).to.deep.equal({
        ip: true,
        l4: true,
      });
    }
  });

  it('segments TSO: headers replicated, length, id, sequence numbers, flags and checksums per segment', () => {
    const ram = new Ram(1 << 20);
    const t = table(ram);
    const ring = TxRing.make(ram);
    const frame = ipv4Frame(6, 3000, 7);
    frame[47] = 0x19; // FIN|PSH|ACK
    const offset = 7 | (5 << 7) | (5 << 14);
    const cmd = ICRC | IIPT_IPV4_CSUM | L4T_TCP;
    ring.post(
      [0n, ctxQw1(true, 3000, 1448)],
      [ram.put(frame.subarray(0, 54)), dataQw1(cmd, 54, offset)],
      [ram.put(frame.subarray(54)), dataQw1(cmd | EOP | RS, 3000, offset)],
    );
    const r = iavfTxRing(t, ring, 0, 3);
    expect(r.frames.map((f) => f.length)).to.deep.equal([54 + 1448, 54 + 1448, 54 + 104]);
    let payload = Buffer.alloc(0);
    r.frames.forEach((s, i) => {
      expect(checksumsOk(s), `segment ${i}`).to.deep.equal({ ip: true, l4: true });
      expect(s.readUInt16BE(16), 'IPv4 total length').to.equal(s.length - 14);
      expect(s.readUInt16BE(18), 'IPv4 id').to.equal(0x1234 + i);
      expect(s.readUInt32BE(38), 'sequence').to.equal(1000 + i * 1448);
      expect(s[47], 'flags').to.equal(i === 2 ? 0x19 : 0x10);
      payload = Buffer.concat([payload, s.subarray(54)]);
    });
    expect(payload.equals(frame.subarray(54))).to.equal(true);
    expect(ring.done(2)).to.equal(true);
    // Segments count against a pass's budget: a whole packet goes, then the pass ends.
    for (let i = 0; i < 2; i++) {
      ring.post(
        [0n, ctxQw1(true, 3000, 1448)],
        [ram.put(frame.subarray(0, 54)), dataQw1(cmd, 54, offset)],
        [ram.put(frame.subarray(54)), dataQw1(cmd | EOP | RS, 3000, offset)],
      );
    }
    const budgeted = iavfTxRing(t, ring, 3, 9, { maxFrames: 2 });
    expect(budgeted).to.deep.include({ head: 6, stop: 'budget' });
    expect(budgeted.frames).to.have.length(3);
  });

  it('drops TSO it cannot segment (MSS below 64, headers that do not fit, not TCP), counted', () => {
    const ram = new Ram(1 << 20);
    const t = table(ram);
    const ring = TxRing.make(ram);
    const tcp = ram.put(ipv4Frame(6, 3000));
    const udp = ram.put(ipv4Frame(17, 3000));
    const good = 7 | (5 << 7) | (5 << 14);
    const cmd = LAST | IIPT_IPV4_CSUM | L4T_TCP;
    for (const [buf, offset, mss] of [
      [tcp, good, 0],
      [tcp, good, 1],
      [tcp, 0, 1448],
      [tcp, 1 | (1 << 7) | (1 << 14), 1448],
      [udp, good, 1448],
      [tcp, 7 | (5 << 7) | (6 << 14), 1448], // L4LEN 24, the TCP header says 20
    ] as const) {
      ring.post([0n, ctxQw1(true, 3000, mss)], [buf, dataQw1(cmd, 3054, offset)]);
    }
    const r = iavfTxRing(t, ring, 0, ring.ntu);
    expect(r.frames).to.deep.equal([]);
    expect(r.counts).to.deep.include({ badTso: 6, completed: 6 });
  });

  it('survives random descriptors: every head, tail and address combination stays inside the table', function () {
    this.timeout(20000);
    const ram = new Ram(1 << 16);
    const t = table(ram);
    const ring = { iova: ram.base, length: 256 };
    let x = 12345;
    const rnd = () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return x >>> 0;
    };
    const near = () => ram.base + BigInt(rnd() % (1 << 16)) - 64n;
    for (let round = 0; round < 300; round++) {
      for (let i = 0; i < ring.length; i++) {
        const d = ram.base + BigInt(i * 16);
        const kind = rnd() % 4;
        const qw0 = kind === 0 ? BigInt(rnd()) << 32n : near();
        let qw1 = (BigInt(rnd()) << 32n) | BigInt(rnd());
        if (kind !== 3) qw1 &= ~0xen; // mostly data or context descriptors
        ram.setU64(d, qw0);
        ram.setU64(d + 8n, qw1);
      }
      const r = iavfTxRing(t, ring, rnd() % 256, rnd() % 256, {
        offload: round % 3 !== 0,
        maxFrames: round % 2 === 0 ? 1 + (rnd() % 64) : undefined,
      });
      expect(r.head).to.be.below(256);
      for (const f of r.frames) expect(f.length).to.be.at.most(256 * 1024);
    }
  });
});

describe("the guest's TX clean (iavfGuestReapTx)", () => {
  it('counts descriptors the device wrote back done, from next_to_clean, up to max', () => {
    const ram = new Ram(1 << 20);
    const t = table(ram);
    const ring = { iova: ram.alloc(64 * 16, 4096), length: 64 };
    const buffer = ram.put(pattern(60, 1));
    const next = iavfGuestPostTx(t, ring, 60, 8, buffer, 60); // wraps: 60..63, 0..3
    expect(iavfGuestReapTx(t, ring, 60, 8)).to.equal(0);
    expect(iavfTxRing(t, ring, 60, 2).frames).to.have.length(6);
    expect(iavfGuestReapTx(t, ring, 60, 63)).to.equal(6);
    expect(iavfGuestReapTx(t, ring, 60, 4)).to.equal(4);
    expect(iavfTxRing(t, ring, 2, next).frames).to.have.length(2);
    expect(iavfGuestReapTx(t, ring, 2, 63)).to.equal(2);
  });
});

describe('iavfRxRing', () => {
  const RX_DD = 1n;
  const RX_EOF = 2n;
  // PTYPE 1 (L2, not IP: the test pattern's EtherType) on the EOF descriptor; iavfRxOffloadBits's own
  // rules are driver-iavf's datapath/rx-offloads.test.
  const EOF_L2 = RX_EOF | (1n << 30n);

  function rxSetup(ringLen = 64, bufferSize = 2048) {
    const ram = new Ram(1 << 20);
    const t = table(ram);
    const iova = ram.alloc(ringLen * 32, 4096);
    const buffers = ram.alloc(ringLen * bufferSize, 4096);
    const queue = { iova, length: ringLen, bufferSize, maxFrame: 9000 };
    const next = iavfGuestPostRx(t, queue, 0, ringLen - 1, buffers, bufferSize);
    const desc = (i: number) => ({
      qw0: ram.u64(iova + BigInt(i * 32)),
      qw1: ram.u64(iova + BigInt(i * 32) + 8n),
      qw2: ram.u64(iova + BigInt(i * 32) + 16n),
      qw3: ram.u64(iova + BigInt(i * 32) + 24n),
    });
    const buffer = (i: number, n: number) => ram.read(buffers + BigInt(i * bufferSize), n);
    return { ram, t, queue, tail: next, desc, buffer, buffers };
  }

  it('writes a frame into one buffer with the legacy write-back: DD|EOF, length, RSS hash and FLTSTAT', () => {
    const { t, queue, tail, desc, buffer } = rxSetup();
    expect(tail).to.equal(63);
    const f = pattern(300, 1);
    expect(iavfRxRing(t, queue, 0, tail, f)).to.deep.equal({ status: 'ok', head: 1 });
    expect(buffer(0, 300).equals(f)).to.equal(true);
    expect(desc(0)).to.deep.equal({ qw0: 0n, qw1: RX_DD | EOF_L2 | (300n << 38n), qw2: 0n, qw3: 0n });
    expect(iavfRxRing(t, queue, 1, tail, f, { hash: 0xdeadbeef })).to.deep.equal({ status: 'ok', head: 2 });
    expect(desc(1)).to.deep.equal({
      qw0: 0xdeadbeefn << 32n,
      qw1: RX_DD | EOF_L2 | (3n << 12n) | (300n << 38n),
      qw2: 0n,
      qw3: 0n,
    });
  });

  it("the guest's clean (iavfGuestReapRx) counts written-back descriptors from next_to_clean and clears them", () => {
    const { t, queue, tail, desc } = rxSetup();
    for (let i = 0; i < 3; i++) iavfRxRing(t, queue, i, tail, pattern(100, i));
    expect(iavfGuestReapRx(t, queue, 0, 10)).to.equal(3);
    expect([0, 1, 2].map((i) => desc(i).qw1)).to.deep.equal([0n, 0n, 0n]);
    expect(iavfGuestReapRx(t, queue, 0, 10)).to.equal(0);
    iavfRxRing(t, queue, 3, tail, pattern(100, 3));
    expect(iavfGuestReapRx(t, queue, 3, 0)).to.equal(0);
    expect(iavfGuestReapRx(t, queue, 3, 1)).to.equal(1);
  });

  it('reports a stripped VLAN tag on the last descriptor: qword0 bits 16-31 and L2TAG1P', () => {
    const { t, queue, tail, desc } = rxSetup(64, 256);
    const f = pattern(600, 2);
    expect(iavfRxRing(t, queue, 0, tail, f, { hash: 0x1234, l2tag1: 0xa064 })).to.deep.equal({
      status: 'ok',
      head: 3,
    });
    expect(desc(0).qw0, 'not on the first buffers').to.equal(0x1234n << 32n);
    expect(desc(1).qw1 & 4n).to.equal(0n);
    expect(desc(2).qw0).to.equal((0x1234n << 32n) | (0xa064n << 16n));
    expect(desc(2).qw1 & 7n, 'DD, EOF, L2TAG1P').to.equal(7n);
  });

  it('splits a frame over buffers (DD on each, EOF on the last), and wraps around the ring', () => {
    const { t, queue, desc, buffer, buffers } = rxSetup(64, 1024);
    iavfGuestPostRx(t, queue, 62, 3, buffers, 1024); // slot 63 too
    const f = pattern(2500, 2);
    expect(iavfRxRing(t, queue, 62, 10, f)).to.deep.equal({ status: 'ok', head: 1 });
    expect([62, 63, 0].map((i) => desc(i).qw1)).to.deep.equal([
      RX_DD | (1024n << 38n),
      RX_DD | (1024n << 38n),
      RX_DD | EOF_L2 | (452n << 38n),
    ]);
    expect(Buffer.concat([buffer(62, 1024), buffer(63, 1024), buffer(0, 452)]).equals(f)).to.equal(true);
  });

  it('drops what does not fit: no free buffers, longer than maxFrame or 5 buffers, tail beyond the ring', () => {
    const { t, queue, desc } = rxSetup(64, 1024);
    expect(iavfRxRing(t, queue, 5, 5, pattern(60))).to.deep.equal({ status: 'no-buffers', head: 5 });
    expect(iavfRxRing(t, queue, 5, 6, pattern(1025))).to.deep.equal({ status: 'no-buffers', head: 5 });
    expect(iavfRxRing(t, queue, 5, 7, pattern(1025)).status).to.equal('ok');
    expect(iavfRxRing(t, queue, 0, 63, pattern(9001)).status).to.equal('too-big');
    expect(iavfRxRing(t, { ...queue, maxFrame: 16384 }, 0, 63, pattern(5121)).status).to.equal('too-big');
    expect(iavfRxRing(t, queue, 0, 64, pattern(60)).status).to.equal('bad-index');
    expect(iavfRxRing(t, { ...queue, bufferSize: 0 }, 0, 63, pattern(60)).status).to.equal('too-big');
    expect(desc(0).qw1, 'untouched').to.equal(0n);
  });

  it('gives a bad buffer back to the driver: buffers before it filled as usual, DD|EOF|RXE on it, head past it', () => {
    const { ram, t, queue, desc } = rxSetup(64, 1024);
    ram.setU64(queue.iova + 32n, ram.base + (1n << 20n) - 100n); // descriptor 1: runs off the end of RAM
    const r = iavfRxRing(t, queue, 0, 63, pattern(2500), { hash: 7 });
    expect(r).to.deep.equal({ status: 'bad-buffer', head: 2 });
    expect(desc(0)).to.deep.equal({
      qw0: 7n << 32n,
      qw1: RX_DD | (3n << 12n) | (1024n << 38n),
      qw2: 0n,
      qw3: 0n,
    });
    expect(desc(1).qw1).to.equal(RX_DD | RX_EOF | (1n << 19n));
    expect(desc(1).qw0, 'only qword1 of the bad descriptor is written').to.equal(
      ram.base + (1n << 20n) - 100n,
    );
    expect(desc(2).qw1).to.equal(0n);
    ram.setU64(queue.iova + 64n, 0x6_0000_0000n);
    t.addIndirect(0x6_0000_0000n, 0x100000n);
    expect(iavfRxRing(t, queue, 2, 63, pattern(100))).to.deep.equal({
      status: 'indirect',
      head: 2,
    });
    // A ring only DMA messages reach is walked through a StagedMemory (below).
    expect(iavfRxRing(t, { ...queue, iova: 0x6_0000_0000n }, 0, 63, pattern(100)).status).to.equal(
      'indirect',
    );
    expect(iavfRxRing(t, { ...queue, iova: 0x7_0000_0000n }, 0, 63, pattern(100)).status).to.equal('ring');
  });

  it('writes 16-byte descriptors (RXDID 0): qwords 0 and 1 only, 16 bytes apart, the ring 16 bytes per entry', () => {
    const ram = new Ram(1 << 20);
    const t = table(ram);
    const buffers = ram.alloc(64 * 1024, 4096);
    // The last 1 KiB of RAM: room for 64 16-byte descriptors, not for 64 32-byte ones.
    const iova = ram.base + (1n << 20n) - 1024n;
    const queue = { iova, length: 64, bufferSize: 1024, maxFrame: 9000, descSize: 16 as const };
    expect(iavfGuestPostRx(t, queue, 0, 63, buffers, 1024)).to.equal(63);
    for (let i = 0; i < 63; i++) expect(ram.u64(iova + BigInt(i * 16))).to.equal(buffers + BigInt(i * 1024));
    const f = pattern(2500, 3);
    expect(iavfRxRing(t, queue, 0, 63, f, { hash: 0x1234 })).to.deep.equal({ status: 'ok', head: 3 });
    const qw = (i: number, k: number) => ram.u64(iova + BigInt(i * 16 + k * 8));
    expect([0, 1, 2].map((i) => [qw(i, 0), qw(i, 1)])).to.deep.equal([
      [0x1234n << 32n, RX_DD | (3n << 12n) | (1024n << 38n)],
      [0x1234n << 32n, RX_DD | (3n << 12n) | (1024n << 38n)],
      [0x1234n << 32n, RX_DD | EOF_L2 | (3n << 12n) | (452n << 38n)],
    ]);
    expect(qw(3, 0), 'the next descriptor keeps its buffer address').to.equal(buffers + 3n * 1024n);
    expect(ram.read(buffers, 2500).equals(f)).to.equal(true);
    // A stripped VLAN tag has its place in qword0 of the 16-byte format too.
    expect(iavfRxRing(t, queue, 3, 63, pattern(100, 4), { l2tag1: 0x0064 })).to.deep.equal({
      status: 'ok',
      head: 4,
    });
    expect(qw(3, 0)).to.equal(0x64n << 16n);
    expect(qw(3, 1) & 7n, 'DD, EOF, L2TAG1P').to.equal(7n);
    expect(qw(4, 0), 'nothing written past the descriptor').to.equal(buffers + 4n * 1024n);
    // The same ring read as 32-byte descriptors runs off the end of RAM.
    expect(iavfRxRing(t, { ...queue, descSize: 32 }, 3, 63, f).status).to.equal('ring');
    expect(() => iavfRxRing(t, { ...queue, descSize: 24 as 16 }, 3, 63, f)).to.throw(
      TypeError,
      'queue.descSize must be 16 or 32, got 24',
    );
    expect(() => iavfGuestPostRx(t, { ...queue, descSize: 8 as 16 }, 0, 1, buffers, 1024)).to.throw(
      TypeError,
      'ring.descSize must be 16 or 32',
    );
  });
});

describe('guest-side helpers (benchmarks)', () => {
  it('post TX descriptors the TX walk completes, in a closed loop', () => {
    const ram = new Ram(1 << 20);
    const t = table(ram);
    const ring = { iova: ram.alloc(512 * 16, 4096), length: 512 };
    const frame = ram.put(pattern(64, 1));
    let next = 0;
    let head = 0;
    let sent = 0;
    for (let round = 0; round < 10; round++) {
      next = iavfGuestPostTx(t, ring, next, 500, frame, 64);
      const r = iavfTxRing(t, ring, head, next);
      head = r.head;
      sent += r.frames.length;
      expect(r.counts.completed).to.equal(500);
    }
    expect(sent).to.equal(5000);
    expect(head).to.equal(next);
  });
});

describe('StagedMemory: the ring walks over memory only DMA messages reach', () => {
  /**
   * The VMM's side of fd-less RAM: `ram` is guest memory, listed in the table as indirect, so every
   * byte the walk reads is fetched (as DMA_READ would) and every store it makes is written back in
   * order (as DMA_WRITE). Returns the last walk's result and every fetch and write, in order.
   */
  function staged<R extends Partial<StagedReport> & { head: number }>(
    ram: Ram,
    head: number,
    walk: (stage: StagedMemory, head: number) => R,
    fetchable = (_iova: bigint, _n: number) => true,
  ) {
    const stage = new StagedMemory();
    const fetches: Array<{ iova: bigint; length: number }> = [];
    const writes: Array<{ iova: bigint; length: number }> = [];
    for (let calls = 0; calls < 1000; calls++) {
      const r = walk(stage, head);
      head = r.head;
      for (const w of r.writes ?? []) {
        ram.bytes.set(w.bytes, ram.off(w.iova));
        writes.push({ iova: w.iova, length: w.bytes.length });
      }
      if (!r.need) return { r, fetches, writes };
      fetches.push(r.need);
      const ok = fetchable(r.need.iova, r.need.length);
      expect(
        stage.add(r.need.iova, ok ? Buffer.from(ram.read(r.need.iova, r.need.length)) : null, r.need.length),
      ).to.be.true;
    }
    throw new Error('the walk never ended');
  }

  function indirectTable(ram: Ram): GuestMemoryTable {
    const t = new GuestMemoryTable();
    t.addIndirect(ram.base, BigInt(ram.bytes.length));
    return t;
  }

  it('TX: the same frames and write-backs as over direct memory; fetches only the descriptors owned and the buffers', () => {
    const direct = new Ram(1 << 20);
    const ring = TxRing.make(direct);
    const a = pattern(300, 1);
    const b = pattern(1000, 2);
    const aAt = direct.put(a);
    const bAt = direct.put(b);
    ring.post(
      [aAt, dataQw1(LAST, 300)],
      [bAt, dataQw1(ICRC, 400)],
      [bAt + 400n, dataQw1(LAST, 600)],
      [aAt, dataQw1(LAST, 300)],
    );
    const fdless = new Ram(1 << 20);
    direct.bytes.copy(fdless.bytes);
    const expected = iavfTxRing(table(direct), ring, 0, 4);
    const t = indirectTable(fdless);
    const { r, fetches, writes } = staged(fdless, 0, (stage, head) =>
      iavfTxRing(t, ring, head, 4, { stage }),
    );
    expect(r.head).to.equal(4);
    expect(r.stop).to.equal('caught-up');
    expect(fdless.bytes.equals(direct.bytes), 'guest memory as the direct walk left it').to.be.true;
    expect(expected.frames.map((f) => f.toString('hex'))).to.deep.equal(
      [a, b, a].map((f) => f.toString('hex')),
    );
    // Resumed walks hand back each frame once: the last call carries those after its last fetch.
    expect(fetches[0], 'the descriptors from head to tail, in one read').to.deep.equal({
      iova: ring.iova,
      length: 64,
    });
    expect(fetches.slice(1)).to.deep.equal([
      { iova: aAt, length: 300 },
      { iova: bAt, length: 400 },
      { iova: bAt + 400n, length: 600 },
    ]);
    expect(writes, 'the RS write-backs, qword1 of descriptors 0, 2 and 3').to.deep.equal(
      [0, 2, 3].map((i) => ({ iova: ring.iova + BigInt(i * 16) + 8n, length: 8 })),
    );
  });

  it('TX: a buffer the VMM cannot read is a bad address: the packet dropped, its descriptor completed', () => {
    const ram = new Ram(1 << 20);
    const ring = TxRing.make(ram);
    const at = ram.put(pattern(100, 3));
    ring.post([at, dataQw1(LAST, 100)]);
    const t = indirectTable(ram);
    const { r } = staged(
      ram,
      0,
      (stage, head) => iavfTxRing(t, ring, head, 1, { stage }),
      (iova) => iova !== at,
    );
    expect(r).to.deep.include({ head: 1, stop: 'caught-up', frames: [] });
    expect(r.counts.badAddress).to.equal(1);
    expect(ring.done(0)).to.be.true;
  });

  it('TX: a ring the VMM cannot read stops the walk (`ring`), nothing done', () => {
    const ram = new Ram(1 << 20);
    const ring = TxRing.make(ram);
    ring.post([ram.put(pattern(100, 3)), dataQw1(LAST, 100)]);
    const t = indirectTable(ram);
    const { r, writes } = staged(
      ram,
      0,
      (stage, head) => iavfTxRing(t, ring, head, 1, { stage }),
      (iova) => iova !== ring.iova,
    );
    expect(r).to.deep.include({ head: 0, stop: 'ring' });
    expect(writes).to.deep.equal([]);
  });

  it('RX: reads only the descriptors the frame takes; writes the data, then each descriptor, qword1 last', () => {
    const direct = new Ram(1 << 20);
    const tDirect = table(direct);
    const iova = direct.alloc(64 * 32, 4096);
    const buffers = direct.alloc(64 * 1024, 4096);
    const queue = { iova, length: 64, bufferSize: 1024, maxFrame: 9000 };
    iavfGuestPostRx(tDirect, queue, 0, 63, buffers, 1024);
    direct.setU64(iova + 63n * 32n, buffers + 63n * 1024n); // the slot the refill leaves empty, posted too
    const fdless = new Ram(1 << 20);
    direct.bytes.copy(fdless.bytes);
    const frame = pattern(1500, 4);
    const expected = iavfRxRing(tDirect, queue, 62, 20, frame, { hash: 9 });
    const t = indirectTable(fdless);
    const { r, fetches, writes } = staged(fdless, 62, (stage, head) =>
      iavfRxRing(t, queue, head, 20, frame, { hash: 9, stage }),
    );
    expect(r).to.deep.include(expected);
    expect(expected).to.deep.equal({ status: 'ok', head: 0 });
    expect(fdless.bytes.equals(direct.bytes), 'guest memory as the direct write left it').to.be.true;
    // Descriptors 62 and 63: the run up to the frame's end, which is the ring's end here.
    expect(fetches).to.deep.equal([{ iova: iova + 62n * 32n, length: 64 }]);
    const d62 = iova + 62n * 32n;
    const d63 = iova + 63n * 32n;
    expect(writes).to.deep.equal([
      { iova: buffers + 62n * 1024n, length: 1024 },
      { iova: buffers + 63n * 1024n, length: 476 },
      { iova: d62 + 16n, length: 16 },
      { iova: d62, length: 8 },
      { iova: d62 + 8n, length: 8 },
      { iova: d63 + 16n, length: 16 },
      { iova: d63, length: 8 },
      { iova: d63 + 8n, length: 8 },
    ]);
  });

  it("a window made for writing alone never serves a read; one walk's stores do not outlive it", () => {
    const ram = new Ram(1 << 20);
    const t = indirectTable(ram);
    const rxRing = ram.alloc(64 * 32, 4096);
    const buffer = ram.alloc(2048, 4096);
    ram.setU64(rxRing, buffer);
    const stage = new StagedMemory();
    expect(stage.add(rxRing, Buffer.from(ram.read(rxRing, 32)))).to.be.true;
    const rx = iavfRxRing(
      t,
      { iova: rxRing, length: 64, bufferSize: 2048, maxFrame: 2048 },
      0,
      1,
      pattern(100),
      {
        stage,
      },
    );
    expect(rx.status).to.equal('ok');
    expect(rx.writes!.map((w) => w.iova)).to.deep.equal([buffer, rxRing + 16n, rxRing, rxRing + 8n]);
    // The RX buffer, sent back out: its bytes are not the stage's to give (it only wrote them).
    const txRing = ram.alloc(64 * 16, 4096);
    ram.setU64(txRing, buffer);
    ram.setU64(txRing + 8n, dataQw1(LAST, 100));
    expect(stage.add(txRing, Buffer.from(ram.read(txRing, 16)))).to.be.true;
    const tx = iavfTxRing(t, { iova: txRing, length: 64 }, 0, 1, { stage });
    expect(tx).to.deep.include({
      stop: 'indirect',
      head: 0,
      need: { iova: buffer, length: 100 },
      writes: [],
    });
  });

  it('bounds what it holds: a window of 1 MiB at most, none empty; the bytes it holds are counted', () => {
    const stage = new StagedMemory();
    expect(stage.add(0x1000n, null, 0)).to.be.false;
    expect(() => stage.add(0x1000n, null, (1 << 20) + 1)).to.throw(TypeError);
    expect(() => stage.add(0x1000n, Buffer.alloc(10), 11)).to.throw(TypeError);
    expect(() => stage.add(0x1000n, 'bytes' as unknown as Uint8Array, 5)).to.throw(TypeError);
    expect(stage.add(0x1000n, Buffer.alloc(4096))).to.be.true;
    expect(stage.add(0x9000n, null, 4096)).to.be.true;
    expect(stage.bytes).to.equal(4096);
    // Past 8 MiB held, it forgets what it held first (the walk asks again for what it still needs):
    // the 8th window below finds 7 MiB + 4 KiB held.
    for (let i = 0; i < 7; i++) expect(stage.add(BigInt(i) << 20n, Buffer.alloc(1 << 20))).to.be.true;
    expect(stage.bytes).to.equal((7 << 20) + 4096);
    expect(stage.add(7n << 20n, Buffer.alloc(1 << 20))).to.be.true;
    expect(stage.bytes).to.equal(1 << 20);
    const t = new GuestMemoryTable();
    expect(() => iavfTxRing(t, { iova: 0n, length: 64 }, 0, 1, { stage: {} as StagedMemory })).to.throw(
      TypeError,
    );
  });
});
