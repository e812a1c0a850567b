import { binding } from './binding.js';
import { callNative } from './errors.js';
import { validateString, validateUint64, valueError } from './validate.js';

// memfd_create rejects names over 249 bytes (MFD_NAME_MAX_LEN, excluding the "memfd:" prefix).
const MAX_NAME_BYTES = 249;
const MAX_SIZE = 2n ** 63n - 1n;

/**
 * memfd_create(name, MFD_CLOEXEC) + ftruncate(size): an anonymous shared-memory fd, to map with
 * MappedMemory or pass to a peer. The caller owns the fd (closeFd).
 */
export function memfdCreate(name: string, size: number | bigint): number {
  validateString(name, 'name');
  if (name.includes('\0')) throw valueError('name', 'must not contain NUL characters');
  if (Buffer.byteLength(name) > MAX_NAME_BYTES)
    throw valueError('name', `must be at most ${MAX_NAME_BYTES} bytes`);
  const bytes = validateUint64(size, 'size', MAX_SIZE);
  return callNative(() => binding.memfdCreate(name, bytes), { target: JSON.stringify(name) });
}
