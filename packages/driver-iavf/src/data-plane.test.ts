/**
 * The data plane end to end: two emu_iavf devices on one L2Switch, each driven by a SoftIavf. With memfd
 * guest RAM the switch attaches each VF's twin in the native data plane, and frames go from A's TX
 * ring to B's RX ring on the plane's worker thread without JavaScript per frame; with fd-less RAM the
 * worker cannot reach the rings, and each NIC falls back to the TypeScript path, still delivering.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { L2Switch, NetworkRegistry, PcapWriter, readPcap, withCapture } from '@emu/network';
import { expect } from 'chai';
import type { IavfOptions } from './device.js';
import { ETH_HLEN, ipv4TcpFrame, ipv4UdpFrame, l4ChecksumOk, rawFrame } from './testing/frames.js';
import { Harness, type HarnessOptions } from './testing/harness.js';
import { MS_RSS_KEY, msIpv4Frames } from './testing/rss-vectors.js';

const A = '02:00:00:00:0d:0a';
const B = '02:00:00:00:0d:0b';
const BROADCAST = 'ff:ff:ff:ff:ff:ff';

let switches = 0;

function onSwitch(sw: L2Switch, name: string): { connect: NonNullable<IavfOptions['connect']> } {
  return {
    connect: (receive, native) => sw.attach({ name, deliver: (frame) => receive(frame), native }),
  };
}

async function pair(ram: HarnessOptions['ram'], queues = 1) {
  const sw = new L2Switch(`plane-${switches++}`);
  const a = await Harness.start({ mac: A }, { ram, network: onSwitch(sw, 'a') });
  const b = await Harness.start({ mac: B, queues }, { ram, network: onSwitch(sw, 'b') });
  await a.vf.bringUp();
  await b.vf.bringUp();
  return { sw, a, b };
}

describe('data plane: two NICs on one switch, memfd guest RAM', () => {
  let hs: Harness[] = [];
  afterEach(async () => {
    for (const h of hs) await h.close();
    hs = [];
  });

  it('moves frames from A’s TX ring to B’s RX ring on the worker, in order, without JavaScript per frame', async () => {
    const { sw, a, b } = await pair('shared');
    hs = [a, b];
    expect(sw.isNative('a') && sw.isNative('b'), 'both NICs attached natively').to.equal(true);
    const sent = Array.from({ length: 200 }, (_, i) => rawFrame(B, A, 60 + ((i * 37) % 1400), i));
    // B is not learned yet: the first frame floods (to B alone); the rest go unicast once A has learned... and
    // B's own frame teaches the switch where B is.
    await b.vf.transmit(rawFrame(A, B, 60, 999));
    await a.vf.waitFrames(0, 1, 10_000);
    for (const f of sent) await a.vf.transmit(f);
    const got = await b.vf.waitFrames(0, sent.length, 10_000);
    expect(got.map((g) => Buffer.from(g.data).toString('hex'))).to.deep.equal(
      sent.map((f) => f.toString('hex')),
    );
    expect(await a.vf.waitTxDone(0)).to.be.greaterThan(0);

    const pa = a.device.dataPath;
    const pb = b.device.dataPath;
    // Nothing went through either JavaScript engine: the worker did the TX walks and the RX writes.
    expect(pa.engineStats).to.include({
      directTx: 0,
      stagedTx: 0,
      directRx: 0,
      stagedRx: 0,
      planeFallbacks: 0,
    });
    expect(pb.engineStats).to.include({
      directTx: 0,
      stagedTx: 0,
      directRx: 0,
      stagedRx: 0,
      planeFallbacks: 0,
    });
    expect(pa.plane).to.include({ attached: true, native: true, started: true });
    expect(pa.plane.bursts).to.be.greaterThan(0);
    // The counters the worker kept are the device's counters.
    const bytes = sent.reduce((n, f) => n + f.length, 0);
    expect(pa.tx[0]).to.deep.equal({ packets: sent.length, bytes, drops: 0, errors: 0 });
    expect(pb.rx[0]).to.deep.equal({ packets: sent.length, bytes, drops: 0, errors: 0 });
    expect(pb.kinds.rx.unicast).to.equal(sent.length);
    // ...and the switch's: its port rows count what the worker forwarded.
    const rows = Object.fromEntries(sw.stats().ports.map((r) => [r.port, r]));
    expect(rows.a.rxFrames).to.equal(sent.length);
    expect(rows.b.txFrames).to.equal(sent.length);
    expect(sw.lookup(A)).to.equal('a');
    expect(sw.lookup(B)).to.equal('b');
    // B's RX interrupts were raised by the worker itself: JavaScript heard of none of it.
    expect(b.device.vectors.counts().fired.reduce((n, c) => n + c, 0)).to.be.greaterThan(0);
    expect(pb.engineStats.planeEvents).to.equal(0);
  });

  it("RSS on the worker: the verification suite's hashes in B's descriptors, each flow on the queue its LUT entry names", async () => {
    const { a, b } = await pair('shared', 4);
    hs = [a, b];
    await b.vf.setRssKey(Buffer.concat([MS_RSS_KEY, Buffer.alloc(12)]));
    const vectors = msIpv4Frames(B, A);
    for (const v of vectors) for (const f of v.frames) await a.vf.transmit(f);
    const frames = await b.vf.waitAnyFrames(2 * vectors.length, 10_000);
    for (const v of vectors) {
      const mine = frames.filter((f) => f.data[f.data.length - 1] === v.index);
      expect(
        mine.map((f) => f.hash),
        `vector ${v.index}`,
      ).to.deep.equal([v.hash, v.hash]);
      const q = b.vf.rssLut![v.hash & 63];
      expect(mine.map((f) => f.queue)).to.deep.equal([q, q]);
    }
    expect(b.device.dataPath.engineStats).to.include({ directRx: 0, stagedRx: 0 });
  });

  it('the checksum a TX offload inserted is verified on the way into B: trusted there; a wrong one sent without offload is flagged', async () => {
    const { a, b } = await pair('shared');
    hs = [a, b];
    const spec = { dstMac: B, srcMac: A, srcIp: '10.0.0.1', dstIp: '10.0.0.2', sport: 5, dport: 6 };
    const offloaded = ipv4TcpFrame({ ...spec, payload: Buffer.alloc(1400, 9) });
    offloaded.writeUInt16BE(0, ETH_HLEN + 20 + 16); // for the device to fill
    const wrong = ipv4UdpFrame({ ...spec, payload: Buffer.alloc(300, 8) });
    wrong.writeUInt16BE(wrong.readUInt16BE(ETH_HLEN + 20 + 6) ^ 0x00ff, ETH_HLEN + 20 + 6);
    await a.vf.transmit(offloaded, { csum: true });
    await a.vf.transmit(wrong);
    const got = await b.vf.waitFrames(0, 2, 10_000);
    expect(got.map((f) => [f.ptype, f.checksum])).to.deep.equal([
      [26, 'unnecessary'],
      [24, 'error'],
    ]);
    expect(l4ChecksumOk(got[0].data)).to.equal(true);
    expect(a.device.dataPath.engineStats).to.include({ directTx: 0, stagedTx: 0 });
  });

  it('hands frames for JavaScript ports to them through the escape queue, and takes theirs natively', async () => {
    const { sw, a, b } = await pair('shared');
    hs = [a, b];
    const seen: Buffer[] = [];
    const js = sw.attach({ name: 'js', deliver: (f) => seen.push(f) });
    // A broadcast from A reaches B natively and the JavaScript port through the escape queue.
    const bcast = rawFrame(BROADCAST, A, 100, 1);
    await a.vf.transmit(bcast);
    const [atB] = await b.vf.waitFrames(0, 1, 10_000);
    expect(Buffer.from(atB.data).equals(bcast)).to.equal(true);
    for (let i = 0; i < 2000 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(seen.map((f) => f.toString('hex'))).to.deep.equal([bcast.toString('hex')]);
    // A frame from the JavaScript port to A (learned) is written into A's RX ring inside send().
    const toA = rawFrame(A, '02:00:00:00:0d:99', 80, 2);
    js.send(toA);
    const [atA] = await a.vf.waitFrames(0, 1, 10_000);
    expect(Buffer.from(atA.data).equals(toA)).to.equal(true);
    expect(a.device.dataPath.engineStats.stagedRx + a.device.dataPath.engineStats.directRx).to.equal(0);
    js.detach();
  });

  it('a pcap capture of a NIC keeps it native: the frames the worker forwarded are copied to the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'emu-plane-pcap-'));
    const writer = PcapWriter.open(join(dir, 'a.pcap'));
    try {
      const sw = new L2Switch(`plane-${switches++}`);
      const captured: NonNullable<IavfOptions['connect']> = (receive, native) =>
        withCapture({ name: 'a', deliver: (frame) => receive(frame), native }, writer, (p) => sw.attach(p));
      const a = await Harness.start({ mac: A }, { ram: 'shared', network: { connect: captured } });
      const b = await Harness.start({ mac: B }, { ram: 'shared', network: onSwitch(sw, 'b') });
      hs = [a, b];
      await a.vf.bringUp();
      await b.vf.bringUp();
      expect(sw.isNative('a'), 'the captured NIC is attached natively').to.equal(true);
      const out = Array.from({ length: 10 }, (_, i) => rawFrame(B, A, 60 + i, i));
      const back = Array.from({ length: 10 }, (_, i) => rawFrame(A, B, 100 + i, 50 + i));
      for (const f of out) await a.vf.transmit(f);
      await b.vf.waitFrames(0, out.length, 10_000);
      for (const f of back) await b.vf.transmit(f);
      await a.vf.waitFrames(0, back.length, 10_000);
      expect(a.device.dataPath.engineStats).to.include({
        directTx: 0,
        stagedTx: 0,
        directRx: 0,
        stagedRx: 0,
      });
      // The copies come through the escape queue, then the writer's end-of-tick flush.
      const want = [...out, ...back].map((f) => f.toString('hex')).sort();
      for (let i = 0; i < 1000; i++) {
        const records = readPcap(readFileSync(writer.path)).records;
        if (records.length >= want.length) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      const got = readPcap(readFileSync(writer.path)).records.map((r) => Buffer.from(r.data).toString('hex'));
      expect(got.sort()).to.deep.equal(want);
      expect(sw.stats().counters.captureDrops).to.equal(0);
    } finally {
      writer.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the capture attribute starts and stops a pcap capture of a native NIC; counters() reports its queues', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'emu-plane-capture-'));
    const networks = new NetworkRegistry();
    const net = `plane-${switches++}`;
    const via = (name: string): { connect: NonNullable<IavfOptions['connect']> } => ({
      connect: (receive, native) => networks.attach({ name, deliver: (f) => receive(f), native }, net),
    });
    try {
      const a = await Harness.start({ mac: A }, { ram: 'shared', network: via('a') });
      const b = await Harness.start({ mac: B }, { ram: 'shared', network: via('b') });
      hs = [a, b];
      await a.vf.bringUp();
      await b.vf.bringUp();
      const sw = networks.find(net)!;
      const attr = a.device.attributes!.capture;
      const path = join(dir, 'a.pcap');
      const frames = (n: number, tag: number) =>
        Array.from({ length: n }, (_, i) => rawFrame(B, A, 60 + i, tag + i));
      const send = async (list: Buffer[]) => {
        for (const f of list) await a.vf.transmit(f);
        await b.vf.waitFrames(0, list.length, 10_000);
      };
      const during = frames(4, 10);
      await send(frames(3, 0)); // before: not captured
      expect(attr.get()).to.equal(null);
      attr.set!({ path, overwrite: false });
      expect(attr.get()).to.equal(path);
      expect(sw.isNative('a'), 'capturing, the NIC stays native').to.equal(true);
      await send(during);
      for (let i = 0; i < 1000 && readPcap(readFileSync(path)).records.length < 4; i++) {
        await new Promise((r) => setTimeout(r, 5));
      }
      attr.set!(null);
      expect(attr.get()).to.equal(null);
      await send(frames(5, 20)); // after: not captured
      await new Promise((r) => setTimeout(r, 50));
      const got = readPcap(readFileSync(path)).records.map((r) => Buffer.from(r.data).toString('hex'));
      expect(got).to.deep.equal(during.map((f) => f.toString('hex')));
      expect(a.device.dataPath.engineStats).to.include({ directTx: 0, stagedTx: 0 });
      // Every queue pair the VF uses (SoftIavf enables all 4), RX and TX; A sent its 12 frames on TX queue 0.
      const counters = a.device.counters();
      expect(counters.link).to.deep.equal({ up: true, speedMbps: 10_000 });
      expect(counters.queues.map((q) => `${q.direction}${q.queue}`)).to.deep.equal(
        [0, 1, 2, 3].flatMap((q) => [`rx${q}`, `tx${q}`]),
      );
      expect(counters.queues[1]).to.deep.equal({
        queue: 0,
        direction: 'tx',
        packets: 12,
        bytes: [...frames(3, 0), ...during, ...frames(5, 20)].reduce((n, f) => n + f.length, 0),
        drops: 0,
        errors: 0,
      });
    } finally {
      networks.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops and starts one queue under traffic (DPDK rxq/txq stop, start): the other queues go on where they were', async () => {
    // Issue #31, defect 8: ENABLE_QUEUES for one queue used to put every queue's head back to 0, so
    // the worker walked again TX descriptors the guest had reclaimed (frames sent twice) and wrote
    // frames into RX descriptors behind the driver's (frames lost).
    const { a, b } = await pair('shared', 2);
    hs = [a, b];
    await b.vf.transmit(rawFrame(A, B, 60, 999));
    await a.vf.waitAnyFrames(1, 10_000);
    const sent: Buffer[] = [];
    for (let round = 0; round < 8; round++) {
      for (let i = 0; i < 16; i++) {
        const f = rawFrame(B, A, 60 + i * 8, round * 100 + i);
        sent.push(f);
        await a.vf.transmit(f);
      }
      await a.vf.waitTxDone(0, 5000);
      await a.vf.restartQueue(1);
      await b.vf.restartQueue(1);
    }
    const got = await b.vf.waitFrames(0, sent.length, 10_000);
    expect(got.map((g) => Buffer.from(g.data).toString('hex'))).to.deep.equal(
      sent.map((f) => f.toString('hex')),
    );
    await new Promise((r) => setTimeout(r, 100));
    expect(await b.vf.receiveFrames(0), 'frames sent twice').to.deep.equal([]);
    expect(a.device.dataPath.tx[0].packets).to.equal(sent.length);
    expect(b.device.dataPath.rx[0]).to.include({ packets: sent.length, drops: 0, errors: 0 });
    expect(a.device.dataPath.plane).to.include({ native: true });
  });

  it("bounds a worker's turn: 64-byte-MSS TSO packets on every queue, at most one packet past the burst", async () => {
    // Issue #31, defect 9: the burst was per queue, so one turn could produce 16 queues' worth of
    // TSO segments (65,536 frames) while holding the switch and the memory lock.
    const { a, b } = await pair('shared', 1);
    hs = [a, b];
    await b.vf.transmit(rawFrame(A, B, 60, 999));
    await a.vf.waitAnyFrames(1, 10_000);
    const queues = 4;
    const perQueue = 2;
    const segments = Math.ceil((16 * 1024) / 64);
    for (let q = 0; q < queues; q++) {
      for (let i = 0; i < perQueue; i++) {
        const frame = ipv4TcpFrame({
          dstMac: B,
          srcMac: A,
          srcIp: '10.0.0.1',
          dstIp: '10.0.0.2',
          sport: 1000 + q * 10 + i,
          dport: 80,
          payload: Buffer.alloc(16 * 1024, q * 10 + i),
        });
        // Tails written last, all at once: the worker finds every queue full in one look.
        await a.vf.transmit(frame, { queue: q, tso: { mss: 64 }, kick: false });
      }
    }
    for (let q = 0; q < queues; q++) await a.vf.writeTxTail(q, a.vf.txNextToUse(q));
    for (let q = 0; q < queues; q++)
      expect(await a.vf.waitTxDone(q, 20_000), `queue ${q}`).to.equal(perQueue);
    const plane = a.device.dataPath.plane;
    expect(plane.native, 'still on the worker').to.equal(true);
    expect(plane.largestTurn, 'frames in one turn').to.be.at.least(segments);
    expect(plane.largestTurn, 'frames in one turn').to.be.below(2 * segments);
  });

  it('a closed device leaves the switch: its MACs are forgotten and nothing more reaches it', async () => {
    const { sw, a, b } = await pair('shared');
    hs = [a];
    await b.vf.transmit(rawFrame(A, B, 60, 3));
    await a.vf.waitFrames(0, 1, 10_000);
    expect(sw.lookup(B)).to.equal('b');
    await b.close();
    expect(sw.lookup(B)).to.equal(undefined);
    expect(sw.ports).to.deep.equal(['a']);
    // A's frame for B floods to nobody: counted, nothing crashes.
    await a.vf.transmit(rawFrame(B, A, 60, 4));
    await a.vf.waitTxDone(0);
    for (let i = 0; i < 1000; i++) {
      const row = sw.stats().ports.find((r) => r.port === 'a');
      if (row?.drops.noDestination === 1) return;
      await new Promise((r) => setTimeout(r, 5));
    }
    expect.fail('the frame to a gone MAC was not counted as noDestination');
  });
});

describe('data plane: fd-less guest RAM falls back to JavaScript', () => {
  let hs: Harness[] = [];
  afterEach(async () => {
    for (const h of hs) await h.close();
    hs = [];
  });

  it('the worker cannot reach the rings: both NICs go to the TypeScript path and frames still flow both ways', async () => {
    const { a, b } = await pair('plain');
    hs = [a, b];
    const ab = Array.from({ length: 20 }, (_, i) => rawFrame(B, A, 60 + i * 50, i));
    const ba = Array.from({ length: 20 }, (_, i) => rawFrame(A, B, 60 + i * 40, 100 + i));
    for (const f of ab) await a.vf.transmit(f);
    for (const f of ba) await b.vf.transmit(f);
    const atB = await b.vf.waitFrames(0, ab.length, 5000);
    const atA = await a.vf.waitFrames(0, ba.length, 5000);
    expect(atB.map((g) => Buffer.from(g.data).toString('hex'))).to.deep.equal(
      ab.map((f) => f.toString('hex')),
    );
    expect(atA.map((g) => Buffer.from(g.data).toString('hex'))).to.deep.equal(
      ba.map((f) => f.toString('hex')),
    );
    for (const h of [a, b]) {
      const p = h.device.dataPath;
      expect(p.engineStats.planeFallbacks, 'fell back once').to.equal(1);
      expect(p.plane).to.include({ attached: true, native: false });
      expect(p.engineStats.stagedTx).to.be.greaterThan(0);
    }
  });
});
