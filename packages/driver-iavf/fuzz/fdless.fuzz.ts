/**
 * Fuzz target `fdless` (pnpm fuzz fdless): fd-less guest RAM. The same random rings, tails and frames
 * go through the ring engine over directly mapped memory and over memory only DMA messages reach (the
 * walk staged, fetched and written back by datapath/data-path.ts), and then everything must be equal: the
 * frames on the wire, every byte of guest memory (write-backs, RX buffers), the counters, the
 * interrupts (testing/memory-pair.ts).
 * TX rings hold packets as iavf builds them (context descriptors for TSO, real TCP frames split over
 * buffers, offload bits) mixed with random descriptors; RX gets frames of any size to the VF, to others
 * and broadcast, under random RSS, VLAN stripping, promiscuity and posted buffers (some outside memory).
 */
import fc from 'fast-check';
import type { FuzzTarget } from '../../../scripts/fuzz/target.mjs';
import { BROADCAST, ipv4TcpFrame, ipv4UdpFrame, rawFrame } from '../src/testing/frames.js';
import {
  BASE,
  ctxQw1,
  dataQw1,
  EOP,
  Pair,
  PEER,
  RAM,
  ReusedRam,
  RING_LEN,
  RS,
  txFlow,
  VF_MAC,
} from '../src/testing/memory-pair.js';

/** Offload command bits as iavf sets them: ICRC, IIPT (none, IPv6, IPv4, IPv4 with checksum), L4T. */
const cmdBits = fc
  .tuple(fc.boolean(), fc.constantFrom(0, 0x20, 0x40, 0x60), fc.constantFrom(0, 0x100, 0x200, 0x300))
  .map(([icrc, iipt, l4t]) => (icrc ? 0x4 : 0) | iipt | l4t);
/** MACLEN/IPLEN/L4LEN (in 2-, 4-, 4-byte units) of IPv4/TCP, IPv4/UDP, or anything. */
const offsets = fc.oneof(
  fc.constantFrom(7 | (5 << 7) | (5 << 14), 7 | (5 << 7) | (2 << 14)),
  fc.integer({ min: 0, max: 0x3ffff }),
);

const packet = fc.record({
  kind: fc.constantFrom('tcp', 'udp', 'raw'),
  payload: fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 12000 })),
  /** how the frame is cut over buffers: up to 20 parts */
  parts: fc.integer({ min: 1, max: 20 }),
  cmd: cmdBits,
  offset: offsets,
  tso: fc.option(
    fc.record({ mss: fc.oneof(fc.integer({ min: 64, max: 9000 }), fc.integer({ min: 0, max: 0x3fff })) }),
    { freq: 3 },
  ),
  /** EOP on the last buffer, nine times in ten */
  eop: fc.integer({ min: 0, max: 9 }).map((n) => n > 0),
});

/** A descriptor anywhere in the ring, with anything in it (a buffer address mostly inside memory). */
const rawDesc = fc.record({
  q: fc.integer({ min: 0, max: 3 }),
  slot: fc.integer({ min: 0, max: RING_LEN - 1 }),
  addr: fc.oneof(
    fc.integer({ min: 0, max: RAM - 1 }).map((o) => BASE + BigInt(o)),
    fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  ),
  qw1: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
});

const rxFrame = fc.record({
  to: fc.constantFrom(VF_MAC, VF_MAC, VF_MAC, BROADCAST, '02:00:00:00:00:0b'),
  kind: fc.constantFrom('tcp', 'udp', 'raw', 'vlan'),
  size: fc.oneof(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 12000 })),
  port: fc.integer({ min: 0, max: 0xffff }),
});

const step = fc.oneof(
  fc.record({
    kind: fc.constant('doorbell' as const),
    q: fc.integer({ min: 0, max: 3 }),
    tail: fc.oneof(fc.integer({ min: 0, max: RING_LEN }), fc.integer({ min: 0, max: 0x1fff })),
  }),
  fc.record({ kind: fc.constant('receive' as const), frame: rxFrame }),
  fc.record({
    kind: fc.constant('rxTail' as const),
    q: fc.integer({ min: 0, max: 3 }),
    tail: fc.oneof(fc.integer({ min: 0, max: RING_LEN - 1 }), fc.integer({ min: 0, max: 0x1fff })),
  }),
);

/** The value type of an arbitrary. */
type Of<A> = A extends fc.Arbitrary<infer T> ? T : never;

interface Input {
  queues: number;
  descSize: 16 | 32;
  hena: bigint;
  vlanStrip: boolean;
  promisc: number;
  packets: Of<typeof packet>[];
  raw: Of<typeof rawDesc>[];
  rxPosted: number[];
  badRx: number[];
  steps: Of<typeof step>[];
}

function txFrame(p: Of<typeof packet>, seed: number): Buffer {
  if (p.kind === 'tcp') return ipv4TcpFrame(txFlow(p.payload, seed));
  if (p.kind === 'udp') return ipv4UdpFrame(txFlow(p.payload, seed));
  return rawFrame(PEER, VF_MAC, 14 + p.payload, seed);
}

function rxFrameBytes(f: Of<typeof rxFrame>, seed: number): Buffer {
  const flow = {
    dstMac: f.to,
    srcMac: PEER,
    srcIp: '10.0.0.9',
    dstIp: '10.0.0.2',
    sport: f.port,
    dport: 80,
    payload: Buffer.alloc(Math.max(0, f.size - 54), seed),
  };
  if (f.kind === 'tcp') return ipv4TcpFrame(flow);
  if (f.kind === 'udp') return ipv4UdpFrame(flow);
  const raw = rawFrame(f.to, PEER, Math.max(14, f.size), seed).subarray(0, f.size);
  if (f.kind !== 'vlan' || raw.length < 14) return raw;
  return Buffer.concat([raw.subarray(0, 12), Buffer.from([0x81, 0, 0, seed & 0xff]), raw.subarray(12)]);
}

const rams = new ReusedRam();

export const target: FuzzTarget<Input> = {
  arbitrary: fc.record({
    queues: fc.integer({ min: 1, max: 4 }),
    descSize: fc.constantFrom(16 as const, 32 as const),
    hena: fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
    vlanStrip: fc.boolean(),
    promisc: fc.integer({ min: 0, max: 3 }),
    packets: fc.array(packet, { maxLength: 12 }),
    raw: fc.array(rawDesc, { maxLength: 8 }),
    rxPosted: fc.array(fc.integer({ min: 0, max: 64 }), { minLength: 4, maxLength: 4 }),
    badRx: fc.array(fc.integer({ min: 0, max: 63 }), { maxLength: 3 }),
    steps: fc.array(step, { minLength: 1, maxLength: 12 }),
  }),
  async check(input) {
    const p = new Pair(input.queues, input.descSize, rams);
    p.cfg.rssHena = input.hena;
    p.cfg.vlanStrip = input.vlanStrip;
    p.cfg.promisc = input.promisc;
    // TX queue 0 (and a few descriptors of the others): the packets one after another from slot 0.
    let at = 0;
    input.packets.forEach((pk, i) => {
      const frame = txFrame(pk, i);
      if (pk.tso) p.txDesc(0, at++, 0n, ctxQw1(true, Math.max(0, frame.length - 54), pk.tso.mss));
      const parts = Math.min(pk.parts, frame.length || 1);
      for (let k = 0; k < parts; k++) {
        const from = Math.floor((k * frame.length) / parts);
        const to = Math.floor(((k + 1) * frame.length) / parts);
        const last = k === parts - 1;
        const cmd = pk.cmd | (last && pk.eop ? EOP | RS : 0);
        p.txDesc(0, at++, p.put(frame.subarray(from, to)), dataQw1(cmd, to - from, pk.offset));
      }
    });
    for (const d of input.raw) p.txDesc(d.q % input.queues, d.slot, d.addr, d.qw1);
    for (let q = 0; q < input.queues; q++) p.postRx(q, input.rxPosted[q]!);
    for (const slot of input.badRx) {
      const ring = Number(p.cfg.rx[0]!.ring - BASE);
      p.ram.writeBigUInt64LE(BASE + BigInt(RAM) - 100n + BigInt(slot), ring + slot * input.descSize);
    }
    try {
      const sides = p.start();
      for (const s of sides)
        for (let q = 0; q < input.queues; q++) s.dp.rxTail[q] = input.rxPosted[q]! % RING_LEN;
      let seed = 0;
      for (const st of input.steps) {
        if (st.kind === 'doorbell') await p.step((s) => s.dp.txDoorbell(st.q % input.queues, st.tail));
        else if (st.kind === 'rxTail') {
          for (const s of sides) s.dp.rxTail[st.q % input.queues] = st.tail;
        } else {
          const frame = rxFrameBytes(st.frame, seed++);
          await p.step((s) => s.dp.receive(frame));
        }
      }
      p.compare();
    } finally {
      p.close();
    }
  },
};
