/**
 * rss.ts against the RSS verification suite (testing/rss-vectors.ts: Microsoft's test key and its
 * published IPv4, IPv4/TCP, IPv6 and IPv6/TCP hashes), and against the literal Toeplitz pseudocode.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { ipv4TcpFrame, ipv4UdpFrame, rawFrame, rssTuple, toeplitzReference } from '../testing/frames.js';
import { MS_IPV4_VECTORS, MS_IPV6_VECTORS, MS_RSS_KEY } from '../testing/rss-vectors.js';
import { rssInput, toeplitz } from './rss.js';

const ports = (sport: number, dport: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  return b;
};

describe('RSS: the Toeplitz hash (rss.ts)', () => {
  it('matches the verification suite for IPv4 (source, destination) and IPv4/TCP (plus ports)', () => {
    for (const t of MS_IPV4_VECTORS) {
      const name = `${t.src}:${t.sport} → ${t.dst}:${t.dport}`;
      expect(toeplitz(MS_RSS_KEY, rssTuple(t.src, t.dst)), `${name} IPv4`).to.equal(t.ipv4);
      expect(toeplitz(MS_RSS_KEY, rssTuple(t.src, t.dst, t.sport, t.dport)), `${name} TCP`).to.equal(t.tcp);
    }
  });

  it('matches the verification suite for IPv6 and IPv6/TCP', () => {
    for (const [i, t] of MS_IPV6_VECTORS.entries()) {
      expect(t.src.length + t.dst.length).to.equal(32);
      expect(toeplitz(MS_RSS_KEY, Buffer.concat([t.src, t.dst])), `vector ${i} IPv6`).to.equal(t.ipv6);
      expect(
        toeplitz(MS_RSS_KEY, Buffer.concat([t.src, t.dst, ports(t.sport, t.dport)])),
        `vector ${i} TCP`,
      ).to.equal(t.tcp);
    }
  });

  it('gives the same hashes with the 52-byte key an AVF holds (the key bits past the input are never used)', () => {
    const key52 = Buffer.concat([MS_RSS_KEY, randomBytes(12)]);
    for (const t of MS_IPV4_VECTORS)
      expect(toeplitz(key52, rssTuple(t.src, t.dst, t.sport, t.dport))).to.equal(t.tcp);
    const t = MS_IPV6_VECTORS[0];
    expect(toeplitz(key52, Buffer.concat([t.src, t.dst, ports(t.sport, t.dport)]))).to.equal(t.tcp);
  });

  it('agrees with the literal pseudocode on random keys and inputs of 0 to 48 bytes', () => {
    for (let i = 0; i < 300; i++) {
      const key = randomBytes(52);
      const input = randomBytes(i % 49);
      expect(toeplitz(key, input), `key ${key.toString('hex')} input ${input.toString('hex')}`).to.equal(
        toeplitzReference(key, input),
      );
    }
    expect(toeplitz(MS_RSS_KEY, Buffer.alloc(0))).to.equal(0);
  });
});

describe('RSS: the hash input of a frame (rss.ts)', () => {
  const spec = {
    dstMac: '02:00:00:00:00:0a',
    srcMac: '02:00:00:00:00:99',
    srcIp: '66.9.149.187',
    dstIp: '161.142.100.80',
    sport: 2794,
    dport: 1766,
    payload: Buffer.from('hello'),
  };

  it('is source address, destination address, source port, destination port for IPv4/TCP and IPv4/UDP', () => {
    const want = rssTuple(spec.srcIp, spec.dstIp, spec.sport, spec.dport);
    expect(Buffer.from(rssInput(ipv4TcpFrame(spec))!).equals(want)).to.equal(true);
    expect(Buffer.from(rssInput(ipv4UdpFrame(spec))!).equals(want)).to.equal(true);
    expect(toeplitz(MS_RSS_KEY, rssInput(ipv4TcpFrame(spec))!)).to.equal(0x51ccc178);
  });

  it('is the two addresses for other IPv4 protocols, and nothing for a frame that is not IP', () => {
    const icmp = ipv4UdpFrame(spec);
    icmp[14 + 9] = 1;
    expect(Buffer.from(rssInput(icmp)!).equals(rssTuple(spec.srcIp, spec.dstIp))).to.equal(true);
    expect(toeplitz(MS_RSS_KEY, rssInput(icmp)!)).to.equal(0x323e8fc2);
    expect(rssInput(rawFrame(spec.dstMac, spec.srcMac, 100))).to.equal(undefined);
  });

  it('looks past an 802.1Q tag', () => {
    const plain = ipv4TcpFrame(spec);
    const tagged = Buffer.concat([
      plain.subarray(0, 12),
      Buffer.from([0x81, 0x00, 0x00, 0x07]),
      plain.subarray(12),
    ]);
    expect(toeplitz(MS_RSS_KEY, rssInput(tagged)!)).to.equal(0x51ccc178);
  });
});
