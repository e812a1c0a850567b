/** A hand-driven vfio-user peer for hostile-input tests: raw bytes and fds in, parsed messages out. */
import { UnixSocket } from '@emu/native';
import { HeaderFlag } from '../protocol/constants.js';
import { Header, Version } from '../protocol/messages.js';
import { type Message, MessageFramer } from '../transport/framer.js';

export class RawPeer {
  private readonly framer = new MessageFramer(1 << 24);
  private readonly inbox: Message[] = [];
  private waiters: Array<() => void> = [];
  closed = false;
  readonly socket: UnixSocket;

  constructor(path: string) {
    this.socket = UnixSocket.connect(path);
    this.socket.on('data', (chunk: Buffer, fds: number[]) => {
      for (const ev of this.framer.push(chunk, fds)) if (ev.kind === 'message') this.inbox.push(ev.message);
      this.wake();
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    this.socket.on('error', () => {});
  }

  static async negotiated(path: string): Promise<RawPeer> {
    const peer = new RawPeer(path);
    peer.send(1, 1, Version.encode({ major: 0, minor: 0 }));
    const reply = await peer.next();
    if (reply.header.flags & HeaderFlag.ERROR) throw new Error('VERSION failed');
    return peer;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Sends a command with a correct header around `payload`. */
  send(
    msgId: number,
    command: number,
    payload: Buffer = Buffer.alloc(0),
    fds: number[] = [],
    flags = 0,
  ): void {
    const header = Header.encode({ msgId, command, size: 16 + payload.length, flags, error: 0 });
    this.socket.write(Buffer.concat([header, payload]), fds);
  }

  sendRaw(bytes: Buffer, fds: number[] = []): void {
    this.socket.write(bytes, fds);
  }

  /** The next message from the server; rejects on timeout or if the server hung up. */
  async next(timeoutMs = 2000): Promise<Message> {
    const end = Date.now() + timeoutMs;
    while (this.inbox.length === 0) {
      if (this.closed) throw new Error('server closed the connection');
      const left = end - Date.now();
      if (left <= 0) throw new Error('no message from the server');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.inbox.shift()!;
  }

  /** Messages received and not taken yet. */
  get queued(): number {
    return this.inbox.length;
  }

  /** Resolves when something arrives (or the server hangs up), or after `timeoutMs`; takes nothing. */
  arrival(timeoutMs: number): Promise<void> {
    if (this.inbox.length > 0 || this.closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** Resolves true if nothing arrives within `ms`. */
  async silent(ms = 150): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms));
    return this.inbox.length === 0;
  }

  close(): void {
    this.socket.close();
  }
}
