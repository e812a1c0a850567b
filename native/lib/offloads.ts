// The TX offloads' algorithms, for the TypeScript TX path (driver-iavf's slow path for fd-less RAM), so
// each exists once, in C++ (src/crc32c.h).
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
