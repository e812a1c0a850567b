/**
 * The RSS verification suite: Microsoft's test key and its IPv4 / IPv4+TCP and IPv6 /
 * IPv6+TCP hashes, as published in "Verifying the RSS Hash Calculation"
 * (https://learn.microsoft.com/windows-hardware/drivers/network/verifying-the-rss-hash-calculation) and
 * repeated in Intel's 82599 datasheet §7.1.2.8.3 "RSS Verification Suite". The values here are those of
 * DPDK's app/test/test_thash.c (v4_tbl / v6_tbl, "From 82599 Datasheet 7.1.2.8.3 RSS Verification
 * Suite"), https://github.com/DPDK/dpdk/blob/main/app/test/test_thash.c.
 */
import { ipv4TcpFrame, ipv4UdpFrame } from './frames.js';

/** The 40-byte Microsoft RSS test key. */
export const MS_RSS_KEY = Buffer.from(
  '6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa',
  'hex',
);

/** Destination, source, the IPv4-only hash and the IPv4-with-TCP hash. */
export const MS_IPV4_VECTORS = [
  { dst: '161.142.100.80', dport: 1766, src: '66.9.149.187', sport: 2794, ipv4: 0x323e8fc2, tcp: 0x51ccc178 },
  { dst: '65.69.140.83', dport: 4739, src: '199.92.111.2', sport: 14230, ipv4: 0xd718262a, tcp: 0xc626b0ea },
  {
    dst: '12.22.207.184',
    dport: 38024,
    src: '24.19.198.95',
    sport: 12898,
    ipv4: 0xd2d0a5de,
    tcp: 0x5c2b394a,
  },
  { dst: '209.142.163.6', dport: 2217, src: '38.27.205.30', sport: 48228, ipv4: 0x82989176, tcp: 0xafc7327f },
  {
    dst: '202.188.127.2',
    dport: 1303,
    src: '153.39.163.191',
    sport: 44251,
    ipv4: 0x5d1809c5,
    tcp: 0x10e828a2,
  },
] as const;

const v6 = (hex: string) => Buffer.from(hex, 'hex');
export const MS_IPV6_VECTORS = [
  {
    dst: v6('3ffe2501020000030000000000000001'), // 3ffe:2501:200:3::1
    src: v6('3ffe250102001fff0000000000000007'), // 3ffe:2501:200:1fff::7
    dport: 1766,
    sport: 2794,
    ipv6: 0x2cc18cd5,
    tcp: 0x40207d3d,
  },
  {
    dst: v6('ff020000000000000000000000000001'), // ff02::1
    src: v6('3ffe050100080000026097fffe40efab'), // 3ffe:501:8::260:97ff:fe40:efab
    dport: 4739,
    sport: 14230,
    ipv6: 0x0f0c461c,
    tcp: 0xdde51bbf,
  },
  {
    dst: v6('fe800000000000000200f8fffe2167cf'), // fe80::200:f8ff:fe21:67cf
    src: v6('3ffe1900454500030200f8fffe2167cf'), // 3ffe:1900:4545:3:200:f8ff:fe21:67cf
    dport: 38024,
    sport: 44251,
    ipv6: 0x4b61e985,
    tcp: 0x02d1feef,
  },
];

/**
 * The IPv4 vectors as frames from `srcMac` to `dstMac`: for vector i, a TCP and a UDP frame of its flow
 * (one payload byte, i, to tell them apart), both expected to hash to `tcp` (ports included).
 */
export function msIpv4Frames(
  dstMac: string,
  srcMac: string,
): Array<{ index: number; hash: number; frames: Buffer[] }> {
  return MS_IPV4_VECTORS.map((t, index) => {
    const spec = {
      dstMac,
      srcMac,
      srcIp: t.src,
      dstIp: t.dst,
      sport: t.sport,
      dport: t.dport,
      payload: Buffer.from([index]),
    };
    return { index, hash: t.tcp, frames: [ipv4TcpFrame(spec), ipv4UdpFrame(spec)] };
  });
}
