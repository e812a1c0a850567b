/**
 * Fuzz target `control` (pnpm fuzz control): the control socket's JSON-RPC server, from several
 * clients at once that send anything: well-formed requests to every method with random and hostile
 * parameters (names like __proto__, control characters, long text, devargs of every shape), batches,
 * random JSON, random text, lines split anywhere or too long, floods whose replies are never read,
 * half-closes, more clients than it serves. After each input: nothing thrown escaped, no client held
 * more than its bounds, and once the input's clients are gone a well-behaved client is answered, the
 * server holds no connection, and the process's fd count is back at its baseline.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmudevRegistry } from '@emu/emudev';
import { register as registerGpio } from '@emu/example-gpio';
import { DataPlane } from '@emu/native';
import { VdevBus } from '@emu/vdev-bus';
import fc from 'fast-check';
import type { FuzzTarget } from '../../../scripts/fuzz/target.mjs';
import { openFds, sleep, turn, until } from '../../../scripts/fuzz/waiting.mjs';
import { METHODS } from '../src/control/methods.js';
import { ControlServer } from '../src/control/server.js';
import { RawControlClient } from '../src/control-env.fixture.js';
import type { LevelLogger } from '../src/logger.js';

const LIMITS = {
  maxClients: 4,
  maxLineBytes: 4096,
  lineTimeoutMs: 40,
  idleTimeoutMs: 80,
  unreadTimeoutMs: 60,
  lingerMs: 40,
  closeTimeoutMs: 100,
};
/** What one client may make emu hold: a line begun, a read's worth of lines and buffer, one reply. */
const HELD_BOUND = LIMITS.maxLineBytes + 2 * 64 * 1024 + 64 * 1024;

// Everything the input names as a relative path lands here (devices.add's sockets among them).
const dir = mkdtempSync(join(tmpdir(), 'emu-fuzz-control-'));
mkdirSync(join(dir, 'sub'));
process.chdir(join(dir, 'sub'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const escaped: unknown[] = [];
process.on('uncaughtException', (err) => escaped.push(err));
process.on('unhandledRejection', (err) => escaped.push(err));

const sink = () => {};
const logger: LevelLogger = { level: 'info', debug: sink, info: sink, warn: sink, error: sink };
const registry = new EmudevRegistry();
registerGpio(registry);
const bus = new VdevBus(registry, { logger });
const DEVICE = 'emu_gpio0';
const ctx = { bus, plane: DataPlane.shared(), logger, startedAt: Date.now(), version: '0.0.0-fuzz' };
const server = await ControlServer.listen(join(dir, 'emu.ctl'), ctx, { logger, ...LIMITS });
let baseline = -1;

/** emu_gpio0 as the input finds it; any device the input added goes again. */
async function resetDevices(): Promise<void> {
  // The bus runs its operations in order: once this one is refused, a devices.add of the input whose
  // client has gone meanwhile has finished too (its device is then on the bus, to be removed).
  await bus.remove('emu_none0').catch(() => {});
  for (const d of bus.devices()) if (d.name !== DEVICE) await bus.remove(d.name);
  if (!bus.get(DEVICE)) await bus.probe(`${DEVICE},path=${join(dir, 'g0.sock')}`);
  logger.level = 'info';
}

// Text of every kind a caller can give: names of Object.prototype, control characters, long text.
const nasty = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '', ' '),
  fc.constantFrom('a\nb', 'x\r\n', '\u0000', '\u001b[2J', '\u007f', '\u0085', '\u2028', '\ud800', 'é😀'),
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.integer({ min: 60, max: 5000 }).map((n) => 'n'.repeat(n)),
);
const deviceName = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(DEVICE, 'emu_gpio1', 'emu_gpio2', 'emu_iavf0', '__proto__0') },
  { weight: 1, arbitrary: nasty },
);
const pathValue = fc.oneof(
  fc.constantFrom('g1.sock', '../g2.sock', 'x.sock', join(dir, 'g3.sock'), join(dir, 'nope/g.sock')),
  fc.constantFrom('a\nb.sock', `${'p'.repeat(120)}.sock`, '', 'sub'),
  nasty,
);
const devargs = fc
  .tuple(
    fc.constantFrom('emu_gpio1', 'emu_gpio2', DEVICE, 'emu_iavf1', 'toString0', 'emu_gpio'),
    fc.array(
      fc.oneof(
        pathValue.map((p) => `path=${p}`),
        fc.oneof(fc.integer({ min: -1, max: 40 }).map(String), nasty).map((v) => `lines=${v}`),
        fc.constantFrom('mode=0660', 'mode=9', 'owner=root', 'owner=nobody', 'owner=99999999'),
        fc.constantFrom('group=0', 'allow_users=0:nobody', 'allow_users=', 'sealed_memory=yes'),
        fc.tuple(nasty, nasty).map(([k, v]) => `${k}=${v}`),
        nasty,
      ),
      { maxLength: 4 },
    ),
  )
  .map(([name, items]) => [name, ...items].join(','));
const json = fc.oneof(fc.jsonValue({ maxDepth: 3 }), nasty);

/** Parameters for each method: as the method wants them, and not. */
const params = (method: string): fc.Arbitrary<unknown> => {
  const device = deviceName.map((d) => ({ device: d }));
  const shaped: Record<string, fc.Arbitrary<unknown>> = {
    'devices.add': devargs.map((d) => ({ devargs: d })),
    'devices.remove': device,
    'attributes.list': device,
    'attributes.get': fc.record({
      device: deviceName,
      attribute: fc.oneof(fc.constantFrom('inputs', 'outputs', 'lines'), nasty),
    }),
    'attributes.set': fc.record({
      device: deviceName,
      attribute: fc.oneof(fc.constantFrom('inputs', 'outputs'), nasty),
      value: json,
    }),
    'link.set': fc.record({ device: deviceName, up: fc.oneof(fc.boolean(), json) }),
    'stats.get': fc.oneof(fc.constant({}), device),
    'capture.start': fc.record({ device: deviceName, path: pathValue, overwrite: fc.boolean() }),
    'capture.stop': device,
    'log.setLevel': fc.record({ level: fc.oneof(fc.constantFrom('debug', 'info', 'warn', 'silent'), nasty) }),
  };
  return fc.oneof(
    { weight: 4, arbitrary: Object.hasOwn(shaped, method) ? shaped[method] : fc.constant({}) },
    { weight: 1, arbitrary: fc.dictionary(nasty, json, { maxKeys: 3 }) },
    { weight: 1, arbitrary: json },
  );
};
/** A request: to a method with its parameters (built once per method), or to a name that is none. */
const request = fc
  .tuple(
    fc.oneof(
      ...Object.keys(METHODS).map((m) => fc.record({ method: fc.constant(m), params: params(m) })),
      fc.record({ method: nasty, params: params('') }),
    ),
    fc.oneof(fc.nat(), fc.string({ maxLength: 8 }), fc.constant(null), fc.constant(undefined), json),
    fc.constantFrom('2.0', '2.0', '2.0', '1.0'),
  )
  .map(([r, id, jsonrpc]) => ({ jsonrpc, ...r, ...(id === undefined ? {} : { id }) }));

type Action =
  | { kind: 'line'; text: string }
  | { kind: 'split'; text: string; at: number }
  | { kind: 'flood'; count: number }
  | { kind: 'pause' | 'resume' | 'end' | 'destroy' | 'turn' };

const line = fc.oneof(
  { weight: 6, arbitrary: request.map((r) => JSON.stringify(r)) },
  { weight: 1, arbitrary: fc.array(request, { maxLength: 70 }).map((b) => JSON.stringify(b)) },
  { weight: 1, arbitrary: json.map((j) => JSON.stringify(j) ?? 'null') },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 60 }) },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: LIMITS.maxLineBytes - 8, max: 2 * LIMITS.maxLineBytes })
      .map((n) => '{"jsonrpc":"2.0","id":1,"method":"x"}'.padEnd(n, ' ')),
  },
);
const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 8, arbitrary: line.map((text) => ({ kind: 'line' as const, text: `${text}\n` })) },
  { weight: 2, arbitrary: line.map((text) => ({ kind: 'line' as const, text })) }, // no newline
  {
    weight: 2,
    arbitrary: fc
      .tuple(line, fc.nat())
      .map(([text, at]) => ({ kind: 'split' as const, text: `${text}\n`, at: at % (text.length + 1) })),
  },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 100, max: 800 }).map((count) => ({ kind: 'flood' as const, count })),
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
  clients: Array<{ reading: boolean; actions: Action[] }>;
  /** Now and then, a wait before the clients go: long enough for the line, idle and unread timers. */
  waitMs: number;
}

export const target: FuzzTarget<Input> = {
  arbitrary: fc.record({
    clients: fc.array(fc.record({ reading: fc.boolean(), actions: fc.array(action, { maxLength: 8 }) }), {
      minLength: 1,
      maxLength: 6,
    }),
    waitMs: fc.oneof(
      { weight: 100, arbitrary: fc.constant(0) },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 400 }) },
    ),
  }),
  check: checkInput,
};

async function checkInput(input: Input): Promise<void> {
  await resetDevices();
  if (baseline < 0) baseline = openFds();
  const clients: RawControlClient[] = [];
  try {
    clients.push(
      ...(await Promise.all(input.clients.map((c) => RawControlClient.connected(server.path, c.reading)))),
    );
    const longest = Math.max(...input.clients.map((c) => c.actions.length));
    for (let step = 0; step < longest; step++) {
      for (const [i, c] of input.clients.entries()) {
        const a = c.actions[step];
        const client = clients[i];
        if (a === undefined || client.socket.destroyed) continue;
        switch (a.kind) {
          case 'line':
            client.send(a.text);
            break;
          case 'split':
            client.send(a.text.slice(0, a.at));
            await turn();
            client.send(a.text.slice(a.at));
            break;
          case 'flood':
            client.send(
              `${JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'emu.methods' })}\n`.repeat(a.count),
            );
            break;
          case 'pause':
            client.socket.pause();
            break;
          case 'resume':
            client.socket.resume();
            break;
          case 'end':
            client.socket.end();
            break;
          case 'destroy':
            client.destroy();
            break;
          case 'turn':
            await turn();
            break;
        }
      }
      await turn();
      const held = server.heldBytes();
      if (held.some((b) => b > HELD_BOUND)) throw new Error(`a client holds ${Math.max(...held)} bytes`);
      if (server.connections > 2 * LIMITS.maxClients) throw new Error(`${server.connections} connections`);
      if (escaped.length > 0) throw escaped[0];
    }
    if (input.waitMs > 0) await sleep(input.waitMs);
    // Whatever its client did, a connection with nothing to do is closed by emu itself once its line or
    // idle timer has run and the linger passed. (One still busy answering a client that reads is not
    // idle: a flood of requests keeps it so for as long as the client reads.)
    // A timer fires no earlier than asked, and later by as long as this process was held (a loaded
    // machine): a connection past the bound must then be closed by emu within a grace, not be left.
    const bound = Math.max(LIMITS.idleTimeoutMs, LIMITS.lineTimeoutMs) + LIMITS.lingerMs + 50;
    const stale = () => Math.max(0, ...server.quietMs());
    if (stale() > bound) {
      await until(
        () => stale() <= bound,
        `a connection left open with nothing to do (${Math.round(stale())} ms)`,
        2000,
      );
    }
  } finally {
    for (const c of clients) c.destroy();
  }
  await until(() => server.connections === 0, `the input's ${server.connections} connections to go`);
  // A well-behaved client is served. A connection of the input that the kernel had completed may reach
  // emu only now (after the check above), taking a slot for a moment: told "too many", it tries again.
  for (let attempt = 1; ; attempt++) {
    const good = await RawControlClient.connected(server.path);
    try {
      good.request(7, 'devices.list');
      const reply = await good.reply(7).catch((err: Error) => {
        const refusal = good.lines[0] as { error?: { message?: string } } | undefined;
        if (attempt < 5 && refusal?.error?.message?.startsWith('too many control clients')) return undefined;
        throw new Error(
          `${err.message} (it got ${JSON.stringify(good.lines)}, ${good.error?.code ?? 'no error'})`,
        );
      });
      if (reply === undefined) continue;
      if (!Array.isArray(reply.result)) throw new Error(`devices.list answered ${JSON.stringify(reply)}`);
      break;
    } finally {
      good.destroy();
    }
  }
  await resetDevices();
  await until(
    () => server.connections === 0 && openFds() <= baseline,
    `fds back at the baseline (${openFds() - baseline} over)`,
  );
  if (escaped.length > 0) throw escaped.splice(0)[0];
}
