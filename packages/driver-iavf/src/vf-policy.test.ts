/**
 * The host's per-VF policy, as a PF enforces it on its VFs (i40e/ice): the spoof check on what a VF sends
 * (devargs `spoofchk`, default on) and trust (`trust`, default off: no unicast address but its own, no
 * promiscuous mode). Three NICs on one L2Switch: A plays the guest that forges, B the victim, C the
 * neighbour whose traffic to B A would like to take through the switch's MAC learning.
 */
import type { L2Switch } from '@emu/network';
import { expect } from 'chai';
import { rawFrame } from './testing/frames.js';
import { Harness, type IavfTestConfig } from './testing/harness.js';
import { FLAG_VF_UNICAST_PROMISC, VIRTCHNL_STATUS } from './testing/iavf-defs.js';
import { VirtchnlError } from './testing/soft-iavf/mailbox.js';
import { SwitchedNics } from './testing/switched.js';
import type { TestNetwork } from './testing/test-network.js';

const A = '02:00:00:00:0e:0a';
const B = '02:00:00:00:0e:0b';
const C = '02:00:00:00:0e:0c';
const OTHER = '02:00:00:00:0e:99';
const MCAST = '01:00:5e:00:00:01';
/** VIRTCHNL_ETHER_ADDR_EXTRA: a filter that is not the primary address. */
const EXTRA = 2;

function hex(f: Uint8Array): string {
  return Buffer.from(f).toString('hex');
}

for (const ram of ['shared', 'plain'] as const) {
  const path = ram === 'shared' ? 'the worker (memfd RAM)' : 'the TypeScript path (fd-less RAM)';

  describe(`per-VF policy: spoof check on ${path}`, () => {
    let nics: SwitchedNics;
    let sw: L2Switch;
    afterEach(async () => {
      await nics?.close();
    });

    /** A (with `aConfig`), B and C up on a fresh switch, which has learned B and C where they are. */
    async function three(aConfig: IavfTestConfig = {}) {
      nics = new SwitchedNics(ram);
      sw = nics.sw;
      const a = await nics.nic('a', { mac: A, ...aConfig });
      const b = await nics.nic('b', { mac: B });
      const c = await nics.nic('c', { mac: C });
      await b.vf.transmit(rawFrame(C, B, 60, 1));
      await c.vf.transmit(rawFrame(B, C, 60, 2));
      await c.vf.waitFrames(0, 1, 3000);
      await b.vf.waitFrames(0, 1, 3000);
      // B's frame flooded (C was not learned yet); A's filter took it.
      expect(a.device.dataPath.filtered).to.equal(1);
      expect([sw.lookup(B), sw.lookup(C)]).to.deep.equal(['b', 'c']);
      return { a, b, c };
    }

    /** C sends one frame to B, then a sentinel to A; returns what each received of them. */
    async function cToB(a: Harness, b: Harness, c: Harness) {
      const toB = rawFrame(B, C, 90, 3);
      const sentinel = rawFrame(A, C, 64, 4);
      await c.vf.transmit(toB);
      await c.vf.transmit(sentinel);
      // C's frames are forwarded in order: once the sentinel is in A's ring, the frame to B was routed.
      const atA: string[] = [];
      while (!atA.includes(hex(sentinel))) {
        for (const f of await a.vf.waitFrames(0, 1, 3000)) atA.push(hex(f.data));
      }
      const atB = sw.lookup(B) === 'b' ? (await b.vf.waitFrames(0, 1, 3000)).map((f) => hex(f.data)) : [];
      return { atA: atA.filter((f) => f !== hex(sentinel)), atB, toB: hex(toB) };
    }

    it('drops what a VF sends with a source it does not own, so a forged MAC cannot steal a neighbour’s traffic', async () => {
      const { a, b, c } = await three();
      // The forger's whole attempt: take B's address as a filter (refused), go promiscuous (ignored)...
      expect((await a.vf.addEthAddr([{ mac: B, type: EXTRA }]).catch((e) => e)).status).to.equal(
        VIRTCHNL_STATUS.ERR_ADMIN_QUEUE_ERROR,
      );
      await a.vf.setPromisc(FLAG_VF_UNICAST_PROMISC);
      // ...and send as B, as another unicast address, from a multicast source; then one frame of its own.
      const forged = [rawFrame(C, B, 70, 5), rawFrame(C, OTHER, 70, 6), rawFrame(C, MCAST, 70, 7)];
      const own = rawFrame(C, A, 80, 8);
      for (const f of forged) await a.vf.transmit(f);
      await a.vf.transmit(own);
      // A's frames reach C in order: only its own came through.
      expect((await c.vf.waitFrames(0, 1, 3000)).map((f) => hex(f.data))).to.deep.equal([hex(own)]);
      expect(sw.lookup(B), 'the switch still has B where B is').to.equal('b');
      expect(sw.lookup(OTHER)).to.equal(undefined);
      const got = await cToB(a, b, c);
      expect(got.atA, 'A received none of C’s traffic to B').to.deep.equal([]);
      expect(got.atB).to.deep.equal([got.toB]);

      const dp = a.device.dataPath;
      if (ram === 'shared') expect(dp.engineStats.stagedTx, 'the worker walked the ring').to.equal(0);
      else expect(dp.engineStats.stagedTx, 'the staged path walked the ring').to.be.greaterThan(0);
      expect(dp.spoofed).to.equal(3);
      expect(dp.tx[0]).to.deep.include({ packets: 1, drops: 3, errors: 0 });
      // filtered: B's first frame, flooded before the switch knew C.
      expect(a.stats().policy).to.deep.equal({ spoofed: 3, filtered: 1 });
      expect(a.device.status(), 'the status line').to.contain('drops 4 (spoofed 3)');
      // The guest's descriptors completed all the same, as a PF's dropped frames do (or this throws).
      await a.vf.waitTxDone(0);
    });

    it('with spoofchk off, a forged source moves B in the switch: C’s traffic to B goes to A (and is lost there)', async () => {
      const { a, b, c } = await three({ spoofchk: false });
      await a.vf.transmit(rawFrame(C, B, 70, 5));
      await c.vf.waitFrames(0, 1, 3000);
      expect(sw.lookup(B), 'learned where the forger is').to.equal('a');
      const before = a.device.dataPath.filtered;
      const got = await cToB(a, b, c);
      // Untrusted, A cannot listen as B: its filter drops the frame, and B has lost it.
      expect(got.atA).to.deep.equal([]);
      expect(a.device.dataPath.filtered - before).to.equal(1);
      expect(a.device.dataPath.spoofed).to.equal(0);
    });

    it('with spoofchk off and trust on (no policy at all), the forger receives C’s traffic to B', async () => {
      const { a, b, c } = await three({ spoofchk: false, trust: true });
      await a.vf.setPromisc(FLAG_VF_UNICAST_PROMISC);
      await a.vf.transmit(rawFrame(C, B, 70, 5));
      await c.vf.waitFrames(0, 1, 3000);
      const got = await cToB(a, b, c);
      expect(got.atA).to.deep.equal([got.toB]);
    });

    it('passes a source the VF owns through a unicast filter the host let it add (trust=on)', async () => {
      const { a, c } = await three({ trust: true });
      await a.vf.addEthAddr([{ mac: OTHER, type: EXTRA }]);
      const f = rawFrame(C, OTHER, 70, 9);
      await a.vf.transmit(f);
      expect((await c.vf.waitFrames(0, 1, 3000)).map((g) => hex(g.data))).to.deep.equal([hex(f)]);
      expect(sw.lookup(OTHER)).to.equal('a');
      // Deleted again, the address is not the VF's to send from.
      await a.vf.delEthAddr([{ mac: OTHER, type: EXTRA }]);
      await a.vf.transmit(f);
      const own = rawFrame(C, A, 64, 10);
      await a.vf.transmit(own);
      expect((await c.vf.waitFrames(0, 1, 3000)).map((g) => hex(g.data))).to.deep.equal([hex(own)]);
      expect(a.device.dataPath.spoofed).to.equal(1);
    });
  });
}

describe('per-VF policy: trust', () => {
  let h: Harness | undefined;
  let net: TestNetwork;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  /** Injects a frame to `dst`, then one to the VF's MAC; true when the first arrived before it. */
  async function delivered(dst: string): Promise<boolean> {
    const sentinel = rawFrame(A, OTHER, 64, 11);
    net.inject(rawFrame(dst, OTHER, 80, 12));
    net.inject(sentinel);
    const got = (await h!.vf.waitFrames(0, 1)).map((f) => hex(f.data));
    if (got[0] === hex(sentinel)) return false;
    if (got.length < 2) got.push(...(await h!.vf.waitFrames(0, 1)).map((f) => hex(f.data)));
    expect(got[1]).to.equal(hex(sentinel));
    return true;
  }

  it('refuses another unicast address to an untrusted VF with ADMIN_QUEUE_ERROR, as ice does, and keeps its filters', async () => {
    ({ h, net } = await Harness.linked({ mac: A, queues: 1 }));
    const err = await h.vf.addEthAddr([{ mac: OTHER, type: EXTRA }]).catch((e) => e);
    expect(err).to.be.instanceOf(VirtchnlError);
    expect(err.status).to.equal(VIRTCHNL_STATUS.ERR_ADMIN_QUEUE_ERROR);
    // A list with an allowed address and a refused one changes nothing.
    const mixed = await h.vf
      .addEthAddr([
        { mac: MCAST, type: EXTRA },
        { mac: OTHER, type: EXTRA },
      ])
      .catch((e) => e);
    expect(mixed.status).to.equal(VIRTCHNL_STATUS.ERR_ADMIN_QUEUE_ERROR);
    expect(await delivered(OTHER)).to.equal(false);
    expect(await delivered(MCAST)).to.equal(false);
    expect(h.stats().virtchnl.errors.ADD_ETH_ADDR).to.equal(2);
    // Its own MAC and multicast groups stay its own to add.
    await h.vf.addEthAddr([{ mac: MCAST, type: EXTRA }]);
    await h.vf.addEthAddr();
    expect(await delivered(MCAST)).to.equal(true);
    expect(h.device.dataPath.filtered).to.equal(2);
  });

  it('answers an untrusted VF’s promiscuous request with SUCCESS and applies none of it, as i40e and ice do', async () => {
    ({ h, net } = await Harness.linked({ mac: A, queues: 1 }));
    const reply = await h.vf.setPromisc(FLAG_VF_UNICAST_PROMISC);
    expect(reply.status).to.equal(VIRTCHNL_STATUS.SUCCESS);
    expect(await delivered(OTHER)).to.equal(false);
    await h.vf.setPromisc(FLAG_VF_UNICAST_PROMISC);
    expect(h.stats().virtchnl.ignored).to.deep.equal({ CONFIG_PROMISCUOUS_MODE: 2 });
    expect(h.stats().virtchnl.errors.CONFIG_PROMISCUOUS_MODE).to.equal(undefined);
    expect(h.device.vf.config.promisc).to.equal(0);
  });

  it('lets a trusted VF (trust=on) add another unicast address and go promiscuous', async () => {
    ({ h, net } = await Harness.linked({ mac: A, queues: 1, trust: true }));
    await h.vf.addEthAddr([{ mac: OTHER, type: EXTRA }]);
    expect(await delivered(OTHER)).to.equal(true);
    await h.vf.delEthAddr([{ mac: OTHER, type: EXTRA }]);
    expect(await delivered(OTHER)).to.equal(false);
    await h.vf.setPromisc(FLAG_VF_UNICAST_PROMISC);
    expect(await delivered(OTHER)).to.equal(true);
    expect(h.stats().virtchnl.ignored).to.deep.equal({});
  });
});
