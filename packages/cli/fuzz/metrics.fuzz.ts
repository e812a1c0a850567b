/**
 * Fuzz target `metrics` (pnpm fuzz metrics): the metrics endpoint's HTTP, from several clients at once
 * that send anything: request lines of any method, target and version, random and oversized headers,
 * heads ended or not, pipelined requests by the hundred, raw bytes, heads split anywhere, half-closes,
 * answers never read, more clients than it answers. After each input: nothing thrown escaped, emu held
 * no more connections than its bounds, every client got at most one answer with a status it knows,
 * and once the input's clients are gone a scrape is answered, no connection is left and the process's
 * fd count is back at its baseline.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmudevRegistry } from '@emu/emudev';
import { register as registerGpio } from '@emu/example-gpio';
import { DataPlane } from '@emu/native';
import { VdevBus } from '@emu/vdev-bus';
import fc from 'fast-check';
import type { FuzzTarget } from '../../../scripts/fuzz/target.mjs';
import { openFds, sleep, turn, until } from '../../../scripts/fuzz/waiting.mjs';
import { RawHttpClient } from '../src/http-env.fixture.js';
import { Metrics } from '../src/metrics.js';

const LIMITS = {
  maxConnections: 4,
  maxHeaderBytes: 1024,
  headersTimeoutMs: 100,
  socketTimeoutMs: 100,
  lingerMs: 30,
  lingerBytes: 16 * 1024,
};
const STATUSES = new Set(['200', '400', '404', '405', '408', '431', '503', '505']);

const escaped: unknown[] = [];
process.on('uncaughtException', (err) => escaped.push(err));
process.on('unhandledRejection', (err) => escaped.push(err));

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const dir = mkdtempSync(join(tmpdir(), 'emu-fuzz-metrics-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const registry = new EmudevRegistry();
registerGpio(registry);
const bus = new VdevBus(registry, { logger: quiet });
await bus.probe(`emu_gpio0,path=${join(dir, 'g0.sock')}`);
const metrics = new Metrics({
  devices: () => bus.devices(),
  plane: DataPlane.shared(),
  startedAt: Date.now(),
});
metrics.observe('emu_gpio0', 'REGION_READ', 1e-5);
const { port } = await metrics.listen('127.0.0.1', 0, LIMITS);
let baseline = -1;
let inputs = 0;

const token = fc.oneof(
  fc.constantFrom('GET', 'GET', 'GET', 'HEAD', 'POST', 'PUT', 'OPTIONS', 'CONNECT', 'get', 'PRI'),
  fc.string({ maxLength: 12 }),
);
const requestTarget = fc.oneof(
  fc.constantFrom(
    '/metrics',
    '/metrics?x=1',
    '/',
    '*',
    'http://emu:9464/metrics',
    'http://emu',
    '/metrics#a',
  ),
  fc.constantFrom('/../metrics', '//metrics', '/%00', `/${'m'.repeat(2000)}`),
  fc.string({ maxLength: 24 }),
);
const version = fc.oneof(
  fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/0.9', 'http/1.1', 'HTTP/1.10', ''),
  fc.string({ maxLength: 10 }),
);
const header = fc.oneof(
  fc.constantFrom('Host: emu', 'Accept: text/plain', 'Connection: keep-alive', 'Transfer-Encoding: chunked'),
  fc.constantFrom('Content-Length: 5', 'Content-Length: -1', 'Expect: 100-continue', 'Upgrade: h2c'),
  fc.integer({ min: 100, max: 3000 }).map((n) => `X-Long: ${'y'.repeat(n)}`),
  fc.string({ maxLength: 40 }),
);
const head = fc
  .record({
    method: token,
    target: requestTarget,
    version,
    headers: fc.array(header, { maxLength: 6 }),
    eol: fc.constantFrom('\r\n', '\r\n', '\r\n', '\n'),
    ended: fc.constantFrom(true, true, true, false),
    body: fc.oneof(
      { weight: 4, arbitrary: fc.constant('') },
      { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
    ),
  })
  .map((h) => {
    const lines = [`${h.method} ${h.target} ${h.version}`, ...h.headers];
    return lines.join(h.eol) + h.eol + (h.ended ? h.eol : '') + h.body;
  });

type Action =
  | { kind: 'send'; text: string }
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'split'; text: string; at: number }
  | { kind: 'pipeline'; count: number }
  | { kind: 'pause' | 'resume' | 'end' | 'destroy' | 'turn' };

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 8, arbitrary: head.map((text) => ({ kind: 'send' as const, text })) },
  {
    weight: 1,
    arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes) => ({ kind: 'bytes' as const, bytes })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(head, fc.nat())
      .map(([text, at]) => ({ kind: 'split' as const, text, at: at % (text.length + 1) })),
  },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 2, max: 600 }).map((count) => ({ kind: 'pipeline' as const, count })),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom<Action>(
      { kind: 'pause' },
      { kind: 'resume' },
      { kind: 'end' },
      { kind: 'destroy' },
      { kind: 'turn' },
    ),
  },
);

interface Input {
  clients: Array<{ reading: boolean; halfOpen: boolean; actions: Action[] }>;
  /** Now and then a wait before the clients go: long enough for the head and socket timeouts. */
  waitMs: number;
}

/** What a client got must be at most one answer, with a status emu gives. */
function checkAnswers(c: RawHttpClient): void {
  const statuses = [...c.got.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => m[1]);
  if (statuses.length > 1) throw new Error(`${statuses.length} answers on one connection: ${statuses}`);
  if (c.got !== '' && !c.got.startsWith('HTTP/1.1 ')) throw new Error(`not an answer: ${c.got.slice(0, 80)}`);
  if (statuses.length === 1 && !STATUSES.has(statuses[0])) throw new Error(`status ${statuses[0]}`);
}

export const target: FuzzTarget<Input> = {
  arbitrary: fc.record({
    clients: fc.array(
      fc.record({
        reading: fc.boolean(),
        halfOpen: fc.boolean(),
        actions: fc.array(action, { maxLength: 6 }),
      }),
      {
        minLength: 1,
        maxLength: 8,
      },
    ),
    waitMs: fc.oneof(
      { weight: 100, arbitrary: fc.constant(0) },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 450 }) },
    ),
  }),
  check: checkInput,
};

async function checkInput(input: Input): Promise<void> {
  if (baseline < 0) baseline = openFds();
  const clients = input.clients.map((c) => new RawHttpClient(port, c));
  try {
    await Promise.all(clients.map((c) => c.connected()));
    const longest = Math.max(...input.clients.map((c) => c.actions.length));
    for (let step = 0; step < longest; step++) {
      for (const [i, c] of input.clients.entries()) {
        const a = c.actions[step];
        const s = clients[i].socket;
        if (a === undefined || s.destroyed) continue;
        switch (a.kind) {
          case 'send':
            s.write(a.text);
            break;
          case 'bytes':
            s.write(a.bytes);
            break;
          case 'split':
            s.write(a.text.slice(0, a.at));
            await turn();
            s.write(a.text.slice(a.at));
            break;
          case 'pipeline':
            s.write('GET /metrics HTTP/1.1\r\nHost: emu\r\n\r\n'.repeat(a.count));
            break;
          case 'pause':
            s.pause();
            break;
          case 'resume':
            s.resume();
            break;
          case 'end':
            s.end();
            break;
          case 'destroy':
            s.destroy();
            break;
          case 'turn':
            await turn();
            break;
        }
      }
      await turn();
      if (metrics.connections > 2 * LIMITS.maxConnections) {
        throw new Error(`${metrics.connections} connections`);
      }
      if (escaped.length > 0) throw escaped[0];
    }
    if (input.waitMs > 0) await sleep(input.waitMs);
    for (const c of clients) checkAnswers(c);
    // Long enough for a head to time out, an answer nobody reads to be dropped and a linger to pass:
    // emu closed every connection of the input itself (a half-open client cannot tell: emu counts).
    if (input.waitMs >= LIMITS.headersTimeoutMs + LIMITS.socketTimeoutMs + LIMITS.lingerMs + 50) {
      if (metrics.connections > 0)
        throw new Error(`${metrics.connections} connections left after ${input.waitMs} ms`);
    }
  } finally {
    for (const c of clients) c.socket.destroy();
  }
  await until(() => metrics.connections === 0, `the input's ${metrics.connections} connections to go`);
  // A request is answered: a scrape every 16th input, else a GET of no page (404, no scrape: faster).
  // A 408 means this machine was too slow for the small head timeout: again.
  const scrape = ++inputs % 16 === 0;
  for (let attempt = 1; ; attempt++) {
    const good = new RawHttpClient(port);
    try {
      good.socket.write(`GET ${scrape ? '/metrics' : '/none'} HTTP/1.1\r\nHost: emu\r\n\r\n`);
      await until(() => good.closed, 'the scrape to be answered');
    } finally {
      good.socket.destroy();
    }
    if (good.got.startsWith('HTTP/1.1 408 ') && attempt < 3) continue;
    const ok = scrape
      ? good.got.startsWith('HTTP/1.1 200 OK\r\n') && good.got.includes('emu_device_info{device="emu_gpio0"')
      : good.got.startsWith('HTTP/1.1 404 Not Found\r\n');
    if (!ok) {
      throw new Error(`the scrape was answered ${JSON.stringify(good.got.slice(0, 120))}`);
    }
    break;
  }
  await until(
    () => metrics.connections === 0 && openFds() <= baseline,
    `fds back at the baseline (${openFds() - baseline} over)`,
  );
  if (escaped.length > 0) throw escaped.splice(0)[0];
}
