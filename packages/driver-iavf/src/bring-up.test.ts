import { expect } from 'chai';
import { Harness } from './testing/harness.js';
import {
  AQLEN_ENABLE,
  AQLEN_ERRORS,
  ETH_STATS_FIELDS,
  type EthStats,
  IAVF,
  LINUX_6_12_CAPS,
  VF_CAP,
  VFR_VFACTIVE,
  VIRTCHNL_LEN,
  VIRTCHNL_OP,
  VIRTCHNL_STATUS,
  VIRTCHNL_VSI_SRIOV,
} from './testing/iavf-defs.js';
import type { BringUpResult } from './testing/soft-iavf/main.js';

const LINUX_ORDER = [
  'VERSION',
  'GET_VF_RESOURCES',
  'GET_OFFLOAD_VLAN_V2_CAPS',
  'CONFIG_IRQ_MAP',
  'ADD_ETH_ADDR',
  'CONFIG_RSS_KEY',
  'CONFIG_RSS_LUT',
  'ENABLE_VLAN_STRIPPING_V2',
  'ENABLE_VLAN_INSERTION_V2',
  'CONFIG_VSI_QUEUES',
  'ENABLE_QUEUES',
  'CONFIG_PROMISCUOUS_MODE',
  'GET_STATS',
];

function expectZeroStats(stats: EthStats): void {
  for (const f of ETH_STATS_FIELDS) expect(stats[f], f).to.equal(0n);
}

/** The checks every successful bring-up must pass, whatever the config. */
async function expectHealthyBringUp(
  h: Harness,
  up: BringUpResult,
  queues: number,
  speed: number,
): Promise<void> {
  const vf = h.vf;
  expect(up.pfVersion).to.deep.equal({ major: 1, minor: 1 });
  expect(up.steps.map((s) => s.name)).to.deep.equal(LINUX_ORDER);
  for (const s of up.steps) expect(s.status, s.name).to.equal(VIRTCHNL_STATUS.SUCCESS);

  const r = up.resources;
  expect(r.length, 'vf_resource wire length for one VSI').to.equal(VIRTCHNL_LEN.VF_RESOURCE(1));
  expect(r.numVsis).to.equal(1);
  expect(r.numQueuePairs).to.equal(queues);
  expect(r.maxVectors).to.equal(queues + 1);
  expect(r.lanVsi?.vsiType).to.equal(VIRTCHNL_VSI_SRIOV);
  expect(r.lanVsi?.numQueuePairs).to.equal(queues);
  expect(r.rssKeySize).to.equal(52);
  expect(r.rssLutSize).to.equal(64);
  // Granted ⊆ asked; the recommended grant; never RSS_AQ (raw AQ RSS opcodes).
  expect(r.vfCapFlags & ~LINUX_6_12_CAPS, 'caps granted that were not asked for').to.equal(0);
  for (const cap of [VF_CAP.L2, VF_CAP.RSS_PF, VF_CAP.ADV_LINK_SPEED])
    expect(r.vfCapFlags & cap, `cap 0x${cap.toString(16)}`).to.equal(cap);
  expect(r.vfCapFlags & VF_CAP.RSS_AQ).to.equal(0);
  expect(r.vfCapFlags & VF_CAP.RX_FLEX_DESC).to.equal(0);

  expect(up.initialLink.link, 'LINK_CHANGE after GET_VF_RESOURCES').to.deep.equal({
    up: true,
    speed,
    advanced: true,
  });
  expect(up.link.link, 'LINK_CHANGE after ENABLE_QUEUES').to.deep.equal({ up: true, speed, advanced: true });
  expectZeroStats(up.stats);

  // Registers: VFACTIVE, both queues still enabled at 32, no error bits, RX tails kept.
  expect(await vf.rd32(IAVF.VFGEN_RSTAT)).to.equal(VFR_VFACTIVE);
  expect(await vf.rd32(IAVF.VF_ARQLEN1)).to.equal((32 | AQLEN_ENABLE) >>> 0);
  expect(await vf.rd32(IAVF.VF_ATQLEN1)).to.equal((32 | AQLEN_ENABLE) >>> 0);
  for (let q = 0; q < queues; q++) expect(await vf.rd32(IAVF.QRX_TAIL1(q)), `QRX_TAIL1(${q})`).to.equal(511);
  expect(vf.arqEnableLost, 'ARQLEN.ENABLE read 0 during bring-up').to.equal(0);
  expect(vf.aqErrors, 'ARQLEN/ATQLEN error bits').to.deep.equal([]);

  // Interrupt-driven from INIT_CONFIG_ADAPTER on, and no message needed polling to be found.
  expect(vf.miscIrqs).to.be.greaterThan(0);
  expect(vf.polledMessages, 'messages that came without their interrupt').to.equal(0);
  expect(vf.arqNotDone, 'ARQH advanced past descriptors without DD').to.equal(0);

  // Exactly one reply per request; everything else was an EVENT.
  const replies = vf.history.filter((m) => m.op !== VIRTCHNL_OP.EVENT);
  expect(replies.map((m) => m.op)).to.deep.equal(up.steps.map((s) => s.op));
  for (const m of vf.history) {
    expect(m.opcode, 'ARQ opcode').to.equal(0x0802);
    expect(m.flags & 0x4, 'ERR on an ARQ descriptor').to.equal(0);
    expect(m.flags & 0x3, 'DD|CMP').to.equal(0x3);
    expect(m.retval).to.equal(0);
  }

  const stats = h.stats();
  expect(stats.virtchnl.errors).to.deep.equal({});
  expect(stats.adminQueue.errors).to.equal(0);
  expect(stats.unknownRegisterAccesses, 'registers the guest touched that the device lacks').to.equal(0);
  expect(stats.interrupts[0]).to.be.at.least(vf.miscIrqs);

  // emudev's queue table: RX q = 2q, TX q = 2q+1, on the vector iavf_map_rings_to_vectors chose.
  for (let q = 0; q < queues; q++) {
    const vector = (q % queues) + 1;
    expect(h.dev.queueInfo(2 * q), `RX ${q}`).to.include({
      base: vf.rings[q].rx,
      size: 512,
      enabled: true,
      vector,
    });
    expect(h.dev.queueInfo(2 * q + 1), `TX ${q}`).to.include({
      base: vf.rings[q].tx,
      size: 512,
      enabled: true,
      vector,
    });
  }
}

describe('SoftIavf bring-up (Linux 6.12 order) against emu_iavf', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('is an 8086:1889 Ethernet function with BAR0 registers, BAR3 MSI-X (table 0, PBA 0x2000), queues+1 vectors', async () => {
    h = await Harness.start({ mac: '02:00:00:00:00:0a' });
    const pci = await h.vf.probe();
    expect(pci).to.deep.include({
      vendorId: 0x8086,
      deviceId: 0x1889,
      subsystemVendorId: 0x8086,
      classCode: 0x020000,
      bar0Size: 0x20000n,
      irqCount: 5,
    });
    expect(pci.bar3Size >= 0x2000n + 8n).to.equal(true);
    expect(pci.msix).to.deep.include({
      tableSize: 5,
      tableBar: 3,
      tableOffset: 0,
      pbaBar: 3,
      pbaOffset: 0x2000,
    });
    expect(pci.command & 0x6, 'memory + bus master').to.equal(0x6);
    expect(await h.vf.rd32(IAVF.VFGEN_RSTAT)).to.equal(VFR_VFACTIVE);
    // Power-on: admin queue registers 0 (ARQLEN.ENABLE clear) until the driver programs them.
    expect(await h.vf.rd32(IAVF.VF_ARQLEN1)).to.equal(0);
    expect(await h.vf.rd32(IAVF.VF_ATQLEN1)).to.equal(0);
  });

  it('brings up the default config: devargs MAC, 4 pairs, 5 vectors, VSI type 6, link up at 10000 Mbps, then stops', async () => {
    h = await Harness.start({ mac: '02:00:00:00:00:0a' });
    const up = await h.vf.bringUp();
    expect(h.vf.mac).to.equal('02:00:00:00:00:0a');
    expect(h.vf.vfRes?.maxMtu === 0 || (h.vf.vfRes?.maxMtu ?? 0) >= 1500 + 14).to.equal(true);
    await expectHealthyBringUp(h, up, 4, 10000);

    // The IRQ map Linux sent: 4 queue vectors + vector 0, 14 + 12·5 = 74 bytes, all accepted.
    // iavf_close: DISABLE_QUEUES, DEL_ETH_ADDR.
    await h.vf.stop();
    expect(h.vf.steps.slice(-2).map((s) => [s.name, s.status])).to.deep.equal([
      ['DISABLE_QUEUES', 0],
      ['DEL_ETH_ADDR', 0],
    ]);
    for (let id = 0; id < 8; id++) expect(h.dev.queueInfo(id)?.enabled, `queue ${id}`).to.equal(false);
    // Open again: the configuration is still there, so ENABLE_QUEUES alone brings the link back.
    await h.vf.addEthAddr();
    await h.vf.enableQueues();
    expect((await h.vf.waitForEvent(1)).link).to.deep.equal({ up: true, speed: 10000, advanced: true });
    expect(await h.vf.rd32(IAVF.VF_ARQLEN1)).to.equal((32 | AQLEN_ENABLE) >>> 0);
    expect(h.vf.arqEnableLost).to.equal(0);
  });

  it('gives a stable locally administered unicast MAC when none is configured', async () => {
    h = await Harness.start({});
    await h.vf.bringUp();
    const first = Number.parseInt(h.vf.mac.slice(0, 2), 16);
    expect(first & 1, 'unicast').to.equal(0);
    expect(first & 2, 'locally administered').to.equal(2);
    expect(h.vf.mac).to.not.equal('00:00:00:00:00:00');
    expect(h.dev.getAttr('mac')).to.equal(h.vf.mac);
  });

  it('queues=1: one pair, 2 vectors (the Linux minimum)', async () => {
    h = await Harness.start({ queues: 1 });
    const up = await h.vf.bringUp();
    expect(h.vf.pci?.irqCount).to.equal(2);
    await expectHealthyBringUp(h, up, 1, 10000);
  });

  it('queues=16: 16 pairs, 17 vectors, LUT spread over 16 queues', async () => {
    h = await Harness.start({ queues: 16 });
    const up = await h.vf.bringUp();
    expect(h.vf.pci?.irqCount).to.equal(17);
    expect(h.vf.pci?.msix.tableSize).to.equal(17);
    await expectHealthyBringUp(h, up, 16, 10000);
    expect(Math.max(...h.vf.rssLut!)).to.equal(15);
  });

  it('speed=25000 is reported as 25000 Mbps in both link events', async () => {
    h = await Harness.start({ speed: 25000 });
    const up = await h.vf.bringUp();
    await expectHealthyBringUp(h, up, 4, 25000);
  });

  it('mtu=9000: max_mtu covers a 9000-byte MTU and 9088-byte buffers are accepted', async () => {
    h = await Harness.start({ queues: 2, mtu: 9000 }, { soft: { mtu: 9000 } });
    const up = await h.vf.bringUp();
    expect(h.vf.rxBufLen).to.equal(9088);
    expect(up.resources.maxMtu === 0 || up.resources.maxMtu >= 9000 + 14).to.equal(true);
    await expectHealthyBringUp(h, up, 2, 10000);
  });

  it('brings up the same way when guest memory is shared without an fd (DMA_READ/DMA_WRITE messages)', async () => {
    h = await Harness.start({ mac: '02:00:00:00:00:0a' }, { ram: 'plain' });
    const up = await h.vf.bringUp();
    await expectHealthyBringUp(h, up, 4, 10000);
    expect(h.dev.memTable().map((r) => r.direct)).to.deep.equal([false]);
    expect(h.dev.stats().dmaReadBytes).to.be.greaterThan(0);
    expect(h.dev.stats().dmaWriteBytes).to.be.greaterThan(0);
    expect(h.vf.mac).to.equal('02:00:00:00:00:0a');
  });

  it('keeps ENABLE and no error bits in ARQLEN/ATQLEN while idle, as the watchdog checks every 2 s', async () => {
    h = await Harness.start({});
    await h.vf.bringUp();
    for (let i = 0; i < 5; i++) {
      await h.vf.getStats();
      const arq = await h.vf.rd32(IAVF.VF_ARQLEN1);
      expect(arq & AQLEN_ENABLE, 'ARQLEN.ENABLE').to.not.equal(0);
      expect(arq & AQLEN_ERRORS).to.equal(0);
    }
    expect(h.vf.inbox.filter((m) => m.op !== VIRTCHNL_OP.EVENT)).to.deep.equal([]);
  });
});
