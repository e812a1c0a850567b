/**
 * Ethernet/IPv4/TCP/UDP frames for data-path tests, and the checks the tests make on what comes out:
 * Internet checksums, header fields, the Toeplitz hash. Written here from RFC 791/793/768/1071 and the
 * Microsoft RSS pseudocode, independently of the device's datapath/ code, so that a mistake there fails
 * a test instead of cancelling out.
 */
import { macToBytes } from './iavf-defs.js';

export const ETH_HLEN = 14;
export const ETH_P_IP = 0x0800;
/** IEEE 802 "local experimental" EtherType: a frame no RSS or checksum logic looks into. */
export const ETH_P_LOCAL = 0x88b5;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_SCTP = 132;
export const IPPROTO_ICMP = 1;
export const IPPROTO_ICMPV6 = 58;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_P_ARP = 0x0806;
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const BROADCAST = 'ff:ff:ff:ff:ff:ff';

export function ipBytes(ip: string): Buffer {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255))
    throw new TypeError(`not an IPv4 address: ${ip}`);
  return Buffer.from(parts);
}

/** An IPv6 address in any RFC 4291 text form ('fd00::1', '2001:db8:0:0:0:0:0:1'), as 16 bytes. */
export function ipv6Bytes(ip: string): Buffer {
  const halves = ip.split('::');
  const words = (part: string) => (part === '' ? [] : part.split(':').map((w) => Number.parseInt(w, 16)));
  const head = words(halves[0]);
  const tail = halves.length > 1 ? words(halves[1]) : [];
  const zeros = 8 - head.length - tail.length;
  const all = [...head, ...Array(halves.length > 1 ? zeros : 0).fill(0), ...tail];
  if (halves.length > 2 || all.length !== 8 || all.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffff))
    throw new TypeError(`not an IPv6 address: ${ip}`);
  const out = Buffer.alloc(16);
  for (const [i, w] of all.entries()) out.writeUInt16BE(w, 2 * i);
  return out;
}

/** An Ethernet II frame. */
export function ethFrame(dst: string, src: string, type: number, payload: Uint8Array): Buffer {
  const f = Buffer.alloc(ETH_HLEN + payload.length);
  macToBytes(dst).copy(f, 0);
  macToBytes(src).copy(f, 6);
  f.writeUInt16BE(type, 12);
  f.set(payload, ETH_HLEN);
  return f;
}

/** A frame of `length` bytes with a recognisable pattern, of a type no offload looks into. */
export function rawFrame(dst: string, src: string, length: number, seed = 0): Buffer {
  const payload = Buffer.alloc(Math.max(0, length - ETH_HLEN));
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + seed * 13 + (i >> 8)) & 0xff;
  return ethFrame(dst, src, ETH_P_LOCAL, payload);
}

/**
 * RFC 1071 sum of 16-bit big-endian words (an odd trailing byte padded with zero), folded to 16 bits but
 * not complemented. Accumulates without folding until the end (exact for anything below 2^37 bytes).
 */
export function onesSum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  const even = bytes.length & ~1;
  for (let i = 0; i < even; i += 2) sum += bytes[i] * 256 + bytes[i + 1];
  if (bytes.length & 1) sum += bytes[bytes.length - 1] * 256;
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

export interface FlowSpec {
  dstMac: string;
  srcMac: string;
  srcIp: string;
  dstIp: string;
  sport: number;
  dport: number;
  payload: Uint8Array;
  ipId?: number;
  ttl?: number;
}

export interface TcpSpec extends FlowSpec {
  seq?: number;
  ack?: number;
  flags?: number;
  window?: number;
  /** TCP options, padded with NOPs (1) to a multiple of 4 bytes. */
  options?: Uint8Array;
}

/** The 12-byte NOP, NOP, timestamp option Linux puts on every segment of an established connection. */
export function tcpTimestampOption(tsval: number, tsecr: number): Buffer {
  const o = Buffer.from([1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0]);
  o.writeUInt32BE(tsval >>> 0, 4);
  o.writeUInt32BE(tsecr >>> 0, 8);
  return o;
}

function ipv4Header(spec: FlowSpec, proto: number, l4Length: number): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + l4Length, 2);
  ip.writeUInt16BE((spec.ipId ?? 0x1234) & 0xffff, 4);
  ip.writeUInt16BE(0x4000, 6); // DF
  ip[8] = spec.ttl ?? 64;
  ip[9] = proto;
  ipBytes(spec.srcIp).copy(ip, 12);
  ipBytes(spec.dstIp).copy(ip, 16);
  ip.writeUInt16BE(~onesSum(ip) & 0xffff, 10);
  return ip;
}

/** The pseudo-header sum (RFC 793 §3.1 / RFC 768), folded, not complemented; length optional. */
export function pseudoSum(src: Uint8Array, dst: Uint8Array, proto: number, l4Length?: number): number {
  const p = Buffer.alloc(12);
  p.set(src, 0);
  p.set(dst, 4);
  p[9] = proto;
  p.writeUInt16BE(l4Length ?? 0, 10);
  return onesSum(p);
}

/** An Ethernet/IPv4/TCP frame with correct IPv4 and TCP checksums. */
export function ipv4TcpFrame(spec: TcpSpec): Buffer {
  const opts = spec.options ?? Buffer.alloc(0);
  const optLen = Math.ceil(opts.length / 4) * 4;
  const tcp = Buffer.alloc(20 + optLen + spec.payload.length, 0);
  tcp.writeUInt16BE(spec.sport, 0);
  tcp.writeUInt16BE(spec.dport, 2);
  tcp.writeUInt32BE((spec.seq ?? 1000) >>> 0, 4);
  tcp.writeUInt32BE((spec.ack ?? 0) >>> 0, 8);
  tcp[12] = ((20 + optLen) / 4) << 4;
  tcp[13] = spec.flags ?? TCP_ACK;
  tcp.writeUInt16BE(spec.window ?? 0xffff, 14);
  tcp.fill(1, 20, 20 + optLen); // NOP padding
  tcp.set(opts, 20);
  tcp.set(spec.payload, 20 + optLen);
  const ip = ipv4Header(spec, IPPROTO_TCP, tcp.length);
  const sum = onesSum(tcp, pseudoSum(ip.subarray(12, 16), ip.subarray(16, 20), IPPROTO_TCP, tcp.length));
  tcp.writeUInt16BE(~sum & 0xffff, 16);
  return ethFrame(spec.dstMac, spec.srcMac, ETH_P_IP, Buffer.concat([ip, tcp]));
}

/** An Ethernet/IPv4/UDP frame with correct IPv4 and UDP checksums. */
export function ipv4UdpFrame(spec: FlowSpec): Buffer {
  const udp = Buffer.alloc(8 + spec.payload.length);
  udp.writeUInt16BE(spec.sport, 0);
  udp.writeUInt16BE(spec.dport, 2);
  udp.writeUInt16BE(udp.length, 4);
  udp.set(spec.payload, 8);
  const ip = ipv4Header(spec, IPPROTO_UDP, udp.length);
  const sum = onesSum(udp, pseudoSum(ip.subarray(12, 16), ip.subarray(16, 20), IPPROTO_UDP, udp.length));
  udp.writeUInt16BE(~sum & 0xffff || 0xffff, 6);
  return ethFrame(spec.dstMac, spec.srcMac, ETH_P_IP, Buffer.concat([ip, udp]));
}

/** An ICMP (or, with v6, ICMPv6) echo request: type, code, checksum 0, identifier, sequence, payload. */
export function icmpEcho(v6: boolean, id: number, seq: number, payload: Uint8Array): Buffer {
  const m = Buffer.alloc(8 + payload.length);
  m[0] = v6 ? 128 : 8;
  m.writeUInt16BE(id, 4);
  m.writeUInt16BE(seq, 6);
  m.set(payload, 8);
  return m;
}

/**
 * An Ethernet/IPv4 frame carrying `l4` as protocol `proto`, the header checksum right. With
 * `checksumAt`, the L4 checksum field at that offset of `l4` is filled: over the pseudo-header (TCP,
 * UDP) or, for ICMP, over the message alone.
 */
export function ipv4Frame(
  spec: Omit<FlowSpec, 'sport' | 'dport' | 'payload'>,
  proto: number,
  l4: Uint8Array,
  checksumAt?: number,
): Buffer {
  const body = Buffer.from(l4);
  const ip = ipv4Header({ ...spec, sport: 0, dport: 0, payload: body }, proto, body.length);
  if (checksumAt !== undefined) {
    body.writeUInt16BE(0, checksumAt);
    const seed =
      proto === IPPROTO_ICMP ? 0 : pseudoSum(ip.subarray(12, 16), ip.subarray(16, 20), proto, body.length);
    body.writeUInt16BE(~onesSum(body, seed) & 0xffff, checksumAt);
  }
  return ethFrame(spec.dstMac, spec.srcMac, ETH_P_IP, Buffer.concat([ip, body]));
}

/**
 * An Ethernet/IPv6 frame (RFC 8200): `ext` extension headers (each a whole header whose first byte the
 * caller set to the next one's type), then `l4` as `proto`. With `checksumAt`, the L4 checksum field at
 * that offset of `l4` is filled over the IPv6 pseudo-header (RFC 8200 8.1).
 */
export function ipv6Frame(
  spec: { dstMac: string; srcMac: string; srcIp: string; dstIp: string },
  proto: number,
  l4: Uint8Array,
  checksumAt?: number,
  ext: { type: number; bytes: Uint8Array }[] = [],
): Buffer {
  const body = Buffer.from(l4);
  const src = ipv6Bytes(spec.srcIp);
  const dst = ipv6Bytes(spec.dstIp);
  if (checksumAt !== undefined) {
    const pseudo = Buffer.alloc(40);
    src.copy(pseudo, 0);
    dst.copy(pseudo, 16);
    pseudo.writeUInt32BE(body.length, 32);
    pseudo[39] = proto;
    body.writeUInt16BE(0, checksumAt);
    const c = ~onesSum(body, onesSum(pseudo)) & 0xffff;
    body.writeUInt16BE(proto === IPPROTO_UDP && c === 0 ? 0xffff : c, checksumAt);
  }
  const exts = Buffer.concat(ext.map((e) => e.bytes));
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE(0x60000000, 0);
  ip.writeUInt16BE(exts.length + body.length, 4);
  ip[6] = ext.length > 0 ? ext[0].type : proto;
  ip[7] = 64;
  src.copy(ip, 8);
  dst.copy(ip, 24);
  return ethFrame(spec.dstMac, spec.srcMac, ETH_P_IPV6, Buffer.concat([ip, exts, body]));
}

/** A UDP datagram (header and payload; checksum 0, for ipv4Frame/ipv6Frame to fill at offset 6). */
export function udpDatagram(sport: number, dport: number, payload: Uint8Array): Buffer {
  const udp = Buffer.alloc(8 + payload.length);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(udp.length, 4);
  udp.set(payload, 8);
  return udp;
}

/** A 20-byte-header TCP segment with ACK (checksum 0, for ipv4Frame/ipv6Frame to fill at offset 16). */
export function tcpSegment(sport: number, dport: number, payload: Uint8Array): Buffer {
  const tcp = Buffer.alloc(20 + payload.length);
  tcp.writeUInt16BE(sport, 0);
  tcp.writeUInt16BE(dport, 2);
  tcp.writeUInt32BE(1000, 4);
  tcp[12] = 5 << 4;
  tcp[13] = TCP_ACK;
  tcp.writeUInt16BE(0xffff, 14);
  tcp.set(payload, 20);
  return tcp;
}

/**
 * CRC32c bit by bit, straight from RFC 4960 appendix B's definition (reflected polynomial 0x82F63B78):
 * a second implementation to check the device's against.
 */
export function crc32cReference(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/**
 * An Ethernet/IPv4/SCTP frame: the common header (ports, verification tag, checksum) and one DATA chunk
 * carrying the payload, with a correct CRC32c (little-endian bytes, as Linux stores it).
 */
export function ipv4SctpFrame(spec: FlowSpec, tag = 0x1234abcd): Buffer {
  const pad = (4 - (spec.payload.length % 4)) % 4;
  const sctp = Buffer.alloc(12 + 16 + spec.payload.length + pad);
  sctp.writeUInt16BE(spec.sport, 0);
  sctp.writeUInt16BE(spec.dport, 2);
  sctp.writeUInt32BE(tag, 4);
  sctp[12] = 0; // DATA
  sctp[13] = 0x03; // B|E: one whole message
  sctp.writeUInt16BE(16 + spec.payload.length, 14);
  sctp.writeUInt32BE(1, 16); // TSN
  sctp.set(spec.payload, 28);
  sctp.writeUInt32LE(crc32cReference(sctp), 8);
  return ethFrame(
    spec.dstMac,
    spec.srcMac,
    ETH_P_IP,
    Buffer.concat([ipv4Header(spec, IPPROTO_SCTP, sctp.length), sctp]),
  );
}

/** Whether an Ethernet/IPv4/SCTP frame's CRC32c is right. */
export function sctpCrcOk(frame: Uint8Array): boolean {
  const ihl = (frame[ETH_HLEN] & 0xf) * 4;
  const totalLength = (frame[ETH_HLEN + 2] << 8) | frame[ETH_HLEN + 3];
  const sctp = Buffer.from(frame.subarray(ETH_HLEN + ihl, ETH_HLEN + totalLength));
  const got = sctp.readUInt32LE(8);
  sctp.writeUInt32LE(0, 8);
  return crc32cReference(sctp) === got;
}

/** What a test reads back out of an Ethernet/IPv4 TCP or UDP frame. */
export interface ParsedIpv4 {
  ihl: number;
  totalLength: number;
  id: number;
  ttl: number;
  proto: number;
  ipChecksum: number;
  src: Buffer;
  dst: Buffer;
  /** Offset of the L4 header in the frame. */
  l4: number;
  sport: number;
  dport: number;
  /** TCP only. */
  seq: number;
  ack: number;
  dataOffset: number;
  flags: number;
  l4Checksum: number;
  payload: Buffer;
}

export function parseIpv4(frame: Uint8Array): ParsedIpv4 {
  const f = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (f.readUInt16BE(12) !== ETH_P_IP) throw new Error(`EtherType 0x${f.readUInt16BE(12).toString(16)}`);
  const ihl = (f[ETH_HLEN] & 0xf) * 4;
  const l4 = ETH_HLEN + ihl;
  const proto = f[ETH_HLEN + 9];
  const tcp = proto === IPPROTO_TCP;
  const dataOffset = tcp ? (f[l4 + 12] >> 4) * 4 : 8;
  return {
    ihl,
    totalLength: f.readUInt16BE(ETH_HLEN + 2),
    id: f.readUInt16BE(ETH_HLEN + 4),
    ttl: f[ETH_HLEN + 8],
    proto,
    ipChecksum: f.readUInt16BE(ETH_HLEN + 10),
    src: Buffer.from(f.subarray(ETH_HLEN + 12, ETH_HLEN + 16)),
    dst: Buffer.from(f.subarray(ETH_HLEN + 16, ETH_HLEN + 20)),
    l4,
    sport: f.readUInt16BE(l4),
    dport: f.readUInt16BE(l4 + 2),
    seq: tcp ? f.readUInt32BE(l4 + 4) : 0,
    ack: tcp ? f.readUInt32BE(l4 + 8) : 0,
    dataOffset,
    flags: tcp ? f[l4 + 13] : 0,
    l4Checksum: f.readUInt16BE(l4 + (tcp ? 16 : 6)),
    payload: Buffer.from(f.subarray(l4 + dataOffset)),
  };
}

/** True when the IPv4 header checksum verifies (the header sums to 0xffff). */
export function ipv4ChecksumOk(frame: Uint8Array): boolean {
  const ihl = (frame[ETH_HLEN] & 0xf) * 4;
  return onesSum(frame.subarray(ETH_HLEN, ETH_HLEN + ihl)) === 0xffff;
}

/**
 * True when the TCP or UDP checksum verifies over the pseudo-header and the L4 segment as the IPv4
 * total length delimits it. A UDP checksum of 0 ("none") does not count as verified.
 */
export function l4ChecksumOk(frame: Uint8Array): boolean {
  const ihl = (frame[ETH_HLEN] & 0xf) * 4;
  const totalLength = (frame[ETH_HLEN + 2] << 8) | frame[ETH_HLEN + 3];
  const proto = frame[ETH_HLEN + 9];
  const l4 = frame.subarray(ETH_HLEN + ihl, ETH_HLEN + totalLength);
  if (proto === IPPROTO_UDP && l4[6] === 0 && l4[7] === 0) return false;
  const seed = pseudoSum(
    frame.subarray(ETH_HLEN + 12, ETH_HLEN + 16),
    frame.subarray(ETH_HLEN + 16, ETH_HLEN + 20),
    proto,
    l4.length,
  );
  return onesSum(l4, seed) === 0xffff;
}

/**
 * The Toeplitz hash exactly as the Microsoft pseudocode states it ("for each bit b in input from left
 * to right: if b, result ^= left-most 32 bits of K; shift K left 1 bit"), on the whole key as one
 * BigInt: a second implementation to check the device's Toeplitz (the native twin's route) against.
 */
export function toeplitzReference(key: Uint8Array, input: Uint8Array): number {
  const keyBits = BigInt(key.length * 8);
  let k = BigInt(`0x${Buffer.from(key).toString('hex') || '0'}`);
  const mask = (1n << keyBits) - 1n;
  let result = 0n;
  for (const byte of input) {
    for (let bit = 7; bit >= 0; bit--) {
      if ((byte >> bit) & 1) result ^= k >> (keyBits - 32n);
      k = (k << 1n) & mask;
    }
  }
  return Number(result & 0xffffffffn);
}

/** The RSS input of an IPv4 TCP/UDP flow: source address, destination address, source port, destination port. */
export function rssTuple(srcIp: string, dstIp: string, sport?: number, dport?: number): Buffer {
  const ports = Buffer.alloc(sport === undefined ? 0 : 4);
  if (sport !== undefined) {
    ports.writeUInt16BE(sport, 0);
    ports.writeUInt16BE(dport ?? 0, 2);
  }
  return Buffer.concat([ipBytes(srcIp), ipBytes(dstIp), ports]);
}
