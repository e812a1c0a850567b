// The offloads' algorithms, for driver-iavf's TypeScript path (its slow path for fd-less RAM), so each
// exists once, in C++ (src/iavf/crc32c.h, src/iavf/iavf_offloads.h).
import { binding } from './binding.js';
import { typeError, validateInteger } from './validate.js';

/**
 * CRC32c (Castagnoli), as SCTP's checksum uses it (RFC 4960 appendix B): of `data`, continuing from
 * `previous` (a result of an earlier call over the bytes before; 0 to start).
 */
export function crc32c(data: Uint8Array, previous = 0): number {
  if (!(data instanceof Uint8Array)) throw typeError('data', 'a Uint8Array', data);
  validateInteger(previous, 'previous', 0, 0xffff_ffff);
  return binding.crc32c(data, previous);
}

/**
 * What an iavf's RX parser and checksum engine report for a received frame: the bits of the last RX
 * descriptor's write-back qword1 that carry them (PTYPE [37:30]; status L3L4P; errors IPE and L4E), to
 * OR into it. The rules are `RxOffloadBits` in src/iavf/iavf_offloads.h; the native RX path applies the same
 * function itself.
 */
export function iavfRxOffloadBits(frame: Uint8Array): bigint {
  if (!(frame instanceof Uint8Array)) throw typeError('frame', 'a Uint8Array', frame);
  return binding.iavfRxOffloadBits(frame);
}

/** The TX descriptor fields that shape a packet on the wire (decoded: lengths in bytes). */
export interface IavfTxPacketFields {
  /** The EOP data descriptor's CMD (IIPT, L4T, IL2TAG1, …). */
  cmd: number;
  macLen: number;
  ipLen: number;
  l4Len: number;
  /** From the packet's context descriptor: TSO, its MSS and TSO_LEN. */
  tso?: boolean;
  mss?: number;
  tsoLen?: number;
  /** The EOP descriptor's L2TAG1, inserted when `cmd` has IL2TAG1. */
  l2tag1?: number;
}

/**
 * The frames an iavf puts on the wire for one gathered TX packet: IPv4 header checksum, TCP/UDP checksum
 * or SCTP CRC32c, TSO segments, then the VLAN tag, as the descriptor fields ask. The rules are
 * FrameBuilder's (src/iavf/iavf_ring_core.h), the native TX walk's own; `badTso` when a TSO cannot be segmented
 * (nothing then goes out).
 */
export function iavfTxFrames(
  packet: Uint8Array,
  fields: IavfTxPacketFields,
): { frames: Buffer[]; badTso: boolean } {
  if (!(packet instanceof Uint8Array)) throw typeError('packet', 'a Uint8Array', packet);
  validateInteger(fields.cmd, 'fields.cmd', 0, 0x3ff);
  validateInteger(fields.macLen, 'fields.macLen', 0, 0x7f * 2);
  validateInteger(fields.ipLen, 'fields.ipLen', 0, 0x7f * 4);
  validateInteger(fields.l4Len, 'fields.l4Len', 0, 0xf * 4);
  const mss = fields.mss ?? 0;
  const tsoLen = fields.tsoLen ?? 0;
  const l2tag1 = fields.l2tag1 ?? 0;
  validateInteger(mss, 'fields.mss', 0, 0x3fff);
  validateInteger(tsoLen, 'fields.tsoLen', 0, 0x3ffff);
  validateInteger(l2tag1, 'fields.l2tag1', 0, 0xffff);
  return binding.iavfTxFrames(packet, { ...fields, tso: fields.tso === true, mss, tsoLen, l2tag1 });
}
