/**
 * The control socket: JSON-RPC 2.0 requests, one per line (control/protocol.ts), answered from the
 * method table (control/methods.ts). A client can ask anything and send anything: a malformed request
 * gets a JSON-RPC error and the connection goes on; devices never notice. Every queue a client can
 * fill is bounded: the line length, requests waiting (read stops while one is handled), replies it
 * leaves unread, and the number of clients.
 */
import { chmodSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { showText } from '@emu/emudev';
import type { Logger } from '@emu/vdev-bus';
import { type ControlContext, METHODS } from './methods.js';
import { LineSplitter, type RpcErrorBody, RpcErrorCode, type RpcResponse } from './protocol.js';

export interface ControlServerOptions {
  /** Most clients at once; one more is told so and closed. Default 16. */
  maxClients?: number;
  /** Bytes of replies a client may leave unread before it is dropped. Default 4 MiB. */
  maxUnreadBytes?: number;
  logger?: Logger;
}

type Id = string | number | null;

class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: RpcErrorBody['data'],
  ) {
    super(message);
  }
}

export class ControlServer {
  readonly #server: Server;
  readonly #clients = new Set<Socket>();
  readonly #maxClients: number;
  readonly #maxUnread: number;
  #closed = false;

  private constructor(
    readonly path: string,
    private readonly ctx: ControlContext,
    options: ControlServerOptions,
  ) {
    this.#maxClients = options.maxClients ?? 16;
    this.#maxUnread = options.maxUnreadBytes ?? 4 << 20;
    this.#server = createServer((socket) => this.#accept(socket));
    this.#server.on('error', (err) => options.logger?.error({ path }, `control socket: ${err.message}`));
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

  get clients(): number {
    return this.#clients.size;
  }

  /** Stops listening, drops every client, removes the socket file. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of this.#clients) c.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }

  #accept(socket: Socket): void {
    socket.setEncoding('utf8');
    socket.on('error', () => socket.destroy());
    if (this.#clients.size >= this.#maxClients) {
      this.#send(
        socket,
        error(null, RpcErrorCode.LIMIT, `too many control clients (at most ${this.#maxClients})`),
      );
      socket.end();
      return;
    }
    this.#clients.add(socket);
    socket.on('close', () => this.#clients.delete(socket));
    const lines = new LineSplitter();
    const waiting: string[] = [];
    let busy = false;
    const drain = async () => {
      if (busy) return;
      busy = true;
      // One request at a time, in order: replies come back in request order and reading waits.
      socket.pause();
      while (waiting.length > 0 && !socket.destroyed) {
        const reply = await this.#handleLine(waiting.shift()!);
        if (reply !== undefined) this.#send(socket, reply);
      }
      busy = false;
      if (!socket.destroyed) socket.resume();
    };
    socket.on('data', (chunk: string) => {
      try {
        waiting.push(...lines.push(chunk));
      } catch (err) {
        this.#send(socket, error(null, RpcErrorCode.LIMIT, (err as Error).message));
        socket.end();
        return;
      }
      void drain();
    });
  }

  #send(socket: Socket, reply: RpcResponse | RpcResponse[]): void {
    if (socket.destroyed) return;
    if (socket.writableLength > this.#maxUnread) {
      socket.destroy();
      return;
    }
    socket.write(`${JSON.stringify(reply)}\n`);
  }

  /** The reply to one line (a request, a batch, or garbage), or undefined for notifications only. */
  async #handleLine(line: string): Promise<RpcResponse | RpcResponse[] | undefined> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (err) {
      return error(null, RpcErrorCode.PARSE_ERROR, `parse error: ${(err as Error).message}`);
    }
    if (!Array.isArray(parsed)) return this.#handle(parsed);
    if (parsed.length === 0) return error(null, RpcErrorCode.INVALID_REQUEST, 'an empty batch');
    const replies: RpcResponse[] = [];
    for (const request of parsed) {
      const reply = await this.#handle(request);
      if (reply) replies.push(reply);
    }
    return replies.length > 0 ? replies : undefined;
  }

  async #handle(request: unknown): Promise<RpcResponse | undefined> {
    const r = request as Record<string, unknown> | null;
    const id = validId(r?.id) ? (r!.id as Id) : null;
    const notification = r !== null && typeof r === 'object' && !('id' in r);
    try {
      if (r === null || typeof r !== 'object' || r.jsonrpc !== '2.0' || typeof r.method !== 'string') {
        throw new RpcError(
          RpcErrorCode.INVALID_REQUEST,
          'invalid request: expected {"jsonrpc":"2.0","method":"…","params":{…},"id":…}',
        );
      }
      if ('id' in r && !validId(r.id)) {
        throw new RpcError(
          RpcErrorCode.INVALID_REQUEST,
          'invalid request: id must be a string, number or null',
        );
      }
      const spec = Object.hasOwn(METHODS, r.method) ? METHODS[r.method as keyof typeof METHODS] : undefined;
      if (!spec) {
        throw new RpcError(
          RpcErrorCode.METHOD_NOT_FOUND,
          `no method ${showText(r.method)} (methods: ${Object.keys(METHODS).join(', ')})`,
        );
      }
      const params = spec.params.safeParse(r.params ?? {});
      if (!params.success) {
        const why = params.error.issues
          .map((i: { path: PropertyKey[]; message: string }) =>
            i.path.length > 0 ? `${i.path.join('.')}: ${i.message}` : i.message,
          )
          .join('; ');
        throw new RpcError(RpcErrorCode.INVALID_PARAMS, `${r.method}: ${why}`);
      }
      // biome-ignore lint/suspicious/noExplicitAny: each row's handler takes its own params' type
      const result = await (spec.handle as (ctx: ControlContext, p: any) => unknown)(this.ctx, params.data);
      return notification ? undefined : { jsonrpc: '2.0', id, result: result ?? null };
    } catch (err) {
      if (notification) return undefined;
      if (err instanceof RpcError) return error(id, err.code, err.message, err.data);
      const code = (err as { code?: unknown }).code;
      return error(
        id,
        RpcErrorCode.FAILED,
        (err as Error).message ?? String(err),
        typeof code === 'string' ? { code } : undefined,
      );
    }
  }
}

function validId(id: unknown): boolean {
  return id === null || typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id));
}

function error(id: Id, code: number, message: string, data?: RpcErrorBody['data']): RpcResponse {
  return { jsonrpc: '2.0', id, error: data ? { code, message, data } : { code, message } };
}
