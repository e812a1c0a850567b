// A vfio-user connection read, framed and written by native code (src/transport/trap_channel.cc):
// the one framer of emu's connections (src/transport/message_framer.h), and on a server the socket
// thread that answers register accesses in memory-backed areas itself; every message goes to
// JavaScript as a 'frame' with its fds. The JS thread watches the socket as well and reads through
// the same native framer when it wakes first. This file owns the policy: validation, events, errors, acks.
import { EventEmitter } from 'node:events';
import { constants } from 'node:os';
import { binding, type ChannelFrame, type NativePoller, type NativeTrapChannel } from './binding.js';
import { callNative, closedError, createSystemError, type SystemError } from './errors.js';
import { closeQuietly } from './fd.js';
import { emitLastEvents, type UnixSocket, type UnixSocketEvents, validateFds } from './unix-socket.js';
import { typeError, validateFd, validateInteger, validateOptions } from './validate.js';

export type { ChannelFrame, FrameKind } from './binding.js';

const { EMSGSIZE } = constants.errno;
const NO_FDS: readonly number[] = Object.freeze([]);
const READABLE = binding.pollReadable;

/** A TrapChannel's events: UnixSocket's, with framed messages in place of bytes. */
export type TrapChannelEvents = Omit<UnixSocketEvents, 'data'> & {
  /** A message (or the header of one refused), in order; its fds are the listener's from here. */
  frame: [frame: ChannelFrame];
};

/**
 * A connected byte stream as @emu/vfio-user's Connection drives it when it frames the stream itself (a
 * plain UnixSocket: the client). 'data' chunks follow UnixSocket's rule for fds (they belong to the
 * message holding the chunk's last byte).
 */
export interface MessageSocket extends EventEmitter<UnixSocketEvents> {
  readonly closed: boolean;
  /** Bytes queued but not yet sent. */
  readonly writableLength: number;
  /** Sends `data` or copies what it cannot send yet: the caller may reuse `data` once this returns. */
  write(data: Uint8Array, fds?: readonly number[]): void;
  pause(): void;
  resume(): void;
  close(): void;
}

/**
 * Registers native code serves itself, with their effects (today IavfVectors: VFINT_DYN_CTLN1 re-arms
 * an interrupt); the object's `native` is a RegisterBlock (src/transport/register_block.h).
 */
export interface NativeRegisters {
  readonly native: object;
}

/**
 * Bytes [offset, offset + size) of region `region` whose REGION_READ / REGION_WRITE accesses the
 * socket thread answers, from one of two backings:
 * - memory: [fileOffset, fileOffset + size) of fd (mapped by the channel itself, shared). This is what
 *   a device offers the client to mmap (its doorbell page), or keeps hot without offering it: a store
 *   by message lands where the client's own store through a mapping would;
 * - registers: a native register block, given the access's offset into the area. An access it
 *   declines (a width it does not serve) goes to JavaScript.
 */
export type TrapArea = {
  region: number;
  offset: number;
  size: number;
  readable: boolean;
  writable: boolean;
} & ({ fd: number; fileOffset: number; registers?: undefined } | { registers: NativeRegisters });

export interface TrapChannelOptions {
  /**
   * Bytes queued for the peer above which the socket thread stops reading (a peer that does not read
   * its replies); default 4 MiB.
   */
  maxQueuedBytes?: number;
  /** Largest message taken whole (at least 40 bytes); a bigger one comes as its header alone (`oversized`). */
  maxMessageSize: number;
  /** Most fds held for messages still arriving (at most 253); more are released and counted (`excess`). */
  maxMessageFds: number;
  /** Names the channel in errors, e.g. the socket path. */
  label?: string;
  /** Who the connection works for (a label() of the stall detector): named in stall reports, and the fds it lets go of counted against it. */
  owner?: number;
}

/** Accesses the socket thread answered itself. */
export interface TrapChannelStats {
  servedReads: number;
  servedWrites: number;
}

export class TrapChannel extends EventEmitter<TrapChannelEvents> {
  readonly #native: NativeTrapChannel;
  /** The JS thread's own watch on the socket: whichever thread wakes first reads (settle()). */
  readonly #poller: NativePoller;
  #polling = false;
  readonly #label: string;
  #fd: number;
  #paused = false;
  /** The last delivery handed to 'data' and not acked yet (acked once handled, unless paused). */
  #unacked = 0;

  private constructor(fd: number, options: TrapChannelOptions) {
    super();
    this.#fd = fd;
    this.#label = options.label ?? `fd ${fd}`;
    this.#native = callNative(
      () =>
        new binding.TrapChannel(fd, () => this.#onWake(), {
          maxQueuedBytes: options.maxQueuedBytes,
          maxMessageSize: options.maxMessageSize,
          maxMessageFds: options.maxMessageFds,
          label: this.#label,
          owner: options.owner,
        }),
      { target: this.#label },
    );
    try {
      this.#poller = callNative(() => new binding.Poller(fd, () => this.settle()), { target: this.#label });
    } catch (error) {
      this.#native.close();
      throw error;
    }
    this.#watch(true);
  }

  /** Takes over a connected socket's fd: reading starts at once on the socket thread. */
  static adopt(socket: UnixSocket, options: TrapChannelOptions): TrapChannel {
    const { maxQueuedBytes, maxMessageSize, maxMessageFds } = validateOptions<TrapChannelOptions>(
      options,
      'options',
    );
    if (maxQueuedBytes !== undefined)
      validateInteger(maxQueuedBytes, 'options.maxQueuedBytes', 0, 2 ** 32 - 1);
    validateInteger(
      maxMessageSize,
      'options.maxMessageSize',
      binding.vfioUserWire.maxTrapMessage,
      2 ** 32 - 1,
    );
    validateInteger(maxMessageFds, 'options.maxMessageFds', 0, 253);
    const fd = socket.detach();
    try {
      return new TrapChannel(fd, options);
    } catch (error) {
      closeQuietly([fd]);
      throw error;
    }
  }

  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  get writableLength(): number {
    return this.#fd < 0 ? 0 : this.#native.queuedBytes();
  }

  /** fds the peer sent that no 'frame' has handed over yet (for messages still arriving, or waiting). */
  get heldFds(): number {
    return this.#fd < 0 ? 0 : this.#native.heldFds();
  }

  /**
   * Replaces the areas the socket thread answers (none at first). Throws on a bad area or when one
   * cannot be mapped; the previous ones then stay.
   */
  setAreas(areas: readonly TrapArea[]): void {
    if (this.#fd < 0) throw closedError('setAreas', 'socket');
    if (!Array.isArray(areas)) throw typeError('areas', 'an array', areas);
    const list = areas.map((a, i) => {
      validateInteger(a.region, `areas[${i}].region`, 0, 8);
      validateInteger(a.offset, `areas[${i}].offset`, 0, Number.MAX_SAFE_INTEGER);
      validateInteger(a.size, `areas[${i}].size`, 1, 2 ** 30);
      const base = {
        region: a.region,
        offset: BigInt(a.offset),
        size: a.size,
        readable: a.readable === true,
        writable: a.writable === true,
      };
      if (a.registers !== undefined) {
        if (typeof a.registers?.native !== 'object' || a.registers.native === null) {
          throw typeError(`areas[${i}].registers`, 'a native register block', a.registers);
        }
        return { ...base, registers: a.registers.native };
      }
      validateFd(a.fd, `areas[${i}].fd`);
      validateInteger(a.fileOffset, `areas[${i}].fileOffset`, 0, Number.MAX_SAFE_INTEGER);
      return { ...base, fd: a.fd, fileOffset: BigInt(a.fileOffset) };
    });
    callNative(() => this.#native.setAreas(list), { target: this.#label });
  }

  /**
   * Handles now what the peer sent so far, its hang-up included ('data', 'end', 'close' run before
   * this returns), instead of when the socket thread's wake-up comes: for decisions that depend on
   * whether the peer is still there, such as taking the next client.
   */
  settle(): void {
    if (this.#fd < 0) return;
    this.#native.settle();
    this.#onWake();
  }

  /** Watches the socket from the JS thread while the channel reads (a level-triggered poll would spin). */
  #watch(reading: boolean): void {
    if (this.#fd < 0 || reading === this.#polling) return;
    this.#polling = reading;
    if (reading) this.#poller.start(READABLE);
    else this.#poller.stop();
  }

  stats(): TrapChannelStats {
    return this.#native.stats();
  }

  /** Queues data (and fds, at most 253, sent with its first byte) behind everything sent before. */
  write(data: Uint8Array, fds: readonly number[] = NO_FDS): void {
    if (!(data instanceof Uint8Array)) throw typeError('data', 'a Uint8Array', data);
    validateFds(fds);
    if (this.#fd < 0) throw closedError('write', 'socket');
    if (data.byteLength === 0) return;
    const r = this.#native.write(data, fds);
    if (r < 0) this.#destroySoon(this.#error(-r, 'sendmsg'));
  }

  pause(): void {
    if (this.#fd < 0) return;
    this.#paused = true;
    this.#native.pause();
    this.#watch(false);
  }

  /** Reading goes on; what was handed out before the pause counts as handled from here. */
  resume(): void {
    if (this.#fd < 0) return;
    this.#paused = false;
    this.#native.ack(this.#unacked);
    this.#native.resume();
    this.#watch(true);
  }

  /** Closes the fd now, dropping unsent data and every fd still queued, and emits 'close'. Idempotent. */
  close(): void {
    if (this.#fd < 0) return;
    this.#teardown();
    this.emit('close');
  }

  #teardown(): void {
    this.#fd = -1;
    this.#polling = false;
    this.#poller.close();
    this.#native.close();
  }

  #error(errno: number, syscall: string): SystemError {
    return createSystemError({ errno, syscall, target: this.#label });
  }

  #onWake(): void {
    if (this.#fd < 0) return;
    const taken = this.#native.take();
    for (let i = 0; i < taken.frames.length; i++) {
      const frame = taken.frames[i];
      if (this.#fd < 0 || this.listenerCount('frame') === 0) {
        closeQuietly(frame.fds);
        continue;
      }
      this.emit('frame', frame);
    }
    if (this.#fd < 0) return;
    this.#unacked = taken.seq;
    // Handled synchronously by the listeners, unless they paused to hold some back.
    if (!this.#paused) this.#native.ack(taken.seq);
    if (taken.drained) this.emit('drain');
    if (this.#fd < 0) return;
    this.#watch(taken.reading && !this.#paused);
    if (taken.errno !== 0) {
      this.#destroy(
        taken.truncated
          ? createSystemError({
              errno: EMSGSIZE,
              code: 'EMSGCTRUNC',
              syscall: 'recvmsg',
              target: this.#label,
              description: 'control data truncated (MSG_CTRUNC): received file descriptors were lost',
            })
          : this.#error(taken.errno, 'recvmsg'),
      );
    } else if (taken.end) {
      this.#destroy(undefined, true);
    }
  }

  /** This channel as a stream for emitLastEvents: its last events are UnixSocket's. */
  #asStream(): EventEmitter<UnixSocketEvents> {
    return this as unknown as EventEmitter<UnixSocketEvents>;
  }

  /** Closes now and emits ['end'], ['error'], then 'close'. */
  #destroy(error: SystemError | undefined, ended = false): void {
    if (this.#fd < 0) return;
    this.#teardown();
    emitLastEvents(this.#asStream(), error, ended);
  }

  #destroySoon(error: SystemError): void {
    if (this.#fd < 0) return;
    this.#teardown();
    process.nextTick(() => emitLastEvents(this.#asStream(), error, false));
  }
}

/** The wire facts the socket thread relies on, for @emu/vfio-user to check against its protocol tables. */
export const vfioUserWire: Readonly<typeof binding.vfioUserWire> = Object.freeze({ ...binding.vfioUserWire });
