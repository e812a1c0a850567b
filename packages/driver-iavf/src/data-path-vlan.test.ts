/**
 * VLANs on the data path (VIRTCHNL_VF_OFFLOAD_VLAN, v1): the VF's VLAN filter (ADD_VLAN / DEL_VLAN),
 * stripping into the RX descriptor's L2TAG1 (ENABLE/DISABLE_VLAN_STRIPPING), insertion from the TX
 * descriptor's L2TAG1 (IL2TAG1), and the host's port VLAN (devargs `vlan`). Two NICs on one switch, on
 * the worker (memfd RAM) and on the TypeScript path (fd-less RAM).
 */
import { expect } from 'chai';
import { ipv4TcpFrame, rawFrame } from './testing/frames.js';
import type { Harness } from './testing/harness.js';
import { LINUX_6_12_CAPS, VF_CAP, VIRTCHNL_STATUS } from './testing/iavf-defs.js';
import { VirtchnlError } from './testing/soft-iavf/mailbox.js';
import { SwitchedNics } from './testing/switched.js';

const A = '02:00:00:00:0f:0a';
const B = '02:00:00:00:0f:0b';

/** `frame` with an 802.1Q tag (TCI `tci`) after its MAC addresses. */
function tagged(frame: Buffer, tci: number): Buffer {
  const tag = Buffer.from([0x81, 0x00, tci >> 8, tci & 0xff]);
  return Buffer.concat([frame.subarray(0, 12), tag, frame.subarray(12)]);
}

const hex = (f: Uint8Array) => Buffer.from(f).toString('hex');

/** A VF that knows only VLAN v1 (Linux's caps without VLAN_V2) is granted v1; Linux's own, V2. */
const V1 = { caps: LINUX_6_12_CAPS & ~VF_CAP.VLAN_V2 };

for (const [api, bringUp] of [
  ['v1', V1],
  ['V2', {}],
] as const) {
  for (const ram of ['shared', 'plain'] as const) {
    const path = ram === 'shared' ? 'the worker (memfd RAM)' : 'the TypeScript path (fd-less RAM)';

    describe(`data path VLANs (${api}) on ${path}`, () => {
      let nics: SwitchedNics;
      afterEach(async () => {
        await nics?.close();
      });

      async function pair(aConfig: { vlan?: number; trust?: boolean } = {}) {
        nics = new SwitchedNics(ram);
        const a = await nics.nic('a', { mac: A, queues: 1, ...aConfig }, bringUp);
        const b = await nics.nic('b', { mac: B, queues: 1 }, bringUp);
        // Stripping starts on (tested below); off, the tags stay in the frames these tests compare.
        await b.vf.setVlanStripping(false);
        if (!aConfig.vlan) await a.vf.setVlanStripping(false);
        return { a, b };
      }

      /**
       * B sends `frames` and then a sentinel to A (untagged, or with `sentinelTci`); returns what A got
       * before the sentinel.
       */
      async function toA(a: Harness, b: Harness, frames: Buffer[], sentinelTci?: number) {
        const plain = rawFrame(A, B, 64, 99);
        const sentinel = sentinelTci === undefined ? plain : tagged(plain, sentinelTci);
        for (const f of frames) await b.vf.transmit(f);
        await b.vf.transmit(sentinel);
        const got: Array<{ data: string; vlan?: number }> = [];
        for (;;) {
          for (const f of await a.vf.waitFrames(0, 1, 3000)) {
            if (f.data.equals(plain)) return got;
            got.push(f.vlan === undefined ? { data: hex(f.data) } : { data: hex(f.data), vlan: f.vlan });
          }
        }
      }

      it(`grants VLAN ${api} alone, and filters by the VF’s VLANs once it has one (any tag before)`, async () => {
        const { a, b } = await pair();
        const granted = a.vf.vfRes!.vfCapFlags & (VF_CAP.VLAN | VF_CAP.VLAN_V2);
        expect(granted).to.equal(api === 'v1' ? VF_CAP.VLAN : VF_CAP.VLAN_V2);
        const f100 = tagged(rawFrame(A, B, 80, 1), 100);
        const f200 = tagged(rawFrame(A, B, 80, 2), 200);
        expect(await toA(a, b, [f200]), 'no VLAN filter: every tag passes').to.deep.equal([
          { data: hex(f200) },
        ]);
        await a.vf.addVlans([100]);
        expect(await toA(a, b, [f200, f100])).to.deep.equal([{ data: hex(f100) }]);
        expect(a.device.dataPath.filtered).to.equal(1);
        await a.vf.delVlans([100]);
        expect(await toA(a, b, [f200])).to.deep.equal([{ data: hex(f200) }]);
      });

      it('strips the tag into the descriptor when stripping is on, and leaves it in the frame when off', async () => {
        const { a, b } = await pair();
        const plain = rawFrame(A, B, 200, 3);
        const f = tagged(plain, 0xa064); // PCP 5, VID 100
        await a.vf.setVlanStripping(true);
        expect(await toA(a, b, [f])).to.deep.equal([{ data: hex(plain), vlan: 0xa064 }]);
        await a.vf.setVlanStripping(false);
        expect(await toA(a, b, [f])).to.deep.equal([{ data: hex(f) }]);
      });

      it('inserts the tag the TX descriptor asks for (IL2TAG1), in every TSO segment too', async () => {
        const { a, b } = await pair();
        const f = rawFrame(A, B, 300, 4);
        await b.vf.transmit(f, { vlan: 0x2007 });
        const [got] = await a.vf.waitFrames(0, 1, 3000);
        expect(hex(got.data)).to.equal(hex(tagged(f, 0x2007)));
        const tcp = ipv4TcpFrame({
          dstMac: A,
          srcMac: B,
          srcIp: '10.0.0.2',
          dstIp: '10.0.0.1',
          sport: 1000,
          dport: 2000,
          payload: Buffer.alloc(3000, 0x61),
        });
        await b.vf.transmit(tcp, { tso: { mss: 1000 }, vlan: 55 });
        const segs = await a.vf.waitFrames(0, 3, 3000);
        expect(segs.map((s) => s.data.length)).to.deep.equal([58 + 1000, 58 + 1000, 58 + 1000]);
        for (const s of segs) expect(hex(s.data.subarray(12, 16))).to.equal('81000037');
      });

      it('a port VLAN: the VF sends and receives untagged, the wire carries the tag, and the VF may not change VLANs', async () => {
        const { a, b } = await pair({ vlan: 300 });
        expect(
          a.vf.vfRes!.vfCapFlags & (VF_CAP.VLAN | VF_CAP.VLAN_V2),
          'no VLAN capability behind a port VLAN',
        ).to.equal(0);
        const err = await a.vf.addVlans([5]).catch((e) => e);
        expect(err).to.be.instanceOf(VirtchnlError);
        expect(err.status).to.equal(VIRTCHNL_STATUS.ERR_NOT_SUPPORTED);
        // What A sends gets the port's tag; what A tagged itself is dropped.
        const out = rawFrame(B, A, 100, 5);
        await a.vf.transmit(tagged(rawFrame(B, A, 100, 6), 7));
        await a.vf.transmit(out);
        const got = await b.vf.waitFrames(0, 1, 3000);
        expect(got.map((g) => hex(g.data))).to.deep.equal([hex(tagged(out, 300))]);
        expect(a.device.dataPath.tx[0]).to.deep.include({ packets: 1, drops: 1 });
        // What reaches A: only frames of VLAN 300, without their tag, which A never sees.
        const inVlan = rawFrame(A, B, 90, 7);
        expect(
          await toA(
            a,
            b,
            [tagged(rawFrame(A, B, 90, 8), 100), rawFrame(A, B, 90, 9), tagged(inVlan, 300)],
            300,
          ),
        ).to.deep.equal([{ data: hex(inVlan) }]);
      });
    });
  }
}

describe('VLAN v1 filters an untrusted VF may hold, and the default stripping', () => {
  let nics: SwitchedNics;
  afterEach(async () => {
    await nics?.close();
  });

  it('takes 16, as i40e, and answers SUCCESS for more without adding them (counted, logged once)', async () => {
    nics = new SwitchedNics('shared');
    const a = await nics.nic('a', { mac: A, queues: 1 }, V1);
    await a.vf.addVlans(Array.from({ length: 10 }, (_, i) => i + 1));
    const reply = await a.vf.addVlans(Array.from({ length: 15 }, (_, i) => i + 6));
    expect(reply.status).to.equal(VIRTCHNL_STATUS.SUCCESS);
    expect([...a.device.vf.config.vlans].sort((x, y) => x - y)).to.deep.equal(
      Array.from({ length: 16 }, (_, i) => i + 1),
    );
    expect(a.stats().virtchnl.ignored).to.deep.equal({ ADD_VLAN: 1 });
    const trusted = await nics.nic('t', { mac: B, queues: 1, trust: true }, V1);
    await trusted.vf.addVlans(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(trusted.device.vf.config.vlans.size).to.equal(100);
  });

  it('starts with stripping on once VLAN v1 is granted, as i40e and ice do (Linux sends nothing); off for V2, as ice', async () => {
    nics = new SwitchedNics('shared');
    const a = await nics.nic('a', { mac: A, queues: 1 }, V1);
    expect(a.device.vf.config.vlanStrip).to.equal(true);
    const v2 = await nics.nic('v2', { mac: '02:00:00:00:0f:0c', queues: 1 });
    // SoftIavf, as Linux, turned it on at init (ENABLE_VLAN_STRIPPING_V2); a VF reset turns it off again.
    expect(v2.device.vf.config.vlanStrip).to.equal(true);
    await v2.vf.resetVf();
    expect(v2.device.vf.config.vlanStrip).to.equal(false);
    const p = await nics.nic('p', { mac: B, queues: 1, vlan: 10 });
    expect(p.device.vf.config.vlanStrip, 'no VLAN capability: nothing stripped into a descriptor').to.equal(
      false,
    );
  });
});
