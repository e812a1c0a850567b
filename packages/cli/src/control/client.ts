/** A client of emu's control socket: `call(method, params)` resolves with the result or rejects. */
import { connect, type Socket } from 'node:net';
import { LineSplitter, type RpcErrorBody, type RpcResponse } from './protocol.js';

/** An error reply from emu (`code` is JSON-RPC's; `data.code` the device's, e.g. ENOENT). */
export class ControlError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: RpcErrorBody['data'],
  ) {
    super(message);
    this.name = 'ControlError';
  }
}

export class ControlClient {
  #nextId = 1;
  readonly #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  #gone?: Error;

  private constructor(
    readonly path: string,
    private readonly socket: Socket,
  ) {
    const lines = new LineSplitter(64 << 20);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      let replies: string[];
      try {
        replies = lines.push(chunk);
      } catch (err) {
        this.#fail(err as Error);
        return;
      }
      for (const line of replies) this.#reply(line);
    });
    socket.on('error', (err) => this.#fail(err));
    socket.on('close', () => this.#fail(new Error(`emu closed the control socket ${path}`)));
  }

  /** Connects; rejects with the errno (ENOENT: nothing there; ECONNREFUSED: no emu listening). */
  static connect(path: string): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new ControlClient(path, socket));
      });
    });
  }

  /** Whether the connection is gone (emu closed it, e.g. after it stayed idle, or close() was called). */
  get closed(): boolean {
    return this.#gone !== undefined || this.socket.destroyed;
  }

  call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    if (this.#gone) return Promise.reject(this.#gone);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.socket.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  #reply(line: string): void {
    let reply: RpcResponse;
    try {
      reply = JSON.parse(line) as RpcResponse;
    } catch {
      this.#fail(new Error(`not a JSON-RPC reply from ${this.path}: ${line.slice(0, 80)}`));
      return;
    }
    const waiter = typeof reply.id === 'number' ? this.#pending.get(reply.id) : undefined;
    if ('error' in reply) {
      const e = new ControlError(reply.error.code, reply.error.message, reply.error.data);
      // An error for no request of ours (id null: the server refused the connection or a line).
      if (waiter) {
        this.#pending.delete(reply.id as number);
        waiter.reject(e);
      } else this.#fail(e);
      return;
    }
    if (!waiter) return;
    this.#pending.delete(reply.id as number);
    waiter.resolve(reply.result);
  }

  #fail(err: Error): void {
    this.#gone ??= err;
    for (const w of this.#pending.values()) w.reject(this.#gone);
    this.#pending.clear();
    this.socket.destroy();
  }
}
