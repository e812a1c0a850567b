/**
 * The control socket's wire format: JSON-RPC 2.0 (https://www.jsonrpc.org/specification), one JSON
 * text per line (newline-delimited, as SPDK's and QMP's clients read), over a UNIX stream socket.
 * Shared by the server (control/server.ts) and the client (control/client.ts).
 */

/** The error codes JSON-RPC 2.0 fixes (section 5.1), and ours from its server-error range. */
export const RpcErrorCode = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  /** The request was fine; what it asked failed (no such device, file exists…). `data.code` says why. */
  FAILED: -32000,
  /** Too many clients, or a line too long: the connection is closed after this reply. */
  LIMIT: -32001,
} as const;

/** The longest request line the server takes (a devargs string is far shorter). */
export const MAX_LINE_BYTES = 64 * 1024;

/** The most requests one batch may hold (each is handled in a turn of the event loop of its own). */
export const MAX_BATCH = 64;

export interface RpcRequest {
  jsonrpc: '2.0';
  method: string;
  params?: Record<string, unknown>;
  /** Absent: a notification, answered with nothing. */
  id?: string | number | null;
}

export interface RpcErrorBody {
  code: number;
  message: string;
  /** For FAILED: `{ code }`, the errno-like code of the error (ENOENT, EEXIST, EINVAL…). */
  data?: { code?: string };
}

export type RpcResponse =
  | { jsonrpc: '2.0'; id: string | number | null; result: unknown }
  | { jsonrpc: '2.0'; id: string | number | null; error: RpcErrorBody };

/**
 * Splits a text stream into lines; refuses a line longer than `max` bytes. Linear in what it is given:
 * each chunk is scanned once, and a line arriving a byte at a time is joined once, when it ends.
 */
export class LineSplitter {
  #parts: string[] = [];
  #bytes = 0;

  constructor(private readonly max = MAX_LINE_BYTES) {}

  /** Bytes of a line begun and not yet ended. */
  get pendingBytes(): number {
    return this.#bytes;
  }

  /** The complete lines in `chunk` (with what came before it), blank ones left out; RangeError past `max`. */
  push(chunk: string): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let nl = chunk.indexOf('\n'); nl >= 0; nl = chunk.indexOf('\n', start)) {
      this.#take(chunk.slice(start, nl));
      const line = this.#parts.join('');
      this.#parts = [];
      this.#bytes = 0;
      if (line.trim() !== '') lines.push(line);
      start = nl + 1;
    }
    this.#take(chunk.slice(start));
    return lines;
  }

  #take(piece: string): void {
    if (piece === '') return;
    this.#bytes += Buffer.byteLength(piece);
    if (this.#bytes > this.max) throw new RangeError(`a request line is longer than ${this.max} bytes`);
    this.#parts.push(piece);
  }
}
