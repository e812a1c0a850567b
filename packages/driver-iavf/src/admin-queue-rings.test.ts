import type { GuestMemory } from '@emu/emudev';
import { expect } from 'chai';
import { AdminQueue, MAX_PENDING_REPLIES } from './admin-queue.js';
import { QLen, Reg } from './constants.js';
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

describe('AdminQueue bounds against a VF that rings and never listens', () => {
  const log = { lines: [] as string[] };
  const logger = {
    debug() {},
    info() {},
    warn: (_o: object, m?: string) => log.lines.push(m ?? ''),
    error: (_o: object, m?: string) => log.lines.push(m ?? ''),
  };

  it('keeps at most MAX_PENDING_REPLIES replies for a VF that posts no ARQ buffers, dropping and counting the rest', async () => {
    const memory = { read: async () => Buffer.alloc(32), write: async () => {} };
    const aq = new AdminQueue({
      memory: memory as unknown as GuestMemory,
      log: logger,
      onMessage: () => {},
      onPosted: () => {},
    });
    for (let i = 0; i < 1000; i++) aq.post(VIRTCHNL_OP.GET_STATS, 0, Buffer.alloc(64));
    await aq.idle();
    expect(aq.pendingReplies).to.equal(MAX_PENDING_REPLIES);
    expect(aq.stats.dropped).to.equal(1000 - MAX_PENDING_REPLIES);
    expect(log.lines.filter((l) => l.includes('replies beyond this are dropped'))).to.have.length(1);
  });

  it('runs one pass for doorbells rung while a pass waits, however many', async () => {
    let reads = 0;
    const memory = {
      read: async () => {
        reads++;
        throw new RangeError('outside guest memory');
      },
      write: async () => {},
    };
    const aq = new AdminQueue({
      memory: memory as unknown as GuestMemory,
      log: logger,
      onMessage: () => {},
      onPosted: () => {},
    });
    aq.write(Reg.VF_ATQBAL1, 0x1000);
    aq.write(Reg.VF_ATQLEN1, (QLen.ENABLE | 32) >>> 0);
    for (let i = 0; i < 10_000; i++) aq.write(Reg.VF_ATQT1, 1 + (i % 31));
    await aq.idle();
    expect(reads, 'descriptor reads (one per pass)').to.be.at.most(2);
  });

  it('takes an unaligned ring base as the hardware does: the low 6 bits ignored, said once, the register kept', async () => {
    const reads: bigint[] = [];
    const memory = {
      read: async (at: bigint) => {
        reads.push(at);
        return Buffer.alloc(32);
      },
      write: async () => {},
    };
    log.lines.length = 0;
    const aq = new AdminQueue({
      memory: memory as unknown as GuestMemory,
      log: logger,
      onMessage: () => {},
      onPosted: () => {},
    });
    aq.write(Reg.VF_ATQBAL1, 0x1000_0013);
    aq.write(Reg.VF_ATQBAH1, 0x2);
    aq.write(Reg.VF_ATQLEN1, (QLen.ENABLE | 32) >>> 0);
    aq.write(Reg.VF_ATQT1, 2);
    await aq.idle();
    expect(reads[0], 'descriptor 0').to.equal(0x2_1000_0000n);
    expect(reads).to.include(0x2_1000_0020n);
    expect(aq.read(Reg.VF_ATQBAL1), 'read back as written').to.equal(0x1000_0013);
    aq.write(Reg.VF_ARQBAL1, 0x7);
    expect(log.lines.filter((l) => l.includes('not 64-byte aligned'))).to.have.length(1);
  });
});
