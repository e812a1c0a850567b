/**
 * BAR0 as a table of register families (one row per register or array of registers, as QEMU's
 * igb_core.c dispatches by table): 32-bit registers, dword-aligned. Accesses of other widths are split
 * into or assembled from dwords; offsets no row claims read 0, ignore writes, and are logged once each.
 */
import type { Logger } from '@emu/vfio-user';

export interface RegisterFamily {
  /** Name as in iavf_register.h, e.g. 'VFINT_DYN_CTLN1'. */
  name: string;
  /** Offset of element 0. */
  offset: number;
  /** Number of elements (1 for a single register). */
  count?: number;
  /** Bytes between elements; default 4. */
  stride?: number;
  read(index: number): number;
  /** Absent for read-only registers (writes are ignored). */
  write?(index: number, value: number): void;
}

export class RegisterFile {
  private readonly byOffset = new Map<number, { family: RegisterFamily; index: number }>();
  private readonly reported = new Set<number>();
  /** Accesses to offsets no register claims. */
  unknownAccesses = 0;

  constructor(
    readonly size: number,
    families: readonly RegisterFamily[],
    private readonly log: Logger,
  ) {
    for (const family of families) {
      const n = family.count ?? 1;
      const stride = family.stride ?? 4;
      for (let i = 0; i < n; i++) {
        const at = family.offset + i * stride;
        const clash = this.byOffset.get(at);
        if (clash) {
          const name = n > 1 ? `${family.name}(${i})` : family.name;
          throw new Error(`register ${name} at 0x${at.toString(16)} overlaps ${clash.family.name}`);
        }
        this.byOffset.set(at, { family, index: i });
      }
    }
  }

  /** The register at a dword offset, by name and index, if any: for logs and tests. */
  describe(offset: number): string | undefined {
    const hit = this.byOffset.get(offset);
    if (!hit) return undefined;
    return (hit.family.count ?? 1) > 1 ? `${hit.family.name}(${hit.index})` : hit.family.name;
  }

  readDword(offset: number): number {
    const hit = this.byOffset.get(offset);
    if (!hit) {
      this.unknown(offset, 'read');
      return 0;
    }
    return hit.family.read(hit.index) >>> 0;
  }

  writeDword(offset: number, value: number): void {
    const hit = this.byOffset.get(offset);
    if (!hit) {
      this.unknown(offset, 'write');
      return;
    }
    hit.family.write?.(hit.index, value >>> 0);
  }

  /** A region read of any width: the dwords it touches, sliced. */
  read(offset: number, length: number): Buffer {
    const first = offset & ~3;
    const last = (offset + length + 3) & ~3;
    const out = Buffer.alloc(last - first);
    for (let at = first; at < last; at += 4) out.writeUInt32LE(this.readDword(at), at - first);
    return out.subarray(offset - first, offset - first + length);
  }

  /** A region write: whole dwords go through; 8-byte writes are two dwords; partial dwords are ignored. */
  write(offset: number, data: Buffer): void {
    if (offset % 4 !== 0 || data.length % 4 !== 0) {
      this.unknown(offset, `write of ${data.length} bytes`);
      return;
    }
    for (let i = 0; i < data.length; i += 4) this.writeDword(offset + i, data.readUInt32LE(i));
  }

  private unknown(offset: number, what: string): void {
    this.unknownAccesses++;
    if (this.reported.has(offset)) return;
    this.reported.add(offset);
    this.log.info({ offset: `0x${offset.toString(16)}` }, `BAR0: ${what} of an unimplemented register`);
  }
}
