import { binding, type FileInfo } from './binding.js';
import { callNative } from './errors.js';
import {
  validateBoolean,
  validateFd,
  validateOptions,
  validateString,
  validateUint64,
  valueError,
} from './validate.js';

// memfd_create rejects names over 249 bytes (MFD_NAME_MAX_LEN, excluding the "memfd:" prefix).
const MAX_NAME_BYTES = 249;
const MAX_SIZE = 2n ** 63n - 1n;

export interface MemfdOptions {
  /**
   * Seal it (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL): its size is fixed for good, so a peer it is
   * handed to cannot shrink it under our mappings (SIGBUS) nor add seals of its own. Default false.
   */
  seal?: boolean;
}

/** File seals (fcntl F_ADD_SEALS / F_GET_SEALS). */
export const Seal = {
  SHRINK: binding.sealShrink,
  GROW: binding.sealGrow,
  SEAL: binding.sealSeal,
  WRITE: binding.sealWrite,
} as const;

/**
 * memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING) + ftruncate(size): an anonymous shared-memory
 * fd, to map with MappedMemory or pass to a peer, sealed if asked. The caller owns the fd (closeFd).
 */
export function memfdCreate(name: string, size: number | bigint, options?: MemfdOptions): number {
  validateString(name, 'name');
  if (name.includes('\0')) throw valueError('name', 'must not contain NUL characters');
  if (Buffer.byteLength(name) > MAX_NAME_BYTES)
    throw valueError('name', `must be at most ${MAX_NAME_BYTES} bytes`);
  const bytes = validateUint64(size, 'size', MAX_SIZE);
  const { seal = false } = validateOptions<MemfdOptions>(options, 'options');
  validateBoolean(seal, 'options.seal');
  return callNative(() => binding.memfdCreate(name, bytes, seal), { target: JSON.stringify(name) });
}

/** What a (received) fd is: a regular file or not, its size, its seals (fstat + F_GET_SEALS). */
export function fileInfo(fd: number): FileInfo {
  validateFd(fd);
  return callNative(() => binding.fileInfo(fd), { target: `fd ${fd}` });
}

export type { FileInfo };
