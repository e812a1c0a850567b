/**
 * Receive-side scaling end to end, and the per-queue counters: with 4 queue pairs enabled, frames from the
 * network are spread over the RX queues by the Toeplitz hash of the key and LUT the guest set, the hash
 * is in the write-back (FLTSTAT 3), and device.dataPath counts each queue's traffic.
 */
import { expect } from 'chai';
import { ipv4TcpFrame, rawFrame, rssTuple, toeplitzReference } from './testing/frames.js';
import { Harness } from './testing/harness.js';
import { RX_WB } from './testing/iavf-defs.js';
import { MS_RSS_KEY, msIpv4Frames } from './testing/rss-vectors.js';
import type { RxFrame } from './testing/soft-iavf/descriptors.js';
import type { TestNetwork } from './testing/test-network.js';

const VF_MAC = '02:00:00:00:00:0a';
const PEER = '02:00:00:00:00:99';
const VF_IP = '10.0.0.2';

interface Flow {
  srcIp: string;
  sport: number;
  dstIp: string;
  dport: number;
}

const flows: Flow[] = Array.from({ length: 64 }, (_, i) => ({
  srcIp: `10.1.${i >> 4}.${(i & 15) + 1}`,
  sport: 1024 + i * 37,
  dstIp: VF_IP,
  dport: 80,
}));

/** A TCP frame of flow `id`, round `round`: both are in the payload, to tell frames apart on arrival. */
function flowFrame(f: Flow, id: number, round: number): Buffer {
  const payload = Buffer.alloc(40 + ((id * 7 + round) % 50));
  payload.writeUInt16BE(id, 0);
  payload.writeUInt16BE(round, 2);
  return ipv4TcpFrame({ dstMac: VF_MAC, srcMac: PEER, ...f, payload, seq: round * 1000 });
}

const flowOf = (frame: RxFrame) => frame.data.readUInt16BE(14 + 20 + 20);

describe('data path RSS across 4 queues, and per-queue counters', () => {
  let h: Harness | undefined;
  let net: TestNetwork;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  async function up() {
    ({ h, net } = await Harness.linked({ mac: VF_MAC, queues: 4 }));
    return h.vf;
  }

  it('spreads many TCP flows over more than one queue, each flow always on the queue its hash and the LUT name', async () => {
    const vf = await up();
    const key = vf.rssKey!;
    const lut = vf.rssLut!;
    expect(key.length).to.equal(52);
    expect([...lut]).to.deep.equal(Array.from({ length: 64 }, (_, i) => i % 4));
    for (let round = 0; round < 3; round++)
      for (const [id, f] of flows.entries()) net.inject(flowFrame(f, id, round));
    const frames = await vf.waitAnyFrames(3 * flows.length);
    expect(frames).to.have.length(3 * flows.length);

    const queuesOf = new Map<number, Set<number>>();
    for (const fr of frames) {
      const id = flowOf(fr);
      const f = flows[id];
      const want = toeplitzReference(key, rssTuple(f.srcIp, f.dstIp, f.sport, f.dport));
      expect(fr.hash, `flow ${id} hash in the write-back`).to.equal(want);
      for (const d of fr.descriptors)
        expect(d.fltstat, 'FLTSTAT: RSS hash valid').to.equal(RX_WB.FLTSTAT_RSS_HASH);
      expect(fr.queue, `flow ${id} queue`).to.equal(lut[want & 63]);
      if (!queuesOf.has(id)) queuesOf.set(id, new Set());
      queuesOf.get(id)!.add(fr.queue);
    }
    expect(queuesOf.size).to.equal(flows.length);
    for (const [id, qs] of queuesOf) expect([...qs], `flow ${id} queues`).to.have.length(1);
    const used = new Set([...queuesOf.values()].flatMap((qs) => [...qs]));
    expect(used.size, `queues used: ${[...used]}`).to.be.greaterThan(1);

    // Each queue received its frames in the order sent (per flow: rounds 0, 1, 2).
    for (const id of queuesOf.keys()) {
      const rounds = frames.filter((fr) => flowOf(fr) === id).map((fr) => fr.data.readUInt16BE(14 + 40 + 2));
      expect(rounds, `flow ${id} order`).to.deep.equal([0, 1, 2]);
    }
  });

  it('follows a new LUT: every entry naming queue 2 puts every flow on queue 2; a frame that is not IP goes to queue 0 unhashed', async () => {
    const vf = await up();
    await vf.setRssLut(Buffer.alloc(64, 2));
    for (const [id, f] of flows.slice(0, 16).entries()) net.inject(flowFrame(f, id, 0));
    net.inject(rawFrame(VF_MAC, PEER, 90));
    const frames = await vf.waitAnyFrames(17);
    const ip = frames.filter((f) => f.data.readUInt16BE(12) === 0x0800);
    expect(ip.map((f) => f.queue)).to.deep.equal(new Array(16).fill(2));
    const raw = frames.filter((f) => f.data.readUInt16BE(12) !== 0x0800);
    expect(raw.map((f) => [f.queue, f.hash, f.descriptors[0].fltstat])).to.deep.equal([[0, undefined, 0]]);
  });

  it("writes the verification suite's hashes back when the guest sets Microsoft's key (TCP and UDP alike)", async () => {
    const vf = await up();
    await vf.setRssKey(Buffer.concat([MS_RSS_KEY, Buffer.alloc(12)]));
    const vectors = msIpv4Frames(VF_MAC, PEER);
    for (const v of vectors) for (const f of v.frames) net.inject(f);
    const frames = await vf.waitAnyFrames(2 * vectors.length);
    for (const v of vectors) {
      const mine = frames.filter((f) => f.data[f.data.length - 1] === v.index);
      expect(
        mine.map((f) => f.hash),
        `vector ${v.index}`,
      ).to.deep.equal([v.hash, v.hash]);
      expect(mine.map((f) => f.queue)).to.deep.equal([vf.rssLut![v.hash & 63], vf.rssLut![v.hash & 63]]);
    }
  });

  it('counts per queue exactly what was sent and received (device.dataPath, GET_STATS)', async () => {
    const vf = await up();
    const perQueue = [3, 5, 1, 4];
    const txBytes = [0, 0, 0, 0];
    for (const [q, n] of perQueue.entries()) {
      for (let i = 0; i < n; i++) {
        const f = rawFrame(PEER, VF_MAC, 60 + 100 * q + i, q * 10 + i);
        txBytes[q] += f.length;
        await vf.transmit(f, { queue: q });
      }
    }
    for (let q = 0; q < 4; q++) await vf.waitTxDone(q);
    await net.waitSent(13);
    for (let q = 0; q < 4; q++) {
      expect(h!.device.dataPath.tx[q], `TX queue ${q}`).to.deep.equal({
        packets: perQueue[q],
        bytes: txBytes[q],
        drops: 0,
        errors: 0,
      });
    }

    for (let round = 0; round < 2; round++)
      for (const [id, f] of flows.slice(0, 40).entries()) net.inject(flowFrame(f, id, round));
    const frames = await vf.waitAnyFrames(80);
    const rx = [0, 1, 2, 3].map((q) => frames.filter((f) => f.queue === q));
    for (let q = 0; q < 4; q++) {
      expect(h!.device.dataPath.rx[q], `RX queue ${q}`).to.deep.equal({
        packets: rx[q].length,
        bytes: rx[q].reduce((n, f) => n + f.data.length, 0),
        drops: 0,
        errors: 0,
      });
    }
    for (let q = 4; q < 16; q++) {
      expect(h!.device.dataPath.rx[q].packets + h!.device.dataPath.tx[q].packets, `queue ${q}`).to.equal(0);
    }

    const s = await vf.getStats();
    expect(s.rxUnicast + s.rxMulticast + s.rxBroadcast, 'RX packets').to.equal(80n);
    expect(s.rxBytes, 'with each frame’s FCS').to.equal(
      BigInt(frames.reduce((n, f) => n + f.data.length + 4, 0)),
    );
    expect(s.txUnicast + s.txMulticast + s.txBroadcast, 'TX packets').to.equal(13n);
    expect(s.txBytes).to.equal(BigInt(txBytes.reduce((a, b) => a + b, 0)));
    expect([s.rxDiscards, s.txDiscards, s.txErrors]).to.deep.equal([0n, 0n, 0n]);
  });
});
