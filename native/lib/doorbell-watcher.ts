// DoorbellWatcher (src/dataplane/doorbell_watcher.cc): a native thread that watches doorbell words in shared
// memory (an fd, e.g. the memfd behind a BAR's mmap-able tail registers) and calls back on the JS
// thread with the words that changed.
import { binding, type NativeDoorbellWatcher } from './binding.js';
import { callNative, closedError } from './errors.js';
import { rangeError, validateFd, validateFunction, validateInteger, validateOptions } from './validate.js';

export interface DoorbellWatcherOptions {
  /** Byte offset of word 0 in the fd (a multiple of 4). */
  fileOffset: number;
  /** 32-bit words to watch, 1 to 32; bit i of the callback's mask is word i. */
  words: number;
  /** Called on the JS thread with the words that changed since the watcher last looked. */
  onRing(mask: number): void;
  /** Poll interval right after a doorbell (default 20 us). */
  minSleepUs?: number;
  /** Quiet polls at minSleepUs before the interval starts doubling (default 8). */
  busyPolls?: number;
  /** Longest sleep while the last doorbell is less than warmMs old (default 250 us, 100 ms). */
  warmSleepUs?: number;
  warmMs?: number;
  /** Longest sleep when idle (default 1000 us). */
  maxSleepUs?: number;
}

/**
 * Watches doorbell words from a native thread that never blocks the JS thread and never touches
 * anything but its own read-only mapping of the fd: each poll compares the words with what it last saw
 * and wakes the event loop (uv_async) with the ones that moved; onRing runs there. Adaptive: polls every
 * minSleepUs right after a doorbell, then the interval doubles (so it tracks the time since the last
 * doorbell), capped at warmSleepUs for warmMs and at maxSleepUs once idle. stop() wakes the thread and joins
 * it (within one poll); start() again later is fine. It never keeps the process alive by itself.
 */
export class DoorbellWatcher {
  #native: NativeDoorbellWatcher | null;

  private constructor(native: NativeDoorbellWatcher) {
    this.#native = native;
  }

  /** Maps the words (the fd may be closed afterwards); not started yet. */
  static create(fd: number, options: DoorbellWatcherOptions): DoorbellWatcher {
    validateFd(fd);
    const o = validateOptions<DoorbellWatcherOptions>(options, 'options');
    validateInteger(o.fileOffset, 'options.fileOffset', 0, 2 ** 40);
    if (o.fileOffset % 4 !== 0) throw rangeError('options.fileOffset', 'a multiple of 4', o.fileOffset);
    validateInteger(o.words, 'options.words', 1, 32);
    validateFunction(o.onRing, 'options.onRing');
    const poll = {
      minSleepUs: o.minSleepUs,
      busyPolls: o.busyPolls,
      warmSleepUs: o.warmSleepUs,
      warmMs: o.warmMs,
      maxSleepUs: o.maxSleepUs,
    };
    if (poll.minSleepUs !== undefined) validateInteger(poll.minSleepUs, 'options.minSleepUs', 1, 1_000_000);
    if (poll.maxSleepUs !== undefined)
      validateInteger(poll.maxSleepUs, 'options.maxSleepUs', poll.minSleepUs ?? 1, 1_000_000);
    if (poll.busyPolls !== undefined) validateInteger(poll.busyPolls, 'options.busyPolls', 0, 1_000_000);
    if (poll.warmSleepUs !== undefined)
      validateInteger(poll.warmSleepUs, 'options.warmSleepUs', 1, 1_000_000);
    if (poll.warmMs !== undefined) validateInteger(poll.warmMs, 'options.warmMs', 0, 1_000_000);
    const onRing = o.onRing;
    const native = callNative(
      () => new binding.DoorbellWatcher(fd, o.fileOffset, o.words, (mask) => onRing(mask), poll),
      { target: `fd ${fd}` },
    );
    return new DoorbellWatcher(native);
  }

  get closed(): boolean {
    return this.#native === null;
  }

  get running(): boolean {
    return this.#native?.stats().running ?? false;
  }

  /** Starts the thread (idempotent); the words' current values are the baseline. */
  start(): void {
    if (!this.#native) throw closedError('start', 'the doorbell watcher');
    this.#native.start();
  }

  /** Stops and joins the thread (idempotent); a wake-up already queued may still call onRing. */
  stop(): void {
    this.#native?.stop();
  }

  /** Polls made and wake-ups sent, since creation. */
  stats(): { polls: number; notifications: number; running: boolean } {
    return this.#native?.stats() ?? { polls: 0, notifications: 0, running: false };
  }

  /** Stops, unmaps, and drops the callback; idempotent. */
  close(): void {
    const native = this.#native;
    this.#native = null;
    native?.close();
  }
}
