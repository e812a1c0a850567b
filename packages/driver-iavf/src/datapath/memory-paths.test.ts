/**
 * The ring engine over both kinds of guest memory side by side (testing/memory-pair.ts): directly
 * mapped, and fd-less (DMA messages through a StagedMemory). Good traffic, offloads and TSO, hostile
 * descriptors, and random rings, each compared afterwards in full.
 */
import type { GuestMemory } from '@emu/emudev';
import { silentLogger } from '@emu/vfio-user';
import { expect } from 'chai';
import { BufferGuestMemory } from '../testing/buffer-memory.js';
import { ipv4TcpFrame, ipv4UdpFrame, rawFrame, TCP_ACK, TCP_FIN, TCP_PSH } from '../testing/frames.js';
import {
  BASE,
  config,
  ctxQw1,
  dataQw1,
  EOP,
  txFlow as flow,
  ICRC,
  IIPT_IPV4_CSUM,
  IIPT_IPV6,
  L4T_TCP,
  L4T_UDP,
  LAST,
  OFFSET_V4_TCP,
  Pair,
  PEER,
  RAM,
  RING_LEN,
  RS,
  SCRATCH,
  VF_MAC,
} from '../testing/memory-pair.js';
import { DataPath } from './data-path.js';

/** An Ethernet/IPv6/TCP frame (checksum left 0: the offload fills it). */
function ipv6TcpFrame(payload: number, seed: number, flags = TCP_ACK): Buffer {
  const f = Buffer.alloc(14 + 40 + 20 + payload);
  Buffer.from('020000000099' + '02000000000a' + '86dd', 'hex').copy(f);
  f[14] = 0x60;
  f.writeUInt16BE(20 + payload, 18);
  f[20] = 6;
  f[21] = 64;
  for (let i = 0; i < 32; i++) f[22 + i] = (i * 13 + seed) & 0xff;
  f.writeUInt16BE(1234, 54);
  f.writeUInt16BE(80, 56);
  f.writeUInt32BE(0xfffff000 + seed, 58); // the sequence number wraps within the burst
  f[66] = 0x50;
  f[67] = flags;
  for (let i = 0; i < payload; i++) f[74 + i] = (i + seed) & 0xff;
  return f;
}

function splitPost(
  p: Pair,
  q: number,
  at: number,
  frame: Buffer,
  sizes: number[],
  cmd: number,
  offset = 0,
): number {
  let o = 0;
  sizes.forEach((n, k) => {
    const last = k === sizes.length - 1;
    p.txDesc(q, at + k, p.put(frame.subarray(o, o + n)), dataQw1(last ? cmd | EOP | RS : cmd, n, offset));
    o += n;
  });
  return at + sizes.length;
}

describe('data path memory: fd-less RAM gives the results directly mapped RAM gives', () => {
  it('TX: frames of 14 to 16384 bytes in 1 to 16 buffers, several per tail, across the end of the ring', async () => {
    const p = new Pair();
    // Small frames up to 5 descriptors before the end, so that the rest wraps around it.
    let at = 0;
    while (at < RING_LEN - 5) at = splitPost(p, 0, at, rawFrame(PEER, VF_MAC, 60, at), [60], ICRC);
    const [n] = p.start();
    await p.step((s) => s.dp.txDoorbell(0, at));
    const tails: number[] = [];
    const sizes = [14, 60, 61, 1514, 4000, 9000, 16384];
    sizes.forEach((n, i) => {
      const frame = rawFrame(PEER, VF_MAC, n, i);
      const parts = Math.min(16, 1 + (i % 5) * 3, n);
      const cut = Array.from(
        { length: parts },
        (_, k) => Math.floor(((k + 1) * n) / parts) - Math.floor((k * n) / parts),
      );
      at = splitPost(p, 0, at, frame, cut, ICRC);
      if (i % 2 === 1) tails.push(at % RING_LEN);
    });
    tails.push(at % RING_LEN);
    for (const tail of tails) await p.step((s) => s.dp.txDoorbell(0, tail));
    p.compare();
    expect(n.sent.length).to.equal(RING_LEN - 5 + sizes.length);
    expect(n.dp.tx[0]).to.deep.include({ packets: RING_LEN - 5 + sizes.length, errors: 0, drops: 0 });
  });

  it('TX offloads: IPv4 header, TCP and UDP checksums, VLAN, IPv6; TSO over IPv4 and IPv6', async () => {
    const p = new Pair();
    let at = 0;
    const tcp = ipv4TcpFrame(flow(1000, 1));
    tcp.writeUInt16BE(0, 24); // zeroed IPv4 checksum
    tcp.writeUInt16BE(0x1234, 50); // a seeded TCP checksum
    at = splitPost(p, 0, at, tcp, [54, 1000], ICRC | IIPT_IPV4_CSUM | L4T_TCP, OFFSET_V4_TCP);
    const udp = ipv4UdpFrame(flow(333, 2));
    udp.writeUInt16BE(0, 40);
    at = splitPost(p, 0, at, udp, [udp.length], ICRC | IIPT_IPV4_CSUM | L4T_UDP, 7 | (5 << 7) | (2 << 14));
    const vlan = Buffer.concat([tcp.subarray(0, 12), Buffer.from([0x81, 0, 0, 5]), tcp.subarray(12)]);
    at = splitPost(
      p,
      0,
      at,
      vlan,
      [100, vlan.length - 100],
      ICRC | IIPT_IPV4_CSUM | L4T_TCP,
      9 | (5 << 7) | (5 << 14),
    );
    const v6 = ipv6TcpFrame(500, 3);
    at = splitPost(p, 0, at, v6, [v6.length], ICRC | IIPT_IPV6 | L4T_TCP, 7 | (10 << 7) | (5 << 14));
    // IPv4 checksum offload asked for an IPv6 frame: nothing to fix.
    at = splitPost(p, 0, at, v6, [v6.length], ICRC | IIPT_IPV4_CSUM, 7 | (10 << 7) | (5 << 14));
    // TSO, IPv4, with FIN|PSH (last segment only) and a CWR (first only).
    const big = ipv4TcpFrame(flow(20000, 4, { flags: TCP_ACK | TCP_PSH | TCP_FIN | 0x80 }));
    p.txDesc(0, at++, 0n, ctxQw1(true, 20000, 1448));
    at = splitPost(p, 0, at, big, [54, 8000, 8000, 4000], ICRC | IIPT_IPV4_CSUM | L4T_TCP, OFFSET_V4_TCP);
    // TSO, IPv6, sequence wrapping, 20 buffers (more than 16 are fine with TSO).
    const big6 = ipv6TcpFrame(19000, 5);
    p.txDesc(0, at++, 0n, ctxQw1(true, 19000, 1000));
    at = splitPost(
      p,
      0,
      at,
      big6,
      [74, ...Array.from({ length: 19 }, () => 1000)],
      ICRC | IIPT_IPV6 | L4T_TCP,
      7 | (10 << 7) | (5 << 14),
    );
    p.start();
    await p.step((s) => s.dp.txDoorbell(0, at));
    p.compare();
    const [n] = p.sides!;
    expect(n.sent.length).to.equal(5 + 14 + 19);
    expect(n.dp.tx[0]).to.deep.include({ errors: 0, drops: 0 });
  });

  it('TX hostile: bad addresses and lengths, no EOP, runts and giants, bad TSO, bad tails, waiting packets, garbage DTYPEs', async () => {
    const p = new Pair(2);
    const good = p.put(rawFrame(PEER, VF_MAC, 100, 1));
    let at = 0;
    const post = (qw0: bigint, qw1: bigint) => p.txDesc(0, at++, qw0, qw1);
    post(BASE + BigInt(RAM) + 0x1000n, dataQw1(LAST, 64)); // outside memory
    post(good, dataQw1(LAST, 0)); // zero length
    post(good, dataQw1(ICRC, 100));
    post(BASE + BigInt(RAM) - 10n, dataQw1(ICRC, 64)); // runs off the end
    post(good, dataQw1(LAST, 100));
    for (let i = 0; i < 17; i++) post(good, dataQw1(ICRC | (i === 16 ? RS : 0), 64)); // no EOP
    post(good, dataQw1(LAST, 13)); // runt
    post(good, dataQw1(ICRC, 9000));
    post(good, dataQw1(LAST, 9000)); // 18000 bytes without TSO
    post(0n, 0xen); // DTYPE 0xE: nothing for the device
    post(0n, 0xfn); // already done
    const tcp = p.put(ipv4TcpFrame(flow(3000, 9)));
    for (const [offset, mss] of [
      [0, 1448],
      [OFFSET_V4_TCP, 1],
      [OFFSET_V4_TCP, 63],
      [1 | (1 << 7) | (1 << 14), 1448],
      [7 | (5 << 7) | (6 << 14), 1448],
    ] as const) {
      post(0n, ctxQw1(true, 3000, mss));
      post(tcp, dataQw1(LAST | IIPT_IPV4_CSUM | L4T_TCP, 3054, offset));
    }
    post(0n, ctxQw1(true, 100, 1448));
    post(good, dataQw1(LAST, 100)); // TSO of a frame that is not IP
    post(good, dataQw1(LAST, 100)); // and a good one after it all
    const end = at;
    post(good, dataQw1(ICRC, 50)); // a packet whose EOP comes later
    const [n] = p.start();
    await p.step((s) => s.dp.txDoorbell(0, end + 1));
    await p.step((s) => s.dp.txDoorbell(1, 300)); // beyond the ring
    await p.step((s) => s.dp.txDoorbell(1, 0x1fff));
    p.compare();
    expect(n.dp.tx[0]).to.deep.equal({ packets: 1, bytes: 100, drops: 2, errors: 10 });
    expect(n.dp.tx[1].errors).to.equal(2);
    // The waiting packet goes out whole once its EOP is posted.
    p.txDesc(0, end + 1, good, dataQw1(LAST, 50));
    await p.step((s) => s.dp.txDoorbell(0, end + 2));
    p.compare();
    expect(n.dp.tx[0]).to.deep.include({ packets: 2, bytes: 200 });
  });

  it('TX: random rings (random descriptors, addresses mostly in memory, random tails) agree', async function () {
    this.timeout(60_000);
    let x = 0x9e3779b9;
    const rnd = () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return x >>> 0;
    };
    for (let round = 0; round < 40; round++) {
      const p = new Pair();
      const blob = p.put(Buffer.from(Array.from({ length: 20000 }, () => rnd() & 0xff)));
      for (let i = 0; i < RING_LEN; i++) {
        const kind = rnd() % 10;
        const addr = kind === 0 ? BigInt(rnd()) << 20n : blob + BigInt(rnd() % 20000);
        const size = kind === 1 ? 0 : rnd() % (kind < 5 ? 200 : 3000);
        const cmd = (rnd() & 0x3ff) | (rnd() % 4 === 0 ? EOP : 0);
        const dtype = kind === 9 ? BigInt(rnd() % 16) : kind === 8 ? 1n : 0n;
        const qw1 =
          dtype === 1n
            ? ctxQw1(rnd() % 2 === 0, rnd() % 0x40000, rnd() % 3 === 0 ? rnd() % 0x4000 : 64 + (rnd() % 1500))
            : dtype | (BigInt(cmd) << 4n) | (BigInt(rnd() % 0x40000) << 16n) | (BigInt(size) << 34n);
        p.txDesc(0, i, addr, qw1);
      }
      p.start();
      for (let k = 0; k < 4; k++) {
        const tail = rnd() % (RING_LEN + 20);
        await p.step((s) => s.dp.txDoorbell(0, tail));
      }
      p.compare();
    }
  });

  for (const descSize of [32, 16] as const) {
    it(`RX (${descSize}-byte descriptors): frames of 14 to 9728 bytes over 1 to 5 buffers, RSS over 4 queues, drops, bad buffers and tails`, async () => {
      const p = new Pair(4, descSize);
      for (let q = 0; q < 4; q++) p.postRx(q, 40);
      // Queue 1's descriptor 3 points outside memory; queue 2's descriptor 5 (the 2nd buffer of a frame) too.
      const ring = (q: number) => Number(p.cfg.rx[q]!.ring - BASE);
      p.ram.writeBigUInt64LE(BASE + BigInt(RAM) + 0x2000n, ring(1) + 3 * descSize);
      p.ram.writeBigUInt64LE(BASE + BigInt(RAM) - 100n, ring(2) + 5 * descSize);
      const [n, t] = p.start();
      for (const s of [n, t]) for (let q = 0; q < 4; q++) s.dp.rxTail[q] = q === 3 ? 4000 : 39;
      const frames: Buffer[] = [];
      for (let i = 0; i < 120; i++) {
        const size = [14, 60, 1514, 2048, 2049, 4100, 9000, 9728, 9729, 11000][i % 10];
        frames.push(
          i % 3 === 0
            ? rawFrame(VF_MAC, PEER, size, i)
            : ipv4TcpFrame({ ...flow(Math.max(0, size - 54), i), dstMac: VF_MAC, srcMac: PEER }),
        );
      }
      frames.push(
        rawFrame(OTHER_MAC, PEER, 100, 1),
        Buffer.alloc(10, 0xff),
        rawFrame('ff:ff:ff:ff:ff:ff', PEER, 64, 2),
      );
      for (const f of frames) await p.step((s) => s.dp.receive(f));
      p.compare();
      const total = n.dp.rx.reduce((a, s) => a + s.packets, 0);
      expect(total).to.be.greaterThan(20);
      expect(n.dp.rx.reduce((a, s) => a + s.errors, 0)).to.be.greaterThan(2);
      expect(n.dp.filtered).to.equal(2);
      expect(t.dp.engineStats.stagedRx).to.be.greaterThan(0);
    });
  }
});

const OTHER_MAC = '02:00:00:00:00:0b';

describe('data path memory: failures stay inside', () => {
  it('a network that throws on send is logged, not thrown at the doorbell (either memory)', async () => {
    for (const memory of ['direct', 'fd-less'] as const) {
      const ram = Buffer.alloc(RAM);
      const cfg = config();
      const warnings: string[] = [];
      const dp = new DataPath({
        memory: new BufferGuestMemory(ram, BASE, memory === 'direct') as unknown as GuestMemory,
        log: {
          ...silentLogger,
          warn: (_o: object, msg: string) => warnings.push(msg),
        } as typeof silentLogger,
        config: () => cfg,
        mac: VF_MAC,
        raise: () => {},
        transmit: () => {
          throw new Error('network gone');
        },
      });
      ram.set(rawFrame(PEER, VF_MAC, 64, 1), Number(SCRATCH - BASE));
      ram.writeBigUInt64LE(SCRATCH, 0);
      ram.writeBigUInt64LE(dataQw1(LAST, 64), 8);
      expect(() => dp.txDoorbell(0, 1), memory).to.not.throw();
      await dp.settled();
      expect(warnings, memory).to.deep.equal(['tx']);
    }
  });
});
