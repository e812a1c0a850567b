/**
 * A tiny declarative codec for the fixed-layout, little-endian C structs of the vfio-user wire format.
 * One `struct()` per payload keeps each command's layout in one place (see messages.ts).
 */

export type FieldType = 'u16' | 'u32' | 'u64';
export type FieldValue<T extends FieldType> = T extends 'u64' ? bigint : number;
export type StructFields = Readonly<Record<string, FieldType>>;
export type StructValue<F extends StructFields> = { -readonly [K in keyof F]: FieldValue<F[K]> };

const WIDTH: Record<FieldType, number> = { u16: 2, u32: 4, u64: 8 };
const MAX: Record<Exclude<FieldType, 'u64'>, number> = { u16: 0xffff, u32: 0xffffffff };

export interface Struct<F extends StructFields> {
  readonly name: string;
  readonly fields: F;
  /** Encoded size in bytes. */
  readonly size: number;
  decode(buf: Uint8Array, offset?: number): StructValue<F>;
  /** Writes `value` into `buf` at `offset`; missing fields encode as zero. */
  encodeInto(value: Partial<StructValue<F>>, buf: Uint8Array, offset?: number): void;
  encode(value: Partial<StructValue<F>>): Buffer;
}

export class StructRangeError extends RangeError {}

export function struct<F extends StructFields>(name: string, fields: F): Struct<F> {
  const layout: Array<[string, FieldType, number]> = [];
  let size = 0;
  for (const [key, type] of Object.entries(fields)) {
    layout.push([key, type, size]);
    size += WIDTH[type];
  }
  const view = (buf: Uint8Array) => new DataView(buf.buffer, buf.byteOffset, buf.byteLength);

  return {
    name,
    fields,
    size,
    decode(buf, offset = 0) {
      if (offset < 0 || buf.byteLength - offset < size) {
        throw new StructRangeError(
          `${name}: need ${size} bytes, have ${Math.max(0, buf.byteLength - offset)}`,
        );
      }
      const dv = view(buf);
      const out: Record<string, number | bigint> = {};
      for (const [key, type, at] of layout) {
        const p = offset + at;
        out[key] =
          type === 'u16'
            ? dv.getUint16(p, true)
            : type === 'u32'
              ? dv.getUint32(p, true)
              : dv.getBigUint64(p, true);
      }
      return out as StructValue<F>;
    },
    encodeInto(value, buf, offset = 0) {
      if (offset < 0 || buf.byteLength - offset < size) {
        throw new StructRangeError(`${name}: need ${size} bytes of room at offset ${offset}`);
      }
      const dv = view(buf);
      const values = value as Record<string, number | bigint | undefined>;
      for (const [key, type, at] of layout) {
        const v = values[key] ?? (type === 'u64' ? 0n : 0);
        const p = offset + at;
        if (type === 'u64') {
          const b = BigInt(v);
          if (b < 0n || b > 0xffffffffffffffffn)
            throw new StructRangeError(`${name}.${key}: ${b} does not fit in u64`);
          dv.setBigUint64(p, b, true);
        } else {
          const n = Number(v);
          if (!Number.isInteger(n) || n < 0 || n > MAX[type]) {
            throw new StructRangeError(`${name}.${key}: ${v} does not fit in ${type}`);
          }
          if (type === 'u16') dv.setUint16(p, n, true);
          else dv.setUint32(p, n, true);
        }
      }
    },
    encode(value) {
      const buf = Buffer.alloc(size);
      this.encodeInto(value, buf, 0);
      return buf;
    },
  };
}
