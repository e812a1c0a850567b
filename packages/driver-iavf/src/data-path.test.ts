/**
 * The data path end to end: SoftIavf (Linux's iavf_txrx.c in TypeScript) on one side of emu_iavf, a
 * TestNetwork on the other. Frames go guest → network and network → guest, with the descriptors, the
 * completions and the queue interrupts Linux relies on; with memfd guest RAM and with fd-less RAM (every
 * device access a DMA message).
 */
import { expect } from 'chai';
import { rawFrame } from './testing/frames.js';
import { Harness, type HarnessOptions, type IavfTestConfig } from './testing/harness.js';
import { IAVF_TX_DESC_SIZE, TX_CMD, TX_DESC, VF_CAP } from './testing/iavf-defs.js';
import { sleep } from './testing/soft-iavf/io.js';

const VF_MAC = '02:00:00:00:00:0a';
const PEER = '02:00:00:00:00:99';

const up = (config: IavfTestConfig = {}, opts: HarnessOptions = {}) =>
  Harness.linked({ mac: VF_MAC, ...config }, opts);

/** qword1 of TX descriptor i of queue q, as the guest sees it now. */
function txQw1(h: Harness, q: number, i: number): bigint {
  return h.ram.u64(h.vf.rings[q].tx + BigInt(i * IAVF_TX_DESC_SIZE) + 8n);
}

for (const ram of ['shared', 'plain'] as const) {
  describe(`data path, ${ram === 'shared' ? 'memfd guest RAM' : 'fd-less guest RAM (DMA messages)'}`, () => {
    let h: Harness | undefined;
    afterEach(async () => {
      await h?.close();
      h = undefined;
    });

    it('connects the device to the network once, and detaches it when the device goes', async () => {
      const s = await up({}, { ram });
      h = s.h;
      expect(s.net.connects).to.equal(1);
      expect(h.ram.shared).to.equal(ram === 'shared');
      expect(h.dev.memTable().map((r) => r.direct)).to.deep.equal([ram === 'shared']);
      await h.close();
      h = undefined;
      expect(s.net.detached).to.equal(true);
      expect(() => s.net.inject(rawFrame(VF_MAC, PEER, 60))).to.throw(/no device/);
    });

    it('a frame the guest transmits reaches the network byte for byte, and its RS descriptor is marked done (DTYPE 0xF)', async () => {
      const s = await up({}, { ram });
      h = s.h;
      const frame = rawFrame(PEER, VF_MAC, 200, 1);
      const posted = await s.vf.transmit(frame);
      expect(posted).to.deep.include({ queue: 0, first: 0, rs: 0, descriptors: 1 });
      expect(await s.vf.waitTxDone(0)).to.equal(1);
      const [out] = await s.net.waitSent(1);
      expect(Buffer.from(out).equals(frame), 'frame on the wire').to.equal(true);
      // DTYPE 0xF in qword1; the rest of qword1 as the driver wrote it (EOP|RS|ICRC, 200 bytes).
      const qw1 = txQw1(h, 0, 0);
      expect(Number(qw1 & TX_DESC.DTYPE_MASK)).to.equal(TX_DESC.DTYPE_DESC_DONE);
      expect(Number((qw1 >> TX_DESC.CMD_SHIFT) & 0x3ffn)).to.equal(TX_CMD.EOP | TX_CMD.RS | TX_CMD.ICRC);
      expect(Number((qw1 >> TX_DESC.BUF_SZ_SHIFT) & 0x3fffn)).to.equal(200);
      expect(h.device.dataPath.tx[0]).to.deep.equal({ packets: 1, bytes: 200, drops: 0, errors: 0 });
      if (ram === 'plain') expect(h.dev.stats().dmaReadBytes).to.be.greaterThan(200);
    });

    it('sends frames of 60 to 1514 bytes in the order they were posted, several per tail write (xmit_more)', async () => {
      const s = await up({}, { ram });
      h = s.h;
      const frames = [60, 61, 64, 128, 255, 1000, 1513, 1514].map((n, i) => rawFrame(PEER, VF_MAC, n, i));
      for (const [i, f] of frames.entries())
        await s.vf.transmit(f, { kick: i % 3 === 2 || i === frames.length - 1 });
      await s.vf.waitTxDone(0);
      const out = await s.net.waitSent(frames.length);
      expect(out.map((f) => Buffer.from(f).toString('hex'))).to.deep.equal(
        frames.map((f) => f.toString('hex')),
      );
      expect(await s.net.quietFor(20), 'frames sent after the last one').to.equal(0);
    });

    it('a frame injected from the network lands in an RX buffer with DD|EOF and its length', async () => {
      const s = await up({}, { ram });
      h = s.h;
      const frame = rawFrame(VF_MAC, PEER, 300, 2);
      s.net.inject(frame);
      const [got, ...more] = await s.vf.waitFrames(0, 1);
      expect(more).to.deep.equal([]);
      expect(got.data.equals(frame), 'frame in the RX buffer').to.equal(true);
      expect(got.descriptors).to.have.length(1);
      expect(got.descriptors[0]).to.deep.include({ index: 0, dd: true, eof: true, length: 300, errors: 0 });
      // A frame RSS cannot hash (not IP) has no hash: FLTSTAT 0, and it goes to queue 0.
      expect(got.descriptors[0].fltstat).to.equal(0);
      expect(got.hash).to.equal(undefined);
      // The bytes are where descriptor 0's pkt_addr pointed, and nothing spilled past them.
      const buf = s.vf.rings[0].rxBuffers!;
      expect(h.ram.read(buf, 300).equals(frame)).to.equal(true);
      expect(h.ram.read(buf + 300n, 64).every((b) => b === 0)).to.equal(true);
      for (let q = 1; q < 4; q++) expect(await s.vf.receiveFrames(q), `queue ${q}`).to.deep.equal([]);
      expect(h.device.dataPath.rx[0]).to.deep.equal({ packets: 1, bytes: 300, drops: 0, errors: 0 });
      // The buffer went back: the tail moved on by one.
      expect(s.vf.rxRingState(0)).to.deep.equal({ ntc: 1, ntu: 0 });
    });

    it("fires the queue's vector when armed, holds the cause while masked, and fires it at the NAPI re-arm (0x19)", async () => {
      const s = await up({}, { ram });
      h = s.h;
      const v = s.vf.queueVector(0);
      expect(v).to.equal(1);
      expect(s.vf.queueVector(0, 'tx')).to.equal(1);
      expect(s.vf.takeIrqs(v), 'queue interrupts during bring-up').to.equal(0);

      // Armed by iavf_irq_enable_queues: the TX completion fires it; automask clears INTENA.
      await s.vf.transmit(rawFrame(PEER, VF_MAC, 100));
      expect(await s.vf.waitIrq(v, 1000), 'TX completion interrupt').to.equal(true);
      expect(s.vf.cleanTx(0)).to.equal(1);

      // Not re-armed: a received frame is written back, but the vector stays quiet.
      s.net.inject(rawFrame(VF_MAC, PEER, 100));
      const early = await s.vf.waitFrames(0, 1);
      expect(early).to.have.length(1);
      await sleep(30);
      expect(s.vf.takeIrqs(v), 'interrupt while masked').to.equal(0);

      // The NAPI re-arm fires the held cause at once.
      await s.vf.armVector(v);
      expect(await s.vf.waitIrq(v, 1000), 'held cause at re-arm').to.equal(true);

      // Re-armed again, as NAPI does: the next frame interrupts, and the poll finds it.
      await s.vf.armVector(v);
      s.net.inject(rawFrame(VF_MAC, PEER, 120, 3));
      const poll = await s.vf.napiPoll(v, 1000);
      expect(poll.fired).to.equal(true);
      expect(poll.frames.map((f) => f.data.length)).to.deep.equal([120]);

      // Other queue vectors never fired; the device counted what it fired on vector 1.
      for (let w = 2; w <= 4; w++) expect(s.vf.takeIrqs(w), `vector ${w}`).to.equal(0);
      expect(h.stats().interrupts[v]).to.equal(3);
    });

    it('answers VFINT_DYN_CTLN1 re-arms on the socket thread (hot registers), and they still fire held causes', async () => {
      const s = await up({}, { ram });
      h = s.h;
      const v = s.vf.queueVector(0);
      const trapped = () => s.h.dev.stats().trapped;
      const before = trapped();
      for (let i = 0; i < 50; i++) await s.vf.armVector(v);
      expect(trapped() - before, 'every re-arm answered by native code').to.equal(50);
      await s.vf.transmit(rawFrame(PEER, VF_MAC, 100));
      expect(await s.vf.waitIrq(v, 1000)).to.equal(true);
      s.vf.cleanTx(0);
      s.net.inject(rawFrame(VF_MAC, PEER, 100));
      await s.vf.waitFrames(0, 1);
      expect(s.vf.takeIrqs(v), 'automasked').to.equal(0);
      const rearm = trapped();
      await s.vf.armVector(v);
      expect(await s.vf.waitIrq(v, 1000), 'held cause fired by the native re-arm').to.equal(true);
      expect(trapped() - rearm).to.equal(1);
    });

    it('with WB_ON_ITR (0x40000018, NAPI polling on) writes descriptors back at once without an interrupt; the re-arm fires the held cause', async () => {
      const s = await up({}, { ram });
      h = s.h;
      expect(s.vf.vfRes!.vfCapFlags & VF_CAP.WB_ON_ITR, 'WB_ON_ITR granted').to.equal(VF_CAP.WB_ON_ITR);
      const v = s.vf.queueVector(0);
      s.net.inject(rawFrame(VF_MAC, PEER, 100, 1));
      expect(await s.vf.waitIrq(v, 1000)).to.equal(true);
      await s.vf.receiveFrames(0);
      // Out of budget: iavf_enable_wb_on_itr instead of a re-arm; polling goes on.
      await s.vf.enableWbOnItr(v);
      s.net.inject(rawFrame(VF_MAC, PEER, 110, 2));
      s.net.inject(rawFrame(VF_MAC, PEER, 120, 3));
      const polled = await s.vf.waitFrames(0, 2);
      expect(polled.map((f) => f.data.length)).to.deep.equal([110, 120]);
      await sleep(30);
      expect(s.vf.takeIrqs(v), 'interrupts under WB_ON_ITR').to.equal(0);
      // NAPI completes and re-arms: the cause held meanwhile fires at once.
      await s.vf.armVector(v);
      expect(await s.vf.waitIrq(v, 1000), 'held cause at re-arm').to.equal(true);
    });

    it('interrupts each queue on its own vector (the IRQ map), TX and RX', async () => {
      const s = await up({}, { ram });
      h = s.h;
      for (let q = 0; q < 4; q++) {
        const v = s.vf.queueVector(q);
        expect(v).to.equal(q + 1);
        await s.vf.transmit(rawFrame(PEER, VF_MAC, 64 + q), { queue: q });
        expect(await s.vf.waitIrq(v, 1000), `TX queue ${q} on vector ${v}`).to.equal(true);
        await s.vf.waitTxDone(q);
        await s.vf.armVector(v);
      }
      for (let v = 1; v <= 4; v++) expect(s.vf.takeIrqs(v), `vector ${v} fired twice`).to.equal(0);
      expect((await s.net.waitSent(4)).map((f) => f.length)).to.deep.equal([64, 65, 66, 67]);
      expect(h.device.dataPath.tx.slice(0, 4).map((t) => t.packets)).to.deep.equal([1, 1, 1, 1]);
    });

    it('a frame in 3 TX buffers goes out as one frame; only its last descriptor has EOP|RS and is marked done', async () => {
      const s = await up({}, { ram });
      h = s.h;
      const frame = rawFrame(PEER, VF_MAC, 1514, 4);
      const posted = await s.vf.transmit(frame, { buffers: [100, 1000, 414] });
      expect(posted).to.deep.include({ first: 0, rs: 2, descriptors: 3 });
      await s.vf.waitTxDone(0);
      const out = await s.net.waitSent(1);
      expect(out).to.have.length(1);
      expect(Buffer.from(out[0]).equals(frame)).to.equal(true);
      for (const [i, size, cmd] of [
        [0, 100, TX_CMD.ICRC],
        [1, 1000, TX_CMD.ICRC],
      ]) {
        const qw1 = txQw1(h, 0, i);
        expect(Number(qw1 & TX_DESC.DTYPE_MASK), `descriptor ${i} DTYPE`).to.equal(TX_DESC.DTYPE_DATA);
        expect(Number((qw1 >> TX_DESC.CMD_SHIFT) & 0x3ffn)).to.equal(cmd);
        expect(Number((qw1 >> TX_DESC.BUF_SZ_SHIFT) & 0x3fffn)).to.equal(size);
      }
      expect(Number(txQw1(h, 0, 2) & TX_DESC.DTYPE_MASK)).to.equal(TX_DESC.DTYPE_DESC_DONE);
      expect(h.device.dataPath.tx[0]).to.deep.include({ packets: 1, bytes: 1514 });
    });

    it('a 4000-byte frame fills two 2 KiB RX buffers: DD on both, EOF and the remainder on the last', async () => {
      const s = await up({ mtu: 9000 }, { ram, soft: { mtu: 9000, rxBufLen: 2048 } });
      h = s.h;
      expect(s.vf.rxBufLen).to.equal(2048);
      expect(s.vf.maxFrame).to.be.at.least(4000);
      const frame = rawFrame(VF_MAC, PEER, 4000, 5);
      s.net.inject(frame);
      const [got] = await s.vf.waitFrames(0, 1);
      expect(got.data.equals(frame)).to.equal(true);
      expect(got.descriptors.map((d) => [d.index, d.dd, d.eof, d.length])).to.deep.equal([
        [0, true, false, 2048],
        [1, true, true, 4000 - 2048],
      ]);
      const bufs = s.vf.rings[0].rxBuffers!;
      expect(h.ram.read(bufs, 2048).equals(frame.subarray(0, 2048)), 'first buffer').to.equal(true);
      expect(h.ram.read(bufs + 2048n, 1952).equals(frame.subarray(2048)), 'second buffer').to.equal(true);
      expect(h.device.dataPath.rx[0]).to.deep.include({ packets: 1, bytes: 4000 });
    });

    it('keeps frames in order across RX and TX ring wrap-around (64-entry rings, 200 frames each way)', async () => {
      const s = await up({ queues: 1 }, { ram, soft: { ringLen: 64 } });
      h = s.h;
      const rxIn: Buffer[] = [];
      const rxOut: Buffer[] = [];
      for (let batch = 0; batch < 10; batch++) {
        for (let i = 0; i < 20; i++) {
          const f = rawFrame(VF_MAC, PEER, 60 + ((batch * 20 + i) % 500), batch * 20 + i);
          rxIn.push(f);
          s.net.inject(f);
        }
        rxOut.push(...(await s.vf.waitFrames(0, 20)).map((f) => f.data));
      }
      expect(rxOut.length).to.equal(200);
      expect(
        rxOut.every((f, i) => f.equals(rxIn[i])),
        'RX order and content',
      ).to.equal(true);

      const txIn: Buffer[] = [];
      for (let batch = 0; batch < 10; batch++) {
        for (let i = 0; i < 20; i++) {
          const f = rawFrame(PEER, VF_MAC, 60 + ((batch * 20 + i) % 700), 1000 + batch * 20 + i);
          txIn.push(f);
          await s.vf.transmit(f, { kick: i === 19 });
        }
        await s.vf.waitTxDone(0);
      }
      const txOut = await s.net.waitSent(200);
      expect(
        txOut.every((f, i) => Buffer.from(f).equals(txIn[i])),
        'TX order and content',
      ).to.equal(true);
      expect(h.device.dataPath.rx[0].packets).to.equal(200);
      expect(h.device.dataPath.tx[0].packets).to.equal(200);
    });
  });
}
