/**
 * What one guest can make the device do at once: however its rings are filled, a doorbell is served in
 * bounded passes that leave the event loop to every other device in between; frames waiting for the
 * slow path and interrupts the client does not take are bounded, dropped and counted.
 */
import { expect } from 'chai';
import { DynCtl, Reg } from './constants.js';
import { RX_BACKLOG, TX_PASS_FRAMES } from './datapath/data-path.js';
import { failOnEscapes, until } from './testing/escapes.js';
import { ipv4TcpFrame, rawFrame } from './testing/frames.js';
import { Harness } from './testing/harness.js';

const VF_MAC = '02:00:00:00:00:0a';

const PEER = '02:00:00:00:00:99';

describe('data path bounds', () => {
  let h: Harness | undefined;
  failOnEscapes(async () => {
    await h?.close();
    h = undefined;
  });

  it('serves a ring of 64-byte-MSS TSO packets in bounded passes, the event loop turning in between', async () => {
    const {
      h: harness,
      net,
      vf,
    } = await Harness.linked({ mac: VF_MAC }, { ramMib: 64, soft: { txBufferBytes: 1 << 20 } });
    h = harness;
    const packets = 12;
    // The event loop's turns while the device works, and the frames out after each.
    const seen: number[] = [];
    let turning = true;
    const turn = () => {
      seen.push(net.sent.length);
      if (turning) setImmediate(turn);
    };
    // Each packet: 60 KiB of payload cut into 64-byte segments, 960 frames; one doorbell for all.
    for (let i = 0; i < packets; i++) {
      const frame = ipv4TcpFrame({
        dstMac: PEER,
        srcMac: VF_MAC,
        srcIp: '10.0.0.1',
        dstIp: '10.0.0.2',
        sport: 1000 + i,
        dport: 80,
        payload: Buffer.alloc(60 * 1024, i),
      });
      if (i === packets - 1) setImmediate(turn);
      await vf.transmit(frame, { tso: { mss: 64 }, kick: i === packets - 1 });
    }
    expect(await vf.waitTxDone(0, 10_000)).to.equal(packets);
    turning = false;
    const total = net.sent.length;
    const segments = Math.ceil((60 * 1024) / 64);
    expect(total).to.equal(packets * segments);
    // No turn saw more than one pass's budget plus the packet that crossed it.
    const steps = seen.map((n, i) => n - (i === 0 ? 0 : seen[i - 1]));
    expect(Math.max(...steps)).to.be.at.most(TX_PASS_FRAMES + segments);
    expect(h.device.dataPath.engineStats.txYields).to.be.at.least(
      Math.floor(total / (TX_PASS_FRAMES + segments)),
    );
  });

  it('bounds the frames waiting for the TypeScript RX path (fd-less RAM), drops and counts the rest, and goes on', async () => {
    const { h: harness, vf, net } = await Harness.linked({ mac: VF_MAC }, { ram: 'plain' });
    h = harness;
    const burst = RX_BACKLOG + 500;
    for (let i = 0; i < burst; i++) net.inject(rawFrame(VF_MAC, PEER, 100, i));
    const dp = h.device.dataPath;
    expect(dp.rx[0].drops, 'dropped at once, beyond the backlog').to.be.at.least(500);
    await dp.settled();
    // The ring holds 511 of those that waited; the rest found no buffer. Nothing was lost uncounted.
    expect(dp.rx[0].packets + dp.rx[0].drops).to.equal(burst);
    await vf.waitFrames(0, dp.rx[0].packets, 5000);
    net.inject(rawFrame(VF_MAC, PEER, 120, 9999));
    const [last] = await vf.waitFrames(0, 1, 5000);
    expect(last.data.length).to.equal(120);
  });

  it('counts and drops an interrupt the client cannot take (its eventfd full), even from the throttle timer', async () => {
    const { h: harness, vf, net } = await Harness.linked({ mac: VF_MAC });
    h = harness;
    const server = h.dev.stats();
    expect(server.irqsDropped).to.equal(0);
    // A client that never reads its eventfd: the counter at its maximum.
    vf.irqFds[1].write(0xffff_ffff_ffff_fffen);
    // RX causes wait 8 ms between interrupts (ITR index 0, in 2 µs units).
    await vf.wr32(Reg.VFINT_ITRN1(0, 0), 4000);
    // Two frames and a re-arm in one go (no time for the interval to pass): the first fires at once,
    // the second fires from the throttle's timer, 8 ms later.
    net.inject(rawFrame(VF_MAC, PEER, 100, 1));
    net.inject(rawFrame(VF_MAC, PEER, 100, 2));
    h.device.vectors.write(1, DynCtl.INTENA | (3 << DynCtl.ITR_INDX_SHIFT));
    // The frames may reach the ring through the data plane's events, a wake-up later: wait for them.
    await until(() => h!.device.vectors.counts().throttled[1] === 1, 2000);
    await until(() => h!.dev.stats().irqsDropped >= 2, 2000);
    expect(vf.irqFds[1].read()).to.equal(0xffff_ffff_ffff_fffen);
    // The frames are there, and once the client reads its eventfd, interrupts flow again.
    expect((await vf.waitFrames(0, 2)).length).to.equal(2);
    await vf.armVector(1);
    net.inject(rawFrame(VF_MAC, PEER, 100, 3));
    expect(await vf.irqFds[1].wait(2000)).to.equal(1n);
  });
});
