import { existsSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { expect } from 'chai';
import { isSystemError, type SystemError } from './errors.js';
import {
  eventually,
  exited,
  fdDiff,
  nextEvent,
  openFds,
  pattern,
  random,
  receive,
  spawnNode,
  tempDir,
} from './test-helpers.js';
import { UnixListener, UnixSocket } from './unix-socket.js';

function catchError(fn: () => unknown): SystemError {
  try {
    fn();
  } catch (error) {
    if (isSystemError(error)) return error;
    throw error;
  }
  throw new Error('expected a SystemError');
}

async function connectedPair(
  path: string,
): Promise<{ listener: UnixListener; client: UnixSocket; server: UnixSocket }> {
  const listener = UnixListener.listen(path);
  const accepted = nextEvent<[UnixSocket]>(listener, 'connection');
  const client = UnixSocket.connect(path);
  const [server] = await accepted;
  return { listener, client, server };
}

describe('UnixListener and UnixSocket', () => {
  let tmp: ReturnType<typeof tempDir>;
  const cleanups: (() => void)[] = [];
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup();
    tmp.cleanup();
  });
  function track(...objects: { close(): void }[]): void {
    for (const object of objects) cleanups.push(() => object.close());
  }

  it('accepts a connection and exchanges bytes in both directions', async () => {
    const { listener, client, server } = await connectedPair(tmp.path('s.sock'));
    track(listener, client, server);
    expect(listener.path).to.equal(tmp.path('s.sock'));
    expect(client.fd).to.be.at.least(0);
    expect(server.fd).to.be.at.least(0);

    const atServer = receive(server, 5);
    client.write(Buffer.from('hello'));
    await atServer.done;
    expect(Buffer.concat(atServer.chunks).toString()).to.equal('hello');

    const atClient = receive(client, 5);
    server.write(new Uint8Array([119, 111, 114, 108, 100]));
    await atClient.done;
    expect(Buffer.concat(atClient.chunks).toString()).to.equal('world');
  });

  it('delivers an 8 MiB write complete and in order, queueing the rest and emitting drain', async () => {
    const { listener, client, server } = await connectedPair(tmp.path('s.sock'));
    track(listener, client, server);
    const payload = pattern(8 * 1024 * 1024, 7);
    const atServer = receive(server, payload.length);
    const drained = nextEvent(client, 'drain');

    client.write(payload);
    // The kernel buffer is far smaller than 8 MiB: most of it must wait in the queue.
    expect(client.writableLength).to.be.greaterThan(0);
    expect(client.writableLength).to.be.lessThan(payload.length);
    // The queue holds a copy: scribbling over the caller's buffer must not change what is sent.
    const original = Buffer.from(payload);
    payload.fill(0);

    await Promise.all([drained, atServer.done]);
    expect(client.writableLength).to.equal(0);
    const got = Buffer.concat(atServer.chunks);
    expect(got.length).to.equal(original.length);
    expect(got.equals(original)).to.equal(true);
    expect(Math.max(...atServer.chunks.map((c) => c.length))).to.be.at.most(64 * 1024);
  });

  it('keeps many writes of random sizes in order while the reader is paused and resumed', async () => {
    const [a, b] = UnixSocket.pair();
    track(a, b);
    const next = random(42);
    const writes: Buffer[] = [];
    for (let i = 0; i < 300; i++) writes.push(pattern(1 + next(100_000), i + 1));
    const expected = Buffer.concat(writes);
    const atB = receive(b, expected.length);
    let drains = 0;
    a.on('drain', () => drains++);
    b.pause();
    for (const w of writes) a.write(w);
    expect(a.writableLength).to.be.greaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(atB.bytes).to.equal(0);
    b.resume();
    await atB.done;
    expect(Buffer.concat(atB.chunks).equals(expected)).to.equal(true);
    await eventually(() => drains > 0, 'drain');
    expect(drains).to.equal(1);
  });

  it('creates the socket file mode 0600 by default, whatever the umask, or with the mode asked for', () => {
    const old = process.umask(0);
    try {
      const a = UnixListener.listen(tmp.path('a.sock'));
      const b = UnixListener.listen(tmp.path('b.sock'), { mode: 0o660 });
      track(a, b);
      expect(statSync(a.path).mode & 0o777).to.equal(0o600);
      expect(statSync(b.path).mode & 0o777).to.equal(0o660);
    } finally {
      process.umask(old);
    }
    expect(process.umask(), 'the umask is restored').to.equal(old);
    expect(() => UnixListener.listen(tmp.path('c.sock'), { mode: 0o1777 })).to.throw(RangeError);
  });

  it("tells who is at the other end (SO_PEERCRED): the connecting process's pid, uid and gid", async () => {
    const { listener, client, server } = await connectedPair(tmp.path('cred.sock'));
    track(listener, client, server);
    const me = { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() };
    expect(server.peerCredentials()).to.deep.equal(me);
    expect(client.peerCredentials()).to.deep.equal(me);
    server.close();
    expect(() => server.peerCredentials()).to.throw(/closed/);
  });

  it('refuses to listen where a socket is live, with EADDRINUSE naming the path', () => {
    const path = tmp.path('busy.sock');
    const listener = UnixListener.listen(path);
    track(listener);
    const error = catchError(() => UnixListener.listen(path));
    expect(error.code).to.equal('EADDRINUSE');
    expect(error.errno).to.equal(-98);
    expect(error.syscall).to.equal('listen');
    expect(error.path).to.equal(path);
    expect(error.message).to.equal(`listen ${path}: address already in use`);
  });

  it('does not unlink an existing file: any file at the path is EADDRINUSE', () => {
    const path = tmp.path('file');
    writeFileSync(path, 'not a socket');
    expect(catchError(() => UnixListener.listen(path)).code).to.equal('EADDRINUSE');
    expect(existsSync(path)).to.equal(true);
  });

  it('fails to connect to a missing path with ENOENT', () => {
    const path = tmp.path('missing.sock');
    const error = catchError(() => UnixSocket.connect(path));
    expect(error.code).to.equal('ENOENT');
    expect(error.syscall).to.equal('connect');
    expect(error.message).to.equal(`connect ${path}: no such file or directory`);
  });

  it('fails to connect to a stale socket file with ECONNREFUSED, and refuses to listen on it', async () => {
    const path = tmp.path('stale.sock');
    // A server that dies without cleaning up leaves its socket file behind.
    const child = spawnNode(
      "require('net').createServer().listen(process.argv[1], () => process.kill(process.pid, 'SIGKILL'))",
      [path],
    );
    await exited(child);
    expect(existsSync(path)).to.equal(true);
    expect(catchError(() => UnixSocket.connect(path)).code).to.equal('ECONNREFUSED');
    expect(catchError(() => UnixListener.listen(path)).code).to.equal('EADDRINUSE');
  });

  it('close() unlinks the socket path and is idempotent', () => {
    const path = tmp.path('s.sock');
    const listener = UnixListener.listen(path);
    expect(existsSync(path)).to.equal(true);
    listener.close();
    expect(existsSync(path)).to.equal(false);
    listener.close();
    // The path is free again.
    UnixListener.listen(path).close();
  });

  it('close() leaves the path alone when another socket has replaced it', () => {
    const path = tmp.path('s.sock');
    const first = UnixListener.listen(path);
    // Another server takes over the path while the first is still open.
    renameSync(path, tmp.path('old.sock'));
    const second = UnixListener.listen(path);
    track(second);
    first.close();
    expect(existsSync(path)).to.equal(true);
    expect(() => UnixSocket.connect(path).close()).not.to.throw();
    second.close();
    expect(existsSync(path)).to.equal(false);
  });

  it('accepts every pending connection on one wake-up', async () => {
    const path = tmp.path('s.sock');
    const listener = UnixListener.listen(path, { backlog: 32 });
    track(listener);
    const accepted: UnixSocket[] = [];
    listener.on('connection', (socket) => {
      accepted.push(socket);
      track(socket);
    });
    const clients = Array.from({ length: 20 }, () => UnixSocket.connect(path));
    track(...clients);
    await eventually(() => accepted.length === 20, '20 connections');
  });

  it('a full backlog makes connect fail with EAGAIN instead of blocking', () => {
    const path = tmp.path('s.sock');
    const listener = UnixListener.listen(path, { backlog: 1 });
    track(listener);
    const clients: UnixSocket[] = [];
    let error: SystemError | undefined;
    // Nothing is accepted while this loop runs: the backlog fills up.
    for (let i = 0; i < 10 && !error; i++) {
      try {
        clients.push(UnixSocket.connect(path));
      } catch (e) {
        if (!isSystemError(e)) throw e;
        error = e;
      }
    }
    track(...clients);
    expect(error?.code).to.equal('EAGAIN');
  });

  it('peer close gives end, then close, each exactly once', async () => {
    const [a, b] = UnixSocket.pair();
    const events: string[] = [];
    const closed = nextEvent(b, 'close');
    b.on('data', (chunk) => events.push(`data:${chunk}`));
    b.on('end', () => events.push('end'));
    b.on('close', () => events.push('close'));
    a.write(Buffer.from('bye'));
    a.close();
    expect(a.closed).to.equal(true);
    expect(a.fd).to.equal(-1);
    await closed;
    await new Promise((resolve) => setImmediate(resolve));
    expect(events).to.deep.equal(['data:bye', 'end', 'close']);
    expect(b.closed).to.equal(true);
    expect(b.fd).to.equal(-1);
  });

  it('close() emits close once, drops the queue, and later writes throw EBADF', () => {
    const [a, b] = UnixSocket.pair();
    track(b);
    let closes = 0;
    a.on('close', () => closes++);
    b.pause();
    a.write(pattern(4 * 1024 * 1024));
    expect(a.writableLength).to.be.greaterThan(0);
    a.close();
    a.close();
    expect(closes).to.equal(1);
    expect(a.writableLength).to.equal(0);
    const error = catchError(() => a.write(Buffer.from('x')));
    expect(error.code).to.equal('EBADF');
    expect(error.message).to.equal('write: socket is closed');
  });

  it('end() closes only once the queue has drained', async () => {
    const [a, b] = UnixSocket.pair();
    const payload = pattern(2 * 1024 * 1024, 3);
    const atB = receive(b, payload.length);
    const bClosed = nextEvent(b, 'close');
    const order: string[] = [];
    a.on('drain', () => order.push('drain'));
    a.on('close', () => order.push('close'));
    a.write(payload);
    a.end();
    expect(a.closed).to.equal(false);
    expect(() => a.write(Buffer.from('late'))).to.throw('end() was called');
    await atB.done;
    await bClosed;
    expect(order).to.deep.equal(['drain', 'close']);
    expect(Buffer.concat(atB.chunks).equals(payload)).to.equal(true);
  });

  it('writing to a closed peer reports EPIPE as error, then close', async () => {
    const [a, b] = UnixSocket.pair();
    b.close();
    const events: string[] = [];
    const error = new Promise<SystemError>((resolve) => a.on('error', resolve));
    a.on('close', () => events.push('close'));
    a.on('end', () => events.push('end'));
    a.pause(); // read nothing: the write must discover the dead peer
    a.write(Buffer.from('anyone?'));
    expect(a.closed).to.equal(true);
    const err = await error;
    expect(err.code).to.equal('EPIPE');
    expect(err.syscall).to.equal('sendmsg');
    await new Promise((resolve) => setImmediate(resolve));
    expect(events).to.deep.equal(['close']);
  });

  it('pause() holds data back until resume()', async () => {
    const [a, b] = UnixSocket.pair();
    track(a, b);
    let got = '';
    b.on('data', (chunk) => {
      got += chunk.toString();
    });
    b.pause();
    a.write(Buffer.from('held'));
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(got).to.equal('');
    b.resume();
    await eventually(() => got === 'held', 'data after resume');
  });

  it('a killed peer process gives end and close, and leaks no fd', async function () {
    this.timeout(15000);
    const path = tmp.path('s.sock');
    const before = openFds();
    const listener = UnixListener.listen(path);
    const connection = nextEvent<[UnixSocket]>(listener, 'connection');
    const child = spawnNode(
      "const s = require('net').connect(process.argv[1], () => s.write('ready')); setInterval(() => {}, 1000);",
      [path],
    );
    const [server] = await connection;
    const closed = nextEvent(server, 'close');
    const events: string[] = [];
    server.on('data', (chunk) => {
      events.push(`data:${chunk}`);
      child.kill('SIGKILL');
    });
    server.on('end', () => events.push('end'));
    server.on('error', (err) => events.push(`error:${err.code}`));
    await closed;
    await exited(child);
    expect(events).to.deep.equal(['data:ready', 'end']);
    listener.close();
    expect(fdDiff(before, openFds())).to.equal('');
  });

  it('a peer killed with our data unread gives ECONNRESET, then close', async function () {
    this.timeout(15000);
    const path = tmp.path('s.sock');
    const listener = UnixListener.listen(path);
    track(listener);
    const connection = nextEvent<[UnixSocket]>(listener, 'connection');
    const child = spawnNode(
      "const s = require('net').connect(process.argv[1], () => { s.pause(); s.write('ready'); }); setInterval(() => {}, 1000);",
      [path],
    );
    const [server] = await connection;
    const closed = nextEvent(server, 'close');
    const events: string[] = [];
    server.on('data', () => {
      server.write(Buffer.from('never read'));
      setTimeout(() => child.kill('SIGKILL'), 20);
    });
    server.on('end', () => events.push('end'));
    server.on('error', (err) => events.push(`error:${err.code}`));
    await closed;
    await exited(child);
    expect(events).to.deep.equal(['error:ECONNRESET']);
  });

  it('closes connections nobody listens for', async () => {
    const path = tmp.path('s.sock');
    const listener = UnixListener.listen(path);
    track(listener);
    const client = UnixSocket.connect(path);
    const ended = nextEvent(client, 'end');
    client.on('data', () => {});
    await ended;
    expect(client.closed).to.equal(true);
  });
});
