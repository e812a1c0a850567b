import { expect } from 'chai';
import { EventFd } from './eventfd.js';
import { injectFault } from './fault-injection.js';
import { closeFd, dupAll } from './fd.js';
import { IAVF_VECTORS_LAYOUT, IavfVectors } from './iavf-vectors.js';
import { IrqLines } from './irq-lines.js';
import { memfdCreate } from './memfd.js';
import { MappedMemory } from './mmap.js';

// DYN_CTL fields (Linux iavf_register.h).
const INTENA = 1 << 0;
const CLEARPBA = 1 << 1;
const SWINT_TRIG = 1 << 2;
const ITR_SHIFT = 3;
const INTERVAL_SHIFT = 5;
const WB_ON_ITR = 1 << 30;
/** What iavf_irq_enable_queues writes: INTENA | CLEARPBA | ITR_NONE. */
const REARM = 0x19;

/** A re-arm that also sets the interval of ITR `index` (2 us units), as iavf_buildreg_itr writes it. */
const armWithItr = (index: number, interval2us: number) =>
  INTENA | (index << ITR_SHIFT) | (interval2us << INTERVAL_SHIFT);

/** Vectors on a manual clock, each with an eventfd the test reads: fired() lists what fired since. */
function make(count = 3) {
  const vc = new IavfVectors({ count, manualClock: true });
  const lines = new IrqLines(count);
  const efds = Array.from({ length: count }, (_, v) => {
    const e = EventFd.create();
    lines.assign(v, dupAll([e.fd])[0]);
    return e;
  });
  vc.setLines(lines);
  const fired = async () => {
    await lines.settled();
    return efds.flatMap((e, v) => Array<number>(Number(e.read() ?? 0n)).fill(v));
  };
  const close = () => {
    vc.close();
    lines.close();
    for (const e of efds) e.close();
  };
  return { vc, lines, fired, close };
}

describe('IavfVectors: DYN_CTL automask', () => {
  it('fires an armed vector once and clears INTENA (automask)', async () => {
    const { vc, fired, close } = make();
    vc.write(1, INTENA | (3 << ITR_SHIFT));
    vc.raise(1);
    vc.raise(1);
    expect(await fired()).to.deep.equal([1]);
    expect(vc.read(1) & INTENA).to.equal(0);
    expect(vc.counts().fired[1]).to.equal(1);
    close();
  });

  it('holds a cause while unarmed and fires it at re-arm', async () => {
    const { vc, fired, close } = make();
    vc.raise(2);
    expect(await fired()).to.deep.equal([]);
    vc.write(2, REARM);
    expect(await fired()).to.deep.equal([2]);
    close();
  });

  it('fires at once on SWINT_TRIG with INTENA, as iavf_force_wb asks', async () => {
    const { vc, fired, close } = make();
    vc.write(0, 0x0100001d);
    expect(await fired()).to.deep.equal([0]);
    expect(vc.read(0) & SWINT_TRIG).to.equal(0);
    close();
  });

  it('raises nothing under WB_ON_ITR without INTENA (iavf_enable_wb_on_itr) and keeps the cause for the re-arm', async () => {
    const { vc, fired, close } = make();
    vc.write(1, REARM);
    vc.raise(1);
    expect(await fired()).to.deep.equal([1]);
    vc.write(1, WB_ON_ITR | (3 << ITR_SHIFT));
    expect(vc.read(1)).to.equal(WB_ON_ITR | (3 << ITR_SHIFT));
    vc.raise(1);
    vc.raise(1);
    expect(await fired()).to.deep.equal([]);
    vc.write(1, REARM);
    expect(await fired()).to.deep.equal([1]);
    close();
  });

  it('keeps a pending cause across CLEARPBA (DPDK re-arms with INTENA | CLEARPBA) and forgets it on reset', async () => {
    const { vc, fired, close } = make();
    vc.raise(1);
    vc.write(1, CLEARPBA);
    expect(await fired()).to.deep.equal([]);
    vc.write(1, INTENA | CLEARPBA | (3 << ITR_SHIFT));
    expect(await fired()).to.deep.equal([1]);
    vc.raise(2);
    vc.reset();
    vc.write(2, INTENA);
    expect(await fired()).to.deep.equal([]);
    expect(vc.counts().fired, 'counters run on across resets').to.deep.equal([0, 1, 0]);
    close();
  });

  it('ignores vectors the device does not have', async () => {
    const { vc, fired, close } = make();
    vc.write(7, INTENA | SWINT_TRIG);
    vc.raise(7);
    expect(await fired()).to.deep.equal([]);
    expect(vc.read(7)).to.equal(0);
    expect(vc.readItr(7, 0)).to.equal(0);
    close();
  });

  it('delivers nothing without lines, and through masked lines only at unmask', async () => {
    const { vc, lines, fired, close } = make();
    vc.setLines(null);
    vc.write(1, REARM);
    vc.raise(1);
    expect(await fired()).to.deep.equal([]);
    expect(vc.counts().fired[1]).to.equal(0);
    vc.setLines(lines);
    lines.mask(1, true);
    vc.write(1, REARM);
    vc.raise(1);
    expect(await fired()).to.deep.equal([]);
    lines.mask(1, false);
    expect(await fired()).to.deep.equal([1]);
    close();
  });

  it('after close: letting go of the lines and close again are no-ops; anything else throws EBADF', async () => {
    const { vc, lines, close } = make();
    close();
    vc.setLines(null);
    vc.close();
    expect(vc.counts()).to.deep.equal({ fired: [], throttled: [] });
    expect(() => vc.setLines(lines))
      .to.throw()
      .with.property('code', 'EBADF');
    expect(() => vc.write(1, REARM))
      .to.throw()
      .with.property('code', 'EBADF');
  });
});

describe('IavfVectors: ITR throttling', () => {
  it('holds a second cause until the ITR interval since the last interrupt is over', async () => {
    const { vc, fired, close } = make(2);
    vc.write(1, armWithItr(0, 1000)); // ITR0 = 2 ms, as iavf_buildreg_itr writes it
    vc.raise(1, 0);
    expect(await fired()).to.deep.equal([1]);
    vc.write(1, INTENA | (3 << ITR_SHIFT)); // NAPI re-arms: no interval change
    vc.raise(1, 0);
    expect(await fired(), 'throttled').to.deep.equal([]);
    expect(vc.counts().throttled[1]).to.equal(1);
    expect(vc.readItr(1, 0)).to.equal(1000);
    vc.advance(1999);
    expect(await fired()).to.deep.equal([]);
    vc.advance(1);
    expect(await fired()).to.deep.equal([1]);
    close();
  });

  it('does not throttle causes on ITR_NONE, nor a vector whose interval is 0', async () => {
    const { vc, fired, close } = make(2);
    vc.write(0, REARM);
    vc.raise(0);
    expect(await fired()).to.deep.equal([0]);
    vc.write(0, REARM);
    vc.raise(0);
    expect(await fired()).to.deep.equal([0]);
    vc.write(1, armWithItr(1, 0));
    vc.raise(1, 1);
    expect(await fired()).to.deep.equal([1]);
    vc.write(1, REARM);
    vc.raise(1, 1);
    expect(await fired()).to.deep.equal([1]);
    expect(vc.counts().fired).to.deep.equal([2, 2]);
    close();
  });

  it('fires at once when the interval has already passed, and forgets intervals on reset', async () => {
    const { vc, fired, close } = make(2);
    vc.writeItr(1, 0, 50); // 100 us, through VFINT_ITRN1
    vc.write(1, REARM);
    vc.raise(1, 0);
    expect(await fired()).to.deep.equal([1]);
    vc.advance(1000);
    vc.write(1, REARM);
    vc.raise(1, 0);
    expect(await fired()).to.deep.equal([1]);
    vc.reset();
    expect(vc.readItr(1, 0)).to.equal(0);
    close();
  });

  it('a throttled cause waits for a re-arm too: the interval over, it fires when INTENA is set', async () => {
    const { vc, fired, close } = make(2);
    vc.write(1, armWithItr(0, 100)); // 200 us
    vc.raise(1, 0);
    vc.write(1, INTENA | (3 << ITR_SHIFT));
    vc.raise(1, 0);
    vc.write(1, 3 << ITR_SHIFT); // disarmed before the interval ends
    vc.advance(500);
    expect(await fired()).to.deep.equal([1]);
    vc.write(1, REARM);
    expect(await fired()).to.deep.equal([1]);
    close();
  });

  it('on the real clock, the interrupt timer thread fires the throttled cause after its interval', async () => {
    const vc = new IavfVectors({ count: 2 });
    const lines = new IrqLines(2);
    const efd = EventFd.create();
    lines.assign(1, dupAll([efd.fd])[0]);
    vc.setLines(lines);
    // 8 ms, near the 12-bit field's top: the second raise must come within it, on a busy machine too.
    vc.write(1, armWithItr(0, 4000));
    try {
      // Read before the first interrupt, so that a pause of this thread between the two cannot make
      // the wait look shorter than it was.
      const first = process.hrtime.bigint();
      vc.raise(1, 0);
      await lines.settled();
      expect(efd.read()).to.equal(1n);
      vc.write(1, INTENA | (3 << ITR_SHIFT));
      vc.raise(1, 0);
      expect(vc.counts().throttled[1], 'held for the interval').to.equal(1);
      const value = await efd.wait(5000);
      const waited = Number(process.hrtime.bigint() - first) / 1e6;
      expect(value).to.equal(1n);
      expect(waited, 'not before the interval').to.be.at.least(7.9);
      expect(vc.counts()).to.deep.include({ throttled: [0, 1] });
    } finally {
      vc.close();
      lines.close();
      efd.close();
    }
  });
});

describe('IavfVectors: the interrupt timer under an exception', () => {
  it('fires a throttled cause on time though taking it from the timer list threw', async () => {
    const vc = new IavfVectors({ count: 2 });
    const lines = new IrqLines(2);
    const efd = EventFd.create();
    lines.assign(1, dupAll([efd.fd])[0]);
    vc.setLines(lines);
    vc.write(1, armWithItr(0, 4000)); // 8 ms
    try {
      vc.raise(1, 0);
      vc.write(1, INTENA | (3 << ITR_SHIFT));
      injectFault('irqTimer');
      vc.raise(1, 0); // within the interval: the timer's
      await lines.settled();
      expect(efd.read(), 'the first, at once').to.equal(1n);
      expect(await efd.wait(2000), 'the throttled one, from the timer').to.equal(1n);
      expect(vc.counts()).to.deep.include({ throttled: [0, 1] });
    } finally {
      vc.close();
      lines.close();
      efd.close();
    }
  });
});

describe('IavfVectors: intervals in the shared tail page', () => {
  it('reads and writes queue vectors VFINT_ITRN1 in the page, the misc vector its own', async () => {
    const fd = memfdCreate('iavf-tails', 0x3000);
    const page = MappedMemory.map(fd, 0, 0x3000);
    const words = new Uint32Array(page.buffer);
    const at = (i: number, n: number) =>
      (IAVF_VECTORS_LAYOUT.itrn1Offset + IAVF_VECTORS_LAYOUT.itrn1Stride * i + 4 * n) / 4;
    const vc = new IavfVectors({ count: 3, tailFd: fd, manualClock: true });
    words[at(0, 1)] = 77; // the guest wrote VFINT_ITRN1(0, 1) through its mapping: vector 2
    expect(vc.readItr(2, 0)).to.equal(77);
    vc.write(1, INTENA | (1 << ITR_SHIFT) | (12 << INTERVAL_SHIFT));
    expect(words[at(1, 0)]).to.equal(12);
    vc.writeItr(0, 2, 9);
    expect(vc.readItr(0, 2)).to.equal(9);
    expect(
      words.some((w, i) => w === 9 && i !== at(1, 0)),
      'ITR01 is not in the page',
    ).to.equal(false);
    vc.close();
    page.unmap();
    closeFd(fd);
  });
});
