/**
 * The doorbells in shared memory: BAR0's tail registers offered to the VMM as mmap-able sparse areas,
 * [0x0000, 0x1000) (QTX_TAIL1, TX) and [0x2000, 0x3000) (QRX_TAIL1, RX; VFINT_ITRN1 at 0x2800 lives
 * there too: it is only stored), backed by a memfd. A guest's tail writes then land in memory without
 * a vfio-user round trip; a native thread (DoorbellWatcher) notices the TX tails moving and wakes the
 * JS loop. Accesses that still come as REGION_READ / REGION_WRITE read and write the same memory.
 * Every other BAR0 register stays trapped.
 */
import { closeFd, DoorbellWatcher, MappedMemory, memfdCreate } from '@emu/native';
import type { Logger, RegionSpec } from '@emu/vfio-user';
import { MAX_QUEUE_PAIRS, Reg } from '../constants.js';

/** The mmap-able areas of BAR0: whole pages, as vfio-user's sparse mmap needs. */
export const TAIL_AREAS = [
  { offset: 0x0000, size: 0x1000 },
  { offset: 0x2000, size: 0x1000 },
] as const;
const PAGE_BYTES = 0x3000;

type Handlers = Required<Pick<RegionSpec, 'read' | 'write'>>;

export class TailPage {
  /** QTX_TAIL1(0..15), as the guest last wrote them. */
  readonly tx: Uint32Array;
  /** QRX_TAIL1(0..15), as the guest last wrote them. */
  readonly rx: Uint32Array;
  private readonly bytes: Uint8Array;
  private watcher?: DoorbellWatcher;
  private closed = false;

  private constructor(
    readonly fd: number,
    private readonly memory: MappedMemory,
    private readonly log: Logger,
  ) {
    this.bytes = new Uint8Array(memory.buffer);
    this.tx = new Uint32Array(memory.buffer, Reg.QTX_TAIL1(0), MAX_QUEUE_PAIRS);
    this.rx = new Uint32Array(memory.buffer, Reg.QRX_TAIL1(0), MAX_QUEUE_PAIRS);
  }

  /**
   * A fresh page (all zero), or undefined where memfds cannot be had (the tails then stay trapped).
   * Sealed (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL): the VMM we hand it to cannot shrink it under
   * our mapping and the watcher's.
   */
  static create(log: Logger): TailPage | undefined {
    let fd: number | undefined;
    try {
      fd = memfdCreate('emu-iavf-bar0-tails', PAGE_BYTES, { seal: true });
      return new TailPage(fd, MappedMemory.map(fd, 0, PAGE_BYTES), log);
    } catch (err) {
      if (fd !== undefined) closeFd(fd);
      log.warn({ err: (err as Error).message }, 'BAR0 tail registers stay trapped: no shared page');
      return undefined;
    }
  }

  /** Whether [offset, offset + length) touches the page's areas at all. */
  private static overlaps(offset: number, length: number): boolean {
    return TAIL_AREAS.some((a) => offset < a.offset + a.size && a.offset < offset + length);
  }

  /**
   * BAR0 as served: the areas from the page (and mmap-able), the rest through `registers`. An access
   * that straddles an area's edge is split (dword by dword around it).
   */
  region(registers: Handlers, onTxTail: (q: number) => void): RegionSpec {
    const inArea = (at: number) => TAIL_AREAS.some((a) => at >= a.offset && at < a.offset + a.size);
    return {
      mmap: { fd: this.fd, areas: TAIL_AREAS.map((a) => ({ ...a })) },
      read: (offset, length) => {
        if (!TailPage.overlaps(offset, length)) return registers.read(offset, length);
        const out = Buffer.alloc(length);
        for (let i = 0; i < length; ) {
          const at = offset + i;
          const run = this.run(at, length - i, inArea(at));
          if (inArea(at)) out.set(this.bytes.subarray(at, at + run), i);
          else out.set(registers.read(at, run), i);
          i += run;
        }
        return out;
      },
      write: (offset, data) => {
        if (!TailPage.overlaps(offset, data.length)) {
          registers.write(offset, data);
          return;
        }
        for (let i = 0; i < data.length; ) {
          const at = offset + i;
          const run = this.run(at, data.length - i, inArea(at));
          const part = data.subarray(i, i + run);
          if (inArea(at)) {
            if (this.closed) return;
            this.bytes.set(part, at);
            // A TX tail written by message rings its doorbell at once (the watcher would too, later).
            const first = Math.floor(at / 4);
            const last = Math.floor((at + run - 1) / 4);
            for (let w = first; w <= last && w < MAX_QUEUE_PAIRS; w++) onTxTail(w);
          } else registers.write(at, part);
          i += run;
        }
      },
    };
  }

  /** Bytes from `at` that stay on one side of an area edge (registers side: whole dwords). */
  private run(at: number, left: number, inside: boolean): number {
    if (inside) {
      const area = TAIL_AREAS.find((a) => at >= a.offset && at < a.offset + a.size)!;
      return Math.min(left, area.offset + area.size - at);
    }
    const next = TAIL_AREAS.find((a) => a.offset > at);
    return next ? Math.min(left, next.offset - at) : left;
  }

  /**
   * Watches the TX tails from a native thread (adaptive polling: busy polls while the guest
   * transmits, up to 1 ms sleeps when idle); onRing(mask) runs on the JS thread with the queues whose
   * tail word changed. Idempotent; the watcher never touches guest memory.
   */
  watch(onRing: (mask: number) => void): void {
    if (this.closed) return;
    if (!this.watcher) {
      try {
        this.watcher = DoorbellWatcher.create(this.fd, {
          fileOffset: Reg.QTX_TAIL1(0),
          words: MAX_QUEUE_PAIRS,
          onRing,
        });
      } catch (err) {
        this.log.warn(
          { err: (err as Error).message },
          'no doorbell watcher: TX tails written to memory go unseen',
        );
        return;
      }
    }
    this.watcher.start();
  }

  /** Stops (and joins) the watcher thread; it starts again with watch(). */
  unwatch(): void {
    this.watcher?.stop();
  }

  /** Stops the watcher and releases it (its mapping of the page too); watch() makes a new one. */
  releaseWatcher(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }

  get watching(): boolean {
    return this.watcher?.running ?? false;
  }

  /** Watcher polls and wake-ups, for status and benchmarks. */
  watcherStats(): { polls: number; notifications: number; running: boolean } | undefined {
    return this.watcher?.stats();
  }

  /** Power-on values: every register in the areas reads 0. */
  clear(): void {
    for (const a of TAIL_AREAS) this.bytes.fill(0, a.offset, a.offset + a.size);
  }

  /** Stops the watcher, unmaps, closes the memfd; idempotent. Do it once the server is gone. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
    this.memory.unmap();
    closeFd(this.fd);
  }
}
