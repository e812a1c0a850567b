import { expect } from 'chai';
import { EventFd } from './eventfd.js';
import { closeFd, dupAll } from './fd.js';
import { IrqLines } from './irq-lines.js';
import { memfdCreate } from './memfd.js';
import { fdDiff, openFds } from './test-helpers.js';

/** An eventfd the test reads, and a duplicate for the lines to own. */
function line(): { efd: EventFd; fd: number } {
  const efd = EventFd.create();
  return { efd, fd: dupAll([efd.fd])[0] };
}

describe('IrqLines', () => {
  it('signals a vector through its eventfd, and reports vectors without one', () => {
    const lines = new IrqLines(3);
    const a = line();
    lines.assign(1, a.fd);
    expect(lines.enabled(1)).to.equal(true);
    expect(lines.enabled(0)).to.equal(false);
    expect(lines.trigger(1)).to.equal('fired');
    expect(lines.trigger(1)).to.equal('fired');
    expect(lines.trigger(0)).to.equal('none');
    expect(a.efd.read()).to.equal(2n);
    expect(lines.counts()).to.deep.equal({ triggered: 2, dropped: 0 });
    lines.close();
    a.efd.close();
  });

  it('holds a masked trigger and delivers it once at unmask; a new eventfd forgets it', () => {
    const lines = new IrqLines(1);
    const a = line();
    lines.assign(0, a.fd);
    expect(lines.mask(0, true)).to.equal('none');
    expect(lines.trigger(0)).to.equal('pending');
    expect(lines.trigger(0)).to.equal('pending');
    expect(a.efd.read()).to.equal(null);
    expect(lines.mask(0, false)).to.equal('fired');
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
});
