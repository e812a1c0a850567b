/** A raw HTTP client for the metrics endpoint's tests and fuzz target: bytes out, everything back. */
import { connect, type Socket } from 'node:net';

/** A raw TCP client: what it sends, everything it gets, whether the server closed. */
export class RawHttpClient {
  readonly socket: Socket;
  got = '';
  closed = false;
  /**
   * `reading: false` leaves what emu sends unread; `halfOpen`: the client does not end its side when
   * emu ends its own (emu's linger must close it).
   */
  constructor(port: number, { reading = true, halfOpen = false } = {}) {
    this.socket = connect({ port, host: '127.0.0.1', allowHalfOpen: halfOpen });
    this.socket.setEncoding('latin1');
    this.socket.on('data', (d: string) => {
      this.got += d;
    });
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      this.closed = true;
    });
    if (!reading) this.socket.pause();
  }

  /** Resolves once connected, or closed before that. */
  connected(): Promise<void> {
    return new Promise((resolve) => {
      this.socket.once('connect', resolve);
      this.socket.once('close', resolve);
    });
  }

  /** The status lines it got, e.g. `HTTP/1.1 200`. */
  get statuses(): string[] {
    return this.got.match(/^HTTP\/1\.1 \d+/gm) ?? [];
  }
}
