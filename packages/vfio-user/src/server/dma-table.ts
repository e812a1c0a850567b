/**
 * The DMA memory table: what the client mapped (IOVA ranges, with or without an fd), and bounds-checked
 * access to it. Ranges mapped with an fd are mmap'ed and reached directly; the others can only be reached
 * with DMA_READ / DMA_WRITE messages, which the server sends (see server.ts).
 */
import { MappedMemory } from '@emu/native';
import { Errno } from '../protocol/constants.js';
import { ProtocolError } from '../protocol/errors.js';

export interface DmaRegion {
  /** IOVA of the first byte. */
  readonly address: bigint;
  readonly size: bigint;
  readonly readable: boolean;
  readonly writable: boolean;
  /** Offset of the range in the client's fd, as the client gave it. */
  readonly fileOffset: bigint;
  /** The mmap of the client's fd; absent for ranges mapped without an fd. */
  readonly memory?: MappedMemory;
}

export interface DmaMapRequest {
  address: bigint;
  size: bigint;
  readable: boolean;
  writable: boolean;
  fileOffset: bigint;
  fd?: number;
}

const U64_MAX = 0xffffffffffffffffn;
/** Largest range we mmap in one piece, as libvfio-user (x86-64: 8 TiB). */
const MAX_DMA_SIZE = 8n << 40n;

export class DmaTable {
  /** Sorted by address; ranges never overlap. */
  private readonly list: DmaRegion[] = [];

  constructor(readonly maxRegions: number) {}

  get regions(): readonly DmaRegion[] {
    return this.list;
  }

  /** Adds a range; maps the fd when there is one. The caller keeps (and closes) the fd. */
  add(req: DmaMapRequest): DmaRegion {
    const { address, size } = req;
    if (size === 0n) throw new ProtocolError(Errno.EINVAL, 'DMA_MAP of size 0');
    if (address > U64_MAX - size + 1n) {
      throw new ProtocolError(Errno.EINVAL, `DMA_MAP [0x${hex(address)}, +0x${hex(size)}) wraps around`);
    }
    if (size > MAX_DMA_SIZE)
      throw new ProtocolError(Errno.ENOSPC, `DMA_MAP size 0x${hex(size)} is above 8 TiB`);
    if (this.list.length >= this.maxRegions) {
      throw new ProtocolError(Errno.ENOSPC, `DMA_MAP: already ${this.list.length} ranges, the limit`);
    }
    const clash = this.list.find((r) => address < r.address + r.size && r.address < address + size);
    if (clash) {
      throw new ProtocolError(
        Errno.EEXIST,
        `DMA_MAP [0x${hex(address)}, +0x${hex(size)}) overlaps [0x${hex(clash.address)}, +0x${hex(clash.size)})`,
      );
    }
    let memory: MappedMemory | undefined;
    if (req.fd !== undefined) {
      if (size > BigInt(Number.MAX_SAFE_INTEGER))
        throw new ProtocolError(Errno.ENOSPC, 'DMA_MAP too large to map');
      try {
        memory = MappedMemory.map(req.fd, req.fileOffset, Number(size), { read: true, write: req.writable });
      } catch (err) {
        const e = err as { errno?: number; message: string };
        throw new ProtocolError(
          Math.abs(e.errno ?? Errno.EINVAL) || Errno.EINVAL,
          `DMA_MAP mmap: ${e.message}`,
        );
      }
    }
    const region: DmaRegion = {
      address,
      size,
      readable: req.readable,
      writable: req.writable,
      fileOffset: req.fileOffset,
      memory,
    };
    const at = this.list.findIndex((r) => r.address > address);
    this.list.splice(at < 0 ? this.list.length : at, 0, region);
    return region;
  }

  /**
   * The mapped ranges inside [address, address+size), as Linux VFIO's type1 unmap finds them: every
   * range wholly inside goes, none is an empty (successful) unmap, and a range that straddles either
   * end is an error, since a mapping cannot be split. QEMU relies on this: with a vIOMMU it unmaps
   * whole address-space windows that hold nothing.
   */
  rangesWithin(address: bigint, size: bigint): DmaRegion[] {
    if (size === 0n) throw new ProtocolError(Errno.EINVAL, 'DMA_UNMAP of size 0');
    if (address > U64_MAX - size + 1n) {
      throw new ProtocolError(Errno.EINVAL, `DMA_UNMAP [0x${hex(address)}, +0x${hex(size)}) wraps around`);
    }
    const end = address + size;
    const hits = this.list.filter((r) => r.address < end && address < r.address + r.size);
    const straddler = hits.find((r) => r.address < address || r.address + r.size > end);
    if (straddler) {
      throw new ProtocolError(
        Errno.EINVAL,
        `DMA_UNMAP [0x${hex(address)}, +0x${hex(size)}) would split [0x${hex(straddler.address)}, +0x${hex(straddler.size)})`,
      );
    }
    return hits;
  }

  /** Removes a range and releases its mapping. */
  remove(region: DmaRegion): void {
    const i = this.list.indexOf(region);
    if (i >= 0) this.list.splice(i, 1);
    region.memory?.unmap();
  }

  clear(): DmaRegion[] {
    const all = this.list.splice(0, this.list.length);
    for (const r of all) r.memory?.unmap();
    return all;
  }

  /**
   * Finds the range holding [address, address+length); the access must not cross ranges.
   * Returns undefined when no single mapped range holds it.
   */
  find(address: bigint, length: number): { region: DmaRegion; offset: number } | undefined {
    const end = address + BigInt(length);
    for (const r of this.list) {
      if (address >= r.address && end <= r.address + r.size)
        return { region: r, offset: Number(address - r.address) };
      if (r.address > address) break;
    }
    return undefined;
  }

  /**
   * A zero-copy view of mapped guest memory, for ranges that came with an fd. Throws a RangeError naming
   * the address when the range is not mapped, not mapped with an fd, or lacks the access asked for.
   */
  view(address: bigint, length: number, access: 'read' | 'write' = 'read'): Uint8Array {
    const hit = this.find(address, length);
    if (!hit) throw new RangeError(`DMA ${access} [0x${hex(address)}, +${length}) is outside guest memory`);
    const { region, offset } = hit;
    if (access === 'write' ? !region.writable : !region.readable) {
      throw new RangeError(
        `DMA ${access} [0x${hex(address)}, +${length}) hits a range mapped without ${access}`,
      );
    }
    if (!region.memory)
      throw new RangeError(`DMA ${access} at 0x${hex(address)}: range was mapped without an fd`);
    return new Uint8Array(region.memory.buffer, offset, length);
  }
}

export function hex(v: bigint | number): string {
  return v.toString(16);
}
