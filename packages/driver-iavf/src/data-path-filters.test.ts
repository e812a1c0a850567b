/**
 * RX filtering: what the VF's MAC filters (ADD_ETH_ADDR / DEL_ETH_ADDR) and promiscuous flags
 * (CONFIG_PROMISCUOUS_MODE) let in. Frames are processed in arrival order, so a frame the filter must
 * pass, sent after the one under test, shows that the one under test has been dealt with.
 */
import { expect } from 'chai';
import { BROADCAST, rawFrame } from './testing/frames.js';
import { Harness } from './testing/harness.js';
import { FLAG_VF_MULTICAST_PROMISC, FLAG_VF_UNICAST_PROMISC } from './testing/iavf-defs.js';
import type { TestNetwork } from './testing/test-network.js';

const VF_MAC = '02:00:00:00:00:0a';
const PEER = '02:00:00:00:00:99';
const OTHER = '02:00:00:00:00:0b';
const MDNS = '01:00:5e:00:00:fb';
const ALL_NODES = '33:33:00:00:00:01';
/** VIRTCHNL_ETHER_ADDR_EXTRA: a filter that is not the primary address. */
const EXTRA = 2;

describe('data path RX filters', () => {
  let h: Harness | undefined;
  let net: TestNetwork;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  /** A VF the host trusts (its extra unicast filters and promiscuous modes are honoured). */
  async function up() {
    ({ h, net } = await Harness.linked({ mac: VF_MAC, queues: 1, trust: true }));
    return h.vf;
  }

  /** Injects a frame to `dst`, then one to the VF's own MAC; returns the destinations that arrived before it. */
  async function offer(dst: string): Promise<string[]> {
    const seed = Math.floor(Math.random() * 1000);
    const sentinel = rawFrame(VF_MAC, PEER, 64, seed);
    net.inject(rawFrame(dst, PEER, 80, seed));
    net.inject(sentinel);
    const got: string[] = [];
    // Frames are handled in arrival order: once the sentinel is in, the frame under test was dealt with.
    for (;;) {
      for (const f of await h!.vf.waitFrames(0, 1)) {
        if (f.data.equals(sentinel)) return got;
        got.push(Array.from(f.data.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':'));
      }
    }
  }

  it('accepts unicast to its own MAC and drops unicast to another MAC, counted as filtered', async () => {
    await up();
    expect(await offer(OTHER)).to.deep.equal([]);
    expect(h!.device.dataPath.filtered).to.equal(1);
    expect(h!.device.dataPath.rx[0]).to.deep.include({ packets: 1, drops: 0, errors: 0 });
    expect(await offer(VF_MAC)).to.deep.equal([VF_MAC]);
    expect(h!.device.dataPath.filtered).to.equal(1);
  });

  it('lets unicast to another MAC in with unicast promiscuous, and drops it again when that is turned off', async () => {
    const vf = await up();
    await vf.setPromisc(FLAG_VF_UNICAST_PROMISC);
    expect(await offer(OTHER)).to.deep.equal([OTHER]);
    await vf.setPromisc(0);
    expect(await offer(OTHER)).to.deep.equal([]);
    expect(h!.device.dataPath.filtered).to.equal(1);
  });

  it('accepts an extra unicast address added with ADD_ETH_ADDR, until it is deleted', async () => {
    const vf = await up();
    await vf.addEthAddr([{ mac: OTHER, type: EXTRA }]);
    expect(await offer(OTHER)).to.deep.equal([OTHER]);
    await vf.delEthAddr([{ mac: OTHER, type: EXTRA }]);
    expect(await offer(OTHER)).to.deep.equal([]);
  });

  it('lets multicast in only with its filter or with multicast promiscuous', async () => {
    const vf = await up();
    expect(await offer(MDNS), 'no filter').to.deep.equal([]);
    await vf.addEthAddr([{ mac: MDNS, type: EXTRA }]);
    expect(await offer(MDNS), 'with its filter').to.deep.equal([MDNS]);
    expect(await offer(ALL_NODES), 'another group').to.deep.equal([]);
    await vf.setPromisc(FLAG_VF_MULTICAST_PROMISC);
    expect(await offer(ALL_NODES), 'multicast promiscuous').to.deep.equal([ALL_NODES]);
    // Multicast promiscuous is not unicast promiscuous.
    expect(await offer(OTHER), 'unicast under multicast promiscuous').to.deep.equal([]);
    await vf.setPromisc(0);
    await vf.delEthAddr([{ mac: MDNS, type: EXTRA }]);
    expect(await offer(MDNS), 'filter deleted').to.deep.equal([]);
    expect(await offer(ALL_NODES)).to.deep.equal([]);
    expect(h!.device.dataPath.filtered).to.equal(5);
  });

  it('always lets broadcast in, without any filter or promiscuous mode', async () => {
    const vf = await up();
    expect(await offer(BROADCAST)).to.deep.equal([BROADCAST]);
    await vf.setPromisc(FLAG_VF_MULTICAST_PROMISC);
    await vf.setPromisc(0);
    expect(await offer(BROADCAST)).to.deep.equal([BROADCAST]);
    expect(h!.device.dataPath.filtered).to.equal(0);
    expect(h!.device.dataPath.rx[0].packets).to.equal(4);
  });

  it('GET_STATS counts as a PF counts a VSI: frames by kind, bytes with their FCS, filtered frames nowhere', async () => {
    const vf = await up();
    expect(await offer(BROADCAST)).to.deep.equal([BROADCAST]);
    expect(await offer(OTHER)).to.deep.equal([]);
    const s = await vf.getStats();
    // Two sentinels (unicast, 64 bytes) and one broadcast (80) arrived; the frame to OTHER was filtered
    // and reached no counter of the VF's.
    expect(s.rxUnicast).to.equal(2n);
    expect(s.rxBroadcast).to.equal(1n);
    expect(s.rxMulticast).to.equal(0n);
    expect(s.rxDiscards).to.equal(0n);
    expect(s.rxBytes, 'rx_bytes with 4 FCS bytes per frame, as i40e/ice count them').to.equal(
      64n + 80n + 64n + 3n * 4n,
    );
    expect(h!.device.dataPath.filtered).to.equal(1);
    // TX bytes are the frames as posted.
    await vf.transmit(rawFrame(PEER, VF_MAC, 100, 1));
    await net.waitSent(1);
    expect((await vf.getStats()).txBytes).to.equal(100n);
  });

  it('frames dropped for want of RX buffers count in their kind and in rx_discards, so kinds minus discards is what arrived', async () => {
    ({ h, net } = await Harness.linked({ mac: VF_MAC, queues: 1 }, { soft: { ringLen: 64 } }));
    const vf = h.vf;
    // 63 buffers posted (a ring of 64 keeps one free); 70 frames offered without the guest taking any.
    for (let i = 0; i < 70; i++) net.inject(rawFrame(VF_MAC, PEER, 100, i));
    const rx = h.device.dataPath.rx[0];
    for (let t = 0; rx.packets + rx.drops < 70 && t < 500; t++) await new Promise((r) => setTimeout(r, 10));
    expect([rx.packets, rx.drops]).to.deep.equal([63, 7]);
    const s = await vf.getStats();
    expect([s.rxUnicast, s.rxDiscards]).to.deep.equal([70n, 7n]);
    // DPDK's iavf_dev_stats_get: ipackets = unicast + multicast + broadcast - discards; ibytes = rx_bytes - 4 * ipackets.
    const ipackets = s.rxUnicast + s.rxMulticast + s.rxBroadcast - s.rxDiscards;
    expect(ipackets).to.equal(63n);
    expect(s.rxBytes - 4n * ipackets).to.equal(63n * 100n);
  });
});
