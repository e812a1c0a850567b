/**
 * The control socket: JSON-RPC 2.0 requests, one per line (control/protocol.ts), answered from the
 * method table (control/methods.ts, through control/dispatch.ts). A client can ask anything and send
 * anything: a malformed request gets a JSON-RPC error and the connection goes on; devices never notice.
 * Every connection accepted has an owner that closes it: a client's ControlConnection (with its own
 * bounds: control/connection.ts), or, past `maxClients`, the refusal, which closes it once the error
 * is written. close() ends them all within `closeTimeoutMs`, whatever the clients do.
 */
import { chmodSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { setImmediate } from 'node:timers/promises';
import type { Logger } from '@emu/vdev-bus';
import { type ConnectionLimits, ControlConnection } from './connection.js';
import { dispatchLine, replyLine, rpcError } from './dispatch.js';
import type { ControlContext } from './methods.js';
import { MAX_LINE_BYTES, RpcErrorCode } from './protocol.js';

/** The control socket's bounds, one row each; ControlServer.listen's options override them (tests). */
export interface ControlLimits extends ConnectionLimits {
  /** Most clients at once; one more is told so and closed. */
  maxClients: number;
  /** How long close() lets clients finish the request in hand before their sockets are destroyed. */
  closeTimeoutMs: number;
}

export const CONTROL_LIMITS: ControlLimits = {
  maxClients: 16,
  maxLineBytes: MAX_LINE_BYTES,
  lineTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  unreadTimeoutMs: 30_000,
  lingerMs: 1_000,
  closeTimeoutMs: 2_000,
};

export interface ControlServerOptions extends Partial<ControlLimits> {
  logger?: Logger;
}

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export class ControlServer {
  readonly #server: Server;
  readonly #clients = new Set<ControlConnection>();
  /** Connections refused (too many clients, or closing), until their socket is gone. */
  /** Refused sockets on their way out, and when they were refused. */
  readonly #refused = new Map<Socket, number>();
  readonly #limits: ControlLimits;
  readonly #log: Logger;
  #closing?: Promise<void>;

  private constructor(
    readonly path: string,
    private readonly ctx: ControlContext,
    options: ControlServerOptions,
  ) {
    const { logger, ...limits } = options;
    this.#limits = { ...CONTROL_LIMITS, ...limits };
    this.#log = logger ?? quiet;
    this.#server = createServer((socket) => this.#accept(socket));
    // A hard cap on sockets, refusals included: past it the kernel's connection is closed unanswered.
    this.#server.maxConnections = 2 * this.#limits.maxClients;
    this.#server.on('error', (err) => this.#log.error({ path }, `control socket: ${err.message}`));
  }

  /**
   * Listens on `path` (which must be free: see vdev-bus's prepareSocketPath), created mode 0600 so
   * only this user (and root) may control emu.
   */
  static async listen(
    path: string,
    ctx: ControlContext,
    options: ControlServerOptions = {},
  ): Promise<ControlServer> {
    const control = new ControlServer(path, ctx, options);
    await new Promise<void>((resolve, reject) => {
      const server = control.#server;
      server.once('error', reject);
      // The socket file is made by bind(2) inside listen(): with this umask it is never more open than 0600.
      const umask = process.umask(0o177);
      try {
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      } finally {
        process.umask(umask);
      }
    });
    chmodSync(path, 0o600);
    return control;
  }

  /** Clients being served. */
  get clients(): number {
    return this.#clients.size;
  }

  /** What each client makes emu hold now, in bytes (ControlConnection.heldBytes). */
  heldBytes(): number[] {
    return [...this.#clients].map((c) => c.heldBytes);
  }

  /** For each socket the server holds, how long it has been open with nothing to do, in ms. */
  quietMs(): number[] {
    const now = performance.now();
    return [
      ...[...this.#clients].map((c) => c.quietMs),
      ...[...this.#refused.values()].map((at) => now - at),
    ];
  }

  /** Every socket the server holds: clients and refusals not yet gone. */
  get connections(): number {
    return this.#clients.size + this.#refused.size;
  }

  /**
   * Stops listening, closes every client once the request in hand is answered, and after
   * `closeTimeoutMs` destroys what is left (logged); removes the socket file. Idempotent; resolves when
   * every connection is gone.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const c of this.#clients) c.close();
    for (const s of this.#refused.keys()) s.destroy();
    const deadline = setTimeout(() => {
      const left = this.connections;
      if (left === 0) return;
      this.#log.warn(
        { clients: left, closeTimeoutMs: this.#limits.closeTimeoutMs },
        'control socket: clients still busy at shutdown: closed forcibly',
      );
      for (const c of this.#clients) c.destroy();
      for (const s of this.#refused.keys()) s.destroy();
    }, this.#limits.closeTimeoutMs);
    await closed;
    clearTimeout(deadline);
    // Every socket is closed; their 'close' events (which empty the sets) follow within a turn or two.
    for (let i = 0; i < 10 && this.connections > 0; i++) await setImmediate();
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }

  #accept(socket: Socket): void {
    socket.on('error', () => socket.destroy());
    if (this.#closing !== undefined || this.#clients.size >= this.#limits.maxClients) {
      this.#refuse(socket);
      return;
    }
    const client = new ControlConnection(
      socket,
      this.#limits,
      (line) => dispatchLine(this.ctx, line),
      this.#log,
    );
    this.#clients.add(client);
    socket.on('close', () => this.#clients.delete(client));
  }

  /** Tells the client it cannot be served and closes it once that is written (or after `lingerMs`). */
  #refuse(socket: Socket): void {
    this.#refused.set(socket, performance.now());
    const linger = setTimeout(() => socket.destroy(), this.#limits.lingerMs);
    socket.on('close', () => {
      clearTimeout(linger);
      this.#refused.delete(socket);
    });
    if (this.#closing !== undefined) {
      socket.destroy();
      return;
    }
    this.#log.warn({ maxClients: this.#limits.maxClients }, 'control socket: too many clients: one refused');
    const why = `too many control clients (at most ${this.#limits.maxClients})`;
    socket.end(replyLine(rpcError(null, RpcErrorCode.LIMIT, why)));
    socket.once('finish', () => socket.destroy());
  }
}
