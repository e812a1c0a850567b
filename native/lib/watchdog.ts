// The stall detector (src/base/watchdog.h): every native thread and the event loop say when they start and
// end a unit of work; a monitor thread reports one that stays at it longer than a threshold, naming
// the thread, what it was doing and for whom. What the JS thread is doing is one word of shared memory
// (activity()), so marking a task costs no call into native code.
import { binding } from './binding.js';
import { validateFunction, validateInteger, validateOptions, validateString } from './validate.js';

/** A stall: reported once it passed the threshold, and once more when it ended (`ended`). */
export interface StallReport {
  /** emu-dataplane-N, emu-sockets, emu-irq-timer, emu-irq:DEVICE, or `event loop`. */
  thread: string;
  /** What the thread was doing (for the event loop: empty; see subject). */
  doing: string;
  /** For whom: a NIC, a connection, or the event loop's activity() text; empty when none. */
  subject: string;
  /** How long it had lasted when reported (or, ended, about how long it lasted). */
  ms: number;
  ended: boolean;
}

export interface WatchdogOptions {
  /** A unit of work longer than this is a stall (default 1000 ms). */
  thresholdMs?: number;
  onStalls(reports: StallReport[]): void;
}

/**
 * Starts the monitor thread (one per process: close() before starting another). A stall of the event
 * loop is also written to stderr by the monitor at once (`emu warn: the event loop has not turned…`),
 * since the loop cannot report it before it turns again.
 */
export class Watchdog {
  #native: { close(): void } | null;

  constructor(options: WatchdogOptions) {
    const o = validateOptions<WatchdogOptions>(options, 'options');
    if (o.thresholdMs !== undefined) validateInteger(o.thresholdMs, 'options.thresholdMs', 10, 3_600_000);
    validateFunction(o.onStalls, 'options.onStalls');
    this.#native = new binding.Watchdog({ thresholdMs: o.thresholdMs ?? 1000, onStalls: o.onStalls });
  }

  /** Stalls reported so far, by thread (the event loop's as `event loop`). */
  static stats(): Record<string, number> {
    return binding.watchdogStats();
  }

  close(): void {
    this.#native?.close();
    this.#native = null;
  }
}

const MAX_LABELS = 10_000;
const labels = new Map<string, number>();

/**
 * What the JS thread is about to do (a task's text, e.g. `vfio-user DMA_MAP emu_iavf0`): shown if the
 * event loop stalls in it. Each text is registered once (at most MAX_LABELS; past that, `other`).
 */
export function activity(text: string): void {
  let id = labels.get(text);
  if (id === undefined) {
    validateString(text, 'text');
    const key = labels.size < MAX_LABELS ? text : 'other';
    id = labels.get(key) ?? binding.watchdogLabel(key);
    labels.set(key, id);
  }
  binding.watchdogActivity[0] = id;
}

/**
 * A name for the stall detector's reports (and the closer's accounting, releaseFd): an id to hand to
 * native objects that work for it, e.g. a device for all the connections it serves. Registered for good.
 */
export function label(text: string): number {
  validateString(text, 'text');
  return binding.watchdogLabel(text);
}

/** The JS thread is between tasks. */
export function idle(): void {
  binding.watchdogActivity[0] = 0;
}
