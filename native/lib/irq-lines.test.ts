import { expect } from 'chai';
import { EventFd } from './eventfd.js';
import { closeFd, dupAll, setNonblocking } from './fd.js';
import { IrqLines, IrqWriter } from './irq-lines.js';
import { memfdCreate } from './memfd.js';
import { fdDiff, openFds } from './test-helpers.js';

/** An eventfd the test reads, and a duplicate for the lines to own. */
function line(): { efd: EventFd; fd: number } {
  const efd = EventFd.create();
  return { efd, fd: dupAll([efd.fd])[0] };
}

describe('IrqLines', () => {
  it('signals a vector through its eventfd, and reports vectors without one', async () => {
    const lines = new IrqLines(3);
    const a = line();
    lines.assign(1, a.fd);
    expect(lines.enabled(1)).to.equal(true);
    expect(lines.enabled(0)).to.equal(false);
    expect(lines.trigger(1)).to.equal('fired');
    await lines.settled();
    expect(lines.trigger(1)).to.equal('fired');
    expect(lines.trigger(0)).to.equal('none');
    await lines.settled();
    expect(a.efd.read()).to.equal(2n);
    expect(lines.counts()).to.deep.equal({ triggered: 2, dropped: 0 });
    lines.close();
    a.efd.close();
  });

  it('holds a masked trigger and delivers it once at unmask; a new eventfd forgets it', async () => {
    const lines = new IrqLines(1);
    const a = line();
    lines.assign(0, a.fd);
    expect(lines.mask(0, true)).to.equal('none');
    expect(lines.trigger(0)).to.equal('pending');
    expect(lines.trigger(0)).to.equal('pending');
    await lines.settled();
    expect(a.efd.read()).to.equal(null);
    expect(lines.mask(0, false)).to.equal('fired');
    await lines.settled();
    expect(a.efd.read()).to.equal(1n);
    lines.mask(0, true);
    lines.trigger(0);
    const b = line();
    lines.assign(0, b.fd);
    expect(lines.mask(0, false), 'the pending cause went with the old eventfd').to.equal('none');
    lines.close();
    a.efd.close();
    b.efd.close();
  });

  it('refuses an fd that is not an eventfd and leaves it with the caller', () => {
    const lines = new IrqLines(1);
    const memfd = memfdCreate('not-an-eventfd', 4096);
    expect(() => lines.assign(0, memfd)).to.throw(/must be an eventfd/);
    expect(() => lines.assign(1, -1)).to.throw(RangeError);
    expect(lines.enabled(0)).to.equal(false);
    closeFd(memfd); // still open: it was not taken
    lines.close();
  });

  it('owns what it was given: replacing, clearing and closing leak no fd', () => {
    const before = openFds();
    const lines = new IrqLines(4);
    const kept: EventFd[] = [];
    for (let round = 0; round < 3; round++) {
      for (let v = 0; v < 4; v++) {
        const l = line();
        kept.push(l.efd);
        lines.assign(v, l.fd);
      }
    }
    lines.clear();
    expect(lines.enabled(0)).to.equal(false);
    const l = line();
    kept.push(l.efd);
    lines.assign(2, l.fd);
    lines.close();
    for (const e of kept) e.close();
    expect(fdDiff(before, openFds())).to.equal('');
    expect(() => lines.trigger(0)).to.throw(/closed/);
  });

  it('coalesces triggers that find the eventfd still queued, as MSI-X does', async () => {
    const lines = new IrqLines(1);
    const a = line();
    lines.assign(0, a.fd);
    for (let i = 0; i < 1000; i++) expect(lines.trigger(0)).to.equal('fired');
    await lines.settled();
    const got = a.efd.read()!;
    expect(got >= 1n && got <= 1000n, `counter ${got}`).to.equal(true);
    expect(lines.counts()).to.deep.equal({ triggered: Number(got), dropped: 0 });
    lines.close();
    a.efd.close();
  });

  it('counts and reports a drop when the client never reads its eventfd (counter full)', async () => {
    let reported = 0;
    const writer = new IrqWriter('drops', { onDropped: () => reported++ });
    const lines = new IrqLines(1, writer);
    const a = line();
    lines.assign(0, a.fd);
    a.efd.write(0xffff_ffff_ffff_fffen);
    lines.trigger(0);
    await lines.settled();
    expect(lines.counts()).to.deep.equal({ triggered: 0, dropped: 1 });
    for (let i = 0; i < 100 && reported === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(reported).to.equal(1);
    expect(a.efd.read()).to.equal(0xffff_ffff_ffff_fffen);
    lines.close();
    writer.close();
    a.efd.close();
  });

  it('a client that clears O_NONBLOCK and fills its eventfd blocks only its own writer, until it reads or is stopped', async () => {
    // Two devices: A's client makes the write block (issue #31, defect 1); B's interrupts go on.
    const before = openFds();
    const a = { writer: new IrqWriter('a'), line: line() };
    const b = { writer: new IrqWriter('b'), line: line() };
    const linesA = new IrqLines(2, a.writer);
    const linesB = new IrqLines(2, b.writer);
    linesA.assign(0, a.line.fd);
    linesB.assign(0, b.line.fd);
    expect(setNonblocking(a.line.efd.fd, false), 'the client cleared O_NONBLOCK').to.equal(true);
    a.line.efd.write(0xffff_ffff_ffff_fffen);
    // Triggering never blocks the caller, whatever the client did (this thread would hang here).
    for (let i = 0; i < 100; i++) expect(linesA.trigger(0)).to.equal('fired');
    const start = Date.now();
    while (a.writer.busyMs < 50) {
      expect(Date.now() - start, 'the writer blocks in write(2)').to.be.below(5000);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(a.writer.idle).to.equal(false);
    // A trigger while the write is blocked queues the next write (its flag was cleared at the start).
    expect(linesA.trigger(0)).to.equal('fired');
    for (let i = 0; i < 10; i++) {
      linesB.trigger(0);
      await linesB.settled();
    }
    expect(b.line.efd.read()).to.equal(10n);
    // The client reads: the blocked write completes, and the next one goes through.
    expect(a.line.efd.read()).to.equal(0xffff_ffff_ffff_fffen);
    await linesA.settled();
    // The write that was blocked, then the one queued meanwhile.
    expect(a.line.efd.read()).to.equal(2n);
    linesA.trigger(0);
    await linesA.settled();
    expect(a.line.efd.read()).to.equal(1n);
    // Blocked again: stop() interrupts the write at once, and every fd is released.
    a.line.efd.write(0xffff_ffff_ffff_fffen);
    linesA.trigger(0);
    while (a.writer.busyMs === 0) await new Promise((resolve) => setTimeout(resolve, 2));
    const stopped = Date.now();
    linesA.clear();
    a.writer.stop();
    expect(Date.now() - stopped, 'ms to stop a blocked writer').to.be.below(500);
    expect(linesA.counts().dropped).to.equal(1);
    expect(linesA.trigger(0)).to.equal('none');
    for (const d of [a, b]) {
      d.writer.close();
      d.line.efd.close();
    }
    linesA.close();
    linesB.close();
    expect(fdDiff(before, openFds())).to.equal('');
  });

  it('gives up a blocked write of an eventfd the client replaced, and serves the new one', async () => {
    const writer = new IrqWriter('replace');
    const lines = new IrqLines(1, writer);
    const old = line();
    lines.assign(0, old.fd);
    setNonblocking(old.efd.fd, false);
    old.efd.write(0xffff_ffff_ffff_fffen);
    lines.trigger(0);
    while (writer.busyMs === 0) await new Promise((resolve) => setTimeout(resolve, 2));
    const fresh = line();
    lines.assign(0, fresh.fd);
    lines.trigger(0);
    await lines.settled();
    expect(fresh.efd.read()).to.equal(1n);
    expect(lines.counts()).to.deep.equal({ triggered: 1, dropped: 1 });
    lines.close();
    writer.close();
    old.efd.close();
    fresh.efd.close();
  });

  it('drops triggers while its writer is stopped (the client gone), and starts again at the next assign', async () => {
    const writer = new IrqWriter('restart');
    const lines = new IrqLines(1, writer);
    const a = line();
    lines.assign(0, a.fd);
    writer.stop();
    expect(lines.trigger(0)).to.equal('dropped');
    const b = line();
    lines.assign(0, b.fd);
    expect(lines.trigger(0)).to.equal('fired');
    await lines.settled();
    expect(b.efd.read()).to.equal(1n);
    lines.close();
    writer.close();
    a.efd.close();
    b.efd.close();
  });
});
