/**
 * Interrupts: per IRQ index (INTx, MSI, MSI-X, ERR, REQ) the eventfds the client handed over with
 * SET_IRQS, the mask bits, and triggering. Follows VFIO's VFIO_DEVICE_SET_IRQS semantics.
 */
import { EventFd } from '@emu/native';
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

interface Vector {
  eventfd?: EventFd;
  masked: boolean;
  /** A trigger arrived while masked; delivered at unmask. */
  pending: boolean;
}

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
  private readonly vectors: Vector[][];
  /**
   * Interrupts that could not be delivered: the client's eventfd counter was full (it never reads
   * it) or the fd failed. Counted and dropped, never thrown: the interrupt would be lost on hardware too.
   */
  dropped = 0;

  /** onDropped runs for each interrupt that could not be delivered (see dropped). */
  constructor(
    readonly counts: IrqCounts,
    private readonly onDropped: (index: number, vector: number, err: Error) => void = () => {},
  ) {
    this.vectors = IRQ_INDEX_NAMES.map((name) =>
      Array.from({ length: counts[name] }, () => ({ masked: false, pending: false })),
    );
  }

  count(index: number): number {
    return this.vectors[index]?.length ?? 0;
  }

  /** GET_IRQ_INFO flags for an index. */
  infoFlags(index: number): number {
    if (index === IrqIndex.INTX) return IrqInfoFlag.EVENTFD | IrqInfoFlag.MASKABLE | IrqInfoFlag.AUTOMASKED;
    if (index === IrqIndex.MSI || index === IrqIndex.MSIX) return IrqInfoFlag.EVENTFD | IrqInfoFlag.NORESIZE;
    return IrqInfoFlag.EVENTFD;
  }

  /** True when vector `sub` of `index` has an eventfd to signal. */
  enabled(index: number, sub: number): boolean {
    return this.vectors[index]?.[sub]?.eventfd !== undefined;
  }

  /**
   * Applies a SET_IRQS request, all or nothing. Consumes `fds` in every case: adopted as eventfds on
   * success, closed on error, and no vector changes unless the whole request is valid.
   */
  set(req: IrqSetRequest): void {
    const adopted: EventFd[] = [];
    try {
      for (const fd of req.fds) adopted.push(adoptEventFd(fd, req.index));
    } catch (err) {
      for (const e of adopted) e.close();
      for (const fd of req.fds.slice(adopted.length)) safeClose(fd);
      throw err;
    }
    try {
      this.apply(req, adopted);
    } catch (err) {
      for (const e of adopted) e.close();
      throw err;
    }
  }

  /** Signals a vector. Returns false when there is no eventfd for it (or it is masked: then it is pending). */
  trigger(index: number, sub: number): boolean {
    const v = this.vectors[index]?.[sub];
    if (!v?.eventfd) return false;
    if (v.masked) {
      v.pending = true;
      return false;
    }
    try {
      v.eventfd.write(1n);
    } catch (err) {
      this.dropped++;
      this.onDropped(index, sub, err as Error);
      return false;
    }
    return true;
  }

  /** Closes every eventfd (client gone); keeps the counts. */
  clear(): void {
    for (const list of this.vectors) {
      for (const v of list) {
        v.eventfd?.close();
        v.eventfd = undefined;
        v.masked = false;
        v.pending = false;
      }
    }
  }

  /** Checks the whole request, then applies it; `fds` are the request's fds, adopted. */
  private apply(req: IrqSetRequest, fds: EventFd[]): void {
    const { flags, index, start, count } = req;
    const data = flags & IrqSetFlag.DATA_MASK;
    const action = flags & IrqSetFlag.ACTION_MASK_ALL;
    const bad = (m: string) =>
      new ProtocolError(Errno.EINVAL, `SET_IRQS ${IRQ_INDEX_NAMES[index] ?? index}: ${m}`);
    if (flags & ~(IrqSetFlag.DATA_MASK | IrqSetFlag.ACTION_MASK_ALL))
      throw bad(`unknown flags 0x${flags.toString(16)}`);
    if (popcount(data) !== 1) throw bad('exactly one DATA_ flag is required');
    if (popcount(action) !== 1) throw bad('exactly one ACTION_ flag is required');
    if (index >= this.vectors.length) throw bad('no such IRQ index');
    const list = this.vectors[index];
    if ((index === IrqIndex.ERR || index === IrqIndex.REQ) && action !== IrqSetFlag.ACTION_TRIGGER) {
      throw bad('ERR and REQ only take ACTION_TRIGGER');
    }
    if (data !== IrqSetFlag.DATA_EVENTFD && fds.length > 0)
      throw bad(`${fds.length} fds sent without DATA_EVENTFD`);
    if (count === 0) {
      // count 0 with DATA_NONE|TRIGGER disables the whole index; nothing else means anything.
      if (data === IrqSetFlag.DATA_NONE && action === IrqSetFlag.ACTION_TRIGGER) {
        for (const v of list) disable(v);
        return;
      }
      throw bad('count 0 is only valid with DATA_NONE|ACTION_TRIGGER');
    }
    if (start >= list.length || count > list.length - start) {
      throw bad(`vectors [${start}, ${start + count}) outside the ${list.length} the index has`);
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
      for (let i = 0; i < count; i++) {
        const v = list[start + i];
        disable(v);
        if (fds.length > 0) v.eventfd = fds[i];
      }
      return;
    }
    const selected = (i: number) => data === IrqSetFlag.DATA_NONE || req.bools![i] !== 0;
    for (let i = 0; i < count; i++) {
      if (!selected(i)) continue;
      const sub = start + i;
      const v = list[sub];
      if (action === IrqSetFlag.ACTION_MASK) v.masked = true;
      else if (action === IrqSetFlag.ACTION_UNMASK) {
        v.masked = false;
        if (v.pending) {
          v.pending = false;
          this.trigger(index, sub);
        }
      } else this.trigger(index, sub);
    }
  }
}

/**
 * Adopts a client's eventfd, nonblocking (QEMU's are already): a write must never wait for a client
 * that does not read. Refuses any other kind of fd with EINVAL.
 */
function adoptEventFd(fd: number, index: number): EventFd {
  try {
    return EventFd.fromFd(fd, { nonblocking: true });
  } catch (err) {
    throw new ProtocolError(
      Errno.EINVAL,
      `SET_IRQS ${IRQ_INDEX_NAMES[index] ?? index}: ${(err as Error).message}`,
    );
  }
}

function disable(v: Vector): void {
  v.eventfd?.close();
  v.eventfd = undefined;
  v.pending = false;
}

function popcount(n: number): number {
  let c = 0;
  for (let x = n; x; x &= x - 1) c++;
  return c;
}
