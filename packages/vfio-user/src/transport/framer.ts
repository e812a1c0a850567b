/**
 * Splits a plain socket's byte stream (the client's) into vfio-user messages and gives each the fds
 * that came with it. A server's connections are framed in native code by the same rules
 * (@emu/native's TrapChannel, src/transport/message_framer.h); framers.test.ts holds the two to one
 * rule.
 *
 * Linux stops a recvmsg right after data that carried SCM_RIGHTS (it may glue earlier fd-less data in
 * front), so the write that carried a chunk's fds holds the chunk's last byte. A sender writes a
 * message with its fds at once, so a message owns the fds of every chunk whose last byte is inside it.
 */
import { releaseFd } from '@emu/native';
import { HEADER_SIZE, SERVER_MAX_MSG_FDS } from '../protocol/constants.js';
import { Header } from '../protocol/messages.js';
import type { StructValue } from '../protocol/struct.js';

export type MessageHeader = StructValue<(typeof Header)['fields']>;

export interface Message {
  header: MessageHeader;
  payload: Buffer;
  /**
   * Received fds, owned by the Connection: a handler that keeps some takes them (takeFds) while it
   * runs; the Connection closes the rest when it returns.
   */
  fds: number[];
  /** Fds that came for this message beyond the framer's bound: closed on arrival; refuse the message. */
  excessFds?: number;
}

export type FrameEvent =
  | { kind: 'message'; message: Message }
  /** A header whose size is impossible or above the limit; its body (if any) is skipped, its fds closed. */
  | { kind: 'oversized'; header: MessageHeader; fds: number[] }
  | { kind: 'undersized'; header: MessageHeader; fds: number[] };

export class MessageFramer {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Stream offset of the first buffered byte. */
  private base = 0;
  /** Fds by the stream offset of the last byte of the chunk they came with (`excess`: closed on arrival). */
  private pendingFds: Array<{ at: number; fds: number[]; excess: number }> = [];
  /** Fds held in pendingFds. */
  private heldCount = 0;
  private skip = 0;

  /**
   * maxFds bounds the fds held for messages not complete yet: fds beyond it are closed as they arrive
   * (so a peer cannot make us hold any number of them), and the message they came for says how many.
   */
  /** release(fd) lets go of an fd the peer sent and nobody takes (default: safeClose). */
  constructor(
    private readonly maxMessageSize: number,
    private readonly maxFds = SERVER_MAX_MSG_FDS,
    private readonly release: (fd: number) => void = safeClose,
  ) {}

  /** Feeds a received chunk; returns the complete messages (and framing errors) it finished. */
  push(chunk: Buffer, fds: readonly number[]): FrameEvent[] {
    if (fds.length === 0) return this.split(chunk);
    // The fds belong to the chunk's last byte: they are held (and bounded) when the framer reaches it,
    // not before, so that how the kernel glued the writes together changes nothing.
    const out = chunk.length > 0 ? this.split(chunk.subarray(0, chunk.length - 1)) : [];
    this.hold(fds, chunk.length > 0);
    if (chunk.length > 0) out.push(...this.split(chunk.subarray(chunk.length - 1)));
    return out;
  }

  /** Holds fds that came with the next byte (or, without one, with the last byte received). */
  private hold(fds: readonly number[], nextByte: boolean): void {
    const next = this.base + this.buffered;
    const at = nextByte || next === 0 ? next : next - 1;
    const keep = Math.max(0, Math.min(fds.length, this.maxFds - this.heldCount));
    for (const fd of fds.slice(keep)) this.release(fd);
    this.pendingFds.push({ at, fds: fds.slice(0, keep), excess: fds.length - keep });
    this.heldCount += keep;
  }

  private split(chunk: Buffer): FrameEvent[] {
    if (this.skip > 0) {
      const n = Math.min(this.skip, chunk.length);
      this.skip -= n;
      this.base += n;
      chunk = chunk.subarray(n);
      if (this.skip === 0) this.dropFdsBefore(this.base);
    }
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const out: FrameEvent[] = [];
    for (;;) {
      if (this.skip > 0 || this.buffered < HEADER_SIZE) break;
      const header = Header.decode(this.peek(HEADER_SIZE));
      if (header.size < HEADER_SIZE) {
        // The header alone is all we can resynchronise on.
        this.consume(HEADER_SIZE);
        out.push({ kind: 'undersized', header, fds: this.takeFdsBefore(this.base).fds });
        continue;
      }
      if (header.size > this.maxMessageSize) {
        const start = this.base;
        const have = Math.min(this.buffered, header.size);
        this.consume(have);
        this.skip = header.size - have;
        out.push({ kind: 'oversized', header, fds: this.takeFdsBefore(start + header.size).fds });
        continue;
      }
      if (this.buffered < header.size) break;
      const whole = this.consume(header.size);
      const { fds, excess } = this.takeFdsBefore(this.base);
      const message: Message = { header, payload: whole.subarray(HEADER_SIZE), fds };
      if (excess > 0) message.excessFds = excess;
      out.push({ kind: 'message', message });
    }
    return out;
  }

  /** Fds held for messages not complete yet. */
  get heldFds(): number {
    return this.heldCount;
  }

  /** Closes fds still waiting for their message (the peer went away mid-message). */
  dispose(): void {
    for (const p of this.pendingFds) for (const fd of p.fds) this.release(fd);
    this.pendingFds = [];
    this.heldCount = 0;
    this.chunks = [];
    this.buffered = 0;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0].length >= n) return this.chunks[0].subarray(0, n);
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined.subarray(0, n);
  }

  private consume(n: number): Buffer {
    const data = this.peek(n);
    const first = this.chunks[0];
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    this.base += n;
    return data;
  }

  /** The fds of the chunks ending before `end`, and how many more came with them (closed on arrival). */
  private takeFdsBefore(end: number): { fds: number[]; excess: number } {
    const fds: number[] = [];
    let excess = 0;
    while (this.pendingFds.length > 0 && this.pendingFds[0].at < end) {
      const p = this.pendingFds.shift()!;
      this.heldCount -= p.fds.length;
      fds.push(...p.fds);
      excess += p.excess;
    }
    return { fds, excess };
  }

  private dropFdsBefore(end: number): void {
    for (const fd of this.takeFdsBefore(end).fds) this.release(fd);
  }
}

/** Takes a message's fds from it: from here the caller owns (and closes) them. */
export function takeFds(message: Message, count = message.fds.length): number[] {
  return message.fds.splice(0, count);
}

export function safeClose(fd: number): void {
  // Never a close(2) that could wait on the peer's own server (a file on its FUSE mount, a lingering
  // socket): such a file is closed on the closer thread (@emu/native's releaseFd). Not open: nothing.
  releaseFd(fd);
}
