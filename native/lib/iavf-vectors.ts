// iavf's interrupt vectors in native code (src/iavf/iavf_vectors.h: automask, pending causes, ITR
// throttling, WB_ON_ITR), shared by the data plane's worker, the socket thread's VFINT_DYN_CTLN1
// traps and JavaScript; the rules are documented there, once.
import { binding, type NativeIavfVectors } from './binding.js';
import { callNative, closedError } from './errors.js';
import type { IrqLines } from './irq-lines.js';
import { validateBoolean, validateFd, validateInteger, validateOptions } from './validate.js';

/** The BAR0 offsets the native vectors know (checked against driver-iavf's register map in its tests). */
export const IAVF_VECTORS_LAYOUT = Object.freeze({ ...binding.iavfVectorsLayout });

export interface IavfVectorsOptions {
  /** Vectors: the misc vector 0 and one per queue vector (1 to IAVF_VECTORS_LAYOUT.maxVectors). */
  count: number;
  /** The memfd of the BAR0 tail page, where queue vectors' VFINT_ITRN1 live; without it they live here. */
  tailFd?: number;
  /** Time moves only by advance() (tests); default: the steady clock and the interrupt timer thread. */
  manualClock?: boolean;
}

/** The ITR index that is never throttled. */
export const ITR_NONE = 3;

export class IavfVectors {
  #native: NativeIavfVectors | null;
  readonly count: number;

  constructor(options: IavfVectorsOptions) {
    const o = validateOptions<IavfVectorsOptions>(options, 'options');
    validateInteger(o.count, 'options.count', 1, IAVF_VECTORS_LAYOUT.maxVectors);
    if (o.tailFd !== undefined) validateFd(o.tailFd, 'options.tailFd');
    validateBoolean(o.manualClock ?? false, 'options.manualClock');
    this.count = o.count;
    this.#native = callNative(() => new binding.IavfVectors(o.count, o.tailFd ?? -1, o.manualClock ?? false));
  }

  get #n(): NativeIavfVectors {
    if (!this.#native) throw closedError('iavfVectors', 'the vectors');
    return this.#native;
  }

  /** @internal The native object: a RegisterBlock for VFINT_DYN_CTLN1 (TrapArea.registers). */
  get native(): NativeIavfVectors {
    return this.#n;
  }

  /**
   * The lines interrupts go out on (the client's MSI-X eventfds); null: none, every interrupt is lost.
   * Letting go (null) after close() is a no-op, as close() is.
   */
  setLines(lines: IrqLines | null): void {
    if (lines === null && !this.#native) return;
    this.#n.setLines(lines ? lines.native : null);
  }

  /** DYN_CTL of a vector (VFINT_DYN_CTL01 for 0, VFINT_DYN_CTLN1(v - 1) otherwise). */
  read(vector: number): number {
    return this.#n.read(vector);
  }

  write(vector: number, value: number): void {
    this.#n.write(vector, value >>> 0);
  }

  /** ITR interval registers (2 us units), as VFINT_ITRN1 / VFINT_ITR01 show them. */
  readItr(vector: number, index: number): number {
    return this.#n.readItr(vector, index);
  }

  writeItr(vector: number, index: number, interval: number): void {
    this.#n.writeItr(vector, index, interval >>> 0);
  }

  /** A cause for `vector` with ITR index `itrIndex`: fires when armed and its interval allows. */
  raise(vector: number, itrIndex = ITR_NONE): void {
    this.#n.raise(vector, itrIndex);
  }

  /** Power-on state (counters run on). */
  reset(): void {
    this.#n.reset();
  }

  /** A manual clock moves on by `us` microseconds; what was throttled until then fires. */
  advance(us: number): void {
    validateInteger(us, 'us', 0, 2 ** 40);
    this.#n.advance(us * 1000);
  }

  /** Interrupts delivered, and causes that waited for their ITR interval, per vector. */
  counts(): { fired: number[]; throttled: number[] } {
    return this.#native?.counts() ?? { fired: [], throttled: [] };
  }

  /** Releases the vectors; a NIC or channel still holding them raises into no lines. */
  close(): void {
    this.#native?.close();
    this.#native = null;
  }
}
