/**
 * Interrupts: per IRQ index (INTx, MSI, MSI-X, ERR, REQ) the eventfds the client handed over with
 * SET_IRQS, the mask bits, and triggering. Follows VFIO's VFIO_DEVICE_SET_IRQS semantics. Each index's
 * vectors are an IrqLines of @emu/native, which a device's native code may trigger too (lines()): the
 * eventfds, mask bits and pending causes live there, once; this table checks and applies requests.
 * One IrqWriter per table (per device) is the only thread that writes the client's eventfds, from
 * the first SET_IRQS with eventfds until the client goes: a client that makes those writes block
 * (clearing O_NONBLOCK on an eventfd it filled) stops its own interrupts and nothing else.
 */
import { checkEventFd as checkIsEventFd, IrqLines, IrqWriter } from '@emu/native';
import {
  Errno,
  IRQ_INDEX_NAMES,
  IrqIndex,
  type IrqIndexName,
  IrqInfoFlag,
  IrqSetFlag,
} from '../protocol/constants.js';
import { ProtocolError } from '../protocol/errors.js';
import { safeClose } from '../transport/framer.js';

export type IrqCounts = Record<IrqIndexName, number>;

export interface IrqSetRequest {
  flags: number;
  index: number;
  start: number;
  count: number;
  /** The DATA_BOOL array, when present. */
  bools?: Uint8Array;
  fds: number[];
}

export class IrqTable {
  private readonly indexes: IrqLines[];
  private readonly writer: IrqWriter;

  /**
   * onDropped runs, on the event loop, after interrupts could not be delivered since the last call
   * (see dropped), by any thread's trigger. `name` names the writer thread (emu-irq:NAME).
   */
  constructor(
    readonly counts: IrqCounts,
    onDropped: () => void = () => {},
    name = 'irq',
  ) {
    this.writer = new IrqWriter(name, { onDropped });
    this.indexes = IRQ_INDEX_NAMES.map((n) => new IrqLines(counts[n], this.writer));
  }

  /** The lines of an index, for a device's native code to trigger. */
  lines(index: number): IrqLines | undefined {
    return this.indexes[index];
  }

  /**
   * Interrupts delivered, and those that could not be: the client's eventfd counter was full (it
   * never reads it). Dropped ones are counted, never thrown: the interrupt would be lost on hardware
   * too. Either counts every thread's triggers, native ones included.
   */
  get triggered(): number {
    return this.indexes.reduce((n, l) => n + l.counts().triggered, 0);
  }

  get dropped(): number {
    return this.indexes.reduce((n, l) => n + l.counts().dropped, 0);
  }

  /** Eventfds held, over every index: what the client's SET_IRQS made us keep open. */
  heldFds(): number {
    let n = 0;
    for (const l of this.indexes) for (let v = 0; v < l.count; v++) if (l.enabled(v)) n++;
    return n;
  }

  /** Eventfds held for vectors [start, start + count) of an index (what a new SET_IRQS would replace). */
  heldIn(index: number, start: number, count: number): number {
    const l = this.indexes[index];
    let n = 0;
    if (l) for (let v = start; v < Math.min(l.count, start + count); v++) if (l.enabled(v)) n++;
    return n;
  }

  count(index: number): number {
    return this.indexes[index]?.count ?? 0;
  }

  /** GET_IRQ_INFO flags for an index. */
  infoFlags(index: number): number {
    if (index === IrqIndex.INTX) return IrqInfoFlag.EVENTFD | IrqInfoFlag.MASKABLE | IrqInfoFlag.AUTOMASKED;
    if (index === IrqIndex.MSI || index === IrqIndex.MSIX) return IrqInfoFlag.EVENTFD | IrqInfoFlag.NORESIZE;
    return IrqInfoFlag.EVENTFD;
  }

  /** True when vector `sub` of `index` has an eventfd to signal. */
  enabled(index: number, sub: number): boolean {
    return sub >= 0 && sub < this.count(index) && this.indexes[index].enabled(sub);
  }

  /**
   * Applies a SET_IRQS request, all or nothing. Consumes `fds` in every case: the lines own them on
   * success, they are closed on error, and no vector changes unless the whole request is valid.
   */
  set(req: IrqSetRequest): void {
    try {
      this.apply(req);
    } catch (err) {
      for (const fd of req.fds) safeClose(fd);
      throw err;
    }
  }

  /**
   * Signals a vector. Returns false when there is no eventfd for it (or it is masked: then it is
   * pending). The write itself happens on the writer's thread.
   */
  trigger(index: number, sub: number): boolean {
    if (sub < 0 || sub >= this.count(index)) return false;
    return this.indexes[index].trigger(sub) === 'fired';
  }

  /** Resolves once every interrupt triggered so far has been written or dropped. */
  settled(timeoutMs?: number): Promise<void> {
    return this.writer.settled(timeoutMs);
  }

  /** Closes every eventfd and stops the writer (client gone), interrupting a write it holds blocked; keeps the counts. */
  clear(): void {
    for (const l of this.indexes) l.clear();
    this.writer.stop();
  }

  /** clear(), and the writer is gone for good. */
  close(): void {
    this.clear();
    this.writer.close();
  }

  /** Checks the whole request, then applies it. */
  private apply(req: IrqSetRequest): void {
    const { flags, index, start, count, fds } = req;
    const data = flags & IrqSetFlag.DATA_MASK;
    const action = flags & IrqSetFlag.ACTION_MASK_ALL;
    const bad = (m: string) =>
      new ProtocolError(Errno.EINVAL, `SET_IRQS ${IRQ_INDEX_NAMES[index] ?? index}: ${m}`);
    if (flags & ~(IrqSetFlag.DATA_MASK | IrqSetFlag.ACTION_MASK_ALL))
      throw bad(`unknown flags 0x${flags.toString(16)}`);
    if (popcount(data) !== 1) throw bad('exactly one DATA_ flag is required');
    if (popcount(action) !== 1) throw bad('exactly one ACTION_ flag is required');
    if (index >= this.indexes.length) throw bad('no such IRQ index');
    const lines = this.indexes[index];
    if ((index === IrqIndex.ERR || index === IrqIndex.REQ) && action !== IrqSetFlag.ACTION_TRIGGER) {
      throw bad('ERR and REQ only take ACTION_TRIGGER');
    }
    if (data !== IrqSetFlag.DATA_EVENTFD && fds.length > 0)
      throw bad(`${fds.length} fds sent without DATA_EVENTFD`);
    if (count === 0) {
      // count 0 with DATA_NONE|TRIGGER disables the whole index; nothing else means anything.
      if (data === IrqSetFlag.DATA_NONE && action === IrqSetFlag.ACTION_TRIGGER) {
        for (let v = 0; v < lines.count; v++) lines.assign(v, -1);
        return;
      }
      throw bad('count 0 is only valid with DATA_NONE|ACTION_TRIGGER');
    }
    if (start >= lines.count || count > lines.count - start) {
      throw bad(`vectors [${start}, ${start + count}) outside the ${lines.count} the index has`);
    }
    if (data === IrqSetFlag.DATA_BOOL && (req.bools?.length ?? 0) !== count) {
      throw bad(`DATA_BOOL needs ${count} bytes, got ${req.bools?.length ?? 0}`);
    }
    if (data === IrqSetFlag.DATA_EVENTFD) {
      if (action !== IrqSetFlag.ACTION_TRIGGER) {
        throw new ProtocolError(Errno.ENOTSUP, 'SET_IRQS: mask/unmask eventfds are not supported');
      }
      // No fds de-assigns the range (QEMU sends that for vectors it has no eventfd for).
      if (fds.length !== 0 && fds.length !== count) throw bad(`${fds.length} fds for ${count} vectors`);
      // Every fd checked before any vector changes (a refused one leaves them all to set()'s cleanup);
      // from the first assign on, nothing here throws and the lines own them.
      for (const fd of fds) checkEventFd(fd, index);
      if (fds.length > 0) this.writer.start();
      for (let i = 0; i < count; i++) lines.assign(start + i, fds.length > 0 ? fds[i] : -1);
      return;
    }
    const selected = (i: number) => data === IrqSetFlag.DATA_NONE || req.bools![i] !== 0;
    for (let i = 0; i < count; i++) {
      if (!selected(i)) continue;
      const sub = start + i;
      if (action === IrqSetFlag.ACTION_MASK) lines.mask(sub, true);
      else if (action === IrqSetFlag.ACTION_UNMASK) lines.mask(sub, false);
      else this.trigger(index, sub);
    }
  }
}

/** Refuses any fd but an eventfd with EINVAL. */
function checkEventFd(fd: number, index: number): void {
  try {
    checkIsEventFd(fd, true);
  } catch (err) {
    throw new ProtocolError(
      Errno.EINVAL,
      `SET_IRQS ${IRQ_INDEX_NAMES[index] ?? index}: ${(err as Error).message}`,
    );
  }
}

function popcount(n: number): number {
  let c = 0;
  for (let x = n; x; x &= x - 1) c++;
  return c;
}
