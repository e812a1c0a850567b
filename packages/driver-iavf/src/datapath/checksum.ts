/**
 * Internet checksums and the TX offloads the Linux iavf driver always turns on: IPv4 header, TCP/UDP,
 * SCTP (its CRC32c from @emu/native, the one implementation), TSO.
 */
import { crc32c } from '@emu/native';

/** One's complement sum of 16-bit big-endian words, folded, not yet inverted. */
export function sum16(data: Uint8Array, start = 0, end = data.length, initial = 0): number {
  let sum = initial;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (data[i] << 8) | data[i + 1];
  if (i < end) sum += data[i] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

export const finish = (sum: number) => ~sum & 0xffff;

const ETH_P_IPV4 = 0x0800;
const ETH_P_IPV6 = 0x86dd;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const IPPROTO_SCTP = 132;

export interface Layers {
  l3: number;
  l4: number;
  ipv4: boolean;
  proto: number;
}

/** Finds the IP and L4 headers of an Ethernet frame (VLAN-tagged or not); undefined if not IP. */
export function parseLayers(frame: Uint8Array): Layers | undefined {
  if (frame.length < 14) return undefined;
  let l3 = 14;
  let type = (frame[12] << 8) | frame[13];
  if (type === 0x8100 && frame.length >= 18) {
    type = (frame[16] << 8) | frame[17];
    l3 = 18;
  }
  if (type === ETH_P_IPV4 && frame.length >= l3 + 20) {
    const ihl = (frame[l3] & 0xf) * 4;
    return { l3, l4: l3 + ihl, ipv4: true, proto: frame[l3 + 9] };
  }
  if (type === ETH_P_IPV6 && frame.length >= l3 + 40) {
    return { l3, l4: l3 + 40, ipv4: false, proto: frame[l3 + 6] };
  }
  return undefined;
}

function pseudoHeader(frame: Uint8Array, at: Layers, l4Length: number): number {
  let sum = 0;
  if (at.ipv4) sum = sum16(frame, at.l3 + 12, at.l3 + 20);
  else sum = sum16(frame, at.l3 + 8, at.l3 + 40);
  return sum16(new Uint8Array([0, 0, 0, at.proto, (l4Length >>> 8) & 0xff, l4Length & 0xff]), 0, 6, sum);
}

export function fixIpv4Checksum(frame: Uint8Array, at: Layers): void {
  if (!at.ipv4) return;
  frame[at.l3 + 10] = 0;
  frame[at.l3 + 11] = 0;
  const c = finish(sum16(frame, at.l3, at.l4));
  frame[at.l3 + 10] = c >> 8;
  frame[at.l3 + 11] = c & 0xff;
}

/** Computes the TCP or UDP checksum, or SCTP's CRC32c (RFC 4960 6.8), of the frame from scratch. */
export function fixL4Checksum(frame: Uint8Array, at: Layers): void {
  if (at.proto === IPPROTO_SCTP) {
    if (frame.length < at.l4 + 12) return;
    frame.fill(0, at.l4 + 8, at.l4 + 12);
    const crc = crc32c(frame.subarray(at.l4));
    // The CRC's little-endian bytes, as Linux's sctp_compute_cksum stores it.
    for (let i = 0; i < 4; i++) frame[at.l4 + 8 + i] = (crc >>> (8 * i)) & 0xff;
    return;
  }
  const field = at.proto === IPPROTO_TCP ? 16 : at.proto === IPPROTO_UDP ? 6 : -1;
  if (field < 0 || frame.length < at.l4 + field + 2) return;
  const l4Length = frame.length - at.l4;
  frame[at.l4 + field] = 0;
  frame[at.l4 + field + 1] = 0;
  let c = finish(sum16(frame, at.l4, frame.length, pseudoHeader(frame, at, l4Length)));
  if (c === 0 && at.proto === IPPROTO_UDP) c = 0xffff;
  frame[at.l4 + field] = c >> 8;
  frame[at.l4 + field + 1] = c & 0xff;
}

/** The smallest MSS iavf asks for: iavf_features_check turns GSO off below 64 bytes. */
export const MIN_MSS = 64;

/**
 * Whether a TSO request can be segmented: a TCP frame whose header length from the descriptor
 * (MACLEN + IPLEN + L4LEN) is exactly its Ethernet + IP + TCP headers, with payload after them, and an
 * MSS iavf would use. Anything else can be neither segmented nor sent whole.
 */
export function tsoValid(frame: Uint8Array, at: Layers | undefined, hdrLen: number, mss: number): boolean {
  if (!at || at.proto !== IPPROTO_TCP || frame.length < at.l4 + 20) return false;
  const tcpLen = (frame[at.l4 + 12] >> 4) * 4;
  return tcpLen >= 20 && hdrLen === at.l4 + tcpLen && hdrLen < frame.length && mss >= MIN_MSS;
}

/**
 * TCP segmentation as the hardware does it: `hdrLen` bytes of headers replicated in front of each
 * `mss` bytes of payload; IPv4 total length, id and checksum, IPv6 payload length, TCP sequence number,
 * flags (FIN/PSH on the last segment only, CWR on the first only) and checksum fixed per segment.
 */
export function segmentTcp(frame: Uint8Array, at: Layers, hdrLen: number, mss: number): Uint8Array[] {
  if (at.proto !== IPPROTO_TCP || mss <= 0 || hdrLen >= frame.length) return [frame];
  const payload = frame.length - hdrLen;
  const out: Uint8Array[] = [];
  const baseSeq = new DataView(frame.buffer, frame.byteOffset).getUint32(at.l4 + 4);
  const flags = frame[at.l4 + 13];
  const ipId = at.ipv4 ? (frame[at.l3 + 4] << 8) | frame[at.l3 + 5] : 0;
  for (let off = 0, i = 0; off < payload; off += mss, i++) {
    const len = Math.min(mss, payload - off);
    const seg = new Uint8Array(hdrLen + len);
    seg.set(frame.subarray(0, hdrLen), 0);
    seg.set(frame.subarray(hdrLen + off, hdrLen + off + len), hdrLen);
    const dv = new DataView(seg.buffer);
    const last = off + len >= payload;
    if (at.ipv4) {
      dv.setUint16(at.l3 + 2, seg.length - at.l3);
      dv.setUint16(at.l3 + 4, (ipId + i) & 0xffff);
      fixIpv4Checksum(seg, at);
    } else {
      dv.setUint16(at.l3 + 4, seg.length - at.l3 - 40);
    }
    dv.setUint32(at.l4 + 4, (baseSeq + off) >>> 0);
    let f = flags;
    if (!last) f &= ~(0x01 | 0x08); // FIN, PSH
    if (i > 0) f &= ~0x80; // CWR
    seg[at.l4 + 13] = f;
    fixL4Checksum(seg, at);
    out.push(seg);
  }
  return out;
}
