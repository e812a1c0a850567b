import { readlinkSync } from 'node:fs';
import { constants } from 'node:os';
import { binding, type NativePoller } from './binding.js';
import { callNative, closedError, createSystemError } from './errors.js';
import { closeQuietly } from './fd.js';
import {
  typeError,
  validateBoolean,
  validateFd,
  validateFunction,
  validateInteger,
  validateOptions,
  validateUint64,
  valueError,
} from './validate.js';

export interface EventFdOptions {
  /** Initial counter, 0 to 2^32-1 (default 0). */
  initval?: number;
  /** EFD_SEMAPHORE: each read returns 1 and decrements (default false). */
  semaphore?: boolean;
}

// The counter saturates at 2^64-2; writing 2^64-1 is EINVAL.
const MAX_WRITE = 2n ** 64n - 2n;

interface Waiter {
  resolve(value: bigint): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout | undefined;
}

/** What /proc says fd is, or null when /proc is not mounted (then the check is skipped). */
function fdTarget(fd: number): string | null {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    try {
      readlinkSync('/proc/self/exe');
    } catch {
      return null;
    }
    throw createSystemError({ errno: constants.errno.EBADF, syscall: 'fromFd', target: `fd ${fd}` });
  }
}

/**
 * Throws unless fd is an eventfd; with `nonblocking`, sets O_NONBLOCK on it (see EventFd.fromFd). The
 * fd stays the caller's either way.
 */
export function checkEventFd(fd: number, nonblocking: boolean): void {
  validateFd(fd);
  const target = fdTarget(fd);
  if (target !== null && target !== 'anon_inode:[eventfd]') {
    throw valueError('fd', `must be an eventfd, but fd ${fd} is ${target}`);
  }
  if (nonblocking) callNative(() => binding.setNonblocking(fd), { target: `fd ${fd}` });
}

/** An eventfd: a 64-bit counter for signalling (irqfds, ioeventfds) between processes. */
export class EventFd {
  #fd: number;
  #poller: NativePoller | null = null;
  #watching = false;
  #watcher: ((value: bigint) => void) | null = null;
  readonly #waiters = new Set<Waiter>();

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** eventfd(initval, EFD_CLOEXEC | EFD_NONBLOCK [| EFD_SEMAPHORE]). */
  static create(options?: EventFdOptions): EventFd {
    const { initval = 0, semaphore = false } = validateOptions<EventFdOptions>(options, 'options');
    validateInteger(initval, 'options.initval', 0, 0xffffffff);
    validateBoolean(semaphore, 'options.semaphore');
    return new EventFd(callNative(() => binding.eventfd(initval, semaphore)));
  }

  /**
   * Adopts an eventfd (e.g. received over a UnixSocket): takes ownership, keeps its flags unless
   * `nonblocking` is asked for, which sets O_NONBLOCK on it (shared with the peer that holds it too):
   * read() and write() never block either way, but only a nonblocking fd closes the window between
   * their readiness check and the syscall, in which a peer could make a blocking one block.
   */
  static fromFd(fd: number, options?: { nonblocking?: boolean }): EventFd {
    const { nonblocking = false } = validateOptions<{ nonblocking?: boolean }>(options, 'options');
    validateBoolean(nonblocking, 'options.nonblocking');
    checkEventFd(fd, nonblocking);
    return new EventFd(fd);
  }

  /** The fd, -1 once closed. */
  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** Adds value (default 1n) to the counter. Throws EAGAIN rather than block if it would overflow. */
  write(value: number | bigint = 1n): void {
    const amount = validateUint64(value, 'value', MAX_WRITE);
    const fd = this.#open('write');
    callNative(() => binding.eventfdWrite(fd, amount), { target: `eventfd ${fd}` });
  }

  /**
   * Returns and clears the counter (1 and decrement, in semaphore mode); null if it is 0. Never
   * blocks, even on an adopted blocking fd (it polls with a zero timeout first).
   */
  read(): bigint | null {
    const fd = this.#open('read');
    return callNative(() => binding.eventfdRead(fd), { target: `eventfd ${fd}` });
  }

  /** Calls back with each non-zero value read when the fd becomes readable on the event loop.
   * One watcher at a time; the watch keeps the process alive until unwatch() or close(). */
  watch(callback: (value: bigint) => void): void {
    validateFunction(callback, 'callback');
    this.#open('watch');
    if (this.#watcher !== null) throw new Error('EventFd is already watched: unwatch() first');
    this.#watcher = callback;
    this.#updatePoll();
  }

  unwatch(): void {
    this.#watcher = null;
    this.#updatePoll();
  }

  /**
   * Resolves with the value read at the next signal (at once if the counter is already non-zero);
   * rejects with code 'ETIMEDOUT' after timeoutMs (Infinity: never), or 'ECANCELED' if closed first.
   * Throws synchronously for a bad timeout or a closed EventFd. A watch() callback also sees the value.
   */
  wait(timeoutMs: number): Promise<bigint> {
    if (typeof timeoutMs !== 'number') throw typeError('timeoutMs', 'a number', timeoutMs);
    if (Number.isNaN(timeoutMs) || timeoutMs < 0) throw typeError('timeoutMs', 'a number >= 0', timeoutMs);
    const fd = this.#open('wait');
    return new Promise<bigint>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, timer: undefined };
      if (timeoutMs !== Number.POSITIVE_INFINITY) {
        waiter.timer = setTimeout(() => {
          this.#waiters.delete(waiter);
          this.#updatePoll();
          reject(
            createSystemError({
              errno: constants.errno.ETIMEDOUT,
              syscall: 'wait',
              target: `eventfd ${fd}`,
              description: `no signal within ${timeoutMs} ms`,
            }),
          );
        }, timeoutMs);
      }
      this.#waiters.add(waiter);
      this.#updatePoll();
    });
  }

  /** Stops watching, rejects pending waits and closes the fd. Idempotent. */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    this.#watcher = null;
    this.#poller?.close();
    this.#poller = null;
    this.#watching = false;
    for (const waiter of this.#waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(
        createSystemError({
          errno: constants.errno.ECANCELED,
          syscall: 'wait',
          target: `eventfd ${fd}`,
          description: 'closed while waiting',
        }),
      );
    }
    this.#waiters.clear();
    closeQuietly([fd]);
  }

  #open(syscall: string): number {
    if (this.#fd < 0) throw closedError(syscall, 'eventfd');
    return this.#fd;
  }

  #updatePoll(): void {
    const want = this.#fd >= 0 && (this.#watcher !== null || this.#waiters.size > 0);
    if (want === this.#watching) return;
    if (want) {
      if (this.#poller === null) {
        const fd = this.#fd;
        this.#poller = callNative(() => new binding.Poller(fd, (errno) => this.#onReadable(errno)), {
          target: `eventfd ${fd}`,
        });
      }
      this.#poller.start(binding.pollReadable);
    } else {
      this.#poller?.stop();
    }
    this.#watching = want;
  }

  #onReadable(errno: number): void {
    // libuv stops the handle when it reports an error (never expected for an eventfd); re-arm it
    // below, and let the read surface any real problem.
    if (errno !== 0) this.#watching = false;
    // Spurious wakes (another reader got there first) read null and are skipped.
    const value = this.read();
    if (value === null) {
      this.#updatePoll();
      return;
    }
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(value);
    }
    this.#watcher?.(value);
    this.#updatePoll();
  }
}
