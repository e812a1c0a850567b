import { spawn, spawnSync } from 'node:child_process';
import { expect } from 'chai';
import { isSystemError, type SystemError } from './errors.js';
import { EventFd } from './eventfd.js';
import { closeFd } from './fd.js';
import { memfdCreate } from './memfd.js';
import { eventually, exited, fdFlags, isCloexec, nextEvent, tempDir } from './test-helpers.js';
import { UnixListener, type UnixSocket } from './unix-socket.js';

const O_NONBLOCK = 0o4000;

async function rejection(promise: Promise<unknown>): Promise<SystemError> {
  try {
    await promise;
  } catch (error) {
    if (isSystemError(error)) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

describe('EventFd', () => {
  const open: EventFd[] = [];
  function create(options?: Parameters<typeof EventFd.create>[0]): EventFd {
    const event = EventFd.create(options);
    open.push(event);
    return event;
  }
  afterEach(() => {
    for (const event of open.splice(0)) event.close();
  });

  it('adds writes to the counter; read() returns and clears it', () => {
    const event = create();
    expect(isCloexec(event.fd)).to.equal(true);
    expect(fdFlags(event.fd) & O_NONBLOCK).to.equal(O_NONBLOCK);
    event.write();
    event.write(5);
    event.write(7n);
    expect(event.read()).to.equal(13n);
    expect(event.read()).to.equal(null);
  });

  it('starts from initval, and counts down by one in semaphore mode', () => {
    expect(create({ initval: 3 }).read()).to.equal(3n);
    const semaphore = create({ initval: 2, semaphore: true });
    expect(semaphore.read()).to.equal(1n);
    expect(semaphore.read()).to.equal(1n);
    expect(semaphore.read()).to.equal(null);
  });

  it('reports EAGAIN instead of blocking when the counter would overflow', () => {
    const event = create();
    event.write(2n ** 64n - 2n);
    let error: unknown;
    try {
      event.write(1);
    } catch (e) {
      error = e;
    }
    expect(isSystemError(error, 'EAGAIN')).to.equal(true);
    expect(event.read()).to.equal(2n ** 64n - 2n);
  });

  it('read() on an empty, blocking eventfd from another process returns null without blocking', async function () {
    this.timeout(10000);
    const python = spawnSync('python3', ['-c', 'import os, socket; os.eventfd; socket.send_fds'], {
      stdio: 'ignore',
    });
    if (python.status !== 0) this.skip(); // needs Python >= 3.10 to make a blocking eventfd
    const tmp = tempDir();
    const listener = UnixListener.listen(tmp.path('s.sock'));
    const connection = nextEvent<[UnixSocket]>(listener, 'connection');
    const child = spawn(
      'python3',
      [
        '-c',
        'import os, socket, sys\n' +
          's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(sys.argv[1])\n' +
          'e = os.eventfd(0); socket.send_fds(s, [b"e"], [e, e]); s.recv(1)',
        listener.path,
      ],
      { stdio: 'ignore' },
    );
    const [socket] = await connection;
    const [, fds] = await nextEvent<[Buffer, number[]]>(socket, 'data');
    const event = EventFd.fromFd(fds[0]);
    open.push(event);
    expect(fdFlags(event.fd) & O_NONBLOCK, 'the received eventfd is blocking').to.equal(0);
    expect(event.read()).to.equal(null);
    event.write(2);
    expect(event.read()).to.equal(2n);
    // Adopted with nonblocking, the same description (the peer's too) becomes nonblocking.
    const again = EventFd.fromFd(fds[1], { nonblocking: true });
    open.push(again);
    expect(fdFlags(again.fd) & O_NONBLOCK).to.equal(O_NONBLOCK);
    expect(fdFlags(event.fd) & O_NONBLOCK, 'one open file description').to.equal(O_NONBLOCK);
    socket.close();
    listener.close();
    await exited(child);
    tmp.cleanup();
  });

  it('watch() calls back with each value on the event loop until unwatch()', async () => {
    const event = create();
    const seen: bigint[] = [];
    event.watch((value) => seen.push(value));
    event.write(2);
    await eventually(() => seen.length === 1, 'first callback');
    event.write(3);
    await eventually(() => seen.length === 2, 'second callback');
    expect(seen).to.deep.equal([2n, 3n]);
    event.unwatch();
    event.write(4);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(seen).to.have.length(2);
    expect(event.read()).to.equal(4n);
  });

  it('watch() refuses a second watcher', () => {
    const event = create();
    event.watch(() => {});
    expect(() => event.watch(() => {})).to.throw('already watched');
  });

  it('wait() resolves with the next signal', async () => {
    const event = create();
    setTimeout(() => event.write(4), 10);
    expect(await event.wait(5000)).to.equal(4n);
    event.write(6);
    expect(await event.wait(5000), 'a pending count resolves at once').to.equal(6n);
  });

  it('wait() rejects with ETIMEDOUT after the timeout', async () => {
    const event = create();
    const started = Date.now();
    const error = await rejection(event.wait(50));
    expect(Date.now() - started).to.be.at.least(45);
    expect(error.code).to.equal('ETIMEDOUT');
    expect(error.errno).to.equal(-110);
    expect(error.message).to.equal(`wait eventfd ${event.fd}: no signal within 50 ms`);
  });

  it('close() rejects pending waits with ECANCELED, is idempotent, and later use throws EBADF', async () => {
    const event = EventFd.create();
    const fd = event.fd;
    const pending = event.wait(5000);
    event.close();
    event.close();
    expect((await rejection(pending)).code).to.equal('ECANCELED');
    expect(event.closed).to.equal(true);
    expect(event.fd).to.equal(-1);
    expect(() => event.read()).to.throw('read: eventfd is closed');
    expect(() => event.write()).to.throw('write: eventfd is closed');
    // The fd number really was closed.
    expect(() => closeFd(fd)).to.throw('bad file descriptor');
  });

  it('fromFd() takes an eventfd and rejects anything else', () => {
    const memfd = memfdCreate('emu-test-not-eventfd', 0);
    expect(() => EventFd.fromFd(memfd)).to.throw(TypeError, `fd ${memfd} is /memfd:emu-test-not-eventfd`);
    closeFd(memfd);
    expect(() => EventFd.fromFd(memfd)).to.throw('bad file descriptor');
  });
});
