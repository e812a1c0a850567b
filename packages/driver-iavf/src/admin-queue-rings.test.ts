import { expect } from 'chai';
import { Harness } from './testing/harness.js';
import { AQLEN_ENABLE, AQLEN_ERRORS, IAVF, VIRTCHNL_OP } from './testing/iavf-defs.js';
import { versionMsg } from './testing/virtchnl-msgs.js';

describe('SoftIavf admin queue rings against emu_iavf', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('holds replies while the ARQ is full (one slot kept empty) and delivers all of them, in order, once buffers are back', async () => {
    h = await Harness.start({});
    const vf = h.vf;
    await vf.probe();
    await vf.init();
    await vf.waitForEvent(1);
    vf.irqMode = false;
    const before = vf.history.length;
    const sentBefore = h.stats().adminQueue.sent;
    // 40 requests without cleaning the ARQ: 31 fit (ARQT = 31 leaves one slot empty), 9 must wait.
    for (let i = 0; i < 40; i++) await vf.sendToPf(VIRTCHNL_OP.VERSION, versionMsg());
    // The device owns [ARQH, ARQT): it stops with ARQH == ARQT, the slot at the tail left empty.
    expect(await vf.rd32(IAVF.VF_ARQH1), 'ARQH stops at ARQT').to.equal(await vf.rd32(IAVF.VF_ARQT1));
    expect(h.stats().adminQueue.sent - sentBefore, 'messages on the ARQ before buffers came back').to.equal(
      31,
    );
    expect((await vf.rd32(IAVF.VF_ARQLEN1)) & AQLEN_ERRORS, 'ARQLEN error bits').to.equal(0);
    const got = [];
    while (got.length < 40) {
      const msgs = await vf.receive(1000);
      if (msgs.length === 0) break;
      got.push(...msgs);
    }
    expect(got.map((m) => m.op)).to.deep.equal(new Array(40).fill(VIRTCHNL_OP.VERSION));
    for (const m of got) expect(m.payload).to.deep.equal(versionMsg(1, 1));
    expect(vf.history.length - before).to.equal(40);
    expect(h.stats().adminQueue.errors).to.equal(0);
  });

  for (const aqEntries of [4, 256]) {
    it(`brings up with ${aqEntries}-entry admin queues (the LEN register is honoured; ${aqEntries === 256 ? 'OpenBSD' : 'frequent wrap'})`, async () => {
      h = await Harness.start({}, { soft: { aqEntries } });
      const vf = h.vf;
      const up = await vf.bringUp();
      for (let i = 0; i < 2 * aqEntries; i++) await vf.getStats();
      expect(up.link.link).to.include({ up: true, speed: 10000 });
      expect(await vf.rd32(IAVF.VF_ARQLEN1)).to.equal((aqEntries | AQLEN_ENABLE) >>> 0);
      expect(await vf.rd32(IAVF.VF_ATQLEN1)).to.equal((aqEntries | AQLEN_ENABLE) >>> 0);
      expect(vf.steps.every((s) => s.status === 0)).to.equal(true);
      expect(vf.arqNotDone + vf.polledMessages + vf.arqEnableLost).to.equal(0);
    });
  }

  for (const base of [0x1_0000_0000n, 0x4000_0000n]) {
    it(`programs ATQBAH/ARQBAH and brings up with guest RAM at 0x${base.toString(16)}`, async () => {
      h = await Harness.start({}, { ramBase: base });
      const vf = h.vf;
      const up = await vf.bringUp();
      expect(up.link.link).to.include({ up: true });
      const mem = vf.adminQueueMemory!;
      expect(await vf.rd32(IAVF.VF_ATQBAH1)).to.equal(Number(mem.atqRing >> 32n));
      expect(await vf.rd32(IAVF.VF_ARQBAH1)).to.equal(Number(mem.arqRing >> 32n));
      expect(await vf.rd32(IAVF.VF_ATQBAL1)).to.equal(Number(mem.atqRing & 0xffffffffn));
      expect(h.dev.queueInfo(0)?.base).to.equal(vf.rings[0].rx);
    });
  }
});
