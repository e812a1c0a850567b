// TAP devices: a Linux virtual Ethernet interface whose other end is this fd. Frames the kernel
// sends out of the interface are read here; frames written here arrive on the interface as if
// received from a wire. Readiness comes from a native Poller on Node's loop, never a blocking read.
import { constants } from 'node:os';
import { binding, type NativePoller } from './binding.js';
import { callNative, closedError, createSystemError, isSystemError, type SystemError } from './errors.js';
import { closeQuietly } from './fd.js';
import { typeError, validateFunction, validateString, valueError } from './validate.js';

const { EAGAIN, EINTR } = constants.errno;
// Not in Node's errno table: what a TAP fd reports once its interface is destroyed.
const EBADFD = 77;
/** Reads tried after a poll error before it is reported as such, POLL_ERROR_RETRY_MS apart. */
const POLL_ERROR_READS = 10;
const POLL_ERROR_RETRY_MS = 20;
const READABLE = binding.pollReadable;
/** IFNAMSIZ - 1: the kernel's limit on interface names. */
const MAX_NAME_BYTES = 15;
/**
 * The read buffer: larger than any frame a TAP can carry (the largest MTU, 65535, plus an Ethernet
 * header and a VLAN tag), so a read never truncates.
 */
const READ_BUFFER_SIZE = 65536 + 64;
// Frames read per readable wake-up: enough to drain a busy interface, bounded so one TAP cannot
// starve the loop (the poll is level-triggered: leftover frames wake it again at once).
const FRAMES_PER_WAKE = 64;

/** Called with each frame the kernel sends out of the interface (a fresh Buffer the callee keeps). */
export type TapFrameListener = (frame: Buffer) => void;
/** Called once if reading fails for good (the watch has stopped; the device is still open). */
export type TapErrorListener = (error: SystemError) => void;

// One scratch buffer for all TAPs: frames are copied out of it before any callback runs.
let scratch: Buffer | null = null;

/** Why opening failed, in words a user can act on (the errno alone rarely says it). */
function openHint(errno: number, name: string): string | undefined {
  switch (errno) {
    case constants.errno.ENOENT:
    case constants.errno.ENODEV:
      return `${binding.tunPath} does not exist: load the tun module (modprobe tun) or, in a container, pass the device through (--device /dev/net/tun)`;
    case constants.errno.EPERM:
    case constants.errno.EACCES:
      return `permission denied: opening TAP ${name} needs root or CAP_NET_ADMIN, or a persistent device made for this user (ip tuntap add dev ${name} mode tap user $USER)`;
    case constants.errno.EBUSY:
      return `TAP ${name} is busy: another process (or another TapDevice) has it open`;
    case constants.errno.EINVAL:
      return `${name} cannot be opened as a TAP: an interface of that name exists but is not a single-queue TAP device, or the name is invalid`;
    default:
      return undefined;
  }
}

function validateInterfaceName(name: unknown): asserts name is string {
  validateString(name, 'name');
  if (name.length === 0) throw valueError('name', 'must not be empty (use a template such as "emu%d")');
  const bytes = Buffer.byteLength(name);
  if (bytes > MAX_NAME_BYTES)
    throw valueError('name', `is ${bytes} bytes; an interface name holds at most ${MAX_NAME_BYTES}`);
  if (name === '.' || name === '..') throw valueError('name', `must not be "${name}"`);
  // The kernel's dev_valid_name(): no '/', ':' or whitespace (and no NUL, which C would cut at).
  if (/[/:\s\0]/.test(name)) throw valueError('name', 'must not contain "/", ":", whitespace or NUL');
}

/**
 * A TAP interface opened through /dev/net/tun (IFF_TAP | IFF_NO_PI): whole Ethernet frames
 * without FCS in both directions. The interface exists while the fd is open (unless it was made
 * persistent by `ip tuntap add`); closing removes a non-persistent one.
 */
export class TapDevice {
  #fd: number;
  readonly #name: string;
  #poller: NativePoller | null = null;
  #onFrame: TapFrameListener | null = null;
  #onError: TapErrorListener | null = null;

  private constructor(fd: number, name: string) {
    this.#fd = fd;
    this.#name = name;
  }

  /**
   * Creates TAP `name`, or attaches to an existing persistent one. `name` may be a template such as
   * "emu%d" (the kernel picks the number; `device.name` tells which). The fd is nonblocking and
   * CLOEXEC. Fails with a SystemError: ENOENT (no /dev/net/tun), EPERM (needs root or
   * CAP_NET_ADMIN), EBUSY (in use), EINVAL (an interface of that name that is not a TAP).
   */
  static open(name: string): TapDevice {
    validateInterfaceName(name);
    let result: { fd: number; name: string };
    try {
      result = callNative(() => binding.tapOpen(name));
    } catch (error) {
      if (!isSystemError(error)) throw error;
      const errno = -error.errno;
      const onDevice = error.syscall === 'open';
      throw createSystemError({
        errno,
        syscall: onDevice ? 'open' : 'ioctl',
        ...(onDevice ? { path: binding.tunPath } : { target: `TUNSETIFF ${name}` }),
        description: openHint(errno, name),
      });
    }
    return new TapDevice(result.fd, result.name);
  }

  /** The interface name the kernel gave (the template filled in). */
  get name(): string {
    return this.#name;
  }

  /** The fd, -1 once closed. */
  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** Whether watch() is active. */
  get watching(): boolean {
    return this.#onFrame !== null;
  }

  /** The next frame the kernel sent out of the interface (a fresh Buffer), or null if none is pending. */
  read(): Buffer | null {
    const fd = this.#open('read');
    const n = this.#readRaw(fd);
    if (n === -EAGAIN) return null;
    if (n < 0) throw this.#error(-n, 'read');
    return Buffer.from(scratch!.subarray(0, n));
  }

  /**
   * Injects one frame into the interface (as if it had come from the wire). Throws a SystemError on
   * failure, e.g. EIO while the interface is down, EINVAL for a frame shorter than an Ethernet
   * header, EAGAIN if the kernel cannot take it now (the frame is then not sent).
   */
  write(frame: Uint8Array): void {
    if (!(frame instanceof Uint8Array)) throw typeError('frame', 'a Uint8Array', frame);
    const fd = this.#open('write');
    const n = binding.writeFrame(fd, frame);
    if (n < 0) throw this.#error(-n, 'write');
  }

  /**
   * Calls onFrame with each frame as the interface sends it, from Node's event loop; onError once if
   * reading fails for good (the watch then stops; close() the device). One watcher at a time. The
   * watch keeps the process alive until unwatch() or close().
   */
  watch(onFrame: TapFrameListener, onError: TapErrorListener): void {
    validateFunction(onFrame, 'onFrame');
    validateFunction(onError, 'onError');
    const fd = this.#open('watch');
    if (this.#onFrame !== null) throw new Error(`TAP ${this.#name} is already watched: unwatch() first`);
    if (this.#poller === null) {
      this.#poller = callNative(() => new binding.Poller(fd, (errno) => this.#onReadable(errno)), {
        target: `TAP ${this.#name}`,
      });
    }
    this.#poller.start(READABLE);
    this.#onFrame = onFrame;
    this.#onError = onError;
  }

  /** Stops watching (frames wait in the kernel's queue, which drops when full). Idempotent. */
  unwatch(): void {
    this.#onFrame = null;
    this.#onError = null;
    this.#poller?.stop();
  }

  /** Stops watching and closes the fd (which removes a non-persistent interface). Idempotent. */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    this.#onFrame = null;
    this.#onError = null;
    this.#poller?.close();
    this.#poller = null;
    closeQuietly([fd]);
  }

  #open(syscall: string): number {
    if (this.#fd < 0) throw closedError(syscall, `TAP ${this.#name}`);
    return this.#fd;
  }

  #readRaw(fd: number): number {
    scratch ??= Buffer.allocUnsafe(READ_BUFFER_SIZE);
    let n: number;
    do {
      n = binding.readFrame(fd, scratch);
    } while (n === -EINTR);
    return n;
  }

  #error(errno: number, syscall: string): SystemError {
    if (errno === EBADFD) {
      return createSystemError({
        errno,
        syscall,
        target: `TAP ${this.#name}`,
        code: 'EBADFD',
        description: 'the interface is gone (deleted, or its network namespace was)',
      });
    }
    return createSystemError({ errno, syscall, target: `TAP ${this.#name}` });
  }

  #onReadable(errno: number): void {
    if (errno !== 0) {
      this.#pollFailed(errno, POLL_ERROR_READS);
      return;
    }
    for (let i = 0; i < FRAMES_PER_WAKE; i++) {
      // The callback may have unwatched or closed the device.
      const onFrame = this.#onFrame;
      if (onFrame === null || this.#fd < 0) return;
      const n = this.#readRaw(this.#fd);
      if (n === -EAGAIN) return;
      if (n < 0) {
        this.#fail(this.#error(-n, 'read'));
        return;
      }
      onFrame(Buffer.from(scratch!.subarray(0, n)));
    }
  }

  /**
   * libuv reports EPOLLERR as EBADF and has stopped the handle; a read tells the real error (EBADFD once
   * the interface is gone). The kernel tears a namespace's interfaces down after `ip netns del`
   * returns, so the read may still find nothing for a moment: it is tried again a few times before the
   * poll error is reported as it is.
   */
  #pollFailed(errno: number, reads: number): void {
    const n = this.#fd < 0 ? -EAGAIN : this.#readRaw(this.#fd);
    if (n < 0 && n !== -EAGAIN) {
      this.#fail(this.#error(-n, 'read'));
    } else if (reads > 1 && this.#fd >= 0) {
      setTimeout(() => {
        if (this.#onError !== null) this.#pollFailed(errno, reads - 1);
      }, POLL_ERROR_RETRY_MS).unref();
    } else {
      this.#fail(this.#error(errno, 'poll'));
    }
  }

  #fail(error: SystemError): void {
    const onError = this.#onError;
    this.unwatch();
    onError?.(error);
  }
}
