/**
 * One client of the control socket, from accept to close, and everything it may make emu hold: the
 * line being read (at most `maxLineBytes`, whole within `lineTimeoutMs`), one request handled at a time
 * (reading stops meanwhile), one reply unread (reading stops until the client has taken it, and waits
 * at most `unreadTimeoutMs`), and the connection itself (closed after `idleTimeoutMs` with nothing to
 * do). Whatever the client does, the connection ends: `close()` with a reply still on its way, or
 * `destroy()` at once.
 */
import type { Socket } from 'node:net';
import { setImmediate as turn } from 'node:timers/promises';
import type { Logger } from '@emu/vdev-bus';
import { replyLine, rpcError } from './dispatch.js';
import { LineSplitter, RpcErrorCode } from './protocol.js';

/** What one client may make emu hold, and for how long. */
export interface ConnectionLimits {
  /** The longest request line. */
  maxLineBytes: number;
  /** A request line begun must end within this. */
  lineTimeoutMs: number;
  /** A connection with nothing to do (no request, no reply on its way) is closed after this. */
  idleTimeoutMs: number;
  /** A reply the client leaves unread this long closes the connection. */
  unreadTimeoutMs: number;
  /** How long a closing connection's last reply may take to leave before the socket is destroyed. */
  lingerMs: number;
}

export class ControlConnection {
  readonly #lines: LineSplitter;
  readonly #waiting: string[] = [];
  #busy = false;
  /** When it last stopped having work (a request in hand or a reply on its way): see quietMs. */
  #quietSince = performance.now();
  /** Set once it is on its way out: nothing more is read or handled. */
  #ending = false;
  #lineTimer?: NodeJS.Timeout;
  #idleTimer?: NodeJS.Timeout;
  #lingerTimer?: NodeJS.Timeout;
  /** Reads so far: a timer that fires checks that none came meanwhile (see #expire). */
  #reads = 0;

  constructor(
    readonly socket: Socket,
    private readonly limits: ConnectionLimits,
    private readonly dispatch: (line: string) => Promise<string | undefined>,
    private readonly log: Logger,
  ) {
    this.#lines = new LineSplitter(limits.maxLineBytes);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.#read(chunk));
    socket.on('close', () => this.#clearTimers());
    this.#armIdle();
  }

  /**
   * Bytes this client makes emu hold now: the line begun, lines read and waiting, what the socket has
   * read and not yet handed on, and a reply not yet taken by the client.
   */
  get heldBytes(): number {
    let waiting = 0;
    for (const line of this.#waiting) waiting += Buffer.byteLength(line);
    return this.#lines.pendingBytes + waiting + this.socket.readableLength + this.socket.writableLength;
  }

  /** Whether a request is being handled or its reply has not left yet. */
  get busy(): boolean {
    return this.#busy;
  }

  /**
   * How long it has been open with no work (0 while busy). Its timers close a connection quiet for
   * longer than the idle or line timeout plus the linger: this is what bounds it.
   */
  get quietMs(): number {
    return this.#busy ? 0 : performance.now() - this.#quietSince;
  }

  /** Reads nothing more; the socket is closed once the request in hand (if any) is answered. */
  close(): void {
    this.#ending = true;
    this.socket.pause();
    if (!this.#busy) this.#end();
  }

  /** Closes the socket now, whatever is in hand. */
  destroy(): void {
    this.#ending = true;
    this.socket.destroy();
  }

  #read(chunk: string): void {
    if (this.#ending) return;
    this.#reads++;
    clearTimeout(this.#idleTimer);
    let lines: string[];
    try {
      lines = this.#lines.push(chunk);
    } catch (err) {
      this.#refuse((err as Error).message);
      return;
    }
    // The line timer times one line: it restarts whenever a line ends with a part of the next behind it.
    if (lines.length > 0) {
      clearTimeout(this.#lineTimer);
      this.#lineTimer = undefined;
    }
    this.#waiting.push(...lines);
    if (this.#waiting.length > 0) void this.#drain();
    else this.#settle();
  }

  /** Handles what is waiting, one request at a time, reading nothing meanwhile. */
  async #drain(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    this.socket.pause();
    clearTimeout(this.#lineTimer);
    this.#lineTimer = undefined;
    while (this.#waiting.length > 0 && !this.#ending && !this.socket.destroyed) {
      const line = this.#waiting.shift()!;
      let reply: string | undefined;
      try {
        reply = await this.dispatch(line);
      } catch (err) {
        // dispatchLine answers everything; this is for a bug in it, which must not take emu down.
        const why = `internal error: ${(err as Error)?.message ?? String(err)}`;
        reply = replyLine(rpcError(null, RpcErrorCode.INTERNAL_ERROR, why));
      }
      if (reply !== undefined && !(await this.#send(reply))) return;
      // Each line in a turn of the event loop of its own: devices are served in between.
      await turn();
    }
    this.#busy = false;
    this.#quietSince = performance.now();
    if (this.#ending) this.#end();
    else if (!this.socket.destroyed) {
      this.socket.resume();
      this.#settle();
    }
  }

  /** Writes a reply and waits until the client has it (in the kernel's buffer); false if it never will. */
  #send(text: string): Promise<boolean> {
    if (this.socket.destroyed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.log.info(
          { unreadMs: this.limits.unreadTimeoutMs },
          'control socket: a client left a reply unread too long: closed',
        );
        this.destroy();
        resolve(false);
      }, this.limits.unreadTimeoutMs);
      this.socket.write(text, (err) => {
        clearTimeout(timer);
        resolve(!err);
      });
    });
  }

  /** After reading: time the line begun, or the idleness. */
  #settle(): void {
    if (this.#busy || this.#ending) return;
    if (this.#lines.pendingBytes === 0) {
      clearTimeout(this.#lineTimer);
      this.#lineTimer = undefined;
      this.#armIdle();
    } else {
      if (this.#lineTimer !== undefined) return;
      const timer = setTimeout(
        () =>
          // Unless a line ended meanwhile (which clears this timer), however many bytes came.
          setImmediate(() => {
            if (this.#lineTimer === timer) {
              this.#refuse(`a request line did not end within ${this.limits.lineTimeoutMs} ms`);
            }
          }),
        this.limits.lineTimeoutMs,
      );
      this.#lineTimer = timer;
    }
  }

  #armIdle(): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(
      () =>
        this.#expire(() => {
          if (this.#busy || this.#ending) return;
          this.log.debug({ idleMs: this.limits.idleTimeoutMs }, 'control socket: an idle client: closed');
          this.#refuse(`idle for ${this.limits.idleTimeoutMs} ms`, false);
        }),
      this.limits.idleTimeoutMs,
    );
  }

  /**
   * Runs a timeout's action unless the client sent something meanwhile. Timers run before the event
   * loop polls sockets: after a stall of the loop (a long scrape, a GC) bytes the client sent in time
   * may still be unread when its timer fires. A turn later they have been read (the line timer, above,
   * waits the turn too).
   */
  #expire(action: () => void): void {
    const reads = this.#reads;
    setImmediate(() => {
      if (this.#reads === reads && !this.socket.destroyed) action();
    });
  }

  /** Tells the client why it is closed (a LIMIT error for no request of its), then closes. */
  #refuse(why: string, loud = true): void {
    if (this.#ending) return;
    if (loud) this.log.info({}, `control socket: a client closed: ${why}`);
    this.#ending = true;
    this.socket.pause();
    this.#waiting.length = 0;
    if (!this.socket.destroyed) this.socket.write(replyLine(rpcError(null, RpcErrorCode.LIMIT, why)));
    if (!this.#busy) this.#end();
  }

  /** Ends the socket once what was written has left; destroys it if that takes longer than `lingerMs`. */
  #end(): void {
    if (this.socket.destroyed) return;
    this.#clearTimers();
    this.#lingerTimer = setTimeout(() => this.socket.destroy(), this.limits.lingerMs);
    this.socket.destroySoon();
  }

  #clearTimers(): void {
    clearTimeout(this.#lineTimer);
    clearTimeout(this.#idleTimer);
    clearTimeout(this.#lingerTimer);
  }
}
