/**
 * One vfio-user connection over a UNIX socket, for either side: framing, fds, the request/reply
 * bookkeeping of message ids, error replies, and NO_REPLY. The server and the client each put their
 * command handling on top.
 */
import { EventEmitter } from 'node:events';
import type { UnixSocket } from '@emu/native';
import type { Logger } from '../logger.js';
import { commandName, Errno, HEADER_SIZE, HeaderFlag } from '../protocol/constants.js';
import { VfioUserError } from '../protocol/errors.js';
import { Header } from '../protocol/messages.js';
import { type FrameEvent, type Message, MessageFramer, safeClose } from './framer.js';

export interface ConnectionOptions {
  /** Largest message accepted from the peer; bigger ones get an error reply and are skipped. */
  maxMessageSize: number;
  logger: Logger;
  /** Prefix for log lines, e.g. the socket path. */
  name: string;
  /** How long a request waits for its reply. Default 5000 ms, as QEMU's x-msg-timeout. */
  requestTimeoutMs?: number;
}

export interface RequestOptions {
  fds?: readonly number[];
  /** Send with NO_REPLY and resolve once queued. */
  noReply?: boolean;
  timeoutMs?: number;
}

interface Pending {
  command: number;
  resolve(msg: Message): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export interface ConnectionEvents {
  command: [Message];
  close: [Error | undefined];
}

export class Connection extends EventEmitter<ConnectionEvents> {
  private readonly framer: MessageFramer;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private closedWith: Error | undefined | null = null;
  readonly log: Logger;

  constructor(
    readonly socket: UnixSocket,
    private readonly options: ConnectionOptions,
  ) {
    super();
    this.log = options.logger;
    this.framer = new MessageFramer(options.maxMessageSize);
    socket.on('data', (chunk: Buffer, fds: number[]) => this.onData(chunk, fds));
    socket.on('error', (err: Error) => this.shutdown(err));
    socket.on('end', () => this.shutdown(undefined));
    socket.on('close', () => this.shutdown(undefined));
  }

  get closed(): boolean {
    return this.closedWith !== null;
  }

  /** Sends a command and resolves with its reply; rejects with VfioUserError on an error reply. */
  request(command: number, payload: Buffer | Buffer[], opts: RequestOptions = {}): Promise<Message> {
    if (this.closed)
      return Promise.reject(new VfioUserError(Errno.ENOTCONN, commandName(command), 'not connected'));
    const msgId = this.allocateId();
    const flags = HeaderFlag.TYPE_COMMAND | (opts.noReply ? HeaderFlag.NO_REPLY : 0);
    if (opts.noReply) {
      this.send(msgId, command, flags, 0, payload, opts.fds);
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
      this.pending.set(msgId, { command, resolve, reject, timer });
      try {
        this.send(msgId, command, flags, 0, payload, opts.fds);
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(msgId);
        reject(err);
      }
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

  close(reason?: Error): void {
    this.shutdown(reason);
  }

  private send(
    msgId: number,
    command: number,
    flags: number,
    error: number,
    payload: Buffer | Buffer[],
    fds?: readonly number[],
  ): void {
    const parts = Array.isArray(payload) ? payload : [payload];
    const size = HEADER_SIZE + parts.reduce((n, p) => n + p.length, 0);
    const header = Header.encode({ msgId, command, size, flags, error });
    this.socket.write(parts.length === 0 ? header : Buffer.concat([header, ...parts]), fds);
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
      for (const fd of fds) safeClose(fd);
      return;
    }
    for (const ev of this.framer.push(chunk, fds)) {
      if (this.closed) {
        for (const fd of ev.kind === 'message' ? ev.message.fds : ev.fds) safeClose(fd);
        continue;
      }
      this.onFrame(ev);
    }
  }

  private onFrame(ev: FrameEvent): void {
    if (ev.kind !== 'message') {
      for (const fd of ev.fds) safeClose(fd);
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
      this.emit('command', message);
    } else {
      for (const fd of message.fds) safeClose(fd);
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
      for (const fd of message.fds) safeClose(fd);
      this.log.warn(
        { conn: this.options.name, msgId: header.msgId, command: commandName(header.command) },
        'reply to an unknown message id: dropped',
      );
      return;
    }
    this.pending.delete(header.msgId);
    clearTimeout(pending.timer);
    if (header.flags & HeaderFlag.ERROR) {
      for (const fd of message.fds) safeClose(fd);
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
    if (this.closed) return;
    this.closedWith = reason;
    this.framer.dispose();
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
