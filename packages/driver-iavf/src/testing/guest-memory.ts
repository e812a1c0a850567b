/**
 * Guest RAM for tests that play the guest: a block of memory the "VM" owns, handed to the device with
 * DMA_MAP at an IOVA base, with a bump allocator for DMA buffers and little-endian accessors by IOVA.
 *
 * Two kinds, as a VMM has them:
 * - `GuestRam.shared(mib)`: a memfd, mapped here and passed to the device with its fd, so the device
 *   reaches it directly (QEMU with `memory-backend-memfd,share=on`);
 * - `GuestRam.plain(mib)`: a plain buffer with no fd, so every device access is a DMA_READ/DMA_WRITE
 *   message the client answers (QEMU without shared memory).
 */
import { closeFd, MappedMemory, memfdCreate } from '@emu/native';
import type { VfioUserClient } from '@emu/vfio-user';

export const MIB = 1 << 20;
/** Above 4 GiB, so that every ring and buffer address has a non-zero high dword. */
export const DEFAULT_IOVA_BASE = 0x1_0000_0000n;
export const DMA_ALIGN = 4096;

export interface GuestRamOptions {
  /** IOVA of byte 0; 4 KiB-aligned. */
  base?: bigint;
}

export class GuestRam {
  /** The bytes; index 0 is IOVA `base`. */
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private next = 0;
  private client?: VfioUserClient;

  private constructor(
    readonly size: number,
    readonly base: bigint,
    /** True when the device was given an fd (direct access); false: DMA messages. */
    readonly shared: boolean,
    private readonly mapping?: MappedMemory,
    private fd?: number,
  ) {
    if (base % BigInt(DMA_ALIGN) !== 0n)
      throw new RangeError(`IOVA base 0x${base.toString(16)} is not 4 KiB-aligned`);
    this.bytes = mapping ? new Uint8Array(mapping.buffer) : new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }

  /** memfd-backed RAM: the device maps it and touches it directly. */
  static shared(mib: number, options: GuestRamOptions = {}): GuestRam {
    const size = mib * MIB;
    const fd = memfdCreate('soft-iavf-guest-ram', size);
    try {
      return new GuestRam(size, options.base ?? DEFAULT_IOVA_BASE, true, MappedMemory.map(fd, 0, size), fd);
    } catch (err) {
      closeFd(fd);
      throw err;
    }
  }

  /** RAM with no fd: the device must use DMA_READ / DMA_WRITE messages. */
  static plain(mib: number, options: GuestRamOptions = {}): GuestRam {
    return new GuestRam(mib * MIB, options.base ?? DEFAULT_IOVA_BASE, false);
  }

  /** IOVA one past the last byte. */
  get end(): bigint {
    return this.base + BigInt(this.size);
  }

  /** DMA_MAP the whole RAM to the device (read/write). The fd is closed once the device has it. */
  async attach(client: VfioUserClient): Promise<void> {
    await client.dmaMap({
      address: this.base,
      size: BigInt(this.size),
      fd: this.fd,
      memory: this.bytes,
    });
    this.client = client;
    if (this.fd !== undefined) {
      closeFd(this.fd);
      this.fd = undefined;
    }
  }

  /** DMA_UNMAP from the device (if attached and still connected). */
  async detach(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.dmaUnmap(this.base, BigInt(this.size));
  }

  /** Releases the local mapping (and the fd if it was never handed over). */
  close(): void {
    if (this.fd !== undefined) {
      closeFd(this.fd);
      this.fd = undefined;
    }
    this.mapping?.unmap();
  }

  /** A zeroed, `align`-aligned block of `size` bytes; returns its IOVA. Throws when RAM is exhausted. */
  alloc(size: number, align = DMA_ALIGN): bigint {
    if (!Number.isInteger(size) || size <= 0) throw new RangeError(`alloc of ${size} bytes`);
    const at = Math.ceil(this.next / align) * align;
    if (at + size > this.size) {
      throw new RangeError(
        `guest RAM exhausted: ${size} bytes wanted, ${this.size - at} left of ${this.size}`,
      );
    }
    this.next = at + size;
    this.bytes.fill(0, at, at + size);
    return this.base + BigInt(at);
  }

  /** Bytes the allocator has handed out so far. */
  get used(): number {
    return this.next;
  }

  contains(iova: bigint, length: number): boolean {
    return iova >= this.base && iova + BigInt(length) <= this.end;
  }

  /** A live view of guest RAM at an IOVA. */
  at(iova: bigint, length: number): Uint8Array {
    const off = this.offset(iova, length);
    return this.bytes.subarray(off, off + length);
  }

  /** A copy of guest RAM at an IOVA. */
  read(iova: bigint, length: number): Buffer {
    return Buffer.from(this.at(iova, length));
  }

  write(iova: bigint, data: Uint8Array): void {
    this.bytes.set(data, this.offset(iova, data.length));
  }

  fill(iova: bigint, length: number, value = 0): void {
    const off = this.offset(iova, length);
    this.bytes.fill(value, off, off + length);
  }

  u16(iova: bigint): number {
    return this.view.getUint16(this.offset(iova, 2), true);
  }
  u32(iova: bigint): number {
    return this.view.getUint32(this.offset(iova, 4), true);
  }
  u64(iova: bigint): bigint {
    return this.view.getBigUint64(this.offset(iova, 8), true);
  }
  setU16(iova: bigint, v: number): void {
    this.view.setUint16(this.offset(iova, 2), v, true);
  }
  setU32(iova: bigint, v: number): void {
    this.view.setUint32(this.offset(iova, 4), v >>> 0, true);
  }
  setU64(iova: bigint, v: bigint): void {
    this.view.setBigUint64(this.offset(iova, 8), v, true);
  }

  private offset(iova: bigint, length: number): number {
    if (!this.contains(iova, length)) {
      throw new RangeError(
        `[0x${iova.toString(16)}, +${length}) is outside guest RAM [0x${this.base.toString(16)}, 0x${this.end.toString(16)})`,
      );
    }
    return Number(iova - this.base);
  }
}
