/**
 * The data-path descriptor formats the Linux iavf driver uses (iavf_type.h, iavf_txrx.h): 16-byte TX
 * data and context descriptors, and the legacy RX descriptor in read and write-back form: 32 bytes, or
 * 16 (qwords 0 and 1 alone) for a VF that negotiated RXDID 0. The RX size lives in RxQueueConfig.
 */

export const TX_DESC_SIZE = 16;

export const TxDtype = { DATA: 0x0, CONTEXT: 0x1, DESC_DONE: 0xf } as const;

/** TX data descriptor CMD bits (qword1 [13:4]). */
export const TxCmd = {
  EOP: 0x001,
  RS: 0x002,
  ICRC: 0x004,
  IL2TAG1: 0x008,
  IIPT_MASK: 0x060,
  IIPT_IPV6: 0x020,
  IIPT_IPV4: 0x040,
  IIPT_IPV4_CSUM: 0x060,
  L4T_MASK: 0x300,
  L4T_TCP: 0x100,
  L4T_SCTP: 0x200,
  L4T_UDP: 0x300,
} as const;

export interface TxData {
  kind: 'data';
  addr: bigint;
  cmd: number;
  /** MACLEN in bytes, IPLEN in bytes, L4LEN in bytes (decoded from the OFFSET field). */
  macLen: number;
  ipLen: number;
  l4Len: number;
  size: number;
  /** L2TAG1 (qword1 [63:48]): the VLAN tag IL2TAG1 inserts. */
  l2tag1: number;
}

export interface TxContext {
  kind: 'context';
  tso: boolean;
  tsoLen: number;
  mss: number;
}

export type TxDescriptor = TxData | TxContext | { kind: 'other'; dtype: number };

export function decodeTx(desc: Uint8Array): TxDescriptor {
  const dv = new DataView(desc.buffer, desc.byteOffset, TX_DESC_SIZE);
  const qw1 = dv.getBigUint64(8, true);
  const dtype = Number(qw1 & 0xfn);
  if (dtype === TxDtype.DATA) {
    const offset = Number((qw1 >> 16n) & 0x3ffffn);
    return {
      kind: 'data',
      addr: dv.getBigUint64(0, true),
      cmd: Number((qw1 >> 4n) & 0x3ffn),
      macLen: (offset & 0x7f) * 2,
      ipLen: ((offset >> 7) & 0x7f) * 4,
      l4Len: ((offset >> 14) & 0xf) * 4,
      size: Number((qw1 >> 34n) & 0x3fffn),
      l2tag1: Number(qw1 >> 48n),
    };
  }
  if (dtype === TxDtype.CONTEXT) {
    const cmd = Number((qw1 >> 4n) & 0xffffn);
    return {
      kind: 'context',
      tso: (cmd & 0x1) !== 0,
      tsoLen: Number((qw1 >> 30n) & 0x3ffffn),
      mss: Number((qw1 >> 50n) & 0x3fffn),
    };
  }
  return { kind: 'other', dtype };
}

/** Marks a TX descriptor done: DTYPE 0xF in qword1, the rest left as the driver wrote it. */
export function markTxDone(desc: Uint8Array): void {
  desc[8] = (desc[8] & 0xf0) | TxDtype.DESC_DONE;
}

export const RxStatus = {
  DD: 1n << 0n,
  EOF: 1n << 1n,
  /** L2TAG1P: qword0 [31:16] holds the VLAN tag stripped from the frame. */
  L2TAG1P: 1n << 2n,
  FLTSTAT_RSS: 3n << 12n,
  /** Error RXE (bit 0 of the error field): the packet was dropped. */
  RXE: 1n << 19n,
} as const;

/**
 * RX write-back qword1: status, per-buffer length (bits 51:38); on the last descriptor EOF and
 * `offloads`, the frame's PTYPE and checksum status (@emu/native's iavfRxOffloadBits), and L2TAG1P when
 * a stripped tag is in its qword0.
 */
export function rxWriteback(
  length: number,
  last: boolean,
  hashed: boolean,
  offloads = 0n,
  tagged = false,
): bigint {
  let qw1 = RxStatus.DD | (BigInt(length) << 38n);
  if (last) qw1 |= RxStatus.EOF | offloads | (tagged ? RxStatus.L2TAG1P : 0n);
  if (hashed) qw1 |= RxStatus.FLTSTAT_RSS;
  return qw1;
}

/** RX write-back qword1 of a descriptor whose packet was dropped: DD|EOF|RXE, no data. */
export function rxDropped(): bigint {
  return RxStatus.DD | RxStatus.EOF | RxStatus.RXE;
}
