// UNIX stream sockets with fd passing (SCM_RIGHTS), driven by the Node event loop through a native
// Poller. This file owns the policy: write queueing, backpressure, when to close, error mapping.
import { EventEmitter } from 'node:events';
import { statSync, unlinkSync } from 'node:fs';
import { constants } from 'node:os';
import { binding, type NativePoller } from './binding.js';
import { callNative, closedError, createSystemError, type SystemError } from './errors.js';
import { closeQuietly, dupAll } from './fd.js';
import {
  rangeError,
  typeError,
  validateFd,
  validateInteger,
  validateOptions,
  validateString,
  valueError,
} from './validate.js';

const { EAGAIN, EBUSY, ECONNABORTED, EINTR, EMSGSIZE, EPIPE, EPROTO } = constants.errno;
const READABLE = binding.pollReadable;
const WRITABLE = binding.pollWritable;
const MAX_FDS = binding.maxFds;
// sun_path holds 108 bytes including the terminating NUL.
const MAX_PATH_BYTES = 107;
// Reads per readable wake-up: enough to drain a busy socket, bounded so one peer cannot starve the loop.
const READS_PER_WAKE = 16;
// After an accept error such as EMFILE the connection stays pending and the listener stays readable:
// pause instead of spinning.
const ACCEPT_BACKOFF_MS = 100;
const NO_FDS: readonly number[] = Object.freeze([]);

export interface UnixListenOptions {
  /** listen(2) backlog, 1 to 65535 (default 16). */
  backlog?: number;
  /**
   * Permission bits of the socket file, from the moment it exists (default 0o600: only this user can
   * connect). Connecting needs write permission on it.
   */
  mode?: number;
}

/** The process at the other end of a UNIX socket (SO_PEERCRED), as it was when it connected. */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

export interface UnixSocketEvents {
  /**
   * Bytes in order, and the fds received with them (owned by the listener from here on). The fds
   * were sent with the write that contains this chunk's LAST byte: Linux ends a read inside the
   * write that carried fds, but may glue earlier fd-less writes in front of it, so that write's
   * first byte is somewhere in the chunk, not necessarily at its start. A message-framed reader
   * should give the fds to the message holding the chunk's last byte.
   */
  data: [chunk: Buffer, fds: number[]];
  /** The peer closed; the socket closes itself next. */
  end: [];
  /** e.g. ECONNRESET, EPIPE, EMSGCTRUNC; the socket closes itself next. */
  error: [error: SystemError];
  /** Emitted exactly once, when the fd is closed. */
  close: [];
  /** The write queue became empty after having been non-empty. */
  drain: [];
}

export interface UnixListenerEvents {
  connection: [socket: UnixSocket];
  error: [error: SystemError];
}

interface QueuedWrite {
  data: Uint8Array;
  offset: number;
  /** Our CLOEXEC dups, sent with data[0] and closed once sent. */
  fds: number[] | null;
}

function validateSocketPath(path: unknown): asserts path is string {
  validateString(path, 'path');
  if (path.length === 0) throw valueError('path', 'must not be empty');
  if (path.includes('\0')) throw valueError('path', 'must not contain NUL characters');
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_PATH_BYTES) {
    throw valueError('path', `is ${bytes} bytes; a UNIX socket path holds at most ${MAX_PATH_BYTES}`);
  }
}

/** Fds for one sendmsg: an array of at most 253 (SCM_MAX_FD) valid fds. */
export function validateFds(fds: unknown): asserts fds is readonly number[] {
  if (!Array.isArray(fds)) throw typeError('fds', 'an array of file descriptors', fds);
  if (fds.length > MAX_FDS) throw rangeError('fds.length', `at most ${MAX_FDS} (SCM_MAX_FD)`, fds.length);
  for (let i = 0; i < fds.length; i++) validateFd(fds[i], `fds[${i}]`);
}

let adoptSocket: (fd: number, label: string) => UnixSocket;

/**
 * A connected AF_UNIX stream socket. Reading starts at once (pause() to hold it): attach 'data',
 * 'end' and 'error' listeners right away. A chunk arriving while nobody listens to 'data' is
 * dropped, and its fds closed.
 */
export class UnixSocket extends EventEmitter<UnixSocketEvents> {
  #fd: number;
  readonly #label: string;
  readonly #poller: NativePoller;
  #events = 0;
  #paused = false;
  #ending = false;
  #queue: QueuedWrite[] = [];
  #queuedBytes = 0;

  static {
    adoptSocket = (fd, label) => new UnixSocket(fd, label);
  }

  private constructor(fd: number, label: string) {
    super();
    this.#fd = fd;
    this.#label = label;
    try {
      this.#poller = callNative(
        () => new binding.Poller(fd, (errno, events) => this.#onPoll(errno, events)),
        {
          target: label,
        },
      );
    } catch (error) {
      closeQuietly([fd]);
      throw error;
    }
    this.#updatePoll();
  }

  /** Connects to a listening socket (ENOENT, ECONNREFUSED, EAGAIN if its backlog is full). */
  static connect(path: string): UnixSocket {
    validateSocketPath(path);
    return new UnixSocket(
      callNative(() => binding.unixConnect(path), { path }),
      path,
    );
  }

  /** socketpair(AF_UNIX, SOCK_STREAM): two connected sockets. */
  static pair(): [UnixSocket, UnixSocket] {
    const [a, b] = callNative(() => binding.unixSocketpair());
    let first: UnixSocket;
    try {
      first = new UnixSocket(a, `socketpair fd ${a}`);
    } catch (error) {
      closeQuietly([b]);
      throw error;
    }
    try {
      return [first, new UnixSocket(b, `socketpair fd ${b}`)];
    } catch (error) {
      first.close();
      throw error;
    }
  }

  /** The fd, -1 once closed. */
  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** Bytes queued but not yet sent. */
  get writableLength(): number {
    return this.#queuedBytes;
  }

  /** Who is at the other end (SO_PEERCRED: the process that connected, or made the pair). */
  peerCredentials(): PeerCredentials {
    if (this.#fd < 0) throw closedError('getsockopt', 'socket');
    return callNative(() => binding.peerCredentials(this.#fd), { target: this.#label });
  }

  /**
   * Sends data, with fds (at most 253) attached to its first byte. Sends what it can right away and
   * queues the rest (copied) for when the socket is writable; 'drain' tells when the queue empties.
   * The caller keeps its fds and may close them once write() returns (queued ones are dup'ed).
   * Never blocks. Throws if the socket is closed or ending; a send failure (EPIPE...) is reported
   * as 'error' then 'close' on the next tick.
   */
  write(data: Uint8Array, fds: readonly number[] = NO_FDS): void {
    if (!(data instanceof Uint8Array)) throw typeError('data', 'a Uint8Array', data);
    validateFds(fds);
    if (this.#fd < 0) throw closedError('write', 'socket');
    if (this.#ending) {
      throw createSystemError({
        errno: EPIPE,
        syscall: 'write',
        target: this.#label,
        description: 'end() was called',
      });
    }
    if (data.byteLength === 0) {
      if (fds.length > 0)
        throw valueError('data', 'must not be empty when fds are sent: they travel with its first byte');
      return;
    }
    let sent = 0;
    if (this.#queue.length === 0) {
      const n = binding.sendmsg(this.#fd, data, fds);
      if (n === data.byteLength) return;
      if (n < 0 && n !== -EAGAIN) {
        // Reported asynchronously, like net.Socket: the caller is still inside write().
        this.#destroySoon(this.#error(-n, 'sendmsg'));
        return;
      }
      sent = Math.max(n, 0);
    }
    // Once any byte is out, the fds went with it; otherwise keep our own copies until they are sent.
    const owned = sent === 0 && fds.length > 0 ? dupAll(fds) : null;
    const rest = new Uint8Array(data.byteLength - sent);
    rest.set(sent === 0 ? data : data.subarray(sent));
    this.#queue.push({ data: rest, offset: 0, fds: owned });
    this.#queuedBytes += rest.byteLength;
    this.#updatePoll();
  }

  /** Stops reading (the kernel buffers, then the peer's writes queue up). */
  pause(): void {
    this.#paused = true;
    this.#updatePoll();
  }

  resume(): void {
    this.#paused = false;
    this.#updatePoll();
  }

  /** Closes the fd now, dropping unsent data (and its fds), and emits 'close'. Idempotent. */
  close(): void {
    if (this.#fd < 0) return;
    this.#teardown();
    this.emit('close');
  }

  /**
   * Hands the fd over to a new owner (a TrapChannel): this object stops watching it and reports
   * itself closed, without closing the fd or emitting anything. Throws while writes are queued (they
   * would be lost) or once closed.
   */
  detach(): number {
    if (this.#fd < 0) throw closedError('detach', 'socket');
    if (this.#queue.length > 0) {
      throw createSystemError({
        errno: EBUSY,
        syscall: 'detach',
        target: this.#label,
        description: 'writes are still queued',
      });
    }
    const fd = this.#fd;
    this.#fd = -1;
    this.#events = 0;
    this.#poller.close();
    return fd;
  }

  /** Closes once the write queue has drained (at once if it is empty). Further writes throw. */
  end(): void {
    if (this.#fd < 0 || this.#ending) return;
    this.#ending = true;
    if (this.#queue.length === 0) this.close();
  }

  #error(errno: number, syscall: string): SystemError {
    return createSystemError({ errno, syscall, target: this.#label });
  }

  #updatePoll(): void {
    if (this.#fd < 0) return;
    const want = (this.#paused ? 0 : READABLE) | (this.#queue.length > 0 ? WRITABLE : 0);
    if (want === this.#events) return;
    if (want === 0) this.#poller.stop();
    else this.#poller.start(want);
    this.#events = want;
  }

  #onPoll(errno: number, events: number): void {
    if (this.#fd < 0) return;
    if (errno !== 0) {
      this.#onPollError(errno);
      return;
    }
    if (events & WRITABLE) this.#flush();
    if (events & READABLE) this.#read(READS_PER_WAKE);
  }

  // libuv reports EPOLLERR (a pending SO_ERROR, e.g. ECONNRESET from a peer that died with our data
  // unread) as EBADF and stops the handle. Deliver what is still readable, then the real error.
  #onPollError(errno: number): void {
    this.#events = 0;
    this.#read(Number.POSITIVE_INFINITY);
    if (this.#fd < 0) return;
    const pending = binding.socketError(this.#fd);
    this.#destroy(pending !== 0 ? this.#error(pending, 'recvmsg') : this.#error(errno, 'poll'));
  }

  #read(limit: number): void {
    for (let i = 0; i < limit; i++) {
      if (this.#fd < 0 || this.#paused) return;
      const result = binding.recvmsg(this.#fd);
      if (typeof result === 'number') {
        if (result === -EAGAIN) return;
        if (result === 0) this.#destroy(undefined, true);
        else this.#destroy(this.#error(-result, 'recvmsg'));
        return;
      }
      if (result.truncated) {
        closeQuietly(result.fds);
        this.#destroy(
          createSystemError({
            errno: EMSGSIZE,
            code: 'EMSGCTRUNC',
            syscall: 'recvmsg',
            target: this.#label,
            description: 'control data truncated (MSG_CTRUNC): received file descriptors were lost',
          }),
        );
        return;
      }
      if (this.listenerCount('data') === 0) {
        closeQuietly(result.fds);
        continue;
      }
      this.emit('data', result.data, result.fds);
    }
  }

  #flush(): void {
    while (this.#queue.length > 0) {
      const head = this.#queue[0];
      const pending = head.offset === 0 ? head.data : head.data.subarray(head.offset);
      const n = binding.sendmsg(this.#fd, pending, head.fds ?? NO_FDS);
      if (n < 0) {
        if (n === -EAGAIN) return;
        this.#destroy(this.#error(-n, 'sendmsg'));
        return;
      }
      if (head.fds !== null) {
        // The kernel holds its own references once the first byte is out.
        closeQuietly(head.fds);
        head.fds = null;
      }
      head.offset += n;
      this.#queuedBytes -= n;
      if (head.offset === head.data.byteLength) this.#queue.shift();
    }
    this.#updatePoll();
    this.emit('drain');
    if (this.#ending && this.#queue.length === 0) this.close();
  }

  #teardown(): void {
    const fd = this.#fd;
    this.#fd = -1;
    this.#events = 0;
    this.#poller.close();
    for (const queued of this.#queue) if (queued.fds !== null) closeQuietly(queued.fds);
    this.#queue = [];
    this.#queuedBytes = 0;
    closeQuietly([fd]);
  }

  /** Closes now and emits ['end'], ['error'], then 'close'. */
  #destroy(error: SystemError | undefined, ended = false): void {
    if (this.#fd < 0) return;
    this.#teardown();
    emitLastEvents(this, error, ended);
  }

  #destroySoon(error: SystemError): void {
    if (this.#fd < 0) return;
    this.#teardown();
    process.nextTick(() => emitLastEvents(this, error, false));
  }
}

/**
 * A closed stream's last events, in order: ['end'], ['error'], then 'close', which is emitted even if a
 * listener throws. Shared by UnixSocket and TrapChannel.
 */
export function emitLastEvents(
  stream: EventEmitter<UnixSocketEvents>,
  error: SystemError | undefined,
  ended: boolean,
): void {
  try {
    if (ended) stream.emit('end');
    if (error) stream.emit('error', error);
  } finally {
    stream.emit('close');
  }
}

function identityOf(path: string): { dev: bigint; ino: bigint } | null {
  try {
    const stats = statSync(path, { bigint: true, throwIfNoEntry: false });
    return stats ? { dev: stats.dev, ino: stats.ino } : null;
  } catch {
    return null;
  }
}

/** A listening AF_UNIX stream socket. */
export class UnixListener extends EventEmitter<UnixListenerEvents> {
  readonly path: string;
  #fd: number;
  readonly #poller: NativePoller;
  readonly #identity: { dev: bigint; ino: bigint } | null;
  #backoff: NodeJS.Timeout | undefined;

  private constructor(path: string, fd: number) {
    super();
    this.path = path;
    this.#fd = fd;
    this.#identity = identityOf(path);
    try {
      this.#poller = callNative(() => new binding.Poller(fd, (errno) => this.#onReadable(errno)), { path });
      this.#poller.start(READABLE);
    } catch (error) {
      this.#fd = -1;
      closeQuietly([fd]);
      this.#unlink();
      throw error;
    }
  }

  /**
   * Creates, binds and listens on path. An existing file at path (even a stale socket) is
   * EADDRINUSE: removing it is the caller's decision. Each pending connection is accepted and
   * emitted as 'connection' (closed at once if nobody listens for it).
   */
  static listen(path: string, options?: UnixListenOptions): UnixListener {
    validateSocketPath(path);
    const { backlog = 16, mode = 0o600 } = validateOptions<UnixListenOptions>(options, 'options');
    validateInteger(backlog, 'options.backlog', 1, 65535);
    validateInteger(mode, 'options.mode', 0, 0o777);
    return new UnixListener(
      path,
      callNative(() => binding.unixListen(path, backlog, mode), { path }),
    );
  }

  /** Stops accepting, closes the fd and unlinks path (if it is still the socket we bound). Idempotent. */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    clearTimeout(this.#backoff);
    this.#poller.close();
    closeQuietly([fd]);
    this.#unlink();
  }

  #unlink(): void {
    // Leave the path alone if it now names something else (e.g. a new server's socket).
    const now = identityOf(this.path);
    if (
      now === null ||
      this.#identity === null ||
      now.dev !== this.#identity.dev ||
      now.ino !== this.#identity.ino
    ) {
      return;
    }
    try {
      unlinkSync(this.path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }

  #onReadable(pollErrno: number): void {
    if (pollErrno !== 0) {
      this.#pauseAfter(createSystemError({ errno: pollErrno, syscall: 'poll', path: this.path }));
      return;
    }
    while (this.#fd >= 0) {
      const fd = binding.unixAccept(this.#fd);
      if (fd >= 0) {
        const socket = adoptSocket(fd, this.path);
        if (this.listenerCount('connection') === 0) socket.close();
        else this.emit('connection', socket);
        continue;
      }
      const errno = -fd;
      if (errno === EAGAIN) return;
      // The connection went away before we took it: nothing to report.
      if (errno === ECONNABORTED || errno === EPROTO || errno === EINTR) continue;
      this.#pauseAfter(createSystemError({ errno, syscall: 'accept', path: this.path }));
      return;
    }
  }

  #pauseAfter(error: SystemError): void {
    this.#poller.stop();
    this.#backoff = setTimeout(() => {
      this.#backoff = undefined;
      if (this.#fd >= 0) this.#poller.start(READABLE);
    }, ACCEPT_BACKOFF_MS);
    this.emit('error', error);
  }
}
