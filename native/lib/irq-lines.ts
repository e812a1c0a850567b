// Interrupt lines (src/irq_lines.h): the eventfds of one IRQ index with VFIO's mask bits, triggered
// from JavaScript or from native threads (a device's interrupt logic) alike, under one lock.
import { binding, type NativeIrqLines } from './binding.js';
import { callNative, closedError } from './errors.js';
import { checkEventFd } from './eventfd.js';
import { validateBoolean, validateInteger } from './validate.js';

/** What a trigger did: signalled the eventfd, held it (masked), had none, or failed to write it. */
export type IrqResult = 'fired' | 'pending' | 'none' | 'dropped';

const RESULTS: IrqResult[] = [];
for (const name of ['fired', 'pending', 'none', 'dropped'] as const) RESULTS[binding.irqResults[name]] = name;

/** PCI's MSI-X limit. */
const MAX_LINES = 2048;

export class IrqLines {
  #native: NativeIrqLines | null;

  constructor(readonly count: number) {
    validateInteger(count, 'count', 0, MAX_LINES);
    this.#native = new binding.IrqLines(count);
  }

  get #n(): NativeIrqLines {
    if (!this.#native) throw closedError('irqLines', 'the IRQ lines');
    return this.#native;
  }

  /** @internal For native objects that trigger these lines. */
  get native(): NativeIrqLines {
    return this.#n;
  }

  #vector(vector: number): number {
    validateInteger(vector, 'vector', 0, Math.max(0, this.count - 1));
    return vector;
  }

  /**
   * Gives `vector` an eventfd, made nonblocking (a trigger never waits for a client that does not
   * read), or none (-1); the one it had is closed. On success the fd is the lines' from here on; when
   * it is refused (not an eventfd) it stays the caller's.
   */
  assign(vector: number, fd: number): void {
    this.#vector(vector);
    if (fd !== -1) checkEventFd(fd, true);
    callNative(() => this.#n.assign(vector, fd));
  }

  trigger(vector: number): IrqResult {
    return RESULTS[this.#n.trigger(this.#vector(vector))];
  }

  /** Masks or unmasks; unmasking delivers the cause that waited (the result is that trigger's). */
  mask(vector: number, on: boolean): IrqResult {
    validateBoolean(on, 'on');
    return RESULTS[this.#n.mask(this.#vector(vector), on)];
  }

  enabled(vector: number): boolean {
    return this.#n.enabled(this.#vector(vector));
  }

  /** Every eventfd closed, masks and pending causes cleared. */
  clear(): void {
    this.#native?.clear();
  }

  /** Interrupts delivered and dropped (the eventfd's counter full), by any thread. */
  counts(): { triggered: number; dropped: number } {
    return this.#native?.counts() ?? { triggered: 0, dropped: 0 };
  }

  close(): void {
    this.#native?.close();
    this.#native = null;
  }
}
