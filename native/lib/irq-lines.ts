// Interrupt lines (src/irq/irq_lines.h): the eventfds of one IRQ index with VFIO's mask bits, triggered
// from JavaScript or from native threads (a device's interrupt logic) alike, under one lock; and the
// IrqWriter (src/irq/irq_writer.h) whose thread alone writes a device's eventfds, so a client that makes
// the write block stops no one but itself.
import { binding, type NativeIrqLines, type NativeIrqWriter } from './binding.js';
import { callNative, closedError } from './errors.js';
import { checkEventFd } from './eventfd.js';
import { validateBoolean, validateFunction, validateInteger, validateString } from './validate.js';

/**
 * What a trigger did: queued the eventfd's write (`fired`: whether the write then succeeds shows in
 * counts()), held it (masked), had none, or found the writer stopped (the client is gone).
 */
export type IrqResult = 'fired' | 'pending' | 'none' | 'dropped';

const RESULTS: IrqResult[] = [];
for (const name of ['fired', 'pending', 'none', 'dropped'] as const) RESULTS[binding.irqResults[name]] = name;

/** PCI's MSI-X limit. */
const MAX_LINES = 2048;

export interface IrqWriterOptions {
  /** Called on the event loop when a write failed since the last call: the eventfd's counter was full. */
  onDropped?: () => void;
}

/**
 * A device's interrupt writer: one thread, running from start() to stop(), that writes the eventfds
 * of every IrqLines given it. Triggers on any thread only queue a write (src/irq/irq_writer.h).
 */
export class IrqWriter {
  #native: NativeIrqWriter | null;

  /** `name` shows in the thread's name (emu-irq:NAME, 15 bytes) and in stall reports. */
  constructor(
    readonly name: string,
    options: IrqWriterOptions = {},
  ) {
    validateString(name, 'name');
    const { onDropped } = options;
    if (onDropped !== undefined) validateFunction(onDropped, 'options.onDropped');
    this.#native = new binding.IrqWriter(
      name,
      onDropped === undefined
        ? undefined
        : (flags: number) => {
            if (flags & binding.irqWriterEvents.dropped) onDropped();
          },
    );
  }

  get #n(): NativeIrqWriter {
    if (!this.#native) throw closedError('irqWriter', 'the IRQ writer');
    return this.#native;
  }

  /** @internal For IrqLines. */
  get native(): NativeIrqWriter {
    return this.#n;
  }

  /** Starts the thread if it is not running (throws when the process cannot make one). */
  start(): void {
    callNative(() => this.#n.start());
  }

  /**
   * Stops the thread, interrupting a write the client holds blocked; what was queued is dropped and
   * counted. Lines keep their eventfds; their triggers are dropped until start().
   */
  stop(): void {
    this.#native?.stop();
  }

  /** Nothing queued or being written. */
  get idle(): boolean {
    return this.#native?.idle() ?? true;
  }

  /** How long the write in progress has taken so far, in ms (0: none). */
  get busyMs(): number {
    return (this.#native?.busyNs() ?? 0) / 1e6;
  }

  /** Resolves once the writer is idle: the writes queued so far are done (tests, diagnostics). */
  async settled(timeoutMs = 2000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.idle) {
      if (Date.now() > deadline) throw new Error(`IRQ writer ${this.name} still busy after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  close(): void {
    this.#native?.close();
    this.#native = null;
  }
}

export class IrqLines {
  #native: NativeIrqLines | null;
  readonly writer: IrqWriter;
  readonly #ownsWriter: boolean;

  /** Lines share `writer` (one per device); without one they have a writer of their own. */
  constructor(
    readonly count: number,
    writer?: IrqWriter,
  ) {
    validateInteger(count, 'count', 0, MAX_LINES);
    if (writer !== undefined && !(writer instanceof IrqWriter)) {
      throw new TypeError('The "writer" argument must be an IrqWriter');
    }
    this.#ownsWriter = writer === undefined;
    this.writer = writer ?? new IrqWriter('irq');
    this.#native = new binding.IrqLines(count, this.writer.native);
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
   * Gives `vector` an eventfd, made nonblocking (a client that does not read loses the interrupt), or
   * none (-1); the one it had is closed. Starts the writer. On success the fd is the lines' from here
   * on; when it is refused (not an eventfd, no writer thread) it stays the caller's.
   */
  assign(vector: number, fd: number): void {
    this.#vector(vector);
    if (fd !== -1) {
      checkEventFd(fd, true);
      this.writer.start();
    }
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

  /** Every eventfd closed (once a write in progress is done), masks and pending causes cleared. */
  clear(): void {
    this.#native?.clear();
    if (this.#ownsWriter) this.writer.stop();
  }

  /** Interrupts written and dropped (the eventfd's counter full, or the writer stopped), by any thread. */
  counts(): { triggered: number; dropped: number } {
    return this.#native?.counts() ?? { triggered: 0, dropped: 0 };
  }

  /** Resolves once every trigger so far has been written (or dropped). */
  settled(timeoutMs?: number): Promise<void> {
    return this.writer.settled(timeoutMs);
  }

  close(): void {
    this.#native?.close();
    this.#native = null;
    if (this.#ownsWriter) this.writer.close();
  }
}
