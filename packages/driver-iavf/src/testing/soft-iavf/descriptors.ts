/**
 * The TX and RX descriptor formats as iavf_txrx.h / iavf_txrx.c build and read them: data and context
 * descriptors (build_ctob, iavf_create_tx_ctx), the checksum and TSO fields iavf_tx_enable_csum and
 * iavf_tso derive from a frame, the legacy RX write-back, and iavf_rx_checksum's verdict on it.
 * Pure functions over bytes: the rings that carry them are in txrx.ts.
 */
import { LIBIE_PTYPES, RX_WB, TX_CMD, TX_CTX, TX_DESC, TX_OFFSET } from '../iavf-defs.js';

/** A TX descriptor as raw qwords, for malformed ones. */
export interface RawTxDesc {
  qw0: bigint;
  qw1: bigint;
}

/** One RX write-back descriptor as the guest read it (the legacy format: qwords 0 and 1 of 32 or 16 bytes). */
export interface RxDescriptor {
  index: number;
  qw0: bigint;
  qw1: bigint;
  dd: boolean;
  eof: boolean;
  /** LENGTH_PBUF: bytes in this buffer. */
  length: number;
  /** FLTSTAT [13:12]; 3 = RSS hash valid. */
  fltstat: number;
  /** The error field [26:19]. */
  errors: number;
  ptype: number;
  /** qword0 [63:32]: the RSS hash when FLTSTAT is 3. */
  hash: number;
  /** qword0 [31:16] when L2TAG1P (qword1 bit 2) is set: the VLAN tag the device stripped. */
  l2tag1?: number;
}

/** A frame the guest took off an RX ring: its buffers joined up to the EOF descriptor. */
export interface RxFrame {
  queue: number;
  data: Buffer;
  descriptors: RxDescriptor[];
  /** The RSS hash, when the write-back says it is valid. */
  hash?: number;
  /** PTYPE of the EOF descriptor. */
  ptype: number;
  /**
   * What Linux's iavf_rx_checksum makes of the EOF descriptor: `unnecessary` (CHECKSUM_UNNECESSARY, the
   * stack trusts the device), `none` (the stack checks the sums itself) or `error` (none, and counted in
   * hw_csum_rx_error).
   */
  checksum: RxChecksum;
  /** The VLAN tag the device stripped into the EOF descriptor (iavf_legacy_rx... L2TAG1P), if any. */
  vlan?: number;
}

export type RxChecksum = 'unnecessary' | 'none' | 'error';

/** The offloads a packet asks of the device. */
export interface TxOffload {
  /** Checksum offload as iavf_tx_enable_csum asks for it: IIPT, L4T and the header lengths. */
  csum?: boolean;
  /** IIPT_IPV4_CSUM (the device computes the IPv4 header checksum) also without TSO. */
  ipCsum?: boolean;
  /** TSO as iavf_tso: a context descriptor with TSO, TSO_LEN and MSS; headers prepared as Linux does. */
  tso?: { mss: number };
}

/** cmd_type_offset_bsz of a data descriptor (build_ctob). */
export function txDataQw1(cmd: number, size: number, offset = 0, l2tag1 = 0): bigint {
  return (
    BigInt(TX_DESC.DTYPE_DATA) |
    (BigInt(cmd & 0x3ff) << TX_DESC.CMD_SHIFT) |
    (BigInt(offset & 0x3ffff) << TX_DESC.OFFSET_SHIFT) |
    (BigInt(size & TX_DESC.MAX_BUF_SZ) << TX_DESC.BUF_SZ_SHIFT) |
    (BigInt(l2tag1 & 0xffff) << TX_DESC.L2TAG1_SHIFT)
  );
}

/** type_cmd_tso_mss of a context descriptor (iavf_create_tx_ctx). */
export function txContextQw1(cmd: number, tsoLen: number, mss: number): bigint {
  return (
    BigInt(TX_DESC.DTYPE_CONTEXT) |
    (BigInt(cmd & 0xffff) << TX_CTX.CMD_SHIFT) |
    (BigInt(tsoLen & 0x3ffff) << TX_CTX.TSO_LEN_SHIFT) |
    (BigInt(mss & 0x3fff) << TX_CTX.MSS_SHIFT)
  );
}

/** The header lengths iavf_tx_enable_csum derives from the skb (Ethernet, optional 802.1Q, IPv4/IPv6, TCP/UDP/SCTP). */
export function txHeaderLengths(frame: Uint8Array): {
  macLen: number;
  ipLen: number;
  l4Len: number;
  ipv4: boolean;
  proto: number;
} {
  let macLen = 14;
  let type = (frame[12] << 8) | frame[13];
  if (type === 0x8100) {
    type = (frame[16] << 8) | frame[17];
    macLen = 18;
  }
  let ipLen: number;
  let proto: number;
  if (type === 0x0800) {
    ipLen = (frame[macLen] & 0xf) * 4;
    proto = frame[macLen + 9];
  } else if (type === 0x86dd) {
    ipLen = 40;
    proto = frame[macLen + 6];
  } else throw new Error(`checksum offload of EtherType 0x${type.toString(16)}`);
  const l4 = macLen + ipLen;
  // struct sctphdr is 12 bytes (iavf_tx_enable_csum: sizeof(struct sctphdr) >> 2).
  const l4Len = proto === 6 ? (frame[l4 + 12] >> 4) * 4 : proto === 17 ? 8 : proto === 132 ? 12 : 0;
  return { macLen, ipLen, l4Len, ipv4: type === 0x0800, proto };
}

/**
 * iavf_tx_enable_csum + iavf_tso over a frame: the data descriptors' command bits and header offsets,
 * and for TSO the context descriptor, with the headers prepared as Linux does (IPv4 tot_len and check
 * zeroed, the length taken out of the TCP checksum seed) in `data` itself.
 */
export function txOffload(
  data: Buffer,
  opts: TxOffload,
): { cmd: number; offset: number; context?: RawTxDesc } {
  if (!opts.csum && !opts.tso) return { cmd: 0, offset: 0 };
  const h = txHeaderLengths(data);
  let cmd = 0;
  if (h.ipv4) cmd |= opts.tso || opts.ipCsum ? TX_CMD.IIPT_IPV4_CSUM : TX_CMD.IIPT_IPV4;
  else cmd |= TX_CMD.IIPT_IPV6;
  if (h.proto === 6) cmd |= TX_CMD.L4T_TCP;
  else if (h.proto === 17) cmd |= TX_CMD.L4T_UDP;
  else if (h.proto === 132) cmd |= TX_CMD.L4T_SCTP;
  const offset =
    ((h.macLen / 2) << TX_OFFSET.MACLEN_SHIFT) |
    ((h.ipLen / 4) << TX_OFFSET.IPLEN_SHIFT) |
    ((h.l4Len / 4) << TX_OFFSET.L4LEN_SHIFT);
  if (!opts.tso) return { cmd, offset };
  if (h.proto !== 6) throw new Error('TSO of a non-TCP frame');
  const l3 = h.macLen;
  const l4 = l3 + h.ipLen;
  const hdrLen = l4 + h.l4Len;
  const pseudo = Buffer.alloc(h.ipv4 ? 12 : 40);
  if (h.ipv4) {
    data.copy(pseudo, 0, l3 + 12, l3 + 20);
    pseudo[9] = 6;
    data.writeUInt16BE(0, l3 + 2);
    data.writeUInt16BE(0, l3 + 10);
  } else {
    data.copy(pseudo, 0, l3 + 8, l3 + 40);
    pseudo[39] = 6;
    data.writeUInt16BE(0, l3 + 4);
  }
  // What the stack seeded (~csum_tcpudp_magic(..., len, ...)) minus paylen: the pseudo-header
  // sum without the length, not complemented.
  let seed = 0;
  for (let i = 0; i < pseudo.length; i += 2) seed += pseudo.readUInt16BE(i);
  while (seed > 0xffff) seed = (seed & 0xffff) + (seed >>> 16);
  data.writeUInt16BE(seed, l4 + 16);
  return {
    cmd,
    offset,
    context: { qw0: 0n, qw1: txContextQw1(TX_CTX.CMD_TSO, data.length - hdrLen, opts.tso.mss) },
  };
}

/** The legacy RX write-back in qwords 0 and 1 of descriptor `index`, field by field. */
export function parseRxWriteback(index: number, qw0: bigint, qw1: bigint): RxDescriptor {
  return {
    index,
    qw0,
    qw1,
    dd: (qw1 & RX_WB.DD) !== 0n,
    eof: (qw1 & RX_WB.EOF) !== 0n,
    length: Number((qw1 >> RX_WB.LENGTH_PBUF_SHIFT) & RX_WB.LENGTH_PBUF_MASK),
    fltstat: Number((qw1 >> RX_WB.FLTSTAT_SHIFT) & 3n),
    errors: Number((qw1 >> RX_WB.ERROR_SHIFT) & 0xffn),
    ptype: Number((qw1 >> RX_WB.PTYPE_SHIFT) & 0xffn),
    hash: Number(qw0 >> 32n),
    l2tag1: qw1 & RX_WB.L2TAG1P ? Number((qw0 >> 16n) & 0xffffn) : undefined,
  };
}

/** iavf_rx_checksum (Linux 6.12 iavf_txrx.c) over a write-back, with libie's packet-type table. */
export function rxChecksumVerdict(d: RxDescriptor): RxChecksum {
  const pt = LIBIE_PTYPES[d.ptype];
  // libeth_rx_pt_has_checksum: an inner protocol (UDP, TCP, SCTP, ICMP) is needed.
  if (!pt || pt.l4 === 'none') return 'none';
  if ((d.qw1 & RX_WB.L3L4P) === 0n) return 'none';
  if (pt.ip === 4 && d.errors & (RX_WB.ERROR_IPE | RX_WB.ERROR_EIPE)) return 'error';
  if (pt.ip === 6 && (d.qw1 & RX_WB.IPV6EXADD) !== 0n) return 'none';
  if (d.errors & RX_WB.ERROR_L4E) return 'error';
  if (d.errors & RX_WB.ERROR_PPRS) return 'none';
  return 'unnecessary';
}
