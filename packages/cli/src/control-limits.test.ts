/**
 * The control socket's bounds, each with a small limit, against a control server on its own: what a
 * client that never reads, never ends a line, dribbles, sends too much or just stays can make emu hold,
 * and that close() ends within its bound whatever the clients do. A well-behaved client is served
 * after each.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { LineSplitter, RpcErrorCode } from './control/protocol.js';
import { RawControlClient, type StandaloneControl, standaloneControl } from './control-env.fixture.js';
import { statsMain } from './stats-view.js';
import { Capture, until } from './test-env.fixture.js';

const LIMITS = {
  maxClients: 4,
  maxLineBytes: 4096,
  lineTimeoutMs: 300,
  idleTimeoutMs: 600,
  unreadTimeoutMs: 400,
  lingerMs: 200,
  closeTimeoutMs: 300,
};

describe('the control socket: what a client can make it hold', () => {
  let control: StandaloneControl;
  const clients: RawControlClient[] = [];
  const client = async (reading = true) => {
    const c = await RawControlClient.connected(control.path, reading);
    clients.push(c);
    return c;
  };
  /** A well-behaved client is served. */
  const served = async () => {
    const c = await client();
    c.request(1, 'emu.info');
    expect(((await c.reply(1)).result as { version: string }).version).to.equal('0.0.0-test');
    c.destroy();
    await until(() => control.server.connections <= 1 + clients.filter((x) => !x.closed).length, 'it to go');
  };

  beforeEach(async () => {
    control = await standaloneControl(LIMITS);
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    await control.close();
  });

  it('closes every client it refuses, even one that never reads, and serves the next once one goes', async () => {
    const held: RawControlClient[] = [];
    for (let i = 0; i < 4; i++) held.push(await client());
    for (const [i, c] of held.entries()) {
      c.request(i, 'emu.info');
      await c.reply(i);
    }
    const refused = [];
    for (let i = 0; i < 12; i++) refused.push(await client(i % 2 === 0));
    // Each was closed by emu, reading or not (a client that does not read cannot see it: emu counts).
    await until(() => control.server.connections === 4, 'the refused connections to be closed', 2000);
    for (const c of refused) c.socket.resume();
    for (const c of refused) await c.waitClosed(2000);
    for (const c of refused) {
      expect(c.lines).to.deep.equal([
        {
          jsonrpc: '2.0',
          id: null,
          error: { code: RpcErrorCode.LIMIT, message: 'too many control clients (at most 4)' },
        },
      ]);
    }
    expect(control.server.connections).to.equal(4);
    expect(control.log.text).to.include('control socket: too many clients: one refused');
    held.pop()!.destroy();
    await until(() => control.server.clients === 3, 'the client to go');
    await served();
  });

  it('refuses a line longer than maxLineBytes at once, as one line or a byte at a time', async () => {
    const long = await client();
    long.send(`{"jsonrpc":"2.0","id":1,"method":"${'x'.repeat(5000)}`);
    await long.waitClosed();
    expect(long.lines).to.deep.equal([
      {
        jsonrpc: '2.0',
        id: null,
        error: { code: RpcErrorCode.LIMIT, message: 'a request line is longer than 4096 bytes' },
      },
    ]);
    const drip = await client();
    for (let i = 0; i < 5000 && !drip.closed; i++) {
      drip.send('x');
      if (i % 100 === 0) await sleep(1);
    }
    await drip.waitClosed();
    // It may not see the error: still writing, it finds the socket closed (EPIPE) before it reads.
    expect(JSON.stringify(drip.lines)).to.be.oneOf(['[]', JSON.stringify(long.lines)]);
    await served();
  });

  it('closes a client whose line does not end in time, also when it keeps dribbling bytes', async () => {
    const silent = await client();
    silent.send('{"jsonrpc":"2.0"');
    const dribbler = await client();
    const started = Date.now();
    const drip = setInterval(() => dribbler.send(' '), 20);
    try {
      await dribbler.waitClosed(2000);
      await silent.waitClosed(2000);
    } finally {
      clearInterval(drip);
    }
    expect(Date.now() - started).to.be.within(250, 1000);
    const timedOut = {
      jsonrpc: '2.0',
      id: null,
      error: { code: RpcErrorCode.LIMIT, message: 'a request line did not end within 300 ms' },
    };
    expect(dribbler.lines).to.deep.equal([timedOut]);
    expect(silent.lines).to.deep.equal([timedOut]);
    // Lines that do end keep a client going, however slowly its bytes come.
    const slow = await client();
    for (let i = 0; i < 6; i++) {
      const request = `{"jsonrpc":"2.0","id":${i},"method":"emu.info"}\n`;
      slow.send(request.slice(0, 10));
      await sleep(100);
      slow.send(request.slice(10));
      await slow.reply(i);
    }
    expect(slow.closed).to.equal(false);
    await served();
  });

  it('reads no more from a client that leaves its replies unread, and closes it after unreadTimeoutMs', async () => {
    const greedy = await client(false);
    // 4 MiB of requests whose replies are never read: emu stops reading once a reply is left unread
    // (after the kernel's buffers took what they hold), so most of them stay with the client.
    const request = `${JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'emu.methods' })}\n`;
    greedy.send(request.repeat(Math.ceil((4 << 20) / request.length)));
    await sleep(300);
    expect(greedy.socket.writableLength, 'bytes emu would not take').to.be.above(2 << 20);
    // Meanwhile others are served.
    await served();
    await greedy.waitClosed(2000);
    expect(control.log.text).to.include('a client left a reply unread too long: closed');
    await served();
  });

  it('closes a client that stays idle, telling it why', async () => {
    const idle = await client();
    idle.request(1, 'emu.info');
    await idle.reply(1);
    const at = Date.now();
    await idle.waitClosed(2000);
    expect(Date.now() - at).to.be.within(500, 1200);
    expect(idle.lines[1]).to.deep.equal({
      jsonrpc: '2.0',
      id: null,
      error: { code: RpcErrorCode.LIMIT, message: 'idle for 600 ms' },
    });
  });

  it('does not take a client for idle whose request came in time but found the event loop busy', async () => {
    const c = await client();
    await sleep(LIMITS.idleTimeoutMs - 150);
    c.request(1, 'emu.info');
    // The event loop stalls (a long scrape, a GC) past the idle timeout, with the request unread.
    const stallEnd = performance.now() + 300;
    while (performance.now() < stallEnd);
    expect(((await c.reply(1)).result as { version: string }).version).to.equal('0.0.0-test');
    expect(c.closed).to.equal(false);
  });

  it('emu stats, reading less often than the idle timeout, connects again for each reading', async () => {
    const out = new Capture();
    const err = new Capture();
    const stop = new AbortController();
    const running = statsMain(['--interval', '0.8', '--control', control.path], {
      stdout: out,
      stderr: err,
      signal: stop.signal,
    });
    await until(() => (out.text.match(/^emu stats /gm) ?? []).length >= 2, 'two views', 5000);
    stop.abort();
    expect(await running, err.text).to.equal(0);
    expect(control.log.text).to.not.include('reply unread');
  });

  it('handles a batch of at most 64 requests, each in a turn of the event loop of its own', async () => {
    const c = await client();
    const batch = (n: number) =>
      JSON.stringify(Array.from({ length: n }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'emu.info' })));
    c.send(`${batch(65)}\n`);
    c.send(`${batch(64)}\n`);
    await until(() => c.lines.length === 2, 'two replies');
    expect(c.lines[0]).to.deep.equal({
      jsonrpc: '2.0',
      id: null,
      error: { code: RpcErrorCode.INVALID_REQUEST, message: 'a batch of 65 requests; at most 64' },
    });
    expect(c.lines[1]).to.have.length(64);
    // The event loop turned between them: a timer due meanwhile ran before the batch was done.
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    c.send(`${batch(64)}\n`);
    await until(() => c.lines.length === 3, 'the third reply');
    clearInterval(timer);
    expect(ticks).to.be.above(1);
  });

  it('closes within closeTimeoutMs whatever its clients do, and says so', async () => {
    const held: RawControlClient[] = [];
    for (let i = 0; i < 4; i++) held.push(await client(i >= 2));
    held[0].send('{"jsonrpc":"2.0","id":1,"method":"emu.info"'); // a line never ended
    // Unread replies: the server waits on them.
    const request = `${JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'emu.methods' })}\n`;
    held[1].send(request.repeat(Math.ceil((4 << 20) / request.length)));
    const refused = await client(false);
    // Until emu reads no more from it: it waits on a reply the client does not take.
    await until(() => held[1].socket.writableLength > 0, 'emu to stop reading the greedy client');
    await sleep(50);
    const at = Date.now();
    await control.server.close();
    expect(Date.now() - at, 'ms close() took').to.be.below(LIMITS.closeTimeoutMs + 200);
    expect(control.server.connections).to.equal(0);
    for (const c of [...held, refused]) c.socket.resume();
    for (const c of [...held, refused]) await c.waitClosed(1000);
    expect(control.log.text).to.include('control socket: clients still busy at shutdown: closed forcibly');
  });
});

describe('LineSplitter', () => {
  it('splits lines across chunks, takes them a byte at a time in linear time, and bounds a line', () => {
    const s = new LineSplitter(16);
    expect(s.push('{"a":1}\n{"b"')).to.deep.equal(['{"a":1}']);
    expect(s.pendingBytes).to.equal(4);
    expect(s.push(':2}\n\n  \nx')).to.deep.equal(['{"b":2}']);
    expect(() => s.push('y'.repeat(16))).to.throw(RangeError, 'a request line is longer than 16 bytes');
    const big = new LineSplitter(1 << 20);
    const started = performance.now();
    for (let i = 0; i < (1 << 20) - 1; i++) big.push('z');
    expect(big.push('\n')).to.have.length(1);
    expect(performance.now() - started, 'ms for 1 MiB a byte at a time').to.be.below(2000);
    // Bytes, not characters: the bound is the wire's.
    expect(() => new LineSplitter(4).push('ééé')).to.throw(RangeError);
  });
});
