// The iavf data-path rings in native code (src/memory/guest_memory.cc, src/iavf/iavf_rings.cc): a bounds-checked
// table of guest memory and synchronous TX/RX ring walks on it. The C++ side walks descriptors and
// copies bytes; callers (driver-iavf's DataPath) own counters, logs, interrupts, filters and RSS.
import {
  binding,
  type GuestLookup,
  type IavfRxStatus,
  type IavfTxCounts,
  type IavfTxPacketMeta,
  type IavfTxStop,
  type NativeGuestMemoryTable,
  type NativeStagedMemory,
  type StagedReport,
} from './binding.js';
import { MappedMemory } from './mmap.js';
import {
  typeError,
  validateBoolean,
  validateInteger,
  validateOptions,
  validateUint64,
  valueError,
} from './validate.js';

export type { GuestLookup, IavfRxStatus, IavfTxCounts, IavfTxPacketMeta, IavfTxStop, StagedReport };

const U64_MAX = 2n ** 64n - 1n;

export interface GuestRangeAccess {
  /** Default true. */
  readable?: boolean;
  /** Default true. */
  writable?: boolean;
}

export interface GuestRange {
  iova: bigint;
  size: bigint;
  /** Host memory behind it (false: reached only by DMA messages). */
  direct: boolean;
  readable: boolean;
  writable: boolean;
}

function access(options: GuestRangeAccess | undefined): { readable: boolean; writable: boolean } {
  const { readable = true, writable = true } = validateOptions<GuestRangeAccess>(options, 'access');
  validateBoolean(readable, 'access.readable');
  validateBoolean(writable, 'access.writable');
  return { readable, writable };
}

/**
 * Guest memory for native data paths: IOVA ranges, each either direct (host memory: a MappedMemory of
 * the VMM's fd, of any size, or an ArrayBuffer) or indirect (mapped without an fd). Map, unmap and
 * lookup are O(log n). Every lookup the ring functions make is bounds-checked in C++: an access must
 * lie wholly inside one range that allows it, never crossing into the next, so a guest's addresses,
 * lengths and indexes can never reach memory outside the table. While `enabled` is false (no DMA:
 * Bus Master Enable clear) every lookup misses.
 *
 * The table holds a reference to each direct range's memory and never reaches it once unmapped
 * (MappedMemory.unmap) or detached, even if the caller forgets remove(). Ranges are added by object,
 * not by raw host address: an address alone carries no lifetime.
 */
export class GuestMemoryTable {
  /** @internal the raw binding, for the ring functions. */
  readonly native: NativeGuestMemoryTable = new binding.GuestMemoryTable();

  /** A direct range: guest [iova, iova + memory's length) is `memory`. Throws RangeError on overlap. */
  add(
    iova: bigint | number,
    memory: MappedMemory | ArrayBuffer | ArrayBufferView,
    options?: GuestRangeAccess,
  ): void {
    const start = validateUint64(iova, 'iova', U64_MAX);
    const { readable, writable } = access(options);
    if (memory instanceof MappedMemory) {
      if (!memory.mapped) throw valueError('memory', 'is unmapped');
      this.native.addMapping(start, memory.handle, readable, writable);
      return;
    }
    if (!(memory instanceof ArrayBuffer) && !ArrayBuffer.isView(memory)) {
      throw typeError('memory', 'a MappedMemory, an ArrayBuffer or a view of one', memory);
    }
    if (memory.byteLength === 0) throw valueError('memory', 'is empty (or detached: unmapped)');
    this.native.add(start, memory, readable, writable);
  }

  /** An indirect range: mapped, but reached only by DMA messages (ring functions stop at it). */
  addIndirect(iova: bigint | number, size: bigint | number, options?: GuestRangeAccess): void {
    const start = validateUint64(iova, 'iova', U64_MAX);
    const bytes = validateUint64(size, 'size', U64_MAX);
    if (bytes === 0n) throw valueError('size', 'must not be 0');
    const { readable, writable } = access(options);
    this.native.addIndirect(start, bytes, readable, writable);
  }

  /** Removes the range starting at iova; false if there is none. */
  remove(iova: bigint | number): boolean {
    return this.native.remove(validateUint64(iova, 'iova', U64_MAX));
  }

  clear(): void {
    this.native.clear();
  }

  /** The ranges, by address (ranges whose buffers were detached are gone). */
  list(): GuestRange[] {
    return this.native.list();
  }

  /** Where [iova, iova + length) lands for a read or a write. */
  lookup(iova: bigint | number, length: bigint | number, kind: 'read' | 'write' = 'read'): GuestLookup {
    const start = validateUint64(iova, 'iova', U64_MAX);
    const bytes = validateUint64(length, 'length', U64_MAX);
    return this.native.lookup(start, bytes, kind === 'write');
  }

  /** The start of the one range holding [iova, iova + length), whatever its access; undefined if none. */
  find(iova: bigint, length: bigint | number): bigint | undefined {
    return this.native.find(iova, BigInt(length)) ?? undefined;
  }

  /** A range overlapping [iova, iova + size) (size > 0, not wrapping), if any. */
  overlapping(iova: bigint, size: bigint): { iova: bigint; size: bigint } | undefined {
    return this.native.overlapping(iova, size) ?? undefined;
  }

  /**
   * The starts of the ranges wholly inside [iova, iova + size) (size > 0, not wrapping), and one range
   * that crosses either end of it, if any.
   */
  within(iova: bigint, size: bigint): { starts: bigint[]; straddler?: { iova: bigint; size: bigint } } {
    const r = this.native.within(iova, size);
    return r.straddler ? { starts: r.starts, straddler: r.straddler } : { starts: r.starts };
  }

  /** Whether DMA may happen (false: every lookup misses, as with Bus Master Enable clear). */
  get enabled(): boolean {
    return this.native.enabled;
  }

  set enabled(on: boolean) {
    validateBoolean(on, 'enabled');
    this.native.setEnabled(on);
  }

  /** How many ranges are listed. */
  get size(): number {
    return this.native.count;
  }
}

/**
 * Guest memory that only DMA messages reach (fd-less RAM), for the ring walks: pass it as `stage` and
 * a walk that stops `indirect` names its `need`; fetch that range (DMA_READ), add it, and walk again
 * from the head it returned, with the same stage. Each walk's `writes` are its stores into guest memory,
 * oldest first: write them (DMA_WRITE) in that order before anything else touches the ring. One
 * StagedMemory serves one pass over the part of a ring the device owns; make a new one per pass.
 * Bounded in C++ (1 MiB per window, 8 MiB held: past it, the oldest windows are forgotten).
 */
export class StagedMemory {
  /** @internal the raw binding, for the ring functions. */
  readonly native: NativeStagedMemory = new binding.StagedMemory();

  /** A fetched range: its bytes, or null when the fetch failed (it then reads as outside guest memory). */
  add(iova: bigint, bytes: Uint8Array | null, length: number = bytes?.length ?? 0): boolean {
    return this.native.add(iova, bytes, length);
  }

  /** Bytes held. */
  get bytes(): number {
    return this.native.bytes;
  }
}

function validateStage(stage: unknown): void {
  if (stage !== undefined && !(stage instanceof StagedMemory))
    throw typeError('options.stage', 'a StagedMemory', stage);
}

/** A descriptor ring in guest memory. */
export interface IavfRing {
  /** IOVA of descriptor 0. */
  iova: bigint;
  /** Descriptors, 1 to 8192. */
  length: number;
}

export interface IavfTxResult {
  /** The new head: descriptors before it are done with. */
  head: number;
  stop: IavfTxStop;
  counts: IavfTxCounts;
  /**
   * Frames for the wire, fresh Buffers the caller may keep: with `offload` (default), after IPv4 and
   * TCP/UDP checksums, TSO segmentation and VLAN tag insertion; without, each packet as gathered, with
   * `meta`.
   */
  frames: Buffer[];
  meta?: IavfTxPacketMeta[];
  /** With a stage: the range to fetch (stop `indirect`). */
  need?: StagedReport['need'];
  /** With a stage: the walk's stores, to write in order. */
  writes?: StagedReport['writes'];
}

export interface IavfTxOptions {
  /** Walk through this stage (guest memory only DMA messages reach). */
  stage?: StagedMemory;
  /** Do checksum offloads and TSO in C++ (default true). */
  offload?: boolean;
  /**
   * The pass starts no packet once it has produced this many frames (TSO segments count one each) or
   * bytes; one packet adds at most 256 KiB. Default: no bound.
   */
  maxFrames?: number;
  maxBytes?: number;
}

const U32_MAX = 0xffffffff;

/**
 * Processes an iavf TX ring from head to tail (both must be below ring.length): context descriptors
 * (TSO length and MSS), data descriptors gathered up to EOP (at most 16 buffers, 64 with TSO, each at
 * most 16383 bytes), and for every packet finished, sent or dropped, DTYPE 0xF written into qword1 of
 * its descriptors with RS (release-ordered), as Linux's iavf_clean_tx_irq checks them. A packet with a
 * bad buffer is dropped whole. Synchronous: guest memory is only touched inside this call.
 */
export function iavfTxRing(
  table: GuestMemoryTable,
  ring: IavfRing,
  head: number,
  tail: number,
  options: IavfTxOptions = {},
): IavfTxResult {
  const { offload = true, maxFrames = U32_MAX, maxBytes = U32_MAX, stage } = options;
  validateStage(stage);
  validateInteger(maxFrames, 'options.maxFrames', 1, U32_MAX);
  validateInteger(maxBytes, 'options.maxBytes', 1, U32_MAX);
  const r = table.native.txRing({
    ring: ring.iova,
    ringLen: ring.length,
    head,
    tail,
    offload,
    maxFrames,
    maxBytes,
    stage: stage?.native,
  });
  const result: IavfTxResult = {
    head: r.head,
    stop: r.stop as IavfTxStop,
    counts: r.counts,
    frames: r.frames,
  };
  if (r.meta) result.meta = r.meta;
  if (r.need) result.need = r.need;
  if (r.writes) result.writes = r.writes;
  return result;
}

/** RX descriptor size: 32 bytes (legacy RXDID 1, the default) or 16 bytes (legacy RXDID 0). */
export type IavfRxDescSize = 16 | 32;

export interface IavfRxQueue extends IavfRing {
  /** Bytes per RX buffer (databuffer_size). */
  bufferSize: number;
  /** Largest frame the queue takes (max_pkt_size). */
  maxFrame: number;
  /** Bytes per descriptor (default 32). */
  descSize?: IavfRxDescSize;
}

function rxDescSize(size: unknown, name: string): IavfRxDescSize {
  if (size === undefined) return 32;
  if (size !== 16 && size !== 32) throw typeError(name, '16 or 32', size);
  return size;
}

export interface IavfRxOptions {
  /** RSS hash to write back (qword0 high dword, FLTSTAT = 3); none by default. */
  hash?: number;
  /** A VLAN tag stripped from the frame, for the last descriptor (qword0 bits 16-31, L2TAG1P). */
  l2tag1?: number;
  /** Write through this stage (guest memory only DMA messages reach). */
  stage?: StagedMemory;
}

export interface IavfRxResult extends Partial<StagedReport> {
  status: IavfRxStatus;
  /** The new head. */
  head: number;
}

/**
 * Writes one frame into an iavf RX ring from head (the device owns [head, tail)), over as many
 * descriptors as bufferSize needs (up to 5), each written back in the legacy format: qwords 2 and 3
 * zero (32-byte descriptors only), qword0 the RSS hash (and on the last the stripped VLAN tag), then
 * qword1 (DD, LENGTH_PBUF, FLTSTAT; on the last EOF, L2TAG1P, PTYPE and checksum status) last, with a
 * release store. Returns the status and the new head.
 */
export function iavfRxRing(
  table: GuestMemoryTable,
  queue: IavfRxQueue,
  head: number,
  tail: number,
  frame: Uint8Array,
  options: IavfRxOptions = {},
): IavfRxResult {
  validateStage(options.stage);
  return table.native.rxRing({
    ring: queue.iova,
    ringLen: queue.length,
    head,
    tail,
    bufferSize: queue.bufferSize,
    maxFrame: queue.maxFrame,
    descSize: rxDescSize(queue.descSize, 'queue.descSize'),
    frame,
    hash: options.hash,
    l2tag1: options.l2tag1,
    stage: options.stage?.native,
  });
}

/**
 * The guest driver's side, for benchmarks and tests: writes `count` one-buffer TX data descriptors
 * from `next` (all pointing at [buffer, buffer + length), with `cmd`, e.g. EOP | RS | ICRC = 0x7), as
 * iavf_tx_map does; returns the new next_to_use. Bump the tail yourself. count < ring.length.
 */
export function iavfGuestPostTx(
  table: GuestMemoryTable,
  ring: IavfRing,
  next: number,
  count: number,
  buffer: bigint,
  length: number,
  cmd = 0x7,
): number {
  validateInteger(count, 'count', 0, ring.length - 1);
  return table.native.guestPostTx({
    ring: ring.iova,
    ringLen: ring.length,
    next,
    count,
    buffer,
    length,
    cmd,
  });
}

/**
 * The guest's RX refill (iavf_alloc_rx_buffers): pkt_addr of `count` descriptors (descSize bytes
 * each, default 32) from `next`, slot i getting buffers + i * bufferSize, and their qword1 cleared;
 * returns the new next_to_use.
 */
export function iavfGuestPostRx(
  table: GuestMemoryTable,
  ring: IavfRing & { descSize?: IavfRxDescSize },
  next: number,
  count: number,
  buffers: bigint,
  bufferSize: number,
): number {
  validateInteger(count, 'count', 0, ring.length - 1);
  const descSize = rxDescSize(ring.descSize, 'ring.descSize');
  return table.native.guestPostRx({
    ring: ring.iova,
    ringLen: ring.length,
    next,
    count,
    buffers,
    bufferSize,
    descSize,
  });
}

/**
 * The guest's TX clean (iavf_clean_tx_irq): how many descriptors from `next` on, at most `max`, the
 * device has written back done (DTYPE 0xF). The caller moves next_to_clean by it.
 */
export function iavfGuestReapTx(table: GuestMemoryTable, ring: IavfRing, next: number, max: number): number {
  validateInteger(max, 'max', 0, ring.length - 1);
  return table.native.guestReapTx({ ring: ring.iova, ringLen: ring.length, next, max });
}

/**
 * The guest's RX clean: how many descriptors from `next` on, at most `max`, the device has written back
 * (DD), their qword1 cleared. The caller moves next_to_clean by it.
 */
export function iavfGuestReapRx(
  table: GuestMemoryTable,
  ring: IavfRing & { descSize?: IavfRxDescSize },
  next: number,
  max: number,
): number {
  validateInteger(max, 'max', 0, ring.length - 1);
  const descSize = rxDescSize(ring.descSize, 'ring.descSize');
  return table.native.guestReapRx({ ring: ring.iova, ringLen: ring.length, next, max, descSize });
}

/** One guest driver of iavfGuestForward: its rings and indexes as SoftIavf left them. */
export interface IavfGuestForwardSide {
  table: GuestMemoryTable;
  tx: bigint;
  rx: bigint;
  ringLen: number;
  rxBuffers: bigint;
  bufferSize: number;
  /** The one frame every TX descriptor points at. */
  frame: bigint;
  frameLength: number;
  /** QTX_TAIL1 / QRX_TAIL1 as words of the mapped BAR0 page. */
  txTail: Uint32Array;
  rxTail: Uint32Array;
  txNtu: number;
  txNtc: number;
  inFlight: number;
  rxNtu: number;
  rxNtc: number;
  /** Frames to send before anything came (starts the loop). */
  owed: number;
}

/**
 * The guest drivers' side of testpmd-like io forwarding, for benchmarks, all in C++ (no JavaScript per
 * burst): each side in turn cleans its RX ring, gives the buffers back, cleans its TX ring and sends as
 * many frames as it received. Blocks for warmupMs + runMs; returns the frames received after the warm-up.
 */
export function iavfGuestForward(
  sides: IavfGuestForwardSide[],
  warmupMs: number,
  runMs: number,
): { frames: number; seconds: number } {
  return binding.iavfGuestForward(
    sides.map((s) => ({ ...s, table: s.table.native })),
    warmupMs,
    runMs,
  );
}
