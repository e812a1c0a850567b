/**
 * Interrupt control as an AVF has it: one dynamic-control register per MSI-X vector (DYN_CTL01 for the
 * misc vector 0, DYN_CTLN1(v-1) for queue vector v) whose INTENA arms the vector and is cleared by
 * hardware when the vector fires (automask). A cause that arrives while the vector is not armed stays
 * pending and fires when the driver re-arms it, as Linux's NAPI re-enable relies on.
 *
 * Interrupt throttling (ITR): each vector has three interval registers (ITR index 0-2, in 2 µs units;
 * VFINT_ITRN1 / VFINT_ITR01, or the INTERVAL field of a DYN_CTL write naming an ITR index). A cause with
 * ITR index i does not fire the vector sooner than interval i after its last interrupt; it waits, pending,
 * and fires when the interval is over. Index 3 (ITR_NONE) is never throttled.
 */
import { DynCtl } from './constants.js';

export const ITR_NONE = 3;
const ITR_UNIT_US = 2;

/** Where a vector's ITR intervals live (the device may keep some in guest-mapped memory). */
export interface ItrStore {
  get(vector: number, index: number): number;
  set(vector: number, index: number, interval: number): void;
}

export class VectorControl {
  private readonly ctl: number[];
  private readonly pending: boolean[];
  /** The ITR index of the cause waiting on each vector (the shortest, if several wait). */
  private readonly pendingItr: number[];
  private readonly itr: ItrStore;
  private readonly lastFire: number[];
  private readonly timers: Array<NodeJS.Immediate | NodeJS.Timeout | undefined>;
  /** Interrupts fired, per vector. */
  readonly fired: number[];
  /** Causes that waited for their ITR interval, per vector. */
  readonly throttled: number[];

  constructor(
    readonly vectors: number,
    private readonly trigger: (vector: number) => boolean,
    private readonly now: () => number = () => performance.now(),
    itrStore?: ItrStore,
  ) {
    this.ctl = new Array(vectors).fill(0);
    this.pending = new Array(vectors).fill(false);
    this.pendingItr = new Array(vectors).fill(ITR_NONE);
    const own = new Uint16Array(vectors * 3);
    this.itr = itrStore ?? {
      get: (v, i) => own[v * 3 + i],
      set: (v, i, x) => {
        own[v * 3 + i] = x;
      },
    };
    this.lastFire = new Array(vectors).fill(Number.NEGATIVE_INFINITY);
    this.timers = new Array(vectors).fill(undefined);
    this.fired = new Array(vectors).fill(0);
    this.throttled = new Array(vectors).fill(0);
  }

  read(vector: number): number {
    return this.ctl[vector] ?? 0;
  }

  /** A driver write of a DYN_CTL register. */
  write(vector: number, value: number): void {
    if (vector >= this.vectors) return;
    // The INTERVAL field updates the ITR register the ITR index names (not ITR_NONE).
    const index = (value >>> DynCtl.ITR_INDX_SHIFT) & 3;
    if (index !== ITR_NONE) this.itr.set(vector, index, (value >>> DynCtl.INTERVAL_SHIFT) & 0xfff);
    // SWINT_TRIG and CLEARPBA are actions, not state. CLEARPBA clears the vector's MSI-X pending bit,
    // which the VMM keeps for a vfio-user device; a cause held here is not that bit and stays pending
    // (DPDK re-arms with INTENA | CLEARPBA and expects what came meanwhile to fire).
    this.ctl[vector] = value & ~(DynCtl.SWINT_TRIG | DynCtl.CLEARPBA);
    if (!(value & DynCtl.INTENA)) return;
    if (value & DynCtl.SWINT_TRIG) this.fire(vector);
    else if (this.pending[vector]) this.tryFire(vector);
  }

  /** ITR interval registers (2 µs units), as VFINT_ITRN1 / VFINT_ITR01 show them. */
  readItr(vector: number, index: number): number {
    return vector < this.vectors && index < 3 ? this.itr.get(vector, index) : 0;
  }

  writeItr(vector: number, index: number, interval: number): void {
    if (vector < this.vectors && index < 3) this.itr.set(vector, index, interval & 0xfff);
  }

  /** A cause for `vector` with ITR index `itrIndex`: fires when armed and its interval allows. */
  raise(vector: number, itrIndex = ITR_NONE): void {
    if (vector >= this.vectors) return;
    this.pendingItr[vector] = this.pending[vector]
      ? this.shorter(vector, this.pendingItr[vector], itrIndex)
      : itrIndex;
    this.pending[vector] = true;
    if (this.ctl[vector] & DynCtl.INTENA) this.tryFire(vector);
  }

  reset(): void {
    this.ctl.fill(0);
    this.pending.fill(false);
    this.pendingItr.fill(ITR_NONE);
    for (let v = 0; v < this.vectors; v++) for (let i = 0; i < 3; i++) this.itr.set(v, i, 0);
    this.lastFire.fill(Number.NEGATIVE_INFINITY);
    for (let v = 0; v < this.vectors; v++) this.cancel(v);
  }

  private intervalMs(vector: number, index: number): number {
    return index >= ITR_NONE ? 0 : ((this.itr.get(vector, index) & 0xfff) * ITR_UNIT_US) / 1000;
  }

  private shorter(vector: number, a: number, b: number): number {
    return this.intervalMs(vector, a) <= this.intervalMs(vector, b) ? a : b;
  }

  /** Fires now if the pending cause's interval is over, else once it is. */
  private tryFire(vector: number): void {
    const wait = this.lastFire[vector] + this.intervalMs(vector, this.pendingItr[vector]) - this.now();
    if (wait <= 0) {
      this.fire(vector);
      return;
    }
    if (this.timers[vector]) return;
    this.throttled[vector]++;
    const done = () => {
      this.timers[vector] = undefined;
      if (this.pending[vector] && this.ctl[vector] & DynCtl.INTENA) this.tryFire(vector);
    };
    // Below a millisecond, the next turn of the event loop is as soon as JavaScript can be.
    this.timers[vector] = wait < 1 ? setImmediate(done) : setTimeout(done, Math.ceil(wait));
  }

  private cancel(vector: number): void {
    const t = this.timers[vector];
    if (!t) return;
    clearTimeout(t as NodeJS.Timeout);
    clearImmediate(t as NodeJS.Immediate);
    this.timers[vector] = undefined;
  }

  private fire(vector: number): void {
    this.cancel(vector);
    this.pending[vector] = false;
    this.pendingItr[vector] = ITR_NONE;
    this.ctl[vector] &= ~DynCtl.INTENA;
    this.lastFire[vector] = this.now();
    if (this.trigger(vector)) this.fired[vector]++;
  }
}
