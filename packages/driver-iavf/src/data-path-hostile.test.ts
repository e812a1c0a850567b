/**
 * A guest that gets its descriptors wrong, by mistake or on purpose: each bad packet or tail is dropped
 * and counted, no exception escapes (in a VMM process it would crash the device for every guest), and
 * the queue keeps working: a good frame sent after each one arrives intact.
 */
import { expect } from 'chai';
import { failOnEscapes, until } from './testing/escapes.js';
import { ipv4TcpFrame, rawFrame, TCP_ACK } from './testing/frames.js';
import { Harness, type HarnessOptions, type IavfTestConfig } from './testing/harness.js';
import { TX_CMD, TX_CTX } from './testing/iavf-defs.js';
import { txContextQw1, txDataQw1 } from './testing/soft-iavf/descriptors.js';
import { sleep } from './testing/soft-iavf/io.js';
import type { SoftIavf } from './testing/soft-iavf/main.js';
import type { TestNetwork } from './testing/test-network.js';

const VF_MAC = '02:00:00:00:00:0a';
const PEER = '02:00:00:00:00:99';
const LAST = TX_CMD.EOP | TX_CMD.RS | TX_CMD.ICRC;

describe('data path against hostile descriptors', () => {
  let h: Harness | undefined;
  let net: TestNetwork;
  let vf: SoftIavf;
  failOnEscapes(async () => {
    await h?.close();
    h = undefined;
  });

  /** The guest RAM of the suites below that run once with each kind. */
  let ramKind: 'shared' | 'plain' = 'shared';

  async function up(config: IavfTestConfig = {}, opts: HarnessOptions = {}) {
    ({ h, net, vf } = await Harness.linked({ mac: VF_MAC, queues: 2, ...config }, { ram: ramKind, ...opts }));
    return vf;
  }

  /** A good frame out of TX queue q reaches the network intact, and nothing else does. */
  async function txStillWorks(q = 0, seed = 77): Promise<void> {
    const before = net.sent.length;
    const frame = rawFrame(PEER, VF_MAC, 333, seed);
    await vf.transmit(frame, { queue: q });
    await vf.waitTxDone(q);
    const sent = await net.waitSent(before + 1);
    expect(sent.length - before, 'frames sent').to.equal(1);
    expect(Buffer.from(sent[sent.length - 1]).toString('hex'), 'the good frame, intact').to.equal(
      frame.toString('hex'),
    );
  }

  /** A good frame from the network lands on RX queue 0 intact, and nothing else does. */
  async function rxStillWorks(seed = 88): Promise<void> {
    const frame = rawFrame(VF_MAC, PEER, 222, seed);
    net.inject(frame);
    const got = await vf.waitFrames(0, 1);
    expect(
      got.map((f) => f.data.toString('hex')),
      'the good frame, intact',
    ).to.deep.equal([frame.toString('hex')]);
  }

  const tx = (q = 0) => h!.device.dataPath.tx[q];
  const rx = (q = 0) => h!.device.dataPath.rx[q];

  for (const ram of ['shared', 'plain'] as const) {
    describe(`${ram} guest RAM`, () => {
      beforeEach(() => {
        ramKind = ram;
      });
      afterEach(() => {
        ramKind = 'shared';
      });

      describe('TX', () => {
        it('drops a TX buffer outside guest memory (counted as an error), completes the descriptor, and goes on', async () => {
          await up();
          await vf.postTx(0, [{ qw0: h!.ram.end + 0x1000n, qw1: txDataQw1(LAST, 64) }]);
          await vf.waitTxDone(0);
          expect(tx()).to.deep.include({ packets: 0, errors: 1 });
          await txStillWorks();
          expect(tx()).to.deep.include({ packets: 1, errors: 1 });
        });

        it('drops a zero-length TX buffer, and goes on', async () => {
          await up();
          await vf.postTx(0, [{ qw0: vf.scratch(Buffer.alloc(64, 1)), qw1: txDataQw1(LAST, 0) }]);
          await vf.waitTxDone(0);
          expect(tx()).to.deep.include({ packets: 0, errors: 1 });
          await txStillWorks();
        });

        it('drops the whole packet when a buffer in its middle is bad (zero length, or outside guest memory)', async () => {
          await up();
          for (const bad of [
            { qw0: vf.scratch(Buffer.alloc(64, 2)), qw1: txDataQw1(TX_CMD.ICRC, 0) },
            { qw0: h!.ram.end + 0x40000n, qw1: txDataQw1(TX_CMD.ICRC, 64) },
          ]) {
            await vf.postTx(0, [
              { qw0: vf.scratch(rawFrame(PEER, VF_MAC, 100, 5)), qw1: txDataQw1(TX_CMD.ICRC, 100) },
              bad,
              { qw0: vf.scratch(Buffer.alloc(200, 3)), qw1: txDataQw1(LAST, 200) },
            ]);
            await vf.waitTxDone(0);
          }
          expect(await net.quietFor(20), 'pieces of the bad packets on the wire').to.equal(0);
          expect(tx()).to.deep.include({ packets: 0, errors: 2 });
          await txStillWorks();
        });

        it('drops a frame of more than 16 KiB without TSO (two 9000-byte buffers), counted as a discard', async () => {
          await up();
          await vf.transmit(rawFrame(PEER, VF_MAC, 18000, 6), { buffers: [9000, 9000] });
          await vf.waitTxDone(0);
          expect(tx()).to.deep.include({ packets: 0, drops: 1 });
          await txStillWorks();
          expect((await vf.getStats()).txDiscards).to.equal(1n);
        });

        it('drops a TX packet with no EOP within 16 buffers (17 without EOP), and the next packet comes out intact', async () => {
          await up();
          const descs = Array.from({ length: 17 }, (_, i) => ({
            qw0: vf.scratch(Buffer.alloc(64, i + 1)),
            qw1: txDataQw1(TX_CMD.ICRC | (i === 16 ? TX_CMD.RS : 0), 64),
          }));
          await vf.postTx(0, descs);
          await vf.waitTxDone(0);
          expect(await net.quietFor(20)).to.equal(0);
          expect(tx()).to.deep.include({ packets: 0, errors: 1 });
          await txStillWorks();
        });

        it('ignores a TX tail beyond the ring (counted), and takes the next good tail', async () => {
          await up();
          await vf.writeTxTail(0, 600);
          await vf.writeTxTail(1, 0x1fff);
          await until(() => tx(0).errors + tx(1).errors >= 2);
          expect(await net.quietFor(10)).to.equal(0);
          expect(tx(0).errors + tx(1).errors).to.equal(2);
          await txStillWorks(0);
          await txStillWorks(1, 78);
        });

        it('drops TSO requests whose header lengths are not the frame’s headers, or whose MSS is 0 or 1, and goes on', async () => {
          await up();
          const frame = ipv4TcpFrame({
            dstMac: PEER,
            srcMac: VF_MAC,
            srcIp: '10.0.0.2',
            dstIp: '10.0.0.9',
            sport: 1,
            dport: 2,
            flags: TCP_ACK,
            payload: Buffer.alloc(3000, 9),
          });
          const good = 7 | (5 << 7) | (5 << 14);
          for (const [offset, mss] of [
            [0, 1448], // MACLEN = IPLEN = L4LEN = 0: headers of 0 bytes
            [0, 1], // … cut into 1-byte segments
            [1 | (1 << 7) | (1 << 14), 1448], // 2 + 4 + 4 bytes of "headers"
            [0x7f | (0x7f << 7) | (0xf << 14), 1448], // 254 + 508 + 60 bytes: the whole frame and more
            [good, 0],
            [good, 1],
          ]) {
            const cmd = TX_CMD.ICRC | TX_CMD.IIPT_IPV4_CSUM | TX_CMD.L4T_TCP;
            await vf.postTx(0, [
              { qw0: 0n, qw1: txContextQw1(TX_CTX.CMD_TSO, frame.length - 54, mss) },
              { qw0: vf.scratch(frame), qw1: txDataQw1(cmd | TX_CMD.EOP | TX_CMD.RS, frame.length, offset) },
            ]);
            await vf.waitTxDone(0);
          }
          // None of them can be cut into segments as the descriptors say: each is dropped as a guest error.
          expect(await net.quietFor(20), 'frames sent from malformed TSO requests').to.equal(0);
          expect(tx()).to.deep.include({ packets: 0, errors: 6 });
          await txStillWorks();
        });
      });

      describe('RX', () => {
        it('drops a frame whose RX buffer is outside guest memory (counted), and the next frame arrives', async () => {
          await up();
          const slot = vf.rxRingState(0).ntc;
          vf.setRxBuffer(0, slot, h!.ram.end + 0x10000n);
          net.inject(rawFrame(VF_MAC, PEER, 100, 1));
          await until(() => rx().errors > 0);
          expect(rx()).to.deep.include({ packets: 0, errors: 1, drops: 1 });
          // The device hands the descriptor back marked dropped (DD|EOF|RXE, no data) rather than stall on it.
          await until(() => vf.rxDescriptor(0, slot).dd);
          expect(vf.rxDescriptor(0, slot)).to.deep.include({ dd: true, eof: true, length: 0, errors: 1 });
          await rxStillWorks();
          expect(rx()).to.deep.include({ packets: 1, errors: 1, drops: 1 });
          expect(vf.rxErrorFrames[0], 'frames the guest dropped for RXE').to.equal(1);
        });

        it('drops frames while the RX tail is beyond the ring (counted), and delivers again once it is sane', async () => {
          await up();
          const ntu = vf.rxRingState(0).ntu;
          await vf.writeRxTail(0, 600);
          net.inject(rawFrame(VF_MAC, PEER, 100, 2));
          await until(() => rx().drops > 0);
          expect(rx()).to.deep.include({ packets: 0, errors: 1, drops: 1 });
          expect(await vf.receiveFrames(0)).to.deep.equal([]);
          await vf.writeRxTail(0, ntu);
          await rxStillWorks();
        });

        it('drops frames when no RX buffer is posted (counted as discards), and delivers once buffers are back', async () => {
          await up({}, { soft: { ringLen: 64 } });
          const frames = Array.from({ length: 64 }, (_, i) => rawFrame(VF_MAC, PEER, 60 + i, i));
          for (const f of frames) net.inject(f);
          await until(() => rx().packets + rx().drops >= 64);
          // 63 buffers were posted (one descriptor always stays empty): the 64th frame found none.
          expect(rx()).to.deep.include({ packets: 63, drops: 1, errors: 0 });
          const got = await vf.waitFrames(0, 63);
          expect(got.map((f) => f.data.toString('hex'))).to.deep.equal(
            frames.slice(0, 63).map((f) => f.toString('hex')),
          );
          await rxStillWorks();
          expect((await vf.getStats()).rxDiscards).to.equal(1n);
        });

        it('drops every frame while no buffer was ever posted, and delivers once the guest posts them', async () => {
          await up({}, { soft: { postRxBuffers: false } });
          net.inject(rawFrame(VF_MAC, PEER, 100, 3));
          await until(() => rx().drops > 0);
          expect(rx()).to.deep.include({ packets: 0, drops: 1 });
          expect(await vf.refillRx(0)).to.equal(511);
          await rxStillWorks();
        });

        it('drops a frame larger than the queue’s max frame (1526), and takes one of exactly that size', async () => {
          const v = await up();
          expect(v.maxFrame).to.equal(1526);
          net.inject(rawFrame(VF_MAC, PEER, 1527, 4));
          net.inject(rawFrame(VF_MAC, PEER, 9000, 5));
          const max = rawFrame(VF_MAC, PEER, 1526, 6);
          net.inject(max);
          const got = await vf.waitFrames(0, 1);
          expect(got.map((f) => f.data.length)).to.deep.equal([1526]);
          expect(got[0].data.equals(max)).to.equal(true);
          expect(rx()).to.deep.include({ packets: 1, drops: 2 });
          await rxStillWorks();
        });

        it('ignores runt frames (shorter than an Ethernet header) from the network', async () => {
          await up();
          for (const n of [0, 1, 13]) net.inject(Buffer.alloc(n, 0xff));
          await rxStillWorks();
        });
      });
    });
  }

  it('survives the device being stopped under a TX pass and frames arriving while it is stopped', async () => {
    await up({}, { ram: 'plain', soft: { txBufferBytes: 1 << 20 } });
    for (let i = 0; i < 400; i++) await vf.transmit(rawFrame(PEER, VF_MAC, 1000, i), { kick: i === 399 });
    // The TX pass reads descriptors and buffers with DMA messages; stop the device in the middle of it.
    await until(() => net.sent.length > 0);
    await h!.dev.stop();
    expect(net.sent.length, 'frames sent before the stop').to.be.lessThan(400);
    net.inject(rawFrame(VF_MAC, PEER, 100, 1));
    await sleep(20);
  });

  it('reports the drops and errors in GET_STATS, and the device stays usable after all of them', async () => {
    await up();
    await vf.postTx(0, [{ qw0: h!.ram.end + 0x1000n, qw1: txDataQw1(LAST, 64) }]);
    await vf.postTx(1, [{ qw0: vf.scratch(Buffer.alloc(8)), qw1: txDataQw1(LAST, 0) }]);
    await vf.transmit(rawFrame(PEER, VF_MAC, 17000, 7), { buffers: [8500, 8500] });
    await vf.waitTxDone(0);
    await vf.waitTxDone(1);
    net.inject(rawFrame(VF_MAC, PEER, 2000, 8)); // above the max frame
    await until(() => rx().drops === 1);
    await vf.writeRxTail(0, 4000);
    net.inject(rawFrame(VF_MAC, PEER, 100, 9)); // the tail is beyond the ring
    await until(() => rx().drops === 2);
    await vf.writeRxTail(0, vf.rxRingState(0).ntu);

    const dp = h!.device.dataPath;
    const sum = (list: typeof dp.rx, k: 'drops' | 'errors') => BigInt(list.reduce((n, s) => n + s[k], 0));
    expect(sum(dp.tx, 'errors')).to.equal(2n);
    expect(sum(dp.tx, 'drops')).to.equal(1n);
    expect(sum(dp.rx, 'drops')).to.equal(2n);
    const s = await vf.getStats();
    expect({ rxDiscards: s.rxDiscards, txDiscards: s.txDiscards, txErrors: s.txErrors }).to.deep.equal({
      rxDiscards: sum(dp.rx, 'drops'),
      txDiscards: sum(dp.tx, 'drops'),
      txErrors: sum(dp.tx, 'errors'),
    });
    // Nothing went out; the two dropped frames reached the VSI (counted in their kind, as a PF does).
    expect([s.txUnicast, s.rxUnicast]).to.deep.equal([0n, 2n]);

    await txStillWorks(0);
    await txStillWorks(1, 79);
    await rxStillWorks();
    expect(h!.stats().virtchnl.errors).to.deep.equal({});
    expect(await vf.rd32(0x8800), 'VFGEN_RSTAT').to.equal(2);
  });
});
