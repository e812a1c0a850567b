/**
 * The metrics endpoint's HTTP: one request per connection. Its head is read (at most `maxHeaderBytes`,
 * within `headersTimeoutMs`), only its request line is looked at, nothing after the head is parsed, and
 * the answer goes out with `Connection: close`. That is all a Prometheus scrape needs, and it bounds
 * what a connection can cost: one head's bytes, one answer, one scrape.
 *
 * Why not node:http: its parser runs over each read of a socket (up to 64 KiB) at once and makes a
 * request and a response for every pipelined request in it before any handler can stop it; with
 * `maxRequestsPerSocket: 1` it answers those with 503s itself, and still 3 connections of 1,900
 * pipelined GETs (190 KB) held the event loop for 0.5 to 1 s on this machine, and every device with it.
 */
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { setImmediate as turn } from 'node:timers/promises';

export interface OneRequestHttpLimits {
  /** Connections being answered at once; up to as many more are told 503 and closed. */
  maxConnections: number;
  /** Bytes of a request's head (request line and headers). */
  maxHeaderBytes: number;
  /** A request's head must arrive within this. */
  headersTimeoutMs: number;
  /** A socket with no traffic this long is destroyed (an answer left unread). */
  socketTimeoutMs: number;
  /** After the answer: how long, and how many bytes of, the client's leftovers are read and dropped
   * before the socket is closed (a close with unread bytes would reset the connection, and TCP could
   * then drop the answer on its way). */
  lingerMs: number;
  lingerBytes: number;
}

export interface HttpAnswer {
  status: number;
  type: string;
  body: string;
}

/** Answers one request: GET or HEAD of a path (the request target without its query). */
export type Responder = (method: 'GET' | 'HEAD', path: string) => Promise<HttpAnswer>;

const REASONS: Record<number, string> = {
  200: 'OK',
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  505: 'HTTP Version Not Supported',
};

const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/(\d)\.(\d)$/;

const text = (status: number, body: string): HttpAnswer => ({ status, type: 'text/plain', body });

export class OneRequestHttpServer {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #answering = 0;

  constructor(
    private readonly limits: OneRequestHttpLimits,
    private readonly respond: Responder,
  ) {
    // Half-open: a client that shuts down its side after the request still gets the answer.
    this.#server = createServer({ allowHalfOpen: true }, (socket) => this.#accept(socket));
    // The hard cap, refusals included: past it the kernel's connection is closed unanswered.
    this.#server.maxConnections = 2 * limits.maxConnections;
  }

  /** Sockets open: being answered, refused, or lingering. */
  get connections(): number {
    return this.#sockets.size;
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    this.#server.on('error', () => {});
    return this.#server.address() as AddressInfo;
  }

  /** Stops listening and destroys every connection; resolves when they are gone. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const s of this.#sockets) s.destroy();
    await closed;
    // Every socket is closed; their 'close' events (which empty the set) follow within a turn or two.
    for (let i = 0; i < 10 && this.#sockets.size > 0; i++) await turn();
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('error', () => socket.destroy());
    // The idle timeout runs once there is an answer to take (#send); the head has a timer of its own.
    socket.on('timeout', () => socket.destroy());
    if (this.#answering >= this.limits.maxConnections) {
      socket.on('close', () => this.#sockets.delete(socket));
      this.#send(socket, text(503, 'too many connections\n'), false);
      return;
    }
    this.#answering++;
    socket.on('close', () => {
      this.#answering--;
      this.#sockets.delete(socket);
    });
    const head = Buffer.alloc(this.limits.maxHeaderBytes);
    let length = 0;
    let heard = false;
    const finish = (answer: HttpAnswer | { method: 'GET' | 'HEAD'; path: string }) => {
      if (heard) return;
      heard = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      if ('status' in answer) {
        this.#send(socket, answer, false);
        return;
      }
      this.respond(answer.method, answer.path).then(
        (a) => this.#send(socket, a, answer.method === 'HEAD'),
        (err: unknown) => this.#send(socket, text(500, `${(err as Error)?.message ?? String(err)}\n`), false),
      );
    };
    // A turn after it fires: after a stall of the event loop, a head sent in time is read first.
    const timer = setTimeout(
      () => setImmediate(() => finish(text(408, 'the request took too long\n'))),
      this.limits.headersTimeoutMs,
    );
    const onData = (chunk: Buffer) => {
      const from = Math.max(0, length - 3);
      const taken = Math.min(head.length - length, chunk.length);
      chunk.copy(head, length, 0, taken);
      length += taken;
      const received = head.subarray(0, length);
      const end = received.indexOf('\r\n\r\n', from);
      if (end >= 0) finish(request(received.subarray(0, received.indexOf('\r\n')).toString('latin1')));
      else if (length === head.length) finish(text(431, 'the request head is too long\n'));
    };
    socket.on('data', onData);
    socket.once('end', () => {
      if (!heard) finish(text(400, 'the request ended early\n'));
    });
  }

  /**
   * Writes the answer and ends the socket; once it has left, drops what the client still sends (for
   * `lingerMs`, up to `lingerBytes`) until the client closes too, then closes.
   */
  #send(socket: Socket, answer: HttpAnswer, headOnly: boolean): void {
    if (socket.destroyed) return;
    // From now on it is the client's turn: it must take the answer (no traffic for this long: destroyed).
    socket.setTimeout(this.limits.socketTimeoutMs);
    const body = Buffer.from(answer.body);
    const lines = [
      `HTTP/1.1 ${answer.status} ${REASONS[answer.status] ?? 'Unknown'}`,
      `Content-Type: ${answer.type}`,
      `Content-Length: ${body.length}`,
      'Connection: close',
      ...(answer.status === 405 ? ['Allow: GET, HEAD'] : []),
      '',
      '',
    ];
    socket.write(lines.join('\r\n'));
    if (headOnly) socket.end();
    else socket.end(body);
    let peerEnded = false;
    let dropped = 0;
    socket.on('end', () => {
      peerEnded = true;
      if (socket.writableFinished) socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > this.limits.lingerBytes) socket.destroy();
    });
    socket.once('finish', () => {
      if (peerEnded) socket.destroy();
      const linger = setTimeout(() => socket.destroy(), this.limits.lingerMs);
      socket.once('close', () => clearTimeout(linger));
    });
    socket.resume();
  }
}

/** The request line's method and path, or the answer to a line that is none emu takes. */
function request(line: string): HttpAnswer | { method: 'GET' | 'HEAD'; path: string } {
  const m = REQUEST_LINE.exec(line);
  if (!m) return text(400, 'not an HTTP/1.x request\n');
  if (m[3] !== '1') return text(505, 'HTTP/1.x only\n');
  const [, method, target] = m;
  if (method !== 'GET' && method !== 'HEAD') return text(405, 'GET or HEAD only\n');
  // origin-form (/metrics?x) or absolute-form (http://host/metrics?x)
  const absolute = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*([^?#]*)/i.exec(target);
  const path = (absolute ? absolute[1] || '/' : target).split(/[?#]/)[0];
  return { method, path };
}
