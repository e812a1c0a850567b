/**
 * Fuzz target `virtchnl` (pnpm fuzz virtchnl): the PF's side of virtchnl (VirtualFunction) fed sequences
 * of messages a guest driver could send: well-formed ones with random fields (built as Linux's iavf
 * builds them, so the fuzzer gets past the length checks into the handlers) mixed with random ops and
 * bytes, in any order, under random host policy. After every message: nothing thrown, exactly one
 * reply for the op (none for RESET_VF; REQUEST_QUEUES may reset instead), and the VF's configuration
 * within the bounds the data path relies on.
 */
import fc from 'fast-check';
import type { FuzzTarget } from '../../../scripts/fuzz/target.mjs';
import { MAX_QUEUE_PAIRS, VfCap, VirtchnlOp, VirtchnlStatus, VSI_ID } from '../src/constants.js';
import { VirtualFunction } from '../src/pf.js';
import {
  etherAddrListMsg,
  irqMapMsg,
  promiscMsg,
  queueSelectMsg,
  rssKeyLutMsg,
  versionMsg,
  vfResourcesRequest,
  vfResRequestMsg,
  vlanFilterListMsg,
  vlanFilterListV2Msg,
  vlanSettingMsg,
  vsiQueueConfigMsg,
} from '../src/testing/virtchnl-msgs.js';

const OPS = Object.values(VirtchnlOp);
/** The VSI the PF gives (a random one is tried too, by the random messages). */
const VSI = VSI_ID;
const u16 = fc.integer({ min: 0, max: 0xffff });
const small = fc.integer({ min: 0, max: 20 });
const mac = fc
  .uint8Array({ minLength: 6, maxLength: 6 })
  .map((b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':'));
const ring = fc.oneof(fc.constantFrom(0, 64, 512, 4096, 4097), u16);
const iova = fc.oneof(fc.constant(0x200000n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));

/** Queue bitmaps: the first k queues (as drivers ask), or any bits. */
const queueBits = fc.oneof(
  fc.integer({ min: 1, max: 5 }).map((k) => (1 << k) - 1),
  u16,
);

/** A message as [op, payload]. */
type Msg = [number, Buffer];

const wellFormed: fc.Arbitrary<Msg> = fc.oneof(
  fc
    .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }))
    .map(([a, b]): Msg => [VirtchnlOp.VERSION, versionMsg(a, b)]),
  fc.integer().map((caps): Msg => [VirtchnlOp.GET_VF_RESOURCES, vfResourcesRequest(caps | VfCap.L2)]),
  // Queue setups as a driver makes them (queue i, rings in guest memory) half the time, else anything.
  fc
    .tuple(
      fc.boolean(),
      fc.array(fc.record({ q: small, ring, rxRing: ring, buf: u16, max: u16, addr: iova }), { maxLength: 5 }),
    )
    .map(
      ([plausible, pairs]): Msg => [
        VirtchnlOp.CONFIG_VSI_QUEUES,
        vsiQueueConfigMsg(
          VSI,
          pairs.map((raw, i) => {
            const p = plausible
              ? { q: i, ring: 512, rxRing: 512, buf: 2048, max: 1518, addr: 0x200000n + BigInt(i) * 0x10000n }
              : raw;
            return {
              txq: { queueId: p.q, ringLen: p.ring, dmaRingAddr: p.addr },
              rxq: {
                queueId: p.q,
                ringLen: p.rxRing,
                databufferSize: p.buf,
                maxPktSize: p.max,
                dmaRingAddr: (p.addr + 0x1000n) & (2n ** 64n - 1n),
              },
            };
          }),
        ),
      ],
    ),
  fc
    .array(
      fc.record({
        vectorId: small,
        rxqMap: u16,
        txqMap: u16,
        rxitrIdx: fc.integer({ min: 0, max: 4 }),
        txitrIdx: fc.integer({ min: 0, max: 4 }),
      }),
      { maxLength: 6 },
    )
    .map((maps): Msg => [VirtchnlOp.CONFIG_IRQ_MAP, irqMapMsg(VSI, maps)]),
  fc
    .tuple(fc.constantFrom(VirtchnlOp.ENABLE_QUEUES, VirtchnlOp.DISABLE_QUEUES), queueBits, queueBits)
    .map(([op, rx, tx]): Msg => [op, queueSelectMsg(VSI, rx, tx)]),
  fc
    .tuple(
      fc.constantFrom(VirtchnlOp.ADD_ETH_ADDR, VirtchnlOp.DEL_ETH_ADDR),
      fc.array(fc.record({ mac, type: fc.integer({ min: 0, max: 3 }) }), { maxLength: 8 }),
    )
    .map(([op, list]): Msg => [op, etherAddrListMsg(VSI, list)]),
  fc
    .tuple(
      fc.constantFrom(VirtchnlOp.ADD_VLAN, VirtchnlOp.DEL_VLAN),
      fc.array(fc.integer({ min: 0, max: 4200 }), { maxLength: 20 }),
    )
    .map(([op, ids]): Msg => [op, vlanFilterListMsg(VSI, ids)]),
  fc
    .tuple(
      fc.constantFrom(VirtchnlOp.ADD_VLAN_V2, VirtchnlOp.DEL_VLAN_V2),
      fc.array(fc.integer({ min: 0, max: 4200 }), { maxLength: 20 }),
      fc.constantFrom('inner' as const, 'outer' as const),
    )
    .map(([op, ids, where]): Msg => [op, vlanFilterListV2Msg(VSI, ids, where)]),
  fc
    .tuple(
      fc.constantFrom(
        VirtchnlOp.ENABLE_VLAN_STRIPPING_V2,
        VirtchnlOp.DISABLE_VLAN_STRIPPING_V2,
        VirtchnlOp.ENABLE_VLAN_INSERTION_V2,
        VirtchnlOp.DISABLE_VLAN_INSERTION_V2,
      ),
      fc.integer({ min: 0, max: 0x3ff }),
      fc.integer({ min: 0, max: 0x3ff }),
    )
    .map(([op, outer, inner]): Msg => [op, vlanSettingMsg(VSI, { outer, inner })]),
  fc
    .integer({ min: 0, max: 7 })
    .map((flags): Msg => [VirtchnlOp.CONFIG_PROMISCUOUS_MODE, promiscMsg(VSI, flags)]),
  fc
    .tuple(
      fc.constantFrom(VirtchnlOp.CONFIG_RSS_KEY, VirtchnlOp.CONFIG_RSS_LUT),
      fc.uint8Array({ maxLength: 600 }),
      fc.integer({ min: 0, max: 700 }),
    )
    .map(([op, bytes, count]): Msg => [op, rssKeyLutMsg(VSI, bytes, Math.min(count, bytes.length))]),
  small.map((n): Msg => [VirtchnlOp.REQUEST_QUEUES, vfResRequestMsg(n)]),
  fc
    .constantFrom(
      VirtchnlOp.RESET_VF,
      VirtchnlOp.GET_STATS,
      VirtchnlOp.GET_RSS_HENA_CAPS,
      VirtchnlOp.ENABLE_VLAN_STRIPPING,
      VirtchnlOp.DISABLE_VLAN_STRIPPING,
      VirtchnlOp.GET_OFFLOAD_VLAN_V2_CAPS,
      VirtchnlOp.GET_SUPPORTED_RXDIDS,
    )
    .map((op): Msg => [op, op === VirtchnlOp.GET_STATS ? Buffer.alloc(4) : Buffer.alloc(0)]),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((hena): Msg => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(hena);
    return [VirtchnlOp.SET_RSS_HENA, b];
  }),
);

const random: fc.Arbitrary<Msg> = fc
  .tuple(
    fc.oneof(fc.constantFrom(...OPS), fc.integer({ min: 0, max: 0xffff })),
    fc.uint8Array({ maxLength: 512 }),
  )
  .map(([op, b]) => [op, Buffer.from(b)]);

/** A message with some of its bytes changed: the fields a handler trusts after the length check. */
const mutated: fc.Arbitrary<Msg> = fc
  .tuple(wellFormed, fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 4 }))
  .map(([[op, b], edits]) => {
    const copy = Buffer.from(b);
    for (const [at, v] of edits) if (copy.length > 0) copy[at % copy.length] = v;
    return [op, copy];
  });

interface Input {
  trusted: boolean;
  portVlan: number;
  maxQueuePairs: number;
  /** Start with VERSION and GET_VF_RESOURCES, as a driver does, so most runs reach the handlers. */
  /**
   * How far the VF is brought up first, as Linux's iavf does it: not at all, VERSION and
   * GET_VF_RESOURCES, or on to every queue pair configured, mapped to vectors and enabled; the
   * messages then meet every state.
   */
  bringUp: 'none' | 'resources' | 'running';
  messages: Msg[];
}

export const target: FuzzTarget<Input> = {
  arbitrary: fc.record({
    trusted: fc.boolean(),
    portVlan: fc.constantFrom(0, 0, 100),
    maxQueuePairs: fc.integer({ min: 1, max: MAX_QUEUE_PAIRS }),
    bringUp: fc.constantFrom('none' as const, 'resources' as const, 'running' as const),
    messages: fc.array(
      fc.oneof(
        { weight: 5, arbitrary: wellFormed },
        { weight: 3, arbitrary: mutated },
        { weight: 2, arbitrary: random },
      ),
      { maxLength: 24 },
    ),
  }),
  check(input) {
    let pairs = input.maxQueuePairs;
    const posts: Array<{ vop: number; status: number }> = [];
    let resets = 0;
    const vf = new VirtualFunction({
      mac: '02:00:00:00:00:01',
      trusted: input.trusted,
      portVlan: input.portVlan,
      maxMtu: 9000,
      queuePairs: () => pairs,
      maxQueuePairs: input.maxQueuePairs,
      link: () => ({ up: true, speedMbps: 10000 }),
      inGuestMemory: (at, length) => at >= 0x100000n && at + BigInt(length) <= 0x10000000n,
      post: (vop, status) => {
        posts.push({ vop, status });
      },
      resetVf: (n) => {
        resets++;
        if (n !== undefined) pairs = n;
        vf.reset();
      },
      queuesChanged: () => {},
      stats: () => ({}),
      warn: () => {},
    });
    const resources: Msg[] = [
      [VirtchnlOp.VERSION, versionMsg()],
      [
        VirtchnlOp.GET_VF_RESOURCES,
        vfResourcesRequest(VfCap.L2 | VfCap.VLAN | VfCap.RSS_PF | VfCap.REQ_QUEUES | VfCap.VLAN_V2),
      ],
    ];
    const n = input.maxQueuePairs;
    const all = (1 << n) - 1;
    const running: Msg[] = [
      [
        VirtchnlOp.CONFIG_VSI_QUEUES,
        vsiQueueConfigMsg(
          VSI,
          Array.from({ length: n }, (_, q) => ({
            txq: { queueId: q, ringLen: 512, dmaRingAddr: 0x200000n + BigInt(q) * 0x10000n },
            rxq: {
              queueId: q,
              ringLen: 512,
              databufferSize: 2048,
              maxPktSize: 1518,
              dmaRingAddr: 0x208000n + BigInt(q) * 0x10000n,
            },
          })),
        ),
      ],
      [
        VirtchnlOp.CONFIG_IRQ_MAP,
        irqMapMsg(VSI, [
          { vectorId: 0, rxqMap: 0, txqMap: 0 },
          { vectorId: 1, rxqMap: all, txqMap: all },
        ]),
      ],
      [VirtchnlOp.ENABLE_QUEUES, queueSelectMsg(VSI, all, all)],
    ];
    const start =
      input.bringUp === 'none' ? [] : input.bringUp === 'resources' ? resources : [...resources, ...running];
    for (const [op, payload] of [...start, ...input.messages]) {
      posts.length = 0;
      const resetsBefore = resets;
      vf.handle(op, payload);
      const replies = posts.filter((p) => p.vop === op);
      const others = posts.filter((p) => p.vop !== op);
      if (op === VirtchnlOp.RESET_VF) {
        if (replies.length !== 0) throw new Error(`RESET_VF got ${replies.length} replies`);
      } else if (op === VirtchnlOp.REQUEST_QUEUES && resets > resetsBefore) {
        if (replies.length > 1) throw new Error('REQUEST_QUEUES: reset and more than one reply');
      } else if (replies.length !== 1) {
        throw new Error(`op ${op} (${payload.length} bytes) got ${replies.length} replies`);
      }
      if (others.some((p) => p.vop !== VirtchnlOp.EVENT)) throw new Error(`op ${op}: a reply to another op`);
      for (const r of replies) {
        if (!Object.values(VirtchnlStatus).includes(r.status as never))
          throw new Error(`op ${op}: status ${r.status}`);
      }
      const c = vf.config;
      if (c.numQueuePairs < 1 || c.numQueuePairs > input.maxQueuePairs)
        throw new Error(`${c.numQueuePairs} queue pairs`);
      if (c.tx.length > MAX_QUEUE_PAIRS || c.rx.length > MAX_QUEUE_PAIRS)
        throw new Error('queue config past the device');
      for (const q of [...c.tx, ...c.rx])
        if (q && (q.length < 1 || q.length > 4096)) throw new Error(`ring of ${q.length}`);
      if ((c.txEnabled | c.rxEnabled) >>> 0 >= 2 ** c.numQueuePairs)
        throw new Error('a queue enabled past numQueuePairs');
      if (c.macs.size > 256) throw new Error(`${c.macs.size} MAC filters`);
      if (c.vlans.size > (input.trusted ? 4095 : 16)) throw new Error(`${c.vlans.size} VLAN filters`);
      if (input.portVlan && c.vlans.size > 0) throw new Error('a VLAN filter behind a port VLAN');
    }
  },
};
