/**
 * TX offloads Linux always turns on: IPv4 header, TCP/UDP checksum and SCTP CRC32c insertion, and TSO.
 * The guest sends what Linux's stack and iavf_tx_enable_csum / iavf_tso hand the NIC; the network side
 * checks the result against frames built, and checksums computed, by testing/frames.ts.
 */
import { expect } from 'chai';
import {
  ETH_HLEN,
  type FlowSpec,
  ipv4ChecksumOk,
  ipv4SctpFrame,
  ipv4TcpFrame,
  ipv4UdpFrame,
  l4ChecksumOk,
  parseIpv4,
  pseudoSum,
  sctpCrcOk,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  type TcpSpec,
  tcpTimestampOption,
} from './testing/frames.js';
import { Harness, type HarnessOptions } from './testing/harness.js';
import { IAVF_TX_DESC_SIZE, TX_CMD, TX_DESC } from './testing/iavf-defs.js';
import type { TestNetwork } from './testing/test-network.js';

const VF_MAC = '02:00:00:00:00:0a';
const PEER = '02:00:00:00:00:99';

function payload(n: number, seed = 0): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed + (i >> 9)) & 0xff));
}

const flow = (p: Buffer): FlowSpec => ({
  dstMac: PEER,
  srcMac: VF_MAC,
  srcIp: '10.0.0.2',
  dstIp: '192.0.2.77',
  sport: 40000,
  dport: 443,
  payload: p,
});

/**
 * What Linux hands the NIC for CHECKSUM_PARTIAL: the L4 checksum field holds the pseudo-header sum
 * (with the length, not complemented); the IPv4 header checksum zeroed when `zeroIp` (to make the device
 * compute it).
 */
function asChecksumPartial(frame: Buffer, opts: { zeroIp: boolean; zeroL4?: boolean }): Buffer {
  const f = Buffer.from(frame);
  const p = parseIpv4(f);
  const l4Len = p.totalLength - p.ihl;
  const field = p.l4 + (p.proto === 6 ? 16 : 6);
  f.writeUInt16BE(opts.zeroL4 ? 0 : pseudoSum(p.src, p.dst, p.proto, l4Len), field);
  if (opts.zeroIp) f.writeUInt16BE(0, ETH_HLEN + 10);
  return f;
}

for (const ram of ['shared', 'plain'] as const) {
  describe(`data path TX offloads (${ram} guest RAM)`, () => {
    let h: Harness | undefined;
    let net: TestNetwork;
    afterEach(async () => {
      await h?.close();
      h = undefined;
    });

    async function up(opts: HarnessOptions = {}) {
      ({ h, net } = await Harness.linked({ mac: VF_MAC }, { ram, ...opts }));
      return h.vf;
    }

    async function sendOne(frame: Buffer, opts: Parameters<Harness['vf']['transmit']>[1]): Promise<Buffer> {
      const vf = h!.vf;
      await vf.transmit(frame, opts);
      await vf.waitTxDone(0);
      const out = await net.waitSent(1);
      expect(out, 'frames on the wire').to.have.length(1);
      return Buffer.from(net.take()[0]);
    }

    it('IPv4/TCP with a pseudo-header-seeded checksum and a zeroed IPv4 checksum comes out with both correct', async () => {
      await up();
      const expected = ipv4TcpFrame({ ...flow(payload(1000)), seq: 77, flags: TCP_ACK | TCP_PSH });
      const input = asChecksumPartial(expected, { zeroIp: true });
      expect(ipv4ChecksumOk(input) || l4ChecksumOk(input), 'the input checksums are wrong').to.equal(false);
      const out = await sendOne(input, { csum: true, ipCsum: true });
      expect(ipv4ChecksumOk(out), 'IPv4 header checksum').to.equal(true);
      expect(l4ChecksumOk(out), 'TCP checksum').to.equal(true);
      expect(out.toString('hex')).to.equal(expected.toString('hex'));
      // The offload bits the guest set: IIPT_IPV4_CSUM | L4T_TCP, MACLEN 7 words, IPLEN 5, L4LEN 5.
      const qw1 = h!.ram.u64(h!.vf.rings[0].tx + 8n);
      expect(Number((qw1 >> TX_DESC.CMD_SHIFT) & 0x3ffn)).to.equal(
        TX_CMD.EOP | TX_CMD.RS | TX_CMD.ICRC | TX_CMD.IIPT_IPV4_CSUM | TX_CMD.L4T_TCP,
      );
      expect(Number((qw1 >> TX_DESC.OFFSET_SHIFT) & 0x3ffffn)).to.equal(7 | (5 << 7) | (5 << 14));
    });

    it('IPv4/UDP (odd length) with zeroed UDP and IPv4 checksums comes out with both correct', async () => {
      await up();
      const expected = ipv4UdpFrame({ ...flow(payload(999, 3)), dport: 4789 });
      const input = asChecksumPartial(expected, { zeroIp: true, zeroL4: true });
      const out = await sendOne(input, { csum: true, ipCsum: true });
      expect(ipv4ChecksumOk(out), 'IPv4 header checksum').to.equal(true);
      expect(l4ChecksumOk(out), 'UDP checksum').to.equal(true);
      expect(out.toString('hex')).to.equal(expected.toString('hex'));
    });

    it("IPv4/SCTP (L4T SCTP, as Linux's NETIF_F_SCTP_CRC asks) comes out with its CRC32c computed", async () => {
      await up();
      for (const [i, size] of [1, 100, 1001, 1400].entries()) {
        const expected = ipv4SctpFrame({ ...flow(payload(size, i)), sport: 5000 + i, dport: 9 });
        // What the stack hands a device with SCTP CRC offload: the checksum field zero.
        const input = Buffer.from(expected);
        input.writeUInt32LE(0, ETH_HLEN + 20 + 8);
        expect(sctpCrcOk(input), 'the input CRC is wrong').to.equal(false);
        const out = await sendOne(input, { csum: true });
        expect(sctpCrcOk(out), `SCTP CRC32c, ${size}-byte payload`).to.equal(true);
        expect(out.toString('hex')).to.equal(expected.toString('hex'));
      }
      const qw1 = h!.ram.u64(h!.vf.rings[0].tx + 8n);
      expect(Number((qw1 >> TX_DESC.CMD_SHIFT) & 0x3ffn) & 0x300, 'L4T SCTP').to.equal(TX_CMD.L4T_SCTP);
      expect(Number((qw1 >> TX_DESC.OFFSET_SHIFT) & 0x3ffffn)).to.equal(7 | (5 << 7) | (3 << 14));
    });

    it('IPv4/TCP with a zeroed TCP checksum (no seed) comes out correct as well', async () => {
      await up();
      const expected = ipv4TcpFrame({ ...flow(payload(333, 9)), sport: 1, dport: 65535 });
      const input = asChecksumPartial(expected, { zeroIp: true, zeroL4: true });
      const out = await sendOne(input, { csum: true, ipCsum: true });
      expect(out.toString('hex')).to.equal(expected.toString('hex'));
    });

    it("IIPT_IPV4 without header checksum offload (what Linux sends outside TSO) keeps the stack's IPv4 checksum", async () => {
      await up();
      const expected = ipv4TcpFrame(flow(payload(200)));
      const partial = asChecksumPartial(expected, { zeroIp: false });
      expect((await sendOne(partial, { csum: true })).toString('hex')).to.equal(expected.toString('hex'));
      // The device does not touch the IPv4 header checksum unless asked to (IIPT = 0x60).
      const badIp = Buffer.from(partial);
      badIp.writeUInt16BE(0xbeef, ETH_HLEN + 10);
      const out = await sendOne(badIp, { csum: true });
      expect(out.readUInt16BE(ETH_HLEN + 10)).to.equal(0xbeef);
      expect(l4ChecksumOk(out)).to.equal(true);
    });

    it('without offload bits the frame goes out untouched, wrong checksums included', async () => {
      await up();
      const frame = ipv4TcpFrame(flow(payload(100)));
      frame.writeUInt16BE(0xdead, ETH_HLEN + 20 + 16);
      frame.writeUInt16BE(0, ETH_HLEN + 10);
      const out = await sendOne(frame, {});
      expect(out.toString('hex')).to.equal(frame.toString('hex'));
    });

    it('TSO: a 20000-byte TCP payload with MSS 1448 comes out as 14 correct segments', async () => {
      await up();
      const data = payload(20000, 5);
      const baseSeq = 0xffffd000; // the sequence number wraps within the burst
      const baseId = 0xfff8; // and so does the IPv4 id
      const spec: TcpSpec = {
        ...flow(data),
        seq: baseSeq,
        ack: 0x01020304,
        flags: TCP_ACK | TCP_PSH | TCP_FIN,
        ipId: baseId,
        ttl: 61,
        window: 501,
        options: tcpTimestampOption(0x11223344, 0x55667788),
      };
      const superframe = ipv4TcpFrame(spec);
      const hdrLen = ETH_HLEN + 20 + 32;
      const posted = await h!.vf.transmit(superframe, { tso: { mss: 1448 } });
      // A context descriptor, then 20066 bytes in 12 KiB pieces: 3 descriptors.
      expect(posted.descriptors).to.equal(3);
      const ctx = h!.ram.u64(h!.vf.rings[0].tx + 8n);
      expect(Number(ctx & 0xfn), 'context DTYPE').to.equal(TX_DESC.DTYPE_CONTEXT);
      expect(Number((ctx >> 30n) & 0x3ffffn), 'TSO_LEN').to.equal(20000);
      expect(Number(ctx >> 50n), 'MSS').to.equal(1448);
      await h!.vf.waitTxDone(0);
      const segs = (await net.waitSent(14)).map((f) => Buffer.from(f));
      expect(segs).to.have.length(14);
      expect(await net.quietFor(20)).to.equal(0);

      const header = superframe.subarray(0, hdrLen);
      let offset = 0;
      segs.forEach((seg, i) => {
        const last = i === 13;
        const len = last ? 20000 - 13 * 1448 : 1448;
        expect(len).to.equal(last ? 1176 : 1448);
        expect(seg.length, `segment ${i} length`).to.equal(hdrLen + len);
        const p = parseIpv4(seg);
        expect(p.totalLength, `segment ${i} IPv4 total length`).to.equal(seg.length - ETH_HLEN);
        expect(p.id, `segment ${i} IPv4 id`).to.equal((baseId + i) & 0xffff);
        expect(ipv4ChecksumOk(seg), `segment ${i} IPv4 checksum`).to.equal(true);
        expect(l4ChecksumOk(seg), `segment ${i} TCP checksum`).to.equal(true);
        expect(p.seq, `segment ${i} sequence number`).to.equal((baseSeq + offset) >>> 0);
        expect(p.ack).to.equal(0x01020304);
        expect(p.flags, `segment ${i} flags`).to.equal(last ? TCP_ACK | TCP_PSH | TCP_FIN : TCP_ACK);
        expect(p.payload.equals(data.subarray(offset, offset + len)), `segment ${i} payload`).to.equal(true);
        // Everything else in the headers is the superframe's: MACs, TTL, addresses, ports, window, options.
        const masked = (b: Buffer) => {
          const c = Buffer.from(b.subarray(0, hdrLen));
          for (const at of [16, 17, 18, 19, 24, 25]) c[at] = 0; // tot_len, id, check
          for (const at of [38, 39, 40, 41, 47, 50, 51]) c[at] = 0; // seq, flags, check
          return c.toString('hex');
        };
        expect(masked(seg), `segment ${i} other header fields`).to.equal(masked(header));
        offset += len;
      });
      expect(h!.device.dataPath.tx[0]).to.deep.equal({
        packets: 14,
        bytes: segs.reduce((n, s) => n + s.length, 0),
        drops: 0,
        errors: 0,
      });
      // The RS descriptor (the last data descriptor) is done; the context descriptor was not rewritten.
      expect(Number(h!.ram.u64(h!.vf.rings[0].tx + BigInt(2 * IAVF_TX_DESC_SIZE) + 8n) & 0xfn)).to.equal(0xf);
      expect(Number(h!.ram.u64(h!.vf.rings[0].tx + 8n) & 0xfn)).to.equal(TX_DESC.DTYPE_CONTEXT);
    });

    it('TSO of exactly 2 × MSS (no TCP options, 3 buffers) gives 2 full segments, PSH/FIN on the second only', async () => {
      await up();
      const data = payload(2 * 1000, 8);
      const superframe = ipv4TcpFrame({ ...flow(data), seq: 5, flags: TCP_ACK | TCP_PSH | TCP_FIN, ipId: 9 });
      await h!.vf.transmit(superframe, { tso: { mss: 1000 }, buffers: [54, 1000, 1000] });
      await h!.vf.waitTxDone(0);
      const segs = (await net.waitSent(2)).map((f) => Buffer.from(f));
      expect(segs.map((s) => s.length)).to.deep.equal([1054, 1054]);
      expect(segs.map((s) => parseIpv4(s).seq)).to.deep.equal([5, 1005]);
      expect(segs.map((s) => parseIpv4(s).id)).to.deep.equal([9, 10]);
      expect(segs.map((s) => parseIpv4(s).flags)).to.deep.equal([TCP_ACK, TCP_ACK | TCP_PSH | TCP_FIN]);
      expect(segs.every((s) => ipv4ChecksumOk(s) && l4ChecksumOk(s))).to.equal(true);
      expect(Buffer.concat(segs.map((s) => parseIpv4(s).payload)).equals(data)).to.equal(true);
    });
  });
}
