/**
 * The tail registers in shared memory, through a real vfio-user client: BAR0 reports two mmap-able
 * sparse areas backed by one fd; a TX tail written straight into the client's mapping (as a guest's
 * store would land) is noticed by the watcher thread and the frame goes out; REGION_READ / WRITE see
 * the same bytes; the watcher runs only while TX queues are enabled and stops at reset and close. And
 * which engine runs: native for memfd RAM, TypeScript for fd-less RAM.
 */
import { ftruncateSync } from 'node:fs';
import { closeFd, fileInfo, type MappedMemory, Seal } from '@emu/native';
import { PciRegion } from '@emu/vfio-user';
import { expect } from 'chai';
import { Reg } from '../constants.js';
import { rawFrame } from '../testing/frames.js';
import { Harness, type HarnessOptions } from '../testing/harness.js';
import { sleep } from '../testing/soft-iavf/io.js';

const VF_MAC = '02:00:00:00:00:0a';
const PEER = '02:00:00:00:00:99';

const up = (opts: HarnessOptions = {}) => Harness.linked({ mac: VF_MAC, queues: 4 }, opts);

/** The client's mappings of BAR0's areas, as QEMU would put them into the guest. */
async function mapTails(h: Harness): Promise<{ words: (offset: number) => Uint32Array; unmap(): void }> {
  const info = await h.client.getRegionInfo(PciRegion.BAR0);
  expect(info.mmappable).to.equal(true);
  expect(info.areas).to.deep.equal([
    { offset: 0n, size: 0x1000n },
    { offset: 0x2000n, size: 0x1000n },
  ]);
  const maps: Array<{ offset: bigint; memory: MappedMemory }> = h.client.mapRegion(info);
  return {
    words: (offset) => {
      const m = maps.find((x) => BigInt(offset) >= x.offset && BigInt(offset) < x.offset + 0x1000n)!;
      return new Uint32Array(m.memory.buffer, offset - Number(m.offset), 1);
    },
    unmap: () => {
      for (const m of maps) m.memory.unmap();
    },
  };
}

describe('BAR0 tail registers in shared memory', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('hands the client a sealed page: it cannot shrink it under the device (SIGBUS) nor grow or reseal it', async () => {
    const s = await up();
    h = s.h;
    const info = await h.client.getRegionInfo(PciRegion.BAR0);
    const fd = info.fd!;
    try {
      expect(fileInfo(fd).seals).to.equal(Seal.SHRINK | Seal.GROW | Seal.SEAL);
      expect(() => ftruncateSync(fd, 0)).to.throw(/EPERM/);
      expect(() => ftruncateSync(fd, 0x10000)).to.throw(/EPERM/);
    } finally {
      closeFd(fd);
    }
    // Still serving, tails and all.
    await h.vf.transmit(rawFrame(PEER, VF_MAC, 100, 9));
    expect(await h.vf.waitTxDone(0)).to.equal(1);
  });

  it('a TX tail stored into the mapped page (no message) sends the frames, via the watcher thread', async () => {
    const s = await up();
    h = s.h;
    const tails = await mapTails(h);
    try {
      expect(h.device.dataPath.sharedTails).to.deep.equal({ shared: true, watching: true });
      const frames = [
        rawFrame(PEER, VF_MAC, 100, 1),
        rawFrame(PEER, VF_MAC, 1514, 2),
        rawFrame(PEER, VF_MAC, 60, 3),
      ];
      const writes = h.stats().unknownRegisterAccesses;
      for (const f of frames) await h.vf.transmit(f, { queue: 2, kick: false });
      const before = h.dev.stats().commands.REGION_WRITE ?? 0;
      tails.words(Reg.QTX_TAIL1(2))[0] = h.vf.txRingState(2).ntu;
      const out = await s.net.waitSent(3);
      expect(out.map((f) => Buffer.from(f).toString('hex'))).to.deep.equal(
        frames.map((f) => f.toString('hex')),
      );
      expect(await h.vf.waitTxDone(2)).to.equal(3);
      expect(h.dev.stats().commands.REGION_WRITE ?? 0, 'no REGION_WRITE for the doorbell').to.equal(before);
      expect(h.device.dataPath.engineStats.sharedDoorbells).to.be.greaterThan(0);
      expect(h.device.dataPath.tx[2]).to.deep.include({ packets: 3, errors: 0 });
      expect(h.stats().unknownRegisterAccesses).to.equal(writes);
      // The same bytes by message: QTX_TAIL1(2) reads back what the "guest" stored.
      expect(await h.vf.rd32(Reg.QTX_TAIL1(2))).to.equal(h.vf.txRingState(2).ntu);
    } finally {
      tails.unmap();
    }
  });

  it('REGION_READ/WRITE and the mapping are the same memory: RX tails, VFINT_ITRN1, unclaimed words', async () => {
    const s = await up();
    h = s.h;
    const tails = await mapTails(h);
    try {
      // The RX tail the bring-up wrote by message is in the page.
      expect(tails.words(Reg.QRX_TAIL1(0))[0]).to.equal(h.vf.rxRingState(0).ntu);
      await h.vf.wr32(Reg.VFINT_ITRN1(1, 3), 0x7a);
      expect(tails.words(Reg.VFINT_ITRN1(1, 3))[0]).to.equal(0x7a);
      tails.words(Reg.VFINT_ITRN1(2, 0))[0] = 0x123;
      expect(await h.vf.rd32(Reg.VFINT_ITRN1(2, 0))).to.equal(0x123);
      tails.words(0x2ffc)[0] = 0xdeadbeef;
      expect(await h.vf.rd32(0x2ffc)).to.equal(0xdeadbeef);
      // An access straddling an area's edge: part from the page, part from the trapped registers.
      const both = await h.client.regionRead(PciRegion.BAR0, 0x2ffc, 8);
      expect(both.readUInt32LE(0)).to.equal(0xdeadbeef);
      // Frames still arrive with RX tails the guest stores into the page.
      s.net.inject(rawFrame(VF_MAC, PEER, 200, 4));
      const got = await h.vf.waitFrames(0, 1);
      expect(got[0].data.length).to.equal(200);
      tails.words(Reg.QRX_TAIL1(0))[0] = h.vf.rxRingState(0).ntu; // refill as a guest store
      expect(h.device.dataPath.rxTail[0]).to.equal(h.vf.rxRingState(0).ntu);
    } finally {
      tails.unmap();
    }
  });

  it("the interrupt throttle reads VFINT_ITRN1 from the page, where the guest's stores land", async () => {
    const { h } = await up();
    const tails = await mapTails(h);
    try {
      // What iavf_configure_msix writes for queue vector 1's RX ITR (ITR index 0): 25 × 2 µs = 50 µs.
      tails.words(Reg.VFINT_ITRN1(0, 0))[0] = 25;
      expect(h.device.vectors.readItr(1, 0)).to.equal(25);
      // An ITR change by a DYN_CTLN1 INTERVAL write (trapped) lands in the page too.
      await h.vf.wr32(Reg.VFINT_DYN_CTLN1(0), 0x1 | (1 << 3) | (60 << 5));
      expect(tails.words(Reg.VFINT_ITRN1(1, 0))[0]).to.equal(60);
    } finally {
      tails.unmap();
      await h.close();
    }
  });

  it('the watcher runs while TX queues are enabled; a VF reset stops it and clears the page; close stops it', async () => {
    const s = await up();
    h = s.h;
    const dp = h.device.dataPath;
    expect(dp.sharedTails.watching).to.equal(true);
    await h.vf.wr32(Reg.VFINT_ITRN1(0, 0), 5);
    await h.vf.resetVf();
    expect(dp.sharedTails.watching).to.equal(false);
    expect(await h.vf.rd32(Reg.VFINT_ITRN1(0, 0))).to.equal(0);
    expect(await h.vf.rd32(Reg.QRX_TAIL1(0))).to.equal(0);
    await h.vf.bringUp();
    expect(dp.sharedTails.watching).to.equal(true);
    await h.vf.transmit(rawFrame(PEER, VF_MAC, 64, 5));
    await s.net.waitSent(1);
    h.device.close();
    expect(dp.sharedTails.watching).to.equal(false);
  });

  it('DMA_UNMAP of guest RAM under traffic: tails stored after it and frames from the network are dropped and counted, the device keeps answering', async () => {
    const s = await up();
    h = s.h;
    const tails = await mapTails(h);
    try {
      const dp = h.device.dataPath;
      for (let i = 0; i < 40; i++) await h.vf.transmit(rawFrame(PEER, VF_MAC, 600, i), { kick: false });
      tails.words(Reg.QTX_TAIL1(0))[0] = h.vf.txRingState(0).ntu;
      // The RAM goes while the watcher may be waking for that tail; then more doorbells and frames.
      await h.ram.detach();
      expect(h.dev.memTable()).to.deep.equal([]);
      const sent = s.net.take().length;
      const txErrors = dp.tx[1].errors;
      for (let i = 0; i < 5; i++)
        await h.vf.transmit(rawFrame(PEER, VF_MAC, 100, i), { queue: 1, kick: false });
      tails.words(Reg.QTX_TAIL1(1))[0] = h.vf.txRingState(1).ntu;
      for (let i = 0; i < 10; i++) s.net.inject(rawFrame(VF_MAC, PEER, 100, i));
      await dp.settled();
      for (let i = 0; i < 100 && dp.tx[1].errors === txErrors; i++) await sleep(5);
      expect(dp.tx[1].errors, 'TX ring unreachable: counted').to.be.greaterThan(txErrors);
      expect(dp.tx[1].packets).to.equal(0);
      expect(dp.rx[0]).to.include({ errors: 10, drops: 10 });
      expect(sent + s.net.take().length, 'frames out: at most the 40 from before the unmap').to.be.at.most(
        40,
      );
      // Still alive: registers answer, the watcher still runs, and a reset brings it back to VFACTIVE.
      expect(dp.sharedTails.watching).to.equal(true);
      expect((await h.vf.rd32(Reg.VFGEN_RSTAT)) & 3).to.equal(2);
      await h.vf.wr32(Reg.VFGEN_RSTAT, 0); // read-only: ignored
      expect(h.dev.state).to.equal('started');
    } finally {
      tails.unmap();
    }
  });

  for (const ram of ['shared', 'plain'] as const) {
    it(`rings are walked by the ${ram === 'shared' ? 'native' : 'TypeScript'} engine with ${ram} guest RAM`, async () => {
      const s = await up({ ram });
      h = s.h;
      await h.vf.transmit(rawFrame(PEER, VF_MAC, 300, 6));
      await h.vf.waitTxDone(0);
      s.net.inject(rawFrame(VF_MAC, PEER, 300, 7));
      await h.vf.waitFrames(0, 1);
      await sleep(5);
      const e = h.device.dataPath.engineStats;
      if (ram === 'shared') {
        expect(e.directTx).to.be.greaterThan(0);
        expect(e.directRx).to.equal(1);
        expect(e.stagedTx + e.stagedRx).to.equal(0);
      } else {
        expect(e.directTx + e.directRx).to.equal(0);
        expect(e.stagedTx).to.be.greaterThan(0);
        expect(e.stagedRx).to.equal(1);
      }
    });
  }
});
