import { constants as bufferConstants } from 'node:buffer';
import { binding } from './binding.js';
import { callNative, closedError } from './errors.js';
import {
  typeError,
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
/** Largest mapping: as libvfio-user's largest DMA range on x86-64, 8 TiB (a safe integer either way). */
export const MAX_MAPPING_LENGTH = 2 ** 43;

/**
 * A shared mapping of an fd (e.g. a guest memory region received from the VMM), of any size up to
 * 8 TiB: larger than one ArrayBuffer can be (4 GiB on Node 20). JavaScript reaches it through
 * windows (view: zero-copy, for ranges up to buffer.constants.MAX_LENGTH), copies (read, write), and
 * `buffer`, the whole mapping as one ArrayBuffer where it fits in one. Native code (GuestMemoryTable)
 * reaches all of it. Every window is detached by unmap(), so no view can touch unmapped memory.
 *
 * Unmapped exactly once: by unmap(), or when this object and every window of it are garbage-collected.
 * The SIGBUS guard covers it (see guardStats): if the file shrinks under it, the pages past the new end
 * read zeros instead of killing the process; `faults` counts them.
 */
export class MappedMemory {
  readonly #length: number;
  readonly #address: bigint;
  #handle: object | null;
  #buffer: ArrayBuffer | undefined;

  private constructor(length: number, address: bigint, handle: object) {
    this.#length = length;
    this.#address = address;
    this.#handle = handle;
  }

  /**
   * mmap(fd, offset, length). offset need not be page-aligned: the mapping starts at the page below
   * it and covers exactly [offset, offset + length). The fd may be closed afterwards.
   */
  static map(fd: number, offset: number | bigint, length: number, prot?: MmapProtection): MappedMemory {
    validateFd(fd);
    const start = validateUint64(offset, 'offset', MAX_OFFSET);
    validateInteger(length, 'length', 1, MAX_MAPPING_LENGTH);
    const { read = true, write = true } = validateOptions<MmapProtection>(prot, 'prot');
    validateBoolean(read, 'prot.read');
    validateBoolean(write, 'prot.write');
    if (!read)
      throw valueError(
        'prot.read',
        'must be true: an ArrayBuffer over unreadable memory would crash on access',
      );
    const result = callNative(() => binding.mmap(fd, start, length, write), { target: `fd ${fd}` });
    return new MappedMemory(length, result.address, result.handle);
  }

  /**
   * The whole mapping as one ArrayBuffer, detached (byteLength 0) after unmap(). Throws a RangeError
   * for a mapping larger than one ArrayBuffer can be: use view(), read() and write() there.
   */
  get buffer(): ArrayBuffer {
    if (this.#buffer === undefined) {
      if (this.#length > bufferConstants.MAX_LENGTH) {
        throw new RangeError(
          `mapping of ${this.#length} bytes is larger than one ArrayBuffer (${bufferConstants.MAX_LENGTH}): use view(), read() or write()`,
        );
      }
      this.#buffer = this.#handle
        ? callNative(() => binding.mappingView(this.#handle!, 0, this.#length))
        : new ArrayBuffer(0);
    }
    return this.#buffer;
  }

  /** The length that was mapped (unchanged by unmap()). */
  get length(): number {
    return this.#length;
  }

  /** Process address of byte 0, for a native data path. */
  get address(): bigint {
    return this.#address;
  }

  get mapped(): boolean {
    return this.#handle !== null;
  }

  /** @internal the native mapping, for GuestMemoryTable.addMapping. */
  get handle(): object {
    if (this.#handle === null) throw closedError('mapping', 'mapping');
    return this.#handle;
  }

  /** SIGBUS faults the guard caught in this mapping: pages whose file shrank away under it. */
  get faults(): number {
    return this.#handle === null ? 0 : binding.mappingFaults(this.#handle);
  }

  /**
   * A zero-copy view of [offset, offset + length), detached with the rest at unmap(). length is at
   * most buffer.constants.MAX_LENGTH.
   */
  view(offset: number, length: number): Uint8Array {
    this.#check(offset, length, bufferConstants.MAX_LENGTH);
    if (this.#length <= bufferConstants.MAX_LENGTH) return new Uint8Array(this.buffer, offset, length);
    return new Uint8Array(callNative(() => binding.mappingView(this.#handle!, offset, length)));
  }

  /** A copy of [offset, offset + length). */
  read(offset: number, length: number): Buffer {
    this.#check(offset, length, bufferConstants.MAX_LENGTH);
    return callNative(() => binding.mappingRead(this.#handle!, offset, length));
  }

  /** Copies data in at offset. */
  write(offset: number, data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) throw typeError('data', 'a Uint8Array', data);
    this.#check(offset, data.byteLength, Number.MAX_SAFE_INTEGER);
    callNative(() => binding.mappingWrite(this.#handle!, offset, data.byteLength, data));
  }

  /** munmap now and detach every window, so every view sees length 0 rather than freed memory. Idempotent. */
  unmap(): void {
    if (this.#handle === null) return;
    const handle = this.#handle;
    this.#handle = null;
    binding.munmap(handle);
  }

  #check(offset: number, length: number, maxLength: number): void {
    if (this.#handle === null) throw closedError('mapping', 'mapping');
    validateInteger(offset, 'offset', 0, this.#length);
    validateInteger(length, 'length', 0, Math.min(maxLength, this.#length - offset));
  }
}
