/**
 * A control server on its own (no emu around it, no device), with the limits a test or fuzz target
 * picks, and a raw client that sends any bytes and keeps every reply line: for the control socket's
 * bounds (control-limits.test.ts) and its fuzz target (fuzz/control.fuzz.ts).
 */
import { connect, type Socket } from 'node:net';
import { EmudevRegistry } from '@emu/emudev';
import { DataPlane } from '@emu/native';
import { VdevBus } from '@emu/vdev-bus';
import { ControlServer, type ControlServerOptions } from './control/server.js';
import { streamLogger } from './logger.js';
import { tempDir, until } from './test-env.fixture.js';

export interface StandaloneControl {
  server: ControlServer;
  path: string;
  /** What the server logged (info and up). */
  log: { text: string };
  close(): Promise<void>;
}

export async function standaloneControl(options: ControlServerOptions = {}): Promise<StandaloneControl> {
  const tmp = tempDir();
  const path = tmp.path('emu.ctl');
  const log = { text: '' };
  const logger = streamLogger('info', { write: (s: string) => (log.text += s) });
  const bus = new VdevBus(new EmudevRegistry(), { logger });
  const ctx = { bus, plane: DataPlane.shared(), logger, startedAt: Date.now(), version: '0.0.0-test' };
  const server = await ControlServer.listen(path, ctx, { logger, ...options });
  return {
    server,
    path,
    log,
    close: async () => {
      await server.close();
      tmp.cleanup();
    },
  };
}

/** A client that sends raw bytes and keeps the reply lines; it reads only while `reading`. */
export class RawControlClient {
  readonly socket: Socket;
  readonly lines: unknown[] = [];
  /** Bytes received that are not a complete line yet. */
  partial = '';
  ended = false;
  closed = false;
  error?: NodeJS.ErrnoException;

  /** Called at every reply line and at close (reply() waits on it). */
  #wake = () => {};

  constructor(path: string, reading = true) {
    this.socket = connect(path);
    this.socket.setEncoding('utf8');
    this.socket.on('data', (chunk: string) => {
      const parts = (this.partial + chunk).split('\n');
      this.partial = parts.pop()!;
      for (const p of parts) this.lines.push(JSON.parse(p));
      this.#wake();
    });
    this.socket.on('end', () => {
      this.ended = true;
    });
    this.socket.on('error', (err) => {
      this.error = err;
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.#wake();
    });
    if (!reading) this.socket.pause();
  }

  static async connected(path: string, reading = true): Promise<RawControlClient> {
    const c = new RawControlClient(path, reading);
    await new Promise<void>((resolve, reject) => {
      c.socket.once('connect', resolve);
      c.socket.once('error', reject);
    });
    return c;
  }

  send(text: string): boolean {
    return this.socket.write(text);
  }

  request(id: number, method: string, params: Record<string, unknown> = {}): boolean {
    return this.send(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
  }

  async reply(id: number, timeoutMs = 3000): Promise<Record<string, unknown>> {
    const has = () => this.lines.find((l) => (l as { id?: unknown }).id === id);
    const deadline = Date.now() + timeoutMs;
    while (has() === undefined && !this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for the reply to request ${id}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    const r = has();
    if (r === undefined) throw new Error(`closed before the reply to request ${id}`);
    return r as Record<string, unknown>;
  }

  async waitClosed(timeoutMs = 3000): Promise<void> {
    await until(() => this.closed, 'the server to close the connection', timeoutMs);
  }

  destroy(): void {
    this.socket.destroy();
  }
}
