/**
 * The RX write-back formats a VF can ask for. Linux 6.12 never asks (legacy 32-byte descriptors); a
 * VF that negotiates RX_FLEX_DESC, as DPDK's iavf does, learns the RXDIDs with GET_SUPPORTED_RXDIDS
 * and picks one per queue in rxq_info.rxdid: LEGACY_1 (32-byte) or LEGACY_0 (16-byte, qwords 0 and 1).
 * SoftIavf reads the ring at the size it asked for, so a device writing the other size fails here.
 */
import { expect } from 'chai';
import { ipv4TcpFrame, rawFrame } from './testing/frames.js';
import { Harness, type HarnessOptions } from './testing/harness.js';
import {
  LINUX_6_12_CAPS,
  RX_WB,
  VF_CAP,
  VIRTCHNL_OP,
  VIRTCHNL_RXDID,
  VIRTCHNL_STATUS,
} from './testing/iavf-defs.js';
import { vsiQueueConfigMsg } from './testing/virtchnl-msgs.js';

const VF_MAC = '02:00:00:00:00:0a';
const PEER = '02:00:00:00:00:99';
const FLEX_CAPS = (LINUX_6_12_CAPS | VF_CAP.RX_FLEX_DESC) >>> 0;

const up = (rxdid: number | undefined, caps: number, opts: HarnessOptions = {}) =>
  Harness.linked(
    { mac: VF_MAC, queues: 2, mtu: 9000 },
    { ...opts, soft: { rxdid, rxBufLen: 1024, ...opts.soft } },
    { caps },
  );

for (const ram of ['shared', 'plain'] as const) {
  describe(`RX descriptor formats, ${ram === 'shared' ? 'memfd guest RAM (native engine)' : 'fd-less guest RAM (TypeScript engine)'}`, () => {
    let h: Harness | undefined;
    afterEach(async () => {
      await h?.close();
      h = undefined;
    });

    it('a VF asking for RX_FLEX_DESC gets it, and GET_SUPPORTED_RXDIDS answers the legacy RXDIDs 0 and 1', async () => {
      const s = await up(VIRTCHNL_RXDID.LEGACY_1, FLEX_CAPS, { ram });
      h = s.h;
      expect(s.vf.vfRes!.vfCapFlags & VF_CAP.RX_FLEX_DESC).to.equal(VF_CAP.RX_FLEX_DESC);
      expect(s.vf.supportedRxdids).to.equal(0b11n);
      expect(h.device.vf.config.rx.map((r) => r?.descSize)).to.deep.equal([32, 32]);
    });

    it('RXDID 0: frames land in 16-byte descriptors, one or several buffers each, with the RSS hash', async () => {
      const s = await up(VIRTCHNL_RXDID.LEGACY_0, FLEX_CAPS, { ram });
      h = s.h;
      expect(h.device.vf.config.rx.map((r) => r?.descSize)).to.deep.equal([16, 16]);
      const rx = s.vf.rings[0].rx;
      const buffer1 = h.ram.u64(rx + 16n);
      // A 1-buffer frame fills descriptor 0 and nothing past its 16 bytes: descriptor 1 keeps its
      // buffer address and has no DD (a 32-byte write-back would have zeroed both).
      await s.vf.setRssLut(Buffer.alloc(64)); // every flow to queue 0
      const small = rawFrame(VF_MAC, PEER, 300, 1);
      s.net.inject(small);
      const [first] = await s.vf.waitFrames(0, 1);
      expect(first.data.equals(small)).to.equal(true);
      expect(first.descriptors.map((d) => d.index)).to.deep.equal([0]);
      expect(h.ram.u64(rx + 16n), 'descriptor 1 pkt_addr').to.equal(buffer1);
      expect(h.ram.u64(rx + 24n) & 1n, 'descriptor 1 DD').to.equal(0n);
      // A 2500-byte TCP frame over three 1024-byte buffers, DD on each, EOF and the hash on the last.
      const big = ipv4TcpFrame({
        dstMac: VF_MAC,
        srcMac: PEER,
        srcIp: '10.0.0.2',
        dstIp: '10.0.0.1',
        sport: 40000,
        dport: 5201,
        payload: Buffer.alloc(2500 - 54, 7),
      });
      s.net.inject(big);
      const [second] = await s.vf.waitFrames(0, 1);
      expect(second.data.equals(big)).to.equal(true);
      expect(second.descriptors.map((d) => [d.index, d.length, d.eof])).to.deep.equal([
        [1, 1024, false],
        [2, 1024, false],
        [3, 452, true],
      ]);
      expect(second.hash, 'RSS hash (FLTSTAT 3)').to.be.a('number');
      // PTYPE and checksum status on the EOF descriptor alone.
      expect(second.descriptors.map((d) => [d.ptype, (d.qw1 & RX_WB.L3L4P) !== 0n])).to.deep.equal([
        [0, false],
        [0, false],
        [26, true],
      ]);
      expect(second.checksum).to.equal('unnecessary');
      const dp = h.device.dataPath;
      expect(dp.rx[0]).to.include({ packets: 2, errors: 0, drops: 0 });
      if (ram === 'shared') expect(dp.engineStats.directRx).to.equal(2);
      else expect(dp.engineStats.stagedRx).to.equal(2);
    });

    it('32-byte write-backs carry the packet type and checksum status: a good TCP frame trusted, a bad one flagged but delivered', async () => {
      const s = await up(undefined, LINUX_6_12_CAPS, { ram });
      h = s.h;
      await s.vf.setRssLut(Buffer.alloc(64));
      const tcp = (payload: Buffer) =>
        ipv4TcpFrame({
          dstMac: VF_MAC,
          srcMac: PEER,
          srcIp: '10.0.0.2',
          dstIp: '10.0.0.1',
          sport: 1,
          dport: 2,
          payload,
        });
      const good = tcp(Buffer.alloc(3000, 3)); // three 1024-byte buffers
      const bad = tcp(Buffer.alloc(100, 4));
      bad[bad.length - 1] ^= 1;
      s.net.inject(good);
      s.net.inject(bad);
      s.net.inject(rawFrame(VF_MAC, PEER, 80, 5));
      const got = await s.vf.waitFrames(0, 3);
      expect(got.map((f) => [f.ptype, f.checksum])).to.deep.equal([
        [26, 'unnecessary'],
        [26, 'error'],
        [1, 'none'],
      ]);
      expect(got[0].descriptors.map((d) => d.ptype)).to.deep.equal([0, 0, 26]);
      expect(got[1].descriptors[0].errors).to.equal(RX_WB.ERROR_L4E);
      expect(
        got[1].data.equals(bad),
        'a bad sum is the stack’s to judge: the frame is delivered as it came',
      ).to.equal(true);
      expect(h.device.dataPath.rx[0]).to.include({ packets: 3, errors: 0, drops: 0 });
    });

    it('RXDID 0 over a whole ring: 600 frames wrap a 64-entry ring of 16-byte descriptors in order', async () => {
      const s = await up(VIRTCHNL_RXDID.LEGACY_0, FLEX_CAPS, { ram, soft: { ringLen: 64 } });
      h = s.h;
      const frames = Array.from({ length: 600 }, (_, i) => rawFrame(VF_MAC, PEER, 60 + (i % 1400), i));
      const got: Buffer[] = [];
      for (let i = 0; i < frames.length; i += 20) {
        for (const f of frames.slice(i, i + 20)) s.net.inject(f);
        for (const f of await s.vf.waitFrames(0, 20)) got.push(f.data);
      }
      expect(got.map((f) => f.toString('hex'))).to.deep.equal(frames.map((f) => f.toString('hex')));
    });
  });
}

describe('RX descriptor formats: what the PF accepts', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('without RX_FLEX_DESC, rxdid means nothing (Linux sends 0): 32-byte descriptors, and GET_SUPPORTED_RXDIDS is refused', async () => {
    const s = await up(VIRTCHNL_RXDID.LEGACY_0, LINUX_6_12_CAPS);
    h = s.h;
    expect(s.vf.rxDescSize).to.equal(32);
    expect(s.vf.supportedRxdids).to.equal(undefined);
    expect(h.device.vf.config.rx.map((r) => r?.descSize)).to.deep.equal([32, 32]);
    const f = rawFrame(VF_MAC, PEER, 200, 1);
    s.net.inject(f);
    const [got] = await s.vf.waitFrames(0, 1);
    expect(got.data.equals(f)).to.equal(true);
    const errors = h.virtchnlErrors();
    const reply = await s.vf.request(VIRTCHNL_OP.GET_SUPPORTED_RXDIDS);
    expect(reply.status).to.equal(VIRTCHNL_STATUS.ERR_PARAM);
    expect(h.virtchnlErrors()).to.equal(errors + 1);
  });

  it("refuses a flex RXDID (22, DPDK's default) as ice refuses one it does not support, and keeps the queues as they were", async () => {
    const s = await up(VIRTCHNL_RXDID.LEGACY_1, FLEX_CAPS);
    h = s.h;
    const before = h.device.vf.config.rx;
    const pairs = s.vf.queuePairInfo();
    pairs[1].rxq.rxdid = VIRTCHNL_RXDID.COMMS_OVS_1;
    const reply = await s.vf.request(VIRTCHNL_OP.CONFIG_VSI_QUEUES, vsiQueueConfigMsg(s.vf.vsiId, pairs));
    expect(reply.status).to.equal(VIRTCHNL_STATUS.ERR_PARAM);
    expect(h.device.vf.config.rx).to.equal(before);
    // Traffic still flows on the rings as configured.
    const f = rawFrame(VF_MAC, PEER, 100, 2);
    s.net.inject(f);
    const [got] = await s.vf.waitFrames(0, 1);
    expect(got.data.equals(f)).to.equal(true);
  });

  it('checks a 16-byte ring at 16 bytes per entry: one ending where guest memory ends is taken, read as 32-byte it is refused', async () => {
    const s = await up(VIRTCHNL_RXDID.LEGACY_1, FLEX_CAPS);
    h = s.h;
    await s.vf.disableQueues();
    const ringLen = 64;
    const atEnd = h.ram.end - BigInt(ringLen * 16);
    const pair = (rxdid: number) => [
      {
        txq: { queueId: 0, ringLen, dmaRingAddr: s.vf.rings[0].tx },
        rxq: { queueId: 0, ringLen, databufferSize: 1024, maxPktSize: 1526, rxdid, dmaRingAddr: atEnd },
      },
    ];
    const config = (rxdid: number) =>
      s.vf.request(VIRTCHNL_OP.CONFIG_VSI_QUEUES, vsiQueueConfigMsg(s.vf.vsiId, pair(rxdid)));
    expect((await config(VIRTCHNL_RXDID.LEGACY_1)).status, 'as 32-byte').to.equal(VIRTCHNL_STATUS.ERR_PARAM);
    expect((await config(VIRTCHNL_RXDID.LEGACY_0)).status, 'as 16-byte').to.equal(VIRTCHNL_STATUS.SUCCESS);
    expect(h.device.vf.config.rx[0]).to.include({ ring: atEnd, length: ringLen, descSize: 16 });
  });
});
