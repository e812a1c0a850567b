// A byte image with its two guest-write masks. The header and every capability
// are built into one of these, then copied into the config space at their offset.

export interface RegisterField {
  /** Power-on value. */
  value?: number;
  /** Bits the guest may write. */
  writable?: number;
  /** Bits the guest clears by writing 1. */
  w1c?: number;
}

/** Writes `size` bytes of `value` little-endian; works for any 32-bit pattern, including "negative" ones from ~. */
export function putLE(buf: Uint8Array, offset: number, size: number, value: number): void {
  for (let i = 0; i < size; i++) buf[offset + i] = (value >>> (8 * i)) & 0xff;
}

export function getLE(buf: Uint8Array, offset: number, size: number): number {
  let value = 0;
  for (let i = size - 1; i >= 0; i--) value = value * 256 + buf[offset + i];
  return value;
}

export class RegisterImage {
  readonly data: Buffer;
  readonly wmask: Buffer;
  readonly w1cmask: Buffer;

  constructor(readonly length: number) {
    this.data = Buffer.alloc(length);
    this.wmask = Buffer.alloc(length);
    this.w1cmask = Buffer.alloc(length);
  }

  /** Defines the register of `size` bytes at `offset` (relative to the image). */
  field(offset: number, size: 1 | 2 | 4, { value = 0, writable = 0, w1c = 0 }: RegisterField): this {
    if (offset < 0 || offset + size > this.length) {
      throw new RangeError(`register at ${offset} (+${size}) is outside a ${this.length}-byte image`);
    }
    putLE(this.data, offset, size, value);
    putLE(this.wmask, offset, size, writable);
    putLE(this.w1cmask, offset, size, w1c);
    return this;
  }
}
