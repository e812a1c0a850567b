/**
 * The RX parser and checksum engine (@emu/native's iavfRxOffloadBits, which every RX path applies): the
 * PTYPE and checksum status it reports for each kind of frame, read the way Linux 6.12's
 * iavf_rx_checksum reads them (SoftIavf's rxChecksumVerdict, with libie's packet-type table), and
 * checked against the independent checksum code in testing/frames.ts.
 */
import { iavfRxOffloadBits } from '@emu/native';
import { expect } from 'chai';
import {
  ETH_HLEN,
  ETH_P_ARP,
  ETH_P_IP,
  ethFrame,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  icmpEcho,
  ipv4ChecksumOk,
  ipv4Frame,
  ipv4SctpFrame,
  ipv4TcpFrame,
  ipv4UdpFrame,
  ipv6Frame,
  l4ChecksumOk,
  onesSum,
  rawFrame,
  tcpSegment,
  udpDatagram,
} from '../testing/frames.js';
import { PTYPE_ARP, PTYPE_L2, RX_WB } from '../testing/iavf-defs.js';
import { type RxDescriptor, rxChecksumVerdict } from '../testing/soft-iavf/descriptors.js';

const MACS = { dstMac: '02:00:00:00:00:0a', srcMac: '02:00:00:00:00:0b' };
const V4 = { ...MACS, srcIp: '10.0.0.2', dstIp: '10.0.0.1' };
const V6 = { ...MACS, srcIp: 'fd00::2', dstIp: 'fd00::1' };
const PAYLOAD = Buffer.from('the quick brown fox jumps over the lazy dog');

/** What the guest reads from a write-back carrying the device's bits. */
function seen(frame: Uint8Array) {
  const qw1 = iavfRxOffloadBits(frame);
  const d = {
    qw1,
    ptype: Number((qw1 >> RX_WB.PTYPE_SHIFT) & 0xffn),
    errors: Number((qw1 >> RX_WB.ERROR_SHIFT) & 0xffn),
  } as RxDescriptor;
  return {
    ptype: d.ptype,
    errors: d.errors,
    l3l4p: (qw1 & RX_WB.L3L4P) !== 0n,
    verdict: rxChecksumVerdict(d),
  };
}

/** The SCTP packet (common header and chunk, CRC right) of an IPv4 SCTP frame. */
const sctpPacket = () =>
  ipv4SctpFrame({ ...V4, sport: 5000, dport: 5001, payload: PAYLOAD }).subarray(ETH_HLEN + 20);

/** A copy of the frame with one byte changed. */
function flip(frame: Uint8Array, at: number): Buffer {
  const f = Buffer.from(frame);
  f[at] ^= 0x40;
  return f;
}

describe('RX offloads: packet type and checksum status of the write-back', () => {
  const good: [string, () => Buffer, number][] = [
    ['IPv4 TCP', () => ipv4TcpFrame({ ...V4, sport: 40000, dport: 80, payload: PAYLOAD }), 26],
    ['IPv4 UDP', () => ipv4UdpFrame({ ...V4, sport: 40000, dport: 53, payload: PAYLOAD }), 24],
    ['IPv4 SCTP', () => ipv4SctpFrame({ ...V4, sport: 5000, dport: 5001, payload: PAYLOAD }), 27],
    ['IPv4 ICMP echo', () => ipv4Frame(V4, IPPROTO_ICMP, icmpEcho(false, 7, 1, PAYLOAD), 2), 28],
    ['IPv6 TCP', () => ipv6Frame(V6, IPPROTO_TCP, tcpSegment(40000, 80, PAYLOAD), 16), 92],
    ['IPv6 UDP', () => ipv6Frame(V6, IPPROTO_UDP, udpDatagram(40000, 53, PAYLOAD), 6), 90],
    ['IPv6 SCTP', () => ipv6Frame(V6, IPPROTO_SCTP, sctpPacket()), 93],
    ['IPv6 ICMPv6 echo', () => ipv6Frame(V6, IPPROTO_ICMPV6, icmpEcho(true, 7, 1, PAYLOAD), 2), 94],
  ];

  for (const [name, make, ptype] of good) {
    it(`${name}: PTYPE ${ptype}, L3L4P and no error, so Linux trusts it (CHECKSUM_UNNECESSARY)`, () => {
      expect(seen(make())).to.deep.equal({ ptype, errors: 0, l3l4p: true, verdict: 'unnecessary' });
    });
  }

  // The byte to break in each: one inside the L4 payload (the last byte of the frame).
  for (const [name, make, ptype] of good) {
    it(`${name} with a payload byte changed: L4E, so Linux checks it itself and counts it`, () => {
      const f = make();
      expect(seen(flip(f, f.length - 1))).to.deep.equal({
        ptype,
        errors: RX_WB.ERROR_L4E,
        l3l4p: true,
        verdict: 'error',
      });
    });
  }

  it('checks TCP sums of every payload length up to 1460 at every alignment (the wide and narrow loops agree)', () => {
    let x = 0x2545f491;
    const byte = () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return x & 0xff;
    };
    const store = new Uint8Array(1600);
    for (let n = 0; n <= 1460; n++) {
      const f = ipv4TcpFrame({
        ...V4,
        sport: 40000,
        dport: 80,
        payload: Buffer.from(Array.from({ length: n }, byte)),
      });
      const at = n % 16;
      store.set(f, at);
      const view = store.subarray(at, at + f.length);
      expect(seen(view).verdict, `${n} bytes at +${at}`).to.equal('unnecessary');
      if (n === 0) continue;
      const i = f.length - 1 - (byte() % n);
      view[i] ^= 1 << (byte() & 7);
      expect(seen(view).errors, `${n} bytes at +${at}, byte ${i} changed`).to.equal(RX_WB.ERROR_L4E);
    }
  });

  it('a bad IPv4 header checksum: IPE (the L4 sum still right)', () => {
    const f = ipv4TcpFrame({ ...V4, sport: 1, dport: 2, payload: PAYLOAD });
    f.writeUInt16BE(f.readUInt16BE(ETH_HLEN + 10) ^ 0x0101, ETH_HLEN + 10);
    expect(seen(f)).to.deep.equal({ ptype: 26, errors: RX_WB.ERROR_IPE, l3l4p: true, verdict: 'error' });
  });

  it('UDP without a checksum: fine over IPv4 (RFC 768), an L4 error over IPv6 (RFC 8200 8.1)', () => {
    const v4 = ipv4UdpFrame({ ...V4, sport: 1, dport: 2, payload: PAYLOAD });
    v4.writeUInt16BE(0, ETH_HLEN + 20 + 6);
    expect(seen(v4).verdict).to.equal('unnecessary');
    const v6 = ipv6Frame(V6, IPPROTO_UDP, udpDatagram(1, 2, PAYLOAD));
    expect(seen(v6)).to.include({ ptype: 90, errors: RX_WB.ERROR_L4E, verdict: 'error' });
  });

  it('a UDP length field beyond the datagram: an L4 error', () => {
    const f = ipv4UdpFrame({ ...V4, sport: 1, dport: 2, payload: PAYLOAD });
    f.writeUInt16BE(PAYLOAD.length + 9, ETH_HLEN + 20 + 4);
    expect(seen(f)).to.include({ errors: RX_WB.ERROR_L4E, verdict: 'error' });
  });

  it('fragments: PTYPE 22 / 88 and nothing verified (the L4 header is in one fragment only)', () => {
    const mf = ipv4UdpFrame({ ...V4, sport: 1, dport: 2, payload: PAYLOAD });
    mf.writeUInt16BE(0x2000, ETH_HLEN + 6); // MF
    mf.writeUInt16BE(0, ETH_HLEN + 10);
    mf.writeUInt16BE(~onesSum(mf.subarray(ETH_HLEN, ETH_HLEN + 20)) & 0xffff, ETH_HLEN + 10);
    expect(seen(mf)).to.deep.equal({ ptype: 22, errors: 0, l3l4p: false, verdict: 'none' });
    const offset = Buffer.from(mf);
    offset.writeUInt16BE(0x0010, ETH_HLEN + 6);
    expect(seen(offset).ptype).to.equal(22);
    const frag6 = Buffer.alloc(8);
    frag6[0] = IPPROTO_UDP;
    frag6.writeUInt16BE(0x0001, 2); // offset 0, M
    expect(
      seen(ipv6Frame(V6, IPPROTO_UDP, udpDatagram(1, 2, PAYLOAD), 6, [{ type: 44, bytes: frag6 }])),
    ).to.deep.equal({
      ptype: 88,
      errors: 0,
      l3l4p: false,
      verdict: 'none',
    });
  });

  it('IPv6 behind extension headers: the L4 type, but the sum left to the stack', () => {
    const hop = Buffer.alloc(8);
    hop[0] = 60; // then destination options
    const dest = Buffer.alloc(8);
    dest[0] = IPPROTO_TCP;
    const f = ipv6Frame(V6, IPPROTO_TCP, tcpSegment(1, 2, PAYLOAD), 16, [
      { type: 0, bytes: hop },
      { type: 60, bytes: dest },
    ]);
    expect(seen(f)).to.deep.equal({ ptype: 92, errors: 0, l3l4p: false, verdict: 'none' });
  });

  it('L2 frames: ARP is PTYPE 11, anything else not IP is PTYPE 1; no checksum status', () => {
    expect(seen(ethFrame(MACS.dstMac, MACS.srcMac, ETH_P_ARP, Buffer.alloc(28)))).to.deep.equal({
      ptype: PTYPE_ARP,
      errors: 0,
      l3l4p: false,
      verdict: 'none',
    });
    expect(seen(rawFrame(MACS.dstMac, MACS.srcMac, 100))).to.include({ ptype: PTYPE_L2, l3l4p: false });
  });

  it('IPv4 with an L4 protocol the parser does not know: PTYPE 23, nothing verified', () => {
    expect(seen(ipv4Frame(V4, 47, Buffer.alloc(24)))).to.deep.equal({
      ptype: 23,
      errors: 0,
      l3l4p: false,
      verdict: 'none',
    });
  });

  it('one VLAN tag is looked through', () => {
    const plain = ipv4TcpFrame({ ...V4, sport: 1, dport: 2, payload: PAYLOAD });
    const tagged = Buffer.concat([
      plain.subarray(0, 12),
      Buffer.from([0x81, 0x00, 0x00, 0x64]),
      plain.subarray(12),
    ]);
    expect(seen(tagged)).to.deep.equal({ ptype: 26, errors: 0, l3l4p: true, verdict: 'unnecessary' });
  });

  it('lengths: Ethernet padding after the IP packet is not summed; an IP length past the frame verifies nothing', () => {
    const small = ipv4UdpFrame({ ...V4, sport: 1, dport: 2, payload: Buffer.from('hi') });
    const padded = Buffer.concat([small, Buffer.alloc(60 - small.length, 0xee)]);
    expect(seen(padded).verdict).to.equal('unnecessary');
    const truncated = ipv4TcpFrame({ ...V4, sport: 1, dport: 2, payload: PAYLOAD }).subarray(0, 60);
    expect(seen(truncated)).to.deep.equal({ ptype: 23, errors: 0, l3l4p: false, verdict: 'none' });
    const shortIhl = ipv4TcpFrame({ ...V4, sport: 1, dport: 2, payload: PAYLOAD });
    shortIhl[ETH_HLEN] = 0x44;
    expect(seen(shortIhl)).to.include({ ptype: 23, l3l4p: false });
    for (const n of [0, 1, 13, 14, 20, 33]) {
      const f = ipv4TcpFrame({ ...V4, sport: 1, dport: 2, payload: PAYLOAD }).subarray(0, n);
      expect(seen(f).l3l4p, `${n} bytes`).to.equal(false);
    }
  });

  it('every payload length from 0 to 40 and jumbo ones (the 8-byte and 2-byte loops, an odd last byte)', () => {
    for (const n of [...Array.from({ length: 41 }, (_, i) => i), 1459, 1460, 8959, 8960]) {
      const payload = Buffer.from(Array.from({ length: n }, (_, i) => (i * 13 + n) & 0xff));
      for (const f of [
        ipv4TcpFrame({ ...V4, sport: 1, dport: 2, payload }),
        ipv4UdpFrame({ ...V4, sport: 1, dport: 2, payload }),
        ipv6Frame(V6, IPPROTO_TCP, tcpSegment(1, 2, payload), 16),
      ]) {
        expect(seen(f).verdict, `${n} bytes`).to.equal('unnecessary');
        if (n > 0)
          expect(seen(flip(f, f.length - 1 - (n >> 1))).verdict, `${n} bytes, one changed`).to.equal('error');
      }
    }
  });

  it('never calls a mangled IPv4 TCP/UDP frame good unless the independent sums agree (2000 random mutations)', () => {
    let seed = 12345;
    const rand = (max: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % max;
    };
    let trusted = 0;
    for (let i = 0; i < 2000; i++) {
      const base =
        i % 2
          ? ipv4TcpFrame({ ...V4, sport: 1, dport: 2, payload: PAYLOAD })
          : ipv4UdpFrame({ ...V4, sport: 1, dport: 2, payload: PAYLOAD });
      const f = Buffer.from(base);
      for (let k = 0, n = 1 + rand(3); k < n; k++) f[ETH_HLEN + rand(f.length - ETH_HLEN)] = rand(256);
      const s = seen(f);
      if (s.verdict !== 'unnecessary') continue;
      if (f.readUInt16BE(12) !== ETH_P_IP || ![IPPROTO_TCP, IPPROTO_UDP].includes(f[ETH_HLEN + 9])) continue;
      trusted++;
      const udpNone =
        f[ETH_HLEN + 9] === IPPROTO_UDP && f.readUInt16BE(ETH_HLEN + (f[ETH_HLEN] & 0xf) * 4 + 6) === 0;
      expect(ipv4ChecksumOk(f), f.toString('hex')).to.equal(true);
      if (!udpNone) expect(l4ChecksumOk(f), f.toString('hex')).to.equal(true);
    }
    // Mutations of the TTL, ports or addresses that the sums catch leave few frames trusted; some were.
    expect(trusted).to.be.greaterThan(0);
  });

  it('refuses what is not bytes', () => {
    expect(() => iavfRxOffloadBits('frame' as unknown as Uint8Array)).to.throw(TypeError);
  });
});
