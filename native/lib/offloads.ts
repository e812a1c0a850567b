// The offloads' algorithms, for driver-iavf's TypeScript path (its slow path for fd-less RAM), so each
// exists once, in C++ (src/crc32c.h, src/iavf_offloads.h).
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
 * OR into it. The rules are `RxOffloadBits` in src/iavf_offloads.h; the native RX path applies the same
 * function itself.
 */
export function iavfRxOffloadBits(frame: Uint8Array): bigint {
  if (!(frame instanceof Uint8Array)) throw typeError('frame', 'a Uint8Array', frame);
  return binding.iavfRxOffloadBits(frame);
}
