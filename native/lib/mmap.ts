import { constants as bufferConstants } from 'node:buffer';
import { binding } from './binding.js';
import { callNative } from './errors.js';
import {
  validateBoolean,
  validateFd,
  validateInteger,
  validateOptions,
  validateUint64,
  valueError,
} from './validate.js';

export interface MmapProtection {
  /** Must stay true: an ArrayBuffer is always readable. */
  read?: boolean;
  /**
   * false maps MAP_PRIVATE: the memory is read as shared, but stores through the buffer go to
   * private copy-on-write pages and never reach the fd (JS has no read-only ArrayBuffer, and a
   * store into a PROT_READ page would kill the process). Works with fds opened read-only.
   */
  write?: boolean;
}

const MAX_OFFSET = 2n ** 63n - 1n;

/**
 * A shared mapping of an fd (e.g. a guest memory region received from the VMM), as an ArrayBuffer.
 * Unmapped exactly once: by unmap(), or when the ArrayBuffer is garbage-collected.
 */
export class MappedMemory {
  readonly #buffer: ArrayBuffer;
  readonly #length: number;
  readonly #address: bigint;
  #handle: object | null;

  private constructor(buffer: ArrayBuffer, length: number, address: bigint, handle: object) {
    this.#buffer = buffer;
    this.#length = length;
    this.#address = address;
    this.#handle = handle;
  }

  /**
   * mmap(fd, offset, length). offset need not be page-aligned: the mapping starts at the page below
   * it and the buffer covers exactly [offset, offset + length). length is at most
   * buffer.constants.MAX_LENGTH (Node's limit on one ArrayBuffer). The fd may be closed afterwards.
   */
  static map(fd: number, offset: number | bigint, length: number, prot?: MmapProtection): MappedMemory {
    validateFd(fd);
    const start = validateUint64(offset, 'offset', MAX_OFFSET);
    validateInteger(length, 'length', 1, bufferConstants.MAX_LENGTH);
    const { read = true, write = true } = validateOptions<MmapProtection>(prot, 'prot');
    validateBoolean(read, 'prot.read');
    validateBoolean(write, 'prot.write');
    if (!read)
      throw valueError(
        'prot.read',
        'must be true: an ArrayBuffer over unreadable memory would crash on access',
      );
    const result = callNative(() => binding.mmap(fd, start, length, write), { target: `fd ${fd}` });
    return new MappedMemory(result.buffer, length, result.address, result.handle);
  }

  /** The mapped bytes; detached (byteLength 0) after unmap(). */
  get buffer(): ArrayBuffer {
    return this.#buffer;
  }

  /** The length that was mapped (unchanged by unmap(); buffer.byteLength drops to 0). */
  get length(): number {
    return this.#length;
  }

  /** Process address of byte 0 of buffer, for a native data path. */
  get address(): bigint {
    return this.#address;
  }

  get mapped(): boolean {
    return this.#handle !== null;
  }

  /** munmap now and detach buffer, so every view sees length 0 rather than freed memory. Idempotent. */
  unmap(): void {
    if (this.#handle === null) return;
    const handle = this.#handle;
    this.#handle = null;
    binding.munmap(handle, this.#buffer);
  }
}
