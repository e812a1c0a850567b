/**
 * The VF's RSS as every receive path gets it: the twin's route() (@emu/native, iavf_nic.h), which the
 * TypeScript path asks per frame and the worker runs itself. Against the RSS verification suite
 * (testing/rss-vectors.ts: Microsoft's test key and its published IPv4, IPv4/TCP, IPv6 and IPv6/TCP
 * hashes) and against the literal Toeplitz pseudocode (testing/frames.ts).
 */
import { randomBytes } from 'node:crypto';
import { DataPlane, IavfNic, type IavfNicConfig, NIC_STATE } from '@emu/native';
import { expect } from 'chai';
import {
  ethFrame,
  ipv4TcpFrame,
  ipv4UdpFrame,
  rawFrame,
  rssTuple,
  toeplitzReference,
} from '../testing/frames.js';
import { MS_IPV4_VECTORS, MS_IPV6_VECTORS, MS_RSS_KEY } from '../testing/rss-vectors.js';

const MAC = '02:00:00:00:00:0a';
const PEER = '02:00:00:00:00:99';
const LUT = Uint8Array.from({ length: 64 }, (_, i) => i % 4);

/** A twin that only routes (no tail page), configured with 4 enabled queues and `key`. */
function twin(key: Uint8Array) {
  const state = new ArrayBuffer(NIC_STATE.stateBytes);
  const nic = new IavfNic(DataPlane.shared(), { state, onEvents: () => {} });
  const ring = { ring: 0x1000n, length: 64, bufferSize: 2048, maxFrame: 1522, descSize: 32 as const };
  const config: IavfNicConfig = {
    mac: Uint8Array.from(MAC.split(':').map((h) => Number.parseInt(h, 16))),
    macs: [],
    promisc: 0,
    spoofCheck: false,
    vlans: [],
    vlanStrip: false,
    portVlan: 0,
    rssKey: Buffer.concat([key, Buffer.alloc(52 - key.length)]),
    rssLut: LUT,
    numQueuePairs: 4,
    tx: [],
    rx: [ring, ring, ring, ring],
    txEnabled: 0,
    rxEnabled: 0xf,
    irqMap: [],
  };
  nic.configure(config);
  return {
    nic,
    counters: new Float64Array(state, NIC_STATE.headsBytes, NIC_STATE.counterCount),
    /** The hash route() reports, checking the queue is the one the LUT names. */
    hash(frame: Uint8Array): number | undefined {
      const r = nic.route(frame);
      if (r?.hash !== undefined) expect(r.queue, 'the LUT picks the queue').to.equal(LUT[r.hash % 64]);
      return r?.hash;
    },
  };
}

const flow = (src: string, dst: string, sport: number, dport: number) => ({
  dstMac: MAC,
  srcMac: PEER,
  srcIp: src,
  dstIp: dst,
  sport,
  dport,
  payload: Buffer.from('hello'),
});

/** An Ethernet/IPv6 frame: TCP (ports, then a bare header) or No Next Header (59). */
function ipv6Frame(src: Uint8Array, dst: Uint8Array, ports?: { sport: number; dport: number }): Buffer {
  const ip = Buffer.alloc(40);
  ip[0] = 0x60;
  ip[6] = ports ? 6 : 59;
  ip[7] = 64;
  ip.set(src, 8);
  ip.set(dst, 24);
  const l4 = Buffer.alloc(ports ? 20 : 0);
  if (ports) {
    l4.writeUInt16BE(ports.sport, 0);
    l4.writeUInt16BE(ports.dport, 2);
    l4[12] = 0x50;
  }
  ip.writeUInt16BE(l4.length, 4);
  return ethFrame(MAC, PEER, 0x86dd, Buffer.concat([ip, l4]));
}

describe("RSS: the Toeplitz hash of the VF's twin (route)", () => {
  const closeAfter: IavfNic[] = [];
  const make = (key: Uint8Array) => {
    const t = twin(key);
    closeAfter.push(t.nic);
    return t;
  };
  afterEach(() => {
    for (const n of closeAfter.splice(0)) n.close();
  });

  it('matches the verification suite for IPv4 (source, destination) and IPv4/TCP (plus ports)', () => {
    const t = make(MS_RSS_KEY);
    for (const v of MS_IPV4_VECTORS) {
      const name = `${v.src}:${v.sport} → ${v.dst}:${v.dport}`;
      const tcp = ipv4TcpFrame(flow(v.src, v.dst, v.sport, v.dport));
      expect(t.hash(tcp), `${name} TCP`).to.equal(v.tcp);
      const other = ipv4UdpFrame(flow(v.src, v.dst, v.sport, v.dport));
      other[14 + 9] = 1; // ICMP: the addresses alone
      expect(t.hash(other), `${name} IPv4`).to.equal(v.ipv4);
    }
  });

  it('matches the verification suite for IPv6 and IPv6/TCP', () => {
    const t = make(MS_RSS_KEY);
    for (const [i, v] of MS_IPV6_VECTORS.entries()) {
      expect(t.hash(ipv6Frame(v.src, v.dst)), `vector ${i} IPv6`).to.equal(v.ipv6);
      expect(t.hash(ipv6Frame(v.src, v.dst, v)), `vector ${i} TCP`).to.equal(v.tcp);
    }
  });

  it('hashes IPv4/UDP as TCP (addresses and ports), looks past an 802.1Q tag, and gives non-IP frames none', () => {
    const t = make(MS_RSS_KEY);
    const spec = flow('66.9.149.187', '161.142.100.80', 2794, 1766);
    expect(t.hash(ipv4UdpFrame(spec))).to.equal(0x51ccc178);
    const plain = ipv4TcpFrame(spec);
    const tagged = Buffer.concat([
      plain.subarray(0, 12),
      Buffer.from([0x81, 0x00, 0x00, 0x07]),
      plain.subarray(12),
    ]);
    expect(t.hash(tagged)).to.equal(0x51ccc178);
    expect(t.nic.route(rawFrame(MAC, PEER, 100)), 'no hash, the first queue').to.deep.equal({ queue: 0 });
  });

  it('gives the same hashes with the 52-byte key an AVF holds (the key bits past the input are never used)', () => {
    const t = make(Buffer.concat([MS_RSS_KEY, randomBytes(12)]));
    for (const v of MS_IPV4_VECTORS)
      expect(t.hash(ipv4TcpFrame(flow(v.src, v.dst, v.sport, v.dport)))).to.equal(v.tcp);
    const v = MS_IPV6_VECTORS[0];
    expect(t.hash(ipv6Frame(v.src, v.dst, v))).to.equal(v.tcp);
  });

  it('agrees with the literal pseudocode on random keys and flows', () => {
    for (let i = 0; i < 100; i++) {
      const key = randomBytes(52);
      const t = make(key);
      const b = randomBytes(12);
      const ip = (o: number) => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
      const spec = flow(ip(0), ip(4), b.readUInt16BE(8), b.readUInt16BE(10));
      const want = toeplitzReference(key, rssTuple(spec.srcIp, spec.dstIp, spec.sport, spec.dport));
      expect(t.hash(ipv4TcpFrame(spec)), `key ${key.toString('hex')} flow ${JSON.stringify(spec)}`).to.equal(
        want,
      );
      t.nic.close();
    }
  });

  it('reports no hash without a key, and the filters turn away what is not for the VF (counted)', () => {
    const t = make(Buffer.alloc(0));
    const spec = flow('10.0.0.1', '10.0.0.2', 1, 2);
    expect(t.nic.route(ipv4TcpFrame(spec))).to.deep.equal({ queue: 0 });
    expect(t.nic.route(ipv4TcpFrame({ ...spec, dstMac: '02:00:00:00:00:0b' }))).to.equal(undefined);
    expect(t.counters[NIC_STATE.filtered]).to.equal(1);
  });
});
