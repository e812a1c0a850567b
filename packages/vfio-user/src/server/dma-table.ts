/**
 * The DMA memory table: what the client mapped (IOVA ranges, with or without an fd), and bounds-checked
 * access to it. Ranges mapped with an fd are mmap'ed and reached directly; the others can only be reached
 * with DMA_READ / DMA_WRITE messages, which the server sends (see server.ts).
 *
 * One table, kept in native code (@emu/native's GuestMemoryTable, `native`): map, unmap and lookup are
 * O(log n) there, and native data paths walk rings in the very same table, so it never needs a rebuild.
 * This class adds the region records, the checks a DMA_MAP must pass, and the DMA gate: while
 * `dmaEnabled` is false (the PCI command register's Bus Master Enable is clear) no access reaches guest
 * memory, from TypeScript or native code.
 */
import { fileInfo, fileKind, GuestMemoryTable, MappedMemory, Seal } from '@emu/native';
import { Errno } from '../protocol/constants.js';
import { ProtocolError } from '../protocol/errors.js';
import type { ClientBudget } from './budget.js';

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
  /**
   * Whether the client's fd is sealed against shrinking (F_SEAL_SHRINK, as QEMU's memory-backend-memfd
   * seals by default). Unsealed memory that shrinks anyway is caught by @emu/native's SIGBUS guard.
   */
  readonly sealed?: boolean;
}

export interface DmaMapRequest {
  address: bigint;
  size: bigint;
  readable: boolean;
  writable: boolean;
  fileOffset: bigint;
  fd?: number;
}

export interface DmaTableOptions {
  /** Most ranges at once (max_dma_maps), when there is no budget to ask. */
  maxRegions: number;
  /** The client's budget: every range is a DMA map, one with an fd a memory map of its size too. */
  budget?: ClientBudget;
  /** Refuse fds not sealed against shrinking (EPERM), instead of relying on the SIGBUS guard. */
  requireSealed?: boolean;
}

const U64_MAX = 0xffffffffffffffffn;
/** Largest range we mmap in one piece, as libvfio-user (x86-64: 8 TiB). */
const MAX_DMA_SIZE = 8n << 40n;

export class DmaTable {
  /** The same ranges, for native data paths (ring walks); updated at every add and remove. */
  readonly native = new GuestMemoryTable();
  readonly maxRegions: number;
  private readonly requireSealed: boolean;
  private readonly budget?: ClientBudget;
  private readonly byAddress = new Map<bigint, DmaRegion>();
  /** The gate, mirrored here: data paths ask per frame, and this needs no native call. */
  private gate = true;

  constructor(options: DmaTableOptions | number) {
    const o = typeof options === 'number' ? { maxRegions: options } : options;
    this.maxRegions = o.maxRegions;
    this.requireSealed = o.requireSealed ?? false;
    this.budget = o.budget;
  }

  /** The ranges, by address. */
  get regions(): readonly DmaRegion[] {
    const listed = this.native.list();
    if (listed.length !== this.byAddress.size) {
      // A region's memory was unmapped behind our back (DmaRegion.memory.unmap()): it is gone.
      const live = new Set(listed.map((r) => r.iova));
      for (const [address, region] of this.byAddress) {
        if (live.has(address)) continue;
        this.byAddress.delete(address);
        this.refund(region);
      }
    }
    return listed.map((r) => this.byAddress.get(r.iova)!);
  }

  get size(): number {
    return this.byAddress.size;
  }

  /** Whether the device may reach guest memory at all (Bus Master Enable). */
  get dmaEnabled(): boolean {
    return this.gate;
  }

  set dmaEnabled(on: boolean) {
    if (on === this.gate) return;
    this.gate = on;
    this.native.enabled = on;
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
    if (!this.budget && this.byAddress.size >= this.maxRegions) {
      throw new ProtocolError(Errno.ENOSPC, `DMA_MAP: already ${this.byAddress.size} ranges, the limit`);
    }
    const clash = this.native.overlapping(address, size);
    if (clash) {
      throw new ProtocolError(
        Errno.EEXIST,
        `DMA_MAP [0x${hex(address)}, +0x${hex(size)}) overlaps [0x${hex(clash.iova)}, +0x${hex(clash.size)})`,
      );
    }
    const withFd = req.fd !== undefined;
    let sealed: boolean | undefined;
    if (withFd) sealed = this.checkFile(req.fd!, req.fileOffset, size);
    // Counted before the mmap, so a client past its budget never gets one; given back on any failure.
    this.charge(withFd, size);
    let memory: MappedMemory | undefined;
    if (withFd) {
      try {
        memory = MappedMemory.map(req.fd!, req.fileOffset, Number(size), { read: true, write: req.writable });
      } catch (err) {
        this.uncharge(withFd, size);
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
      sealed,
    };
    const access = { readable: req.readable, writable: req.writable };
    try {
      if (memory) this.native.add(address, memory, access);
      else this.native.addIndirect(address, size, access);
    } catch (err) {
      memory?.unmap();
      this.uncharge(withFd, size);
      throw new ProtocolError(Errno.EINVAL, `DMA_MAP: ${(err as Error).message}`);
    }
    this.byAddress.set(address, region);
    return region;
  }

  /** Takes a DMA map (and, with an fd, a memory map and its bytes) from the budget; all or none. */
  private charge(withFd: boolean, size: bigint): void {
    const b = this.budget;
    if (!b) return;
    b.take('dmaMaps', 1);
    if (!withFd) return;
    try {
      b.take('memoryMaps', 1);
      try {
        b.take('mappedBytes', Number(size));
      } catch (err) {
        b.give('memoryMaps', 1);
        throw err;
      }
    } catch (err) {
      b.give('dmaMaps', 1);
      throw err;
    }
  }

  private uncharge(withFd: boolean, size: bigint): void {
    this.budget?.give('dmaMaps', 1);
    if (!withFd) return;
    this.budget?.give('memoryMaps', 1);
    this.budget?.give('mappedBytes', Number(size));
  }

  private refund(region: DmaRegion): void {
    this.uncharge(region.memory !== undefined, region.size);
  }

  /**
   * The client's fd must hold [offset, offset + size): a mapping past the file's end would fault on
   * first touch. Returns whether it is sealed against shrinking.
   */
  private checkFile(fd: number, offset: bigint, size: bigint): boolean {
    // What the file is, told without a call into its filesystem: only memory and files on a local
    // disk are used, since any call on another (fstat, a page fault) may wait on the client's own
    // server (a FUSE mount it runs) for as long as it likes.
    const { kind, filesystem } = fileKind(fd);
    if (kind !== 'memory' && kind !== 'disk-file') {
      throw new ProtocolError(
        Errno.EINVAL,
        `DMA_MAP: the fd is not memory emu can use (a memfd, a tmpfs or hugetlbfs file, or a file on a local disk filesystem)${filesystem ? `: it is on ${filesystem}` : `: it is ${kind === 'eventfd' ? 'an eventfd' : 'not a file'}`}`,
      );
    }
    let info: ReturnType<typeof fileInfo>;
    try {
      info = fileInfo(fd);
    } catch (err) {
      throw new ProtocolError(Errno.EBADF, `DMA_MAP: ${(err as Error).message}`);
    }
    if (!info.regular) {
      throw new ProtocolError(
        Errno.EINVAL,
        'DMA_MAP: the fd is not a memory file (a memfd, or a tmpfs, hugetlbfs or regular file)',
      );
    }
    if (offset > info.size || size > info.size - offset) {
      throw new ProtocolError(
        Errno.EINVAL,
        `DMA_MAP: the fd holds 0x${hex(info.size)} bytes; [0x${hex(offset)}, +0x${hex(size)}) goes past its end`,
      );
    }
    const sealed = (info.seals & Seal.SHRINK) !== 0;
    if (!sealed && this.requireSealed) {
      throw new ProtocolError(
        Errno.EPERM,
        'DMA_MAP: the fd is not sealed against shrinking (F_SEAL_SHRINK), and sealed memory is required',
      );
    }
    return sealed;
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
    const { starts, straddler } = this.native.within(address, size);
    if (straddler) {
      throw new ProtocolError(
        Errno.EINVAL,
        `DMA_UNMAP [0x${hex(address)}, +0x${hex(size)}) would split [0x${hex(straddler.iova)}, +0x${hex(straddler.size)})`,
      );
    }
    return starts.map((start) => this.byAddress.get(start)!);
  }

  /** Removes a range and releases its mapping. */
  remove(region: DmaRegion): void {
    if (this.byAddress.get(region.address) === region) {
      this.byAddress.delete(region.address);
      this.native.remove(region.address);
      this.refund(region);
    }
    region.memory?.unmap();
  }

  clear(): DmaRegion[] {
    const all = this.regions.slice();
    for (const r of all) this.remove(r);
    return all;
  }

  /**
   * Finds the range holding [address, address+length); the access must not cross ranges.
   * Returns undefined when no single mapped range holds it (whatever the DMA gate says).
   */
  find(address: bigint, length: number): { region: DmaRegion; offset: number } | undefined {
    if (length < 0 || address > U64_MAX - BigInt(length) + 1n) return undefined;
    const start = this.native.find(address, length);
    if (start === undefined) return undefined;
    return { region: this.byAddress.get(start)!, offset: Number(address - start) };
  }

  /**
   * Where a DMA of [address, address+length) goes: the one range holding it, allowing the access.
   * Throws a RangeError naming the address when DMA is disabled, the range is not mapped, or it lacks
   * the access.
   */
  target(address: bigint, length: number, access: 'read' | 'write'): { region: DmaRegion; offset: number } {
    if (!this.dmaEnabled) {
      throw new RangeError(
        `DMA ${access} at 0x${hex(address)}: DMA is disabled (Bus Master Enable is clear)`,
      );
    }
    const hit = this.find(address, length);
    if (!hit) throw new RangeError(`DMA ${access} [0x${hex(address)}, +${length}) is outside guest memory`);
    if (access === 'write' ? !hit.region.writable : !hit.region.readable) {
      throw new RangeError(
        `DMA ${access} [0x${hex(address)}, +${length}) hits a range mapped without ${access}`,
      );
    }
    return hit;
  }

  /** target(), in a range mapped with an fd (reached directly); a RangeError for one without. */
  private direct(address: bigint, length: number, access: 'read' | 'write') {
    const { region, offset } = this.target(address, length, access);
    if (!region.memory)
      throw new RangeError(`DMA ${access} at 0x${hex(address)}: range was mapped without an fd`);
    return { memory: region.memory, offset };
  }

  /** A zero-copy view of mapped guest memory (ranges that came with an fd); see direct() for errors. */
  view(address: bigint, length: number, access: 'read' | 'write' = 'read'): Uint8Array {
    const { memory, offset } = this.direct(address, length, access);
    return memory.view(offset, length);
  }

  /** A copy of mapped guest memory (ranges that came with an fd); see direct() for errors. */
  read(address: bigint, length: number): Buffer {
    const { memory, offset } = this.direct(address, length, 'read');
    return memory.read(offset, length);
  }

  /** Copies into mapped guest memory (ranges that came with an fd); see direct() for errors. */
  write(address: bigint, data: Uint8Array): void {
    const { memory, offset } = this.direct(address, data.length, 'write');
    memory.write(offset, data);
  }
}

export function hex(v: bigint | number): string {
  return v.toString(16);
}
