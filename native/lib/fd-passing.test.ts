import { spawn } from 'node:child_process';
import { readSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { EventFd } from './eventfd.js';
import { closeFd } from './fd.js';
import { memfdCreate } from './memfd.js';
import {
  eventually,
  fdDiff,
  isCloexec,
  nextEvent,
  openFds,
  pattern,
  random,
  receive,
  tempDir,
} from './test-helpers.js';
import { UnixListener, UnixSocket } from './unix-socket.js';

function readAt(fd: number, length: number, position = 0): string {
  const buffer = Buffer.alloc(length);
  const n = readSync(fd, buffer, 0, length, position);
  return buffer.subarray(0, n).toString();
}

describe('fd passing (SCM_RIGHTS)', () => {
  let a: UnixSocket;
  let b: UnixSocket;
  beforeEach(() => {
    [a, b] = UnixSocket.pair();
  });
  afterEach(() => {
    a.close();
    b.close();
  });

  it('passes an eventfd one way and a memfd the other; the new fds refer to the same objects', async () => {
    const event = EventFd.create();
    const memfd = memfdCreate('emu-test-pass', 4096);
    writeSync(memfd, 'from the sender', 0);

    const atB = receive(b, 1);
    a.write(Buffer.from('E'), [event.fd]);
    await atB.done;
    const atA = receive(a, 1);
    b.write(Buffer.from('M'), [memfd]);
    await atA.done;

    const [eventCopy] = atB.fdsAt[0].fds;
    const [memfdCopy] = atA.fdsAt[0].fds;
    expect(atB.fdsAt[0].fds).to.have.length(1);
    expect(atA.fdsAt[0].fds).to.have.length(1);
    expect(eventCopy).to.not.equal(event.fd);
    expect(memfdCopy).to.not.equal(memfd);
    expect(isCloexec(eventCopy)).to.equal(true);
    expect(isCloexec(memfdCopy)).to.equal(true);

    // Same eventfd: a signal through the copy is read through the original, and back.
    const received = EventFd.fromFd(eventCopy);
    received.write(5n);
    expect(event.read()).to.equal(5n);
    event.write(7);
    expect(received.read()).to.equal(7n);

    // Same memory: each side sees the other's writes.
    expect(readAt(memfdCopy, 15)).to.equal('from the sender');
    writeSync(memfdCopy, 'reply', 100, 'utf8');
    expect(readAt(memfd, 5, 100)).to.equal('reply');

    received.close();
    event.close();
    closeFd(memfdCopy);
    closeFd(memfd);
  });

  it('delivers fds with a chunk whose last byte belongs to their write, even when writes coalesce', async () => {
    // Linux glues fd-less writes in front of an fd-carrying one into one read, but never reads past
    // fd-carrying data: the chunk carrying fds ends inside their write.
    const next = random(9);
    const writes: { data: Buffer; event?: EventFd }[] = [];
    for (let i = 0; i < 120; i++) {
      const size = next(4) === 0 ? 1 + next(300_000) : 1 + next(200);
      const withFd = next(3) === 0;
      writes.push({
        data: pattern(size, i + 1),
        event: withFd ? EventFd.create({ initval: i + 1 }) : undefined,
      });
    }
    const starts: number[] = [];
    let total = 0;
    for (const w of writes) {
      starts.push(total);
      total += w.data.length;
    }
    const atB = receive(b, total);
    b.pause(); // let writes pile up so that reads coalesce
    for (const w of writes) a.write(w.data, w.event ? [w.event.fd] : []);
    for (const w of writes) w.event?.close(); // ours to close at once, even for queued writes
    await new Promise((resolve) => setTimeout(resolve, 20));
    b.resume();
    await atB.done;

    expect(Buffer.concat(atB.chunks).equals(Buffer.concat(writes.map((w) => w.data)))).to.equal(true);
    const expectedFdWrites = writes.flatMap((w, i) => (w.event ? [i] : []));
    expect(atB.fdsAt.map((r) => r.fds.length)).to.deep.equal(expectedFdWrites.map(() => 1));
    let glued = 0;
    atB.fdsAt.forEach(({ offset, length, fds }, n) => {
      const event = EventFd.fromFd(fds[0]);
      const index = Number(event.read()) - 1; // initval identifies the write
      event.close();
      expect(index, 'fds arrive in write order').to.equal(expectedFdWrites[n]);
      const last = offset + length - 1;
      expect(last, `chunk ends inside write ${index}`).to.be.within(
        starts[index],
        starts[index] + writes[index].data.length - 1,
      );
      expect(starts[index], `write ${index} starts in its chunk`).to.be.at.least(offset);
      if (starts[index] > offset) glued++;
    });
    // The case the rule exists for (fd-less bytes ahead of the fds' write in one chunk) happened.
    expect(glued).to.be.greaterThan(0);
  });

  it('lets the caller close its fds right after a write() that had to be queued', async () => {
    const before = openFds();
    const memfd = memfdCreate('emu-test-queued', 4096);
    writeSync(memfd, 'still here', 0);
    b.pause();
    const filler = pattern(1024 * 1024);
    a.write(filler);
    expect(a.writableLength).to.be.greaterThan(0);
    a.write(Buffer.from('F'), [memfd]);
    closeFd(memfd);

    const atB = receive(b, filler.length + 1);
    b.resume();
    await atB.done;
    expect(atB.fdsAt).to.have.length(1);
    expect(atB.fdsAt[0].offset + atB.fdsAt[0].length).to.equal(filler.length + 1);
    const [copy] = atB.fdsAt[0].fds;
    expect(readAt(copy, 10)).to.equal('still here');
    closeFd(copy);
    // The queued write's own dup was closed once sent.
    expect(fdDiff(before, openFds())).to.equal('');
  });

  it('passes 253 fds (SCM_MAX_FD) in one message', async () => {
    const event = EventFd.create();
    const atB = receive(b, 1);
    a.write(Buffer.from('x'), new Array(253).fill(event.fd));
    await atB.done;
    const fds = atB.fdsAt[0].fds;
    expect(fds).to.have.length(253);
    expect(new Set(fds).size).to.equal(253);
    const copies = fds.map((fd) => EventFd.fromFd(fd));
    copies[252].write(3n);
    expect(event.read()).to.equal(3n);
    for (const copy of copies) copy.close();
    event.close();
  });

  it('rejects more than 253 fds before sending anything', () => {
    expect(() => a.write(Buffer.from('x'), new Array(254).fill(0))).to.throw(RangeError, 'at most 253');
  });

  it('on MSG_CTRUNC closes the fds that did arrive, errors with EMSGCTRUNC and closes', async function () {
    this.timeout(20000);
    const tmp = tempDir();
    const path = tmp.path('s.sock');
    const listener = UnixListener.listen(path);
    const event = EventFd.create();
    listener.on('connection', (socket) => {
      socket.on('error', () => {});
      socket.write(Buffer.from('x'), new Array(253).fill(event.fd));
      socket.end();
    });
    // The child may hold few fds: the kernel installs what it can and flags MSG_CTRUNC.
    const fixture = fileURLToPath(new URL('./test-fixtures/receive-fds.ts', import.meta.url));
    const child = spawn(
      'bash',
      ['-c', 'ulimit -n 128 && exec "$0" --import tsx "$1" "$2"', process.execPath, fixture, path],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    const [code] = await nextEvent<[number]>(child, 'close', 15000);
    listener.close();
    event.close();
    tmp.cleanup();
    expect(code).to.equal(0);
    const report = JSON.parse(output);
    expect(report).to.include({ error: 'EMSGCTRUNC', fds: 0, closedAfterError: true });
    // Only the socket itself is gone: the fds that did arrive were closed again.
    expect(report.openFdsAfter).to.equal(report.openFdsBefore - 1);
    expect(report.message).to.match(/^recvmsg .*: control data truncated/);
  });

  it('closes received fds when nobody listens for data', async () => {
    const before = openFds();
    const event = EventFd.create();
    a.write(Buffer.from('x'), [event.fd]);
    a.write(Buffer.from('y'));
    // b has no 'data' listener: the chunk is dropped and its fd closed.
    await new Promise((resolve) => setTimeout(resolve, 30));
    event.close();
    await eventually(() => fdDiff(before, openFds()) === '', 'fds to be closed');
  });
});
