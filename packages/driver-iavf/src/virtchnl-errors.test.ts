import { expect } from 'chai';
import { Harness } from './testing/harness.js';
import {
  AQ_FLAG,
  AQLEN_CRIT,
  AQLEN_ENABLE,
  AQLEN_ERRORS,
  AQLEN_OVFL,
  AQLEN_VFE,
  IAVF,
  LINUX_6_12_CAPS,
  VF_CAP,
  VIRTCHNL_ETHER_ADDR_PRIMARY,
  VIRTCHNL_OP,
  VIRTCHNL_STATUS,
} from './testing/iavf-defs.js';
import { sleep } from './testing/soft-iavf/io.js';
import type { SoftIavf } from './testing/soft-iavf/main.js';
import {
  etherAddrListMsg,
  irqMapMsg,
  linuxVectorMaps,
  promiscMsg,
  queueSelectMsg,
  rssKeyLutMsg,
  VsiQueueConfigAt,
  versionMsg,
  vfResourcesRequest,
  vfResRequestMsg,
  vlanFilterListMsg,
  vlanFilterListV2Msg,
  vlanSettingMsg,
  vsiQueueConfigMsg,
} from './testing/virtchnl-msgs.js';

const { ERR_PARAM, ERR_NOT_SUPPORTED } = VIRTCHNL_STATUS;
const OP = VIRTCHNL_OP;
const QUEUES = 4;
const BAD_VSI = 0x55;

/** A message built against the brought-up VF. */
type Build = (vf: SoftIavf) => Buffer | Promise<Buffer>;

interface Case {
  name: string;
  op: number;
  build: Build;
  status?: number;
  /** Capabilities the VF asks for (default Linux 6.12's; V1 for the VLAN v1 ops). */
  caps?: number;
}

/** What a VF that knows only VLAN v1 asks for (Linux's set without VLAN_V2), to be granted v1. */
const V1 = LINUX_6_12_CAPS & ~VF_CAP.VLAN_V2;

const cut = (b: Buffer, n: number) => b.subarray(0, b.length - n);
const grow = (b: Buffer, n: number) => Buffer.concat([b, Buffer.alloc(n)]);
const poke16 = (b: Buffer, at: number, v: number) => {
  b.writeUInt16LE(v, at);
  return b;
};
const poke32 = (b: Buffer, at: number, v: number) => {
  b.writeUInt32LE(v >>> 0, at);
  return b;
};
const poke64 = (b: Buffer, at: number, v: bigint) => {
  b.writeBigUInt64LE(v, at);
  return b;
};

/** The CONFIG_VSI_QUEUES Linux would send now (rings set up, tails written). */
const vsiQueues = async (vf: SoftIavf) => {
  await vf.setupRings();
  return vsiQueueConfigMsg(vf.vsiId, vf.queuePairInfo());
};
const irqMap = (vf: SoftIavf) =>
  irqMapMsg(vf.vsiId, linuxVectorMaps(vf.numActiveQueues, vf.numMsixVectors - 1));
const primary = (vf: SoftIavf) =>
  etherAddrListMsg(vf.vsiId, [{ mac: vf.mac, type: VIRTCHNL_ETHER_ADDR_PRIMARY }]);
const allQueues = (vf: SoftIavf) => queueSelectMsg(vf.vsiId, vf.allQueues, vf.allQueues);
const rssKey = (vf: SoftIavf, n = 52) => rssKeyLutMsg(vf.vsiId, Buffer.alloc(n, 0x5a));
const rssLut = (vf: SoftIavf, n = 64) =>
  rssKeyLutMsg(vf.vsiId, Buffer.from(Array.from({ length: n }, (_, i) => i % QUEUES)));

/** Each is sent after GET_VF_RESOURCES, CONFIG_IRQ_MAP, ADD_ETH_ADDR and RSS, before the queues are configured. */
const CASES: Case[] = [
  // Wrong length for each kind of message (virtchnl_vc_validate_vf_msg: exact lengths only).
  { name: 'VERSION of 7 bytes', op: OP.VERSION, build: () => cut(versionMsg(), 1) },
  { name: 'VERSION of 9 bytes', op: OP.VERSION, build: () => grow(versionMsg(), 1) },
  {
    name: 'GET_VF_RESOURCES of 3 bytes',
    op: OP.GET_VF_RESOURCES,
    build: () => cut(vfResourcesRequest(1), 1),
  },
  {
    name: 'CONFIG_VSI_QUEUES one pair short (no trailing legacy pair)',
    op: OP.CONFIG_VSI_QUEUES,
    build: async (vf) => cut(await vsiQueues(vf), 64),
  },
  {
    name: 'CONFIG_VSI_QUEUES one pair long',
    op: OP.CONFIG_VSI_QUEUES,
    build: async (vf) => grow(await vsiQueues(vf), 64),
  },
  { name: 'CONFIG_VSI_QUEUES of 0 bytes', op: OP.CONFIG_VSI_QUEUES, build: () => Buffer.alloc(0) },
  {
    name: 'CONFIG_IRQ_MAP without the trailing entry',
    op: OP.CONFIG_IRQ_MAP,
    build: (vf) => cut(irqMap(vf), 12),
  },
  { name: 'CONFIG_IRQ_MAP one byte long', op: OP.CONFIG_IRQ_MAP, build: (vf) => grow(irqMap(vf), 1) },
  {
    name: 'ADD_ETH_ADDR without the trailing entry',
    op: OP.ADD_ETH_ADDR,
    build: (vf) => cut(primary(vf), 8),
  },
  { name: 'DEL_ETH_ADDR one byte long', op: OP.DEL_ETH_ADDR, build: (vf) => grow(primary(vf), 1) },
  {
    name: 'ADD_VLAN without the trailing id',
    caps: V1,
    op: OP.ADD_VLAN,
    build: (vf) => cut(vlanFilterListMsg(vf.vsiId, [100]), 2),
  },
  {
    name: 'DEL_VLAN one byte long',
    caps: V1,
    op: OP.DEL_VLAN,
    build: (vf) => grow(vlanFilterListMsg(vf.vsiId, [100]), 1),
  },
  {
    name: 'ENABLE_VLAN_STRIPPING of 1 byte',
    caps: V1,
    op: OP.ENABLE_VLAN_STRIPPING,
    build: () => Buffer.alloc(1),
  },
  {
    name: 'DISABLE_VLAN_STRIPPING of 4 bytes',
    caps: V1,
    op: OP.DISABLE_VLAN_STRIPPING,
    build: () => Buffer.alloc(4),
  },
  {
    name: 'ENABLE_QUEUES queue_select of 11 bytes',
    op: OP.ENABLE_QUEUES,
    build: (vf) => cut(allQueues(vf), 1),
  },
  {
    name: 'DISABLE_QUEUES queue_select of 11 bytes',
    op: OP.DISABLE_QUEUES,
    build: (vf) => cut(allQueues(vf), 1),
  },
  {
    name: 'GET_STATS queue_select of 11 bytes',
    op: OP.GET_STATS,
    build: (vf) => cut(queueSelectMsg(vf.vsiId), 1),
  },
  {
    name: 'CONFIG_PROMISCUOUS_MODE of 3 bytes',
    op: OP.CONFIG_PROMISCUOUS_MODE,
    build: (vf) => cut(promiscMsg(vf.vsiId, 0), 1),
  },
  {
    name: 'CONFIG_RSS_KEY one byte short of 5 + key_len',
    op: OP.CONFIG_RSS_KEY,
    build: (vf) => cut(rssKey(vf), 1),
  },
  {
    name: 'CONFIG_RSS_KEY with key_len 40 (the key is 52)',
    op: OP.CONFIG_RSS_KEY,
    build: (vf) => rssKey(vf, 40),
  },
  { name: 'CONFIG_RSS_KEY with key_len 64', op: OP.CONFIG_RSS_KEY, build: (vf) => rssKey(vf, 64) },
  {
    name: 'CONFIG_RSS_LUT with lut_entries 32 (the LUT is 64)',
    op: OP.CONFIG_RSS_LUT,
    build: (vf) => rssLut(vf, 32),
  },
  { name: 'REQUEST_QUEUES of 4 bytes', op: OP.REQUEST_QUEUES, build: () => grow(vfResRequestMsg(2), 2) },

  // A VSI the VF does not have.
  {
    name: 'CONFIG_VSI_QUEUES for another VSI',
    op: OP.CONFIG_VSI_QUEUES,
    build: async (vf) => poke16(await vsiQueues(vf), 0, BAD_VSI),
  },
  {
    name: 'CONFIG_VSI_QUEUES whose txq names another VSI',
    op: OP.CONFIG_VSI_QUEUES,
    build: async (vf) => poke16(await vsiQueues(vf), VsiQueueConfigAt.txq(1), BAD_VSI),
  },
  {
    name: 'CONFIG_IRQ_MAP for another VSI',
    op: OP.CONFIG_IRQ_MAP,
    build: (vf) => poke16(irqMap(vf), 2, BAD_VSI),
  },
  {
    name: 'ADD_ETH_ADDR for another VSI',
    op: OP.ADD_ETH_ADDR,
    build: (vf) => poke16(primary(vf), 0, BAD_VSI),
  },
  {
    name: 'ADD_VLAN for another VSI',
    caps: V1,
    op: OP.ADD_VLAN,
    build: (vf) => poke16(vlanFilterListMsg(vf.vsiId, [100]), 0, BAD_VSI),
  },
  {
    name: 'ADD_VLAN of id 4096',
    caps: V1,
    op: OP.ADD_VLAN,
    build: (vf) => vlanFilterListMsg(vf.vsiId, [5, 4096]),
  },
  {
    name: 'ENABLE_QUEUES for another VSI',
    op: OP.ENABLE_QUEUES,
    build: (vf) => poke16(allQueues(vf), 0, BAD_VSI),
  },
  { name: 'GET_STATS for another VSI', op: OP.GET_STATS, build: () => queueSelectMsg(BAD_VSI) },
  {
    name: 'CONFIG_PROMISCUOUS_MODE for another VSI',
    op: OP.CONFIG_PROMISCUOUS_MODE,
    build: () => promiscMsg(BAD_VSI, 0),
  },
  {
    name: 'CONFIG_RSS_KEY for another VSI',
    op: OP.CONFIG_RSS_KEY,
    build: (vf) => poke16(rssKey(vf), 0, BAD_VSI),
  },

  // Queues and vectors beyond what was granted.
  {
    name: 'ENABLE_QUEUES of RX queue 4 (4 granted)',
    op: OP.ENABLE_QUEUES,
    build: (vf) => queueSelectMsg(vf.vsiId, 1 << QUEUES, 0),
  },
  {
    name: 'DISABLE_QUEUES of TX queue 31',
    op: OP.DISABLE_QUEUES,
    build: (vf) => queueSelectMsg(vf.vsiId, 0, 0x80000000),
  },
  {
    name: 'CONFIG_IRQ_MAP mapping RX queue 4 (4 granted)',
    op: OP.CONFIG_IRQ_MAP,
    build: (vf) => irqMapMsg(vf.vsiId, [{ vectorId: 1, rxqMap: 1 << QUEUES, txqMap: 0 }]),
  },
  {
    name: 'CONFIG_IRQ_MAP naming vector 5 (max_vectors 5)',
    op: OP.CONFIG_IRQ_MAP,
    build: (vf) => irqMapMsg(vf.vsiId, [{ vectorId: QUEUES + 1, rxqMap: 1, txqMap: 1 }]),
  },
  {
    name: 'CONFIG_IRQ_MAP with 6 vector maps (max_vectors 5)',
    op: OP.CONFIG_IRQ_MAP,
    build: (vf) =>
      irqMapMsg(
        vf.vsiId,
        Array.from({ length: QUEUES + 2 }, () => ({ vectorId: 1, rxqMap: 1, txqMap: 1 })),
      ),
  },
  {
    name: 'CONFIG_VSI_QUEUES of 5 pairs (4 granted)',
    op: OP.CONFIG_VSI_QUEUES,
    build: async (vf) => {
      await vf.setupRings();
      const pairs = vf.queuePairInfo();
      pairs.push({ txq: { ...pairs[0].txq, queueId: QUEUES }, rxq: { ...pairs[0].rxq, queueId: QUEUES } });
      return vsiQueueConfigMsg(vf.vsiId, pairs);
    },
  },
  {
    name: 'CONFIG_VSI_QUEUES naming queue 4 in pair 3',
    op: OP.CONFIG_VSI_QUEUES,
    build: async (vf) => {
      const b = await vsiQueues(vf);
      poke16(b, VsiQueueConfigAt.txq(3) + 2, QUEUES);
      return poke16(b, VsiQueueConfigAt.rxq(3) + 2, QUEUES);
    },
  },
  {
    name: 'CONFIG_RSS_LUT naming queue 4',
    op: OP.CONFIG_RSS_LUT,
    build: (vf) => rssKeyLutMsg(vf.vsiId, Buffer.alloc(64, QUEUES)),
  },

  // Ring lengths: TX a multiple of 8, RX of 32, at most 4096 (0 leaves the queue unconfigured: below).
  {
    name: 'TX ring_len 100',
    op: OP.CONFIG_VSI_QUEUES,
    build: async (vf) => poke16(await vsiQueues(vf), VsiQueueConfigAt.txq(0) + 4, 100),
  },
  {
    name: 'RX ring_len 500',
    op: OP.CONFIG_VSI_QUEUES,
    build: async (vf) => poke32(await vsiQueues(vf), VsiQueueConfigAt.rxq(0) + 4, 500),
  },
  {
    name: 'TX ring_len 8192',
    op: OP.CONFIG_VSI_QUEUES,
    build: async (vf) => poke16(await vsiQueues(vf), VsiQueueConfigAt.txq(1) + 4, 8192),
  },
  {
    name: 'RX ring_len 4128',
    op: OP.CONFIG_VSI_QUEUES,
    build: async (vf) => poke32(await vsiQueues(vf), VsiQueueConfigAt.rxq(1) + 4, 4128),
  },

  // Rings outside guest memory (wholly, or running off its end, or below it).
  {
    name: 'TX ring far outside guest memory',
    op: OP.CONFIG_VSI_QUEUES,
    build: async (vf) => poke64(await vsiQueues(vf), VsiQueueConfigAt.txq(0) + 8, 0xdead_0000_0000n),
  },
  {
    name: 'RX ring starting 4 KiB before the end of guest memory (16 KiB long)',
    op: OP.CONFIG_VSI_QUEUES,
    build: async (vf) => poke64(await vsiQueues(vf), VsiQueueConfigAt.rxq(3) + 24, vf.ram.end - 4096n),
  },
  {
    name: 'TX ring at IOVA 0, below guest memory',
    op: OP.CONFIG_VSI_QUEUES,
    build: async (vf) => poke64(await vsiQueues(vf), VsiQueueConfigAt.txq(1) + 8, 0n),
  },

  // Absurd counts (the lengths cannot match).
  {
    name: 'CONFIG_VSI_QUEUES num_queue_pairs 65535',
    op: OP.CONFIG_VSI_QUEUES,
    build: async (vf) => poke16(await vsiQueues(vf), VsiQueueConfigAt.numQueuePairs, 0xffff),
  },
  {
    name: 'CONFIG_VSI_QUEUES num_queue_pairs 0 in a 72-byte message',
    op: OP.CONFIG_VSI_QUEUES,
    build: (vf) => vsiQueueConfigMsg(vf.vsiId, []),
  },
  {
    name: 'ADD_ETH_ADDR num_elements 65535',
    op: OP.ADD_ETH_ADDR,
    build: (vf) => poke16(primary(vf), 2, 0xffff),
  },
  {
    name: 'ADD_ETH_ADDR num_elements 0 in a 12-byte message',
    op: OP.ADD_ETH_ADDR,
    build: (vf) => etherAddrListMsg(vf.vsiId, []),
  },
  {
    name: 'ADD_VLAN num_elements 0 in a 6-byte message',
    caps: V1,
    op: OP.ADD_VLAN,
    build: (vf) => vlanFilterListMsg(vf.vsiId, []),
  },
  {
    name: 'DEL_VLAN num_elements 65535',
    caps: V1,
    op: OP.DEL_VLAN,
    build: (vf) => poke16(vlanFilterListMsg(vf.vsiId, [1]), 2, 65535),
  },
  {
    name: 'CONFIG_IRQ_MAP num_vectors 65535',
    op: OP.CONFIG_IRQ_MAP,
    build: (vf) => poke16(irqMap(vf), 0, 0xffff),
  },
  {
    name: 'CONFIG_IRQ_MAP num_vectors 0 in a 14-byte message',
    op: OP.CONFIG_IRQ_MAP,
    build: (vf) => irqMapMsg(vf.vsiId, []),
  },

  // Ops the device does not do.
  { name: 'unknown op 99', op: 99, build: () => Buffer.alloc(16), status: ERR_NOT_SUPPORTED },
  {
    name: 'ADD_CLOUD_FILTER (32), known but not implemented',
    op: OP.ADD_CLOUD_FILTER,
    build: () => Buffer.alloc(272),
    status: ERR_NOT_SUPPORTED,
  },
  {
    name: 'ENABLE_CHANNELS (30), known but not implemented',
    op: OP.ENABLE_CHANNELS,
    build: () => Buffer.alloc(24),
    status: ERR_NOT_SUPPORTED,
  },

  // VLAN V2 (granted to Linux's caps): lengths, then what ice_vc_validate_vlan_filter_list refuses.
  {
    name: 'GET_OFFLOAD_VLAN_V2_CAPS of 1 byte',
    op: OP.GET_OFFLOAD_VLAN_V2_CAPS,
    build: () => Buffer.alloc(1),
  },
  {
    name: 'ADD_VLAN_V2 without its filter (8 bytes)',
    op: OP.ADD_VLAN_V2,
    build: (vf) => cut(vlanFilterListV2Msg(vf.vsiId, [100]), 32),
  },
  {
    name: 'DEL_VLAN_V2 one byte long',
    op: OP.DEL_VLAN_V2,
    build: (vf) => grow(vlanFilterListV2Msg(vf.vsiId, [100]), 1),
  },
  {
    name: 'ADD_VLAN_V2 num_elements 0',
    op: OP.ADD_VLAN_V2,
    build: (vf) => poke16(vlanFilterListV2Msg(vf.vsiId, [100]), 2, 0),
  },
  {
    name: 'ADD_VLAN_V2 for another VSI',
    op: OP.ADD_VLAN_V2,
    build: (vf) => poke16(vlanFilterListV2Msg(vf.vsiId, [100]), 0, BAD_VSI),
  },
  {
    name: 'ADD_VLAN_V2 with an outer tag (not offered)',
    op: OP.ADD_VLAN_V2,
    build: (vf) => vlanFilterListV2Msg(vf.vsiId, [100], 'outer'),
  },
  {
    name: 'ADD_VLAN_V2 of TPID 0x88a8',
    op: OP.ADD_VLAN_V2,
    build: (vf) => poke16(vlanFilterListV2Msg(vf.vsiId, [100]), 12, 0x88a8),
  },
  {
    name: 'ADD_VLAN_V2 with a TCI mask',
    op: OP.ADD_VLAN_V2,
    build: (vf) => poke16(vlanFilterListV2Msg(vf.vsiId, [100]), 10, 0xfff),
  },
  {
    name: 'ADD_VLAN_V2 with a priority',
    op: OP.ADD_VLAN_V2,
    build: (vf) => vlanFilterListV2Msg(vf.vsiId, [0x2000 | 100]),
  },
  {
    name: 'ADD_VLAN_V2 of 17 filters from an untrusted VF (max_filters 16)',
    op: OP.ADD_VLAN_V2,
    build: (vf) =>
      vlanFilterListV2Msg(
        vf.vsiId,
        Array.from({ length: 17 }, (_, i) => i + 1),
      ),
  },
  {
    name: 'ENABLE_VLAN_STRIPPING_V2 of 15 bytes',
    op: OP.ENABLE_VLAN_STRIPPING_V2,
    build: (vf) => cut(vlanSettingMsg(vf.vsiId, { inner: 1 }), 1),
  },
  {
    name: 'ENABLE_VLAN_STRIPPING_V2 with no ethertype',
    op: OP.ENABLE_VLAN_STRIPPING_V2,
    build: (vf) => vlanSettingMsg(vf.vsiId, {}),
  },
  {
    name: 'DISABLE_VLAN_STRIPPING_V2 of the outer tag (not offered)',
    op: OP.DISABLE_VLAN_STRIPPING_V2,
    build: (vf) => vlanSettingMsg(vf.vsiId, { outer: 1 }),
  },
  {
    name: 'ENABLE_VLAN_INSERTION_V2 of 802.1ad (not offered)',
    op: OP.ENABLE_VLAN_INSERTION_V2,
    build: (vf) => vlanSettingMsg(vf.vsiId, { inner: 2 }),
  },
  {
    name: 'DISABLE_VLAN_INSERTION_V2 for another VSI',
    op: OP.DISABLE_VLAN_INSERTION_V2,
    build: () => vlanSettingMsg(BAD_VSI, { inner: 1 }),
  },
  {
    name: 'ADD_VLAN (v1) from a VF granted V2',
    op: OP.ADD_VLAN,
    build: (vf) => vlanFilterListMsg(vf.vsiId, [100]),
    status: ERR_NOT_SUPPORTED,
  },
  {
    name: 'ADD_VLAN_V2 from a VF granted v1',
    caps: V1,
    op: OP.ADD_VLAN_V2,
    build: (vf) => vlanFilterListV2Msg(vf.vsiId, [100]),
    status: ERR_NOT_SUPPORTED,
  },

  // Enabling what was never configured.
  { name: 'ENABLE_QUEUES before CONFIG_VSI_QUEUES', op: OP.ENABLE_QUEUES, build: allQueues },
];

describe('virtchnl errors: each refused with a status, counted, and the device still brings up', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  /** Probe, init and configureAdapter: the VF in __IAVF_DOWN, queues not yet configured. */
  async function down(caps?: number): Promise<SoftIavf> {
    h = await Harness.start({ queues: QUEUES });
    await h.vf.probe();
    await h.vf.init(caps);
    await h.vf.configureAdapter();
    return h.vf;
  }

  /** The rest of the bring-up, from iavf_open on: proof that the refusal left the device usable. */
  async function stillBringsUp(vf: SoftIavf): Promise<void> {
    const link = await vf.open();
    expect(link.link, 'link after ENABLE_QUEUES').to.include({ up: true, speed: 10000 });
    await vf.getStats();
    expect(await vf.rd32(IAVF.VF_ARQLEN1), 'ARQLEN').to.equal((32 | AQLEN_ENABLE) >>> 0);
    expect(vf.history.filter((m) => m.op !== OP.EVENT).length, 'one reply per request').to.equal(
      vf.steps.length,
    );
  }

  for (const c of CASES) {
    it(`${c.name} → ${c.status ?? ERR_PARAM}`, async () => {
      const vf = await down(c.caps);
      const errors = h!.virtchnlErrors();
      const reply = await vf.request(c.op, await c.build(vf));
      expect(reply.status, 'status in cookie_low').to.equal(c.status ?? ERR_PARAM);
      expect(reply.opcode).to.equal(0x0802);
      expect(reply.flags & AQ_FLAG.ERR, 'ERR on the ARQ (Linux would drop the message)').to.equal(0);
      expect(h!.virtchnlErrors(), 'counted in stats.virtchnl.errors').to.equal(errors + 1);
      await stillBringsUp(vf);
    });
  }

  it('CONFIG_VSI_QUEUES, IRQ_MAP, ENABLE_QUEUES and GET_STATS before GET_VF_RESOURCES are out of order (before and after VERSION)', async () => {
    h = await Harness.start({ queues: QUEUES });
    const vf = h.vf;
    await vf.probe();
    await vf.waitResetComplete();
    await vf.initAdminQueue();
    const ring = vf.ram.alloc(512 * 32);
    const early = () =>
      vsiQueueConfigMsg(1, [
        {
          txq: { queueId: 0, ringLen: 512, dmaRingAddr: ring },
          rxq: { queueId: 0, ringLen: 512, databufferSize: 1536, maxPktSize: 1526, dmaRingAddr: ring },
        },
      ]);
    expect((await vf.request(OP.CONFIG_VSI_QUEUES, early())).status, 'before VERSION').to.equal(ERR_PARAM);
    await vf.sendApiVersion();
    expect((await vf.request(OP.CONFIG_VSI_QUEUES, early())).status, 'before GET_VF_RESOURCES').to.equal(
      ERR_PARAM,
    );
    expect(
      (await vf.request(OP.CONFIG_IRQ_MAP, irqMapMsg(1, [{ vectorId: 1, rxqMap: 1, txqMap: 1 }]))).status,
    ).to.equal(ERR_PARAM);
    expect((await vf.request(OP.ENABLE_QUEUES, queueSelectMsg(1, 1, 1))).status).to.equal(ERR_PARAM);
    expect((await vf.request(OP.GET_STATS, queueSelectMsg(1))).status).to.equal(ERR_PARAM);
    expect(h.virtchnlErrors()).to.equal(5);
    // Now in order, from GET_VF_RESOURCES on.
    await vf.getVfResources();
    await vf.miscIrqEnable();
    vf.irqMode = true;
    await vf.configureAdapter();
    await stillBringsUp(vf);
  });

  it('ring_len 0 leaves that queue unconfigured, as ice does, and enabling it is refused', async () => {
    const vf = await down();
    const msg = poke16(await vsiQueues(vf), VsiQueueConfigAt.txq(2) + 4, 0);
    expect((await vf.request(OP.CONFIG_VSI_QUEUES, msg)).status).to.equal(0);
    expect((await vf.request(OP.ENABLE_QUEUES, queueSelectMsg(vf.vsiId, 0, 0b100))).status).to.equal(
      ERR_PARAM,
    );
    expect((await vf.request(OP.ENABLE_QUEUES, queueSelectMsg(vf.vsiId, 0b100, 0))).status).to.equal(0);
    await stillBringsUp(vf);
  });

  it('ENABLE_QUEUES of 4 queues when only 2 were configured', async () => {
    const vf = await down();
    await vf.setupRings();
    const two = vf.queuePairInfo().slice(0, 2);
    expect((await vf.request(OP.CONFIG_VSI_QUEUES, vsiQueueConfigMsg(vf.vsiId, two))).status).to.equal(0);
    expect((await vf.request(OP.ENABLE_QUEUES, allQueues(vf))).status).to.equal(ERR_PARAM);
    expect((await vf.request(OP.ENABLE_QUEUES, queueSelectMsg(vf.vsiId, 0b11, 0b11))).status).to.equal(0);
    await stillBringsUp(vf);
  });

  it('completes an ATQ descriptor whose buffer is outside guest memory with an error, and keeps going', async () => {
    const vf = await down();
    const aqErrors = h!.stats().adminQueue.errors;
    const done = await vf.sendRaw(OP.GET_STATS, queueSelectMsg(vf.vsiId), { addr: 0xdead_0000_0000n });
    expect(done.flags & (AQ_FLAG.DD | AQ_FLAG.CMP), 'DD|CMP written back').to.equal(AQ_FLAG.DD | AQ_FLAG.CMP);
    expect(done.retval, 'retval').to.not.equal(0);
    expect(await vf.rd32(IAVF.VF_ATQH1)).to.equal(vf.atqNextToUse);
    expect(h!.stats().adminQueue.errors).to.equal(aqErrors + 1);
    // The next message on the ring is read and answered normally.
    expect((await vf.request(OP.VERSION, versionMsg())).status).to.equal(0);
    await stillBringsUp(vf);
  });

  it('completes a descriptor with an unknown AQ opcode and keeps going', async () => {
    const vf = await down();
    const done = await vf.submit({ flags: AQ_FLAG.SI, opcode: 0x0700 });
    expect(done.flags & AQ_FLAG.DD).to.equal(AQ_FLAG.DD);
    expect(done.retval).to.not.equal(0);
    await stillBringsUp(vf);
  });

  it('ignores an ATQ tail beyond LEN (flags the queue, moves no head) and resumes when the tail is sane again', async () => {
    const vf = await down();
    const aqErrors = h!.stats().adminQueue.errors;
    const head = await vf.rd32(IAVF.VF_ATQH1);
    await vf.wr32(IAVF.VF_ATQT1, 32 + 8);
    await sleep(30);
    const atqh = await vf.rd32(IAVF.VF_ATQH1);
    expect(atqh, 'ATQH moved on a tail beyond LEN').to.equal(head);
    expect(h!.stats().adminQueue.errors).to.equal(aqErrors + 1);
    const len = await vf.rd32(IAVF.VF_ATQLEN1);
    expect(len & AQLEN_ENABLE, 'ATQLEN.ENABLE').to.not.equal(0);
    expect(len & (AQLEN_VFE | AQLEN_OVFL | AQLEN_CRIT), 'an error bit in ATQLEN').to.not.equal(0);
    expect(
      vf.inbox.filter((m) => m.op !== OP.EVENT),
      'a reply to nothing',
    ).to.deep.equal([]);
    // What iavf_adminq_task does: log and clear the bits; then the driver's own tail again.
    await vf.checkAdminQueueHealth();
    expect(vf.aqErrors.map((e) => e.queue)).to.deep.equal(['ATQ']);
    expect((await vf.rd32(IAVF.VF_ATQLEN1)) & AQLEN_ERRORS).to.equal(0);
    await vf.wr32(IAVF.VF_ATQT1, vf.atqNextToUse);
    expect((await vf.request(OP.VERSION, versionMsg())).status).to.equal(0);
    await stillBringsUp(vf);
  });
});
