import { expect } from 'chai';
import { Harness } from './testing/harness.js';
import {
  DPDK_DYN_CTL01_DISABLE,
  DPDK_DYN_CTL01_ENABLE,
  DYN_CTL_ENABLE,
  DYN_CTL_FORCE_WB,
  DYN_CTL_INTENA,
  IAVF,
  ICR0_ADMINQ,
  VIRTCHNL_OP,
} from './testing/iavf-defs.js';
import { sleep } from './testing/soft-iavf/io.js';
import type { SoftIavf } from './testing/soft-iavf/main.js';
import { versionMsg } from './testing/virtchnl-msgs.js';

/** Long enough for a wrongly fired interrupt to have reached its eventfd. */
const QUIET_MS = 30;

describe('SoftIavf interrupts: the misc vector and the queue vectors', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  /** A VF through the polled part of init (VERSION, GET_VF_RESOURCES, the LINK_CHANGE drained), as
   * Linux and DPDK do it before the misc vector is set up. */
  async function polledInit(): Promise<SoftIavf> {
    h = await Harness.start({});
    const vf = h.vf;
    await vf.probe();
    await vf.waitResetComplete();
    await vf.initAdminQueue();
    await vf.sendApiVersion();
    await vf.getVfResources();
    await vf.drain(QUIET_MS);
    return vf;
  }

  it('fires the misc vector only when armed (INTENA, automasked) and ICR0_ENA1.ADMINQ is set; a pending cause fires at re-arm', async () => {
    const vf = await polledInit();
    const ev = vf.irqFds[0];
    const firedBefore = () => h!.stats().interrupts[0];
    expect(ev.read(), 'nothing fires while ICR0_ENA1 and DYN_CTL01 are 0').to.equal(null);
    expect(firedBefore()).to.equal(0);
    await vf.rd32(IAVF.VFINT_ICR01); // clear stale causes

    // 1. Cause enabled, vector not armed: the message lands, no interrupt, the cause is latched.
    await vf.wr32(IAVF.VFINT_DYN_CTL01, 0);
    await vf.wr32(IAVF.VFINT_ICR0_ENA1, ICR0_ADMINQ);
    expect((await vf.request(VIRTCHNL_OP.VERSION, versionMsg())).status).to.equal(0);
    await sleep(QUIET_MS);
    expect(ev.read(), 'fired while INTENA was clear').to.equal(null);
    expect((await vf.rd32(IAVF.VFINT_ICR01)) & ICR0_ADMINQ, 'ICR01.ADMINQ latched').to.equal(ICR0_ADMINQ);
    expect(await vf.rd32(IAVF.VFINT_ICR01), 'ICR01 is read-to-clear').to.equal(0);

    // 2. Arming with the cause pending fires at once, and INTENA clears itself.
    let fired = ev.wait(1000);
    await vf.wr32(IAVF.VFINT_DYN_CTL01, DYN_CTL_ENABLE);
    expect(await fired).to.equal(1n);
    expect((await vf.rd32(IAVF.VFINT_DYN_CTL01)) & DYN_CTL_INTENA, 'INTENA after firing').to.equal(0);

    // 3. Arming with nothing pending does not fire.
    await vf.wr32(IAVF.VFINT_DYN_CTL01, DYN_CTL_ENABLE);
    await sleep(QUIET_MS);
    expect(ev.read(), 'fired with nothing pending').to.equal(null);

    // 4. Armed: the next message fires it.
    fired = ev.wait(1000);
    expect((await vf.request(VIRTCHNL_OP.VERSION, versionMsg())).status).to.equal(0);
    expect(await fired).to.equal(1n);

    // 5. Not re-armed: the next message stays pending until the re-arm.
    expect((await vf.request(VIRTCHNL_OP.VERSION, versionMsg())).status).to.equal(0);
    await sleep(QUIET_MS);
    expect(ev.read(), 'fired without being re-armed').to.equal(null);
    fired = ev.wait(1000);
    await vf.wr32(IAVF.VFINT_DYN_CTL01, DYN_CTL_ENABLE);
    expect(await fired).to.equal(1n);

    // 6. Armed, but the ADMINQ cause disabled in ICR0_ENA1: no interrupt.
    await vf.wr32(IAVF.VFINT_ICR0_ENA1, 0);
    await vf.rd32(IAVF.VFINT_ICR01);
    await vf.wr32(IAVF.VFINT_DYN_CTL01, DYN_CTL_ENABLE);
    expect((await vf.request(VIRTCHNL_OP.VERSION, versionMsg())).status).to.equal(0);
    await sleep(QUIET_MS);
    expect(ev.read(), 'fired with ICR0_ENA1.ADMINQ clear').to.equal(null);

    expect(firedBefore(), 'device count of misc interrupts').to.equal(3);
    for (const other of vf.irqFds.slice(1)) expect(other.read(), 'a queue vector fired').to.equal(null);
  });

  it("fires a reply that lands while DPDK's handler has vector 0 off at its re-arm (ICR0_ENA1, then INTENA | CLEARPBA), once, ICR01 never read", async () => {
    const vf = await polledInit();
    const ev = vf.irqFds[0];
    // iavf_enable_irq0 / iavf_disable_irq0, as iavf_dev_interrupt_handler brackets its ARQ drain.
    const enable = async () => {
      await vf.wr32(IAVF.VFINT_ICR0_ENA1, ICR0_ADMINQ);
      await vf.wr32(IAVF.VFINT_DYN_CTL01, DPDK_DYN_CTL01_ENABLE);
    };
    const disable = async () => {
      await vf.wr32(IAVF.VFINT_ICR0_ENA1, 0);
      await vf.wr32(IAVF.VFINT_DYN_CTL01, DPDK_DYN_CTL01_DISABLE);
    };
    // The messages of the polled init came while ICR0_ENA1 was 0: one interrupt for them at the first
    // enable (the handler finds the ARQ already drained), then quiet.
    const early = ev.wait(1000);
    await enable();
    expect(await early, 'the init messages, at the first enable').to.equal(1n);
    await disable();
    await enable();
    await sleep(QUIET_MS);
    expect(ev.read(), 'fired again with nothing new').to.equal(null);
    for (let round = 0; round < 5; round++) {
      // An armed reply fires; the handler runs with vector 0 off, and the next reply lands meanwhile.
      let fired = ev.wait(1000);
      expect((await vf.request(VIRTCHNL_OP.VERSION, versionMsg())).status).to.equal(0);
      expect(await fired, `round ${round}: armed reply`).to.equal(1n);
      await disable();
      expect((await vf.request(VIRTCHNL_OP.VERSION, versionMsg())).status).to.equal(0);
      await sleep(QUIET_MS);
      expect(ev.read(), `round ${round}: fired while off`).to.equal(null);
      fired = ev.wait(1000);
      await enable();
      expect(await fired, `round ${round}: the reply that came while off, at the re-arm`).to.equal(1n);
      // The handler runs again and re-arms with nothing new: quiet, though ICR01 still says ADMINQ.
      await disable();
      await enable();
      await sleep(QUIET_MS);
      expect(ev.read(), `round ${round}: fired again with nothing new (a storm)`).to.equal(null);
    }
    expect((await vf.rd32(IAVF.VFINT_ICR01)) & ICR0_ADMINQ, 'ICR01.ADMINQ still latched').to.equal(
      ICR0_ADMINQ,
    );
    expect(h!.stats().interrupts[0]).to.equal(11);
  });

  it('runs the admin queue on interrupts after INIT_CONFIG_ADAPTER, one interrupt per batch, none missed', async () => {
    h = await Harness.start({});
    await h.vf.bringUp();
    const before = h.vf.miscIrqs;
    for (let i = 0; i < 10; i++) await h.vf.getStats();
    expect(h.vf.miscIrqs - before).to.be.at.least(10);
    expect(h.vf.polledMessages).to.equal(0);
    expect(h.stats().interrupts[0]).to.be.at.least(h.vf.miscIrqs);
  });

  it('maps queue vector v (1..N) to DYN_CTLN1(v-1): SWINT_TRIG fires that vector only, INTENA alone does not', async () => {
    h = await Harness.start({ queues: 4 });
    await h.vf.bringUp();
    const fds = h.vf.irqFds;
    for (const fd of fds.slice(1)) fd.read();
    for (let v = 1; v <= 4; v++) {
      // iavf_force_wb (iavf_detect_recover_hung).
      const fired = fds[v].wait(1000);
      await h.vf.wr32(IAVF.VFINT_DYN_CTLN1(v - 1), DYN_CTL_FORCE_WB);
      expect(await fired, `vector ${v}`).to.equal(1n);
      for (let w = 1; w <= 4; w++)
        if (w !== v) expect(fds[w].read(), `vector ${w} fired for ${v}`).to.equal(null);
      expect((await h.vf.rd32(IAVF.VFINT_DYN_CTLN1(v - 1))) & DYN_CTL_INTENA, 'INTENA after firing').to.equal(
        0,
      );
      // Re-armed with nothing pending (no traffic): quiet.
      await h.vf.wr32(IAVF.VFINT_DYN_CTLN1(v - 1), DYN_CTL_ENABLE);
    }
    await sleep(QUIET_MS);
    for (const fd of fds.slice(1)) expect(fd.read()).to.equal(null);
    expect(h.stats().interrupts.slice(1)).to.deep.equal([1, 1, 1, 1]);
  });
});
