import { expect } from 'chai';
import { Harness } from './testing/harness.js';
import {
  AQ_FLAG,
  AQC_OPC_QUEUE_SHUTDOWN,
  AQLEN_ENABLE,
  IAVF,
  VFR_VFACTIVE,
  VIRTCHNL_EVENT_LINK_CHANGE,
  VIRTCHNL_OP,
  VIRTCHNL_STATUS,
} from './testing/iavf-defs.js';
import { sleep } from './testing/soft-iavf/io.js';
import type { ResetReport, SoftIavf } from './testing/soft-iavf/main.js';
import { queueSelectMsg, versionMsg } from './testing/virtchnl-msgs.js';

const OP = VIRTCHNL_OP;

/** What a finished VF reset must look like from the guest. */
function expectReset(report: ResetReport, queues: number): void {
  expect(report.detected, 'ARQLEN.ENABLE dropped to 0 (how Linux notices the reset)').to.equal(true);
  expect(report.rstatSeen[report.rstatSeen.length - 1]).to.equal(VFR_VFACTIVE);
  for (let i = 1; i < report.rstatSeen.length; i++)
    expect(report.rstatSeen[i], `RSTAT went ${report.rstatSeen.join(' → ')}`).to.be.greaterThan(
      report.rstatSeen[i - 1],
    );
  expect(report.resources.numQueuePairs).to.equal(queues);
  expect(report.resources.maxVectors).to.equal(queues + 1);
}

/** iavf_reset_task's re-configuration when the interface was up: IRQ map, MAC, RSS, queues, enable, link. */
async function upAgain(vf: SoftIavf): Promise<void> {
  await vf.configureAdapter();
  const link = await vf.open();
  expect(link.link).to.include({ up: true });
  await vf.getStats();
  expect(await vf.rd32(IAVF.VF_ARQLEN1)).to.equal((32 | AQLEN_ENABLE) >>> 0);
}

describe('VF reset, admin queue shutdown, and REQUEST_QUEUES', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('RESET_VF with the queues running: no reply, ENABLE drops, RSTAT reaches VFACTIVE, config is gone, a second full bring-up works (no VERSION, as Linux)', async () => {
    h = await Harness.start({ queues: 4 });
    const vf = h.vf;
    await vf.bringUp();
    const repliesBefore = vf.history.filter((m) => m.op !== OP.EVENT).length;
    const report = await vf.resetVf();
    expectReset(report, 4);
    expect(h.stats().resets.vf).to.equal(1);
    // RESET_VF itself got no reply; the only reply since is GET_VF_RESOURCES.
    const since = vf.history.slice(repliesBefore).filter((m) => m.op !== OP.EVENT);
    expect(since.map((m) => m.op)).to.not.include(OP.RESET_VF);
    // The PF dropped the queue setup: nothing is enabled and ENABLE_QUEUES needs CONFIG_VSI_QUEUES again.
    for (let id = 0; id < 8; id++)
      expect(h.dev.queueInfo(id)?.enabled ?? false, `queue ${id}`).to.equal(false);
    expect((await vf.request(OP.ENABLE_QUEUES, queueSelectMsg(vf.vsiId, 0xf, 0xf))).status).to.equal(
      VIRTCHNL_STATUS.ERR_PARAM,
    );
    await upAgain(vf);
    expect(h.dev.queueInfo(0)?.enabled).to.equal(true);
  });

  it('RESET_VF while a reply is outstanding: the stale reply never lands on the new admin queue', async () => {
    h = await Harness.start({});
    const vf = h.vf;
    await vf.bringUp();
    // Two messages back to back, the second the reset, as iavf_remove / a TX-timeout reset would.
    await vf.sendToPf(OP.GET_STATS, queueSelectMsg(vf.vsiId), { wait: false });
    const report = await vf.resetVf();
    expectReset(report, 4);
    await upAgain(vf);
    const onNewRings = vf.history.slice(vf.historyAtAqInit).filter((m) => m.op !== OP.EVENT);
    // GET_VF_RESOURCES, then upAgain's requests: the GET_STATS from before the reset is not among them.
    expect(onNewRings.map((m) => m.op)).to.deep.equal([
      OP.GET_VF_RESOURCES,
      OP.GET_OFFLOAD_VLAN_V2_CAPS,
      OP.CONFIG_IRQ_MAP,
      OP.ADD_ETH_ADDR,
      OP.CONFIG_RSS_KEY,
      OP.CONFIG_RSS_LUT,
      OP.CONFIG_VSI_QUEUES,
      OP.ENABLE_QUEUES,
      OP.GET_STATS,
    ]);
  });

  it('two resets in a row, each followed by a full bring-up', async () => {
    h = await Harness.start({ queues: 2 });
    const vf = h.vf;
    await vf.bringUp();
    for (let i = 1; i <= 2; i++) {
      expectReset(await vf.resetVf(), 2);
      await upAgain(vf);
      expect(h.stats().resets.vf).to.equal(i);
    }
  });

  it('shutdownAdminQueue (0x0003, synchronous) then init again: the VF keeps working', async () => {
    h = await Harness.start({});
    const vf = h.vf;
    await vf.bringUp();
    const t0 = Date.now();
    const done = await vf.shutdownAdminQueue();
    expect(Date.now() - t0, 'inside IAVF_ASQ_CMD_TIMEOUT (250 ms)').to.be.lessThan(250);
    expect(done, 'queue_shutdown sent').to.not.equal(undefined);
    expect(done!.opcode).to.equal(AQC_OPC_QUEUE_SHUTDOWN);
    expect(done!.flags & (AQ_FLAG.DD | AQ_FLAG.CMP)).to.equal(AQ_FLAG.DD | AQ_FLAG.CMP);
    expect(done!.retval, 'retval').to.equal(0);
    for (const reg of [
      IAVF.VF_ATQLEN1,
      IAVF.VF_ARQLEN1,
      IAVF.VF_ATQBAL1,
      IAVF.VF_ARQBAL1,
      IAVF.VF_ATQH1,
      IAVF.VF_ARQH1,
    ])
      expect(await vf.rd32(reg), `0x${reg.toString(16)}`).to.equal(0);
    expect(await vf.rd32(IAVF.VFGEN_RSTAT), 'a queue shutdown is not a reset').to.equal(VFR_VFACTIVE);
    await vf.initAdminQueue();
    expect((await vf.request(OP.VERSION, versionMsg())).status).to.equal(0);
    await vf.getStats();
    expect(h.stats().resets.vf).to.equal(0);
  });

  it('shutdownAdminQueue after a reset sends no 0x0003 (ATQLEN.ENABLE reads 0), as iavf_check_asq_alive', async () => {
    h = await Harness.start({});
    const vf = h.vf;
    await vf.bringUp();
    await vf.sendToPf(OP.RESET_VF, Buffer.alloc(0), { wait: false });
    const deadline = Date.now() + 1000;
    while ((await vf.rd32(IAVF.VF_ATQLEN1)) & AQLEN_ENABLE && Date.now() < deadline) await sleep(1);
    expect(await vf.shutdownAdminQueue()).to.equal(undefined);
    expectReset(await vf.resetVf({ send: false }), 4);
    await upAgain(vf);
  });

  it('REQUEST_QUEUES granted in full: no reply, the PF resets the VF (as i40e), which comes back with that many', async () => {
    h = await Harness.start({ queues: 4 });
    const vf = h.vf;
    await vf.bringUp();
    const { reply, resetFirst } = await vf.requestQueues(2);
    expect(resetFirst, 'a VF reset instead of a reply').to.equal(true);
    expect(reply).to.equal(undefined);
    const report = await vf.resetVf({ send: false });
    expectReset(report, 2);
    await upAgain(vf);
    expect(h.dev.getAttr('queues')).to.equal(2);
  });

  it('REQUEST_QUEUES for more than the device has: answered with what it can give, and no reset', async () => {
    h = await Harness.start({ queues: 4 });
    const vf = h.vf;
    await vf.bringUp();
    const { reply, granted, resetFirst } = await vf.requestQueues(8);
    expect(resetFirst, 'reset instead of a reply').to.equal(false);
    expect(reply?.status).to.equal(VIRTCHNL_STATUS.SUCCESS);
    expect(granted, 'pairs offered (MSI-X has 5 vectors)').to.be.at.most(4);
    await sleep(50);
    expect((await vf.rd32(IAVF.VF_ARQLEN1)) & AQLEN_ENABLE, 'ARQLEN.ENABLE (a reset?)').to.not.equal(0);
    expect(h.stats().resets.vf).to.equal(0);
    await vf.getStats();
  });

  it('a client DEVICE_RESET (FLR) puts the VF back to power-on: a bring-up from scratch works', async () => {
    h = await Harness.start({});
    const vf = h.vf;
    await vf.bringUp();
    await h.client.reset();
    expect(await vf.rd32(IAVF.VF_ARQLEN1)).to.equal(0);
    expect(await vf.rd32(IAVF.VFGEN_RSTAT)).to.equal(VFR_VFACTIVE);
    // Config space went back to power-on as well, Bus Master Enable with it: the guest probes again.
    await vf.probe();
    await vf.init();
    expect((await vf.waitForEvent(VIRTCHNL_EVENT_LINK_CHANGE)).link).to.include({ up: true, speed: 10000 });
    await upAgain(vf);
    expect(h.stats().resets.flr).to.be.at.least(1);
  });
});
