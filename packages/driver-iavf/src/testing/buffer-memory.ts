/**
 * Guest memory over a Buffer at IOVA `base`, for driving a DataPath without a vfio-user client (engine
 * comparisons, benchmarks). `direct`: whether the native engine may reach it as host memory (as a memfd
 * mapping), or must leave it to the TypeScript engine (as fd-less RAM reached by DMA messages).
 */
import type { MemRegion } from '@emu/emudev';
import { GuestMemoryTable } from '@emu/native';

export class BufferGuestMemory {
  /** The native table over the same bytes (direct), or naming them as reached by messages only. */
  readonly nativeTable = new GuestMemoryTable();
  readonly dmaEnabled = true;

  constructor(
    readonly bytes: Buffer,
    readonly base: bigint,
    private readonly direct: boolean,
  ) {
    if (direct) this.nativeTable.add(base, bytes);
    else this.nativeTable.addIndirect(base, BigInt(bytes.length));
  }

  private off(iova: bigint, n: number): number {
    // One bigint operation per access: benchmarks measure the device, not this.
    const o = Number(iova - this.base);
    if (o < 0 || n < 0 || o + n > this.bytes.length)
      throw new RangeError(`DMA [0x${iova.toString(16)}, +${n}) is outside guest memory`);
    return o;
  }

  table(): MemRegion[] {
    return [
      {
        iova: this.base,
        size: BigInt(this.bytes.length),
        readable: true,
        writable: true,
        direct: this.direct,
      },
    ];
  }

  contains(iova: bigint, n: number): boolean {
    try {
      this.off(iova, n);
      return true;
    } catch {
      return false;
    }
  }

  async read(iova: bigint, n: number): Promise<Buffer> {
    const o = this.off(iova, n);
    return Buffer.from(this.bytes.subarray(o, o + n));
  }

  async write(iova: bigint, data: Uint8Array): Promise<void> {
    this.bytes.set(data, this.off(iova, data.length));
  }

  view(iova: bigint, n: number): Uint8Array | undefined {
    if (!this.direct || !this.contains(iova, n)) return undefined;
    const o = this.off(iova, n);
    return new Uint8Array(this.bytes.buffer, this.bytes.byteOffset + o, n);
  }
}
