/**
 * One vfio-user connection over a UNIX socket, for either side: fds, the request/reply bookkeeping of
 * message ids, error replies, and NO_REPLY. The server and the client each put their command handling
 * on top. A server's connection is a TrapChannel, which frames the stream in native code (its socket
 * thread answers register traps from the same framer); a plain socket (the client's) is framed here
 * by MessageFramer, with the same rules.
 *
 * Every fd that arrives is owned here until a consumer takes it: a command's handler takes the ones it
 * keeps (takeFds) while it runs, a request's caller the ones it asked for (RequestOptions.replyFds);
 * whatever is left, on any path (refused, malformed, unknown, late, or the connection gone), is closed.
 */
import { EventEmitter } from 'node:events';
import { type ChannelFrame, type MessageSocket, releaseFd, TrapChannel } from '@emu/native';
import type { Logger } from '../logger.js';
import { commandName, Errno, HEADER_SIZE, HeaderFlag } from '../protocol/constants.js';
import { VfioUserError } from '../protocol/errors.js';
import { Header } from '../protocol/messages.js';
import { type FrameEvent, type Message, MessageFramer } from './framer.js';

export interface ConnectionOptions {
  /** Largest message accepted from the peer; bigger ones get an error reply and are skipped. */
  maxMessageSize: number;
  /**
   * Most fds one message may carry (the max_msg_fds we advertise); fds beyond it are closed as they
   * arrive and their message is refused. Default SERVER_MAX_MSG_FDS (16).
   */
  maxMessageFds?: number;
  logger: Logger;
  /** Prefix for log lines, e.g. the socket path. */
  name: string;
  /** How long a request waits for its reply. Default 5000 ms, as QEMU's x-msg-timeout. */
  requestTimeoutMs?: number;
  /**
   * Bytes of outgoing messages the peer has not read yet above which we stop reading its requests,
   * until it catches up (back-pressure). Default 4 MiB; at least one message always goes out.
   */
  maxQueuedBytes?: number;
  /**
   * Who the peer's fds are released for (a label of @emu/native's stall detector, the device's): an fd
   * nobody takes is let go of without waiting on it (releaseFd), and counted against it.
   */
  owner?: number;
}

/**
 * fds a peer may send that nobody takes and whose close could wait (files on a FUSE mount, sockets:
 * see @emu/native's releaseFd) before the connection is closed: no VMM sends any.
 */
export const MAX_FOREIGN_FDS = 16;

/**
 * Outgoing messages are built in one buffer that every connection reuses (a socket's write copies what
 * it cannot send at once, MessageSocket.write). Built from Buffer's pool instead, a long-running server's
 * replies (a few a second) leave each 8 KiB pool slab alive long enough to be promoted, and the slabs
 * pile up in the old generation until a full collection: a soak's RSS grew by tens of KiB a minute.
 */
const SCRATCH_BYTES = 64 * 1024;
const scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);

/** A buffer of `size` bytes to build a message in, valid until the next call; larger ones are their own. */
function messageBuffer(size: number): Buffer {
  return size <= SCRATCH_BYTES ? scratch.subarray(0, size) : Buffer.allocUnsafeSlow(size);
}

/** Default bound on outgoing bytes the peer has not read (see ConnectionOptions.maxQueuedBytes). */
export const DEFAULT_MAX_QUEUED_BYTES = 4 << 20;

export interface RequestOptions {
  fds?: readonly number[];
  /** Send with NO_REPLY and resolve once queued. */
  noReply?: boolean;
  timeoutMs?: number;
  /**
   * Most fds the caller takes from the reply (default 0); it then owns them. A reply carrying more
   * fails with EPROTO, and its fds are closed.
   */
  replyFds?: number;
}

interface Pending {
  command: number;
  replyFds: number;
  resolve(msg: Message): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export interface ConnectionEvents {
  command: [Message];
  close: [Error | undefined];
}

/** What a Connection reads: a TrapChannel (framed in native code), or a byte stream it frames itself. */
export type ConnectionSocket = TrapChannel | MessageSocket;

/** A TrapChannel's frame as the connection handles it. */
function frameEvent(frame: ChannelFrame): FrameEvent {
  const header = Header.decode(frame.bytes.subarray(0, HEADER_SIZE));
  if (frame.kind !== 'message') return { kind: frame.kind, header, fds: frame.fds };
  const message: Message = { header, payload: frame.bytes.subarray(HEADER_SIZE), fds: frame.fds };
  if (frame.excess > 0) message.excessFds = frame.excess;
  return { kind: 'message', message };
}

export class Connection extends EventEmitter<ConnectionEvents> {
  /** Frames a plain socket's bytes (a TrapChannel frames its own). */
  private readonly framer?: MessageFramer;
  private readonly pending = new Map<number, Pending>();
  /** Received messages not handled yet: held while the peer leaves too much unread (back-pressure). */
  private inbox: FrameEvent[] = [];
  private nextId = 0;
  /** fds the peer sent that went to the closer thread (see release). */
  private foreignFds = 0;
  private closedWith: Error | undefined | null = null;
  private readonly maxQueuedBytes: number;
  /** Reading stopped because the peer does not read what we send. */
  private throttled = false;
  readonly log: Logger;

  constructor(
    readonly socket: ConnectionSocket,
    private readonly options: ConnectionOptions,
  ) {
    super();
    this.log = options.logger;
    this.maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    if (socket instanceof TrapChannel) {
      socket.on('frame', (frame) => this.onFrames([frameEvent(frame)]));
    } else {
      this.framer = new MessageFramer(options.maxMessageSize, options.maxMessageFds, (fd) =>
        this.release(fd),
      );
      socket.on('data', (chunk: Buffer, fds: number[]) => this.onData(chunk, fds));
    }
    socket.on('drain', () => this.onDrain());
    socket.on('error', (err: Error) => this.shutdown(err));
    socket.on('end', () => this.shutdown(undefined));
    socket.on('close', () => this.shutdown(undefined));
  }

  /** True from the moment the socket is gone, even before its 'close' event has run. */
  get closed(): boolean {
    return this.closedWith !== null || this.socket.closed;
  }

  /** Fds received and not yet handed to a consumer: for a message still arriving, or waiting in the inbox. */
  get heldFds(): number {
    let n = this.framer ? this.framer.heldFds : (this.socket as TrapChannel).heldFds;
    for (const ev of this.inbox) n += ev.kind === 'message' ? ev.message.fds.length : ev.fds.length;
    return n;
  }

  /** Bytes sent but not yet read by the peer, and whether we stopped reading because of them. */
  get backlog(): { queuedBytes: number; throttled: boolean } {
    return { queuedBytes: this.socket.writableLength, throttled: this.throttled };
  }

  /** Sends a command and resolves with its reply; rejects with VfioUserError on an error reply. */
  request(command: number, payload: Buffer | Buffer[], opts: RequestOptions = {}): Promise<Message> {
    if (this.closed)
      return Promise.reject(new VfioUserError(Errno.ENOTCONN, commandName(command), 'not connected'));
    const msgId = this.allocateId();
    const flags = HeaderFlag.TYPE_COMMAND | (opts.noReply ? HeaderFlag.NO_REPLY : 0);
    if (opts.noReply) {
      if (!this.send(msgId, command, flags, 0, payload, opts.fds)) {
        return Promise.reject(new VfioUserError(Errno.ENOTCONN, commandName(command), 'not connected'));
      }
      return Promise.resolve({
        header: { msgId, command, size: 0, flags, error: 0 },
        payload: Buffer.alloc(0),
        fds: [],
      });
    }
    return new Promise<Message>((resolve, reject) => {
      const timeoutMs = opts.timeoutMs ?? this.options.requestTimeoutMs ?? 5000;
      const timer = setTimeout(() => {
        this.pending.delete(msgId);
        reject(new VfioUserError(Errno.ETIMEDOUT, commandName(command), `no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(msgId, { command, replyFds: opts.replyFds ?? 0, resolve, reject, timer });
      // A failed send shuts the connection down, which rejects every pending request, this one too.
      this.send(msgId, command, flags, 0, payload, opts.fds);
    });
  }

  /** Replies to a command, unless it asked for no reply. */
  reply(to: Message, payload: Buffer | Buffer[] = [], fds?: readonly number[]): void {
    if (to.header.flags & HeaderFlag.NO_REPLY || this.closed) return;
    this.send(to.header.msgId, to.header.command, HeaderFlag.TYPE_REPLY, 0, payload, fds);
  }

  /** The spec's error reply: the header alone, with ERROR set and the errno. */
  replyError(to: { msgId: number; command: number; flags: number }, errno: number): void {
    if (to.flags & HeaderFlag.NO_REPLY || this.closed) return;
    this.send(to.msgId, to.command, HeaderFlag.TYPE_REPLY | HeaderFlag.ERROR, errno, []);
  }

  /** Lets go of every fd of the list (releaseFd: never waiting on one). */
  releaseAll(fds: number[]): void {
    for (const fd of fds.splice(0)) this.release(fd);
  }

  private releaseFdsOf(ev: FrameEvent): void {
    this.releaseAll(ev.kind === 'message' ? ev.message.fds : ev.fds);
  }

  /** An fd the peer sent that nobody takes; past MAX_FOREIGN_FDS files emu cannot close in place, the connection goes. */
  private release(fd: number): void {
    if (!releaseFd(fd, this.options.owner ?? 0)) return;
    if (++this.foreignFds > MAX_FOREIGN_FDS && this.closedWith === null) {
      this.close(
        new Error(
          `the peer sent more than ${MAX_FOREIGN_FDS} files emu does not take (sockets, files on FUSE…)`,
        ),
      );
    }
  }

  close(reason?: Error): void {
    this.shutdown(reason);
  }

  /**
   * Sends one message; false when the connection is (or just became) closed. Never throws: a peer that
   * went away with requests in flight must not turn their replies into exceptions. A socket that died
   * in this write shuts the connection down at once, so the next message sees it closed.
   */
  private send(
    msgId: number,
    command: number,
    flags: number,
    error: number,
    payload: Buffer | Buffer[],
    fds?: readonly number[],
  ): boolean {
    if (this.closed) {
      this.shutdown(new VfioUserError(Errno.ENOTCONN, commandName(command), 'the peer went away'));
      return false;
    }
    const parts = Array.isArray(payload) ? payload : [payload];
    const size = HEADER_SIZE + parts.reduce((n, p) => n + p.length, 0);
    const message = messageBuffer(size);
    Header.encodeInto({ msgId, command, size, flags, error }, message, 0);
    let at = HEADER_SIZE;
    for (const part of parts) {
      message.set(part, at);
      at += part.length;
    }
    try {
      this.socket.write(message, fds);
    } catch (err) {
      this.shutdown(err as Error);
      return false;
    }
    if (this.socket.closed) {
      this.shutdown(new VfioUserError(Errno.EPIPE, commandName(command), 'the peer went away'));
      return false;
    }
    if (!this.throttled && this.socket.writableLength > this.maxQueuedBytes) {
      // The peer does not read what we send: stop reading what it asks until it catches up.
      this.throttled = true;
      this.socket.pause();
      this.log.debug(
        { conn: this.options.name, queued: this.socket.writableLength },
        'peer is not reading: requests paused',
      );
    }
    return true;
  }

  private onDrain(): void {
    if (!this.throttled || this.closed) return;
    this.throttled = false;
    this.pump();
    if (!this.throttled && !this.closed) this.socket.resume();
  }

  private allocateId(): number {
    for (let i = 0; i < 0x10000; i++) {
      const id = this.nextId;
      this.nextId = (this.nextId + 1) & 0xffff;
      if (!this.pending.has(id)) return id;
    }
    throw new VfioUserError(Errno.EBUSY, 'request', 'all 65536 message ids are in flight');
  }

  private onData(chunk: Buffer, fds: number[]): void {
    if (this.closed) {
      this.releaseAll(fds);
      return;
    }
    this.onFrames(this.framer!.push(chunk, fds));
  }

  private onFrames(events: FrameEvent[]): void {
    if (this.closed) {
      for (const ev of events) this.releaseFdsOf(ev);
      return;
    }
    this.inbox.push(...events);
    this.pump();
  }

  /** Handles what was received, in order, until done or until the peer has too much unread. */
  private pump(): void {
    while (this.inbox.length > 0 && !this.throttled) {
      const ev = this.inbox.shift()!;
      if (this.closed) {
        this.releaseFdsOf(ev);
        continue;
      }
      try {
        this.onFrame(ev);
      } catch (err) {
        // A bug in handling one message costs this connection, never the process.
        this.log.error(
          { conn: this.options.name, err: (err as Error).message },
          'connection closed: a message handler threw',
        );
        this.shutdown(err as Error);
      }
    }
  }

  private onFrame(ev: FrameEvent): void {
    if (ev.kind !== 'message') {
      this.releaseAll(ev.fds);
      const { header } = ev;
      const why =
        ev.kind === 'oversized'
          ? `size ${header.size} is above the limit ${this.options.maxMessageSize}`
          : `size ${header.size} is smaller than the ${HEADER_SIZE}-byte header`;
      this.log.warn(
        { conn: this.options.name, msgId: header.msgId, command: header.command },
        `bad message: ${why}`,
      );
      if ((header.flags & HeaderFlag.TYPE_MASK) === HeaderFlag.TYPE_COMMAND) {
        this.replyError(header, ev.kind === 'oversized' ? Errno.E2BIG : Errno.EINVAL);
      } else {
        this.failPending(header.msgId, new VfioUserError(Errno.EPROTO, commandName(header.command), why));
      }
      return;
    }
    const { message } = ev;
    const type = message.header.flags & HeaderFlag.TYPE_MASK;
    if (type === HeaderFlag.TYPE_REPLY) {
      this.onReply(message);
    } else if (type === HeaderFlag.TYPE_COMMAND) {
      try {
        this.emit('command', message);
      } finally {
        // The handler took the fds it keeps (takeFds); the rest have no owner but us.
        this.releaseAll(message.fds);
      }
    } else {
      this.releaseAll(message.fds);
      this.log.warn(
        { conn: this.options.name, msgId: message.header.msgId, type },
        'bad message: unknown type',
      );
      this.replyError(message.header, Errno.EINVAL);
    }
  }

  private onReply(message: Message): void {
    const { header } = message;
    const pending = this.pending.get(header.msgId);
    if (!pending || pending.command !== header.command) {
      this.releaseAll(message.fds);
      this.log.warn(
        { conn: this.options.name, msgId: header.msgId, command: commandName(header.command) },
        'reply to an unknown message id: dropped',
      );
      return;
    }
    this.pending.delete(header.msgId);
    clearTimeout(pending.timer);
    const fds = message.fds.length + (message.excessFds ?? 0);
    if (fds > pending.replyFds) {
      this.releaseAll(message.fds);
      pending.reject(
        new VfioUserError(
          Errno.EPROTO,
          commandName(header.command),
          `reply carried ${fds} fds, the request takes ${pending.replyFds}`,
        ),
      );
    } else if (header.flags & HeaderFlag.ERROR) {
      this.releaseAll(message.fds);
      // libvfio-user clamps a peer's errno to a sane range; so do we.
      const errno = header.error > 0 && header.error <= 4096 ? header.error : Errno.EINVAL;
      pending.reject(new VfioUserError(errno, commandName(header.command)));
    } else {
      pending.resolve(message);
    }
  }

  private failPending(msgId: number, err: Error): void {
    const pending = this.pending.get(msgId);
    if (!pending) return;
    this.pending.delete(msgId);
    clearTimeout(pending.timer);
    pending.reject(err);
  }

  private shutdown(reason: Error | undefined): void {
    if (this.closedWith !== null) return;
    this.closedWith = reason;
    this.framer?.dispose();
    for (const ev of this.inbox.splice(0)) this.releaseFdsOf(ev);
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(
        new VfioUserError(Errno.ENOTCONN, commandName(p.command), reason ? reason.message : 'disconnected'),
      );
    }
    this.pending.clear();
    this.socket.close();
    if (reason) this.log.debug({ conn: this.options.name, err: reason.message }, 'connection closed');
    this.emit('close', reason);
  }
}
