/**
 * Interrupt control as an AVF has it: one dynamic-control register per MSI-X vector (DYN_CTL01 for the
 * misc vector 0, DYN_CTLN1(v-1) for queue vector v) whose INTENA arms the vector and is cleared by
 * hardware when the vector fires (automask). A cause that arrives while the vector is not armed stays
 * pending and fires when the driver re-arms it, as Linux's NAPI re-enable relies on.
 */
import { DynCtl } from './constants.js';

export class VectorControl {
  private readonly ctl: number[];
  private readonly pending: boolean[];
  /** Interrupts fired, per vector. */
  readonly fired: number[];

  constructor(
    readonly vectors: number,
    private readonly trigger: (vector: number) => boolean,
  ) {
    this.ctl = new Array(vectors).fill(0);
    this.pending = new Array(vectors).fill(false);
    this.fired = new Array(vectors).fill(0);
  }

  read(vector: number): number {
    return this.ctl[vector] ?? 0;
  }

  /** A driver write of a DYN_CTL register. */
  write(vector: number, value: number): void {
    if (vector >= this.vectors) return;
    // SWINT_TRIG and CLEARPBA are actions, not state.
    this.ctl[vector] = value & ~(DynCtl.SWINT_TRIG | DynCtl.CLEARPBA);
    if (value & DynCtl.CLEARPBA) this.pending[vector] = false;
    if (value & DynCtl.INTENA && (value & DynCtl.SWINT_TRIG || this.pending[vector])) this.fire(vector);
  }

  /** A cause for `vector`: fires now if armed, else waits for the re-arm. */
  raise(vector: number): void {
    if (vector >= this.vectors) return;
    if (this.ctl[vector] & DynCtl.INTENA) this.fire(vector);
    else this.pending[vector] = true;
  }

  reset(): void {
    this.ctl.fill(0);
    this.pending.fill(false);
  }

  private fire(vector: number): void {
    this.pending[vector] = false;
    this.ctl[vector] &= ~DynCtl.INTENA;
    if (this.trigger(vector)) this.fired[vector]++;
  }
}
