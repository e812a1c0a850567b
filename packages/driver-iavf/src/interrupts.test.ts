import { expect } from 'chai';
import { DynCtl } from './constants.js';
import { VectorControl } from './interrupts.js';

describe('interrupt vectors (DYN_CTL automask)', () => {
  const make = () => {
    const fired: number[] = [];
    const vc = new VectorControl(3, (v) => {
      fired.push(v);
      return true;
    });
    return { vc, fired };
  };

  it('fires an armed vector once and clears INTENA (automask)', () => {
    const { vc, fired } = make();
    vc.write(1, DynCtl.INTENA | (3 << DynCtl.ITR_INDX_SHIFT));
    vc.raise(1);
    vc.raise(1);
    expect(fired).to.deep.equal([1]);
    expect(vc.read(1) & DynCtl.INTENA).to.equal(0);
    expect(vc.fired[1]).to.equal(1);
  });

  it('holds a cause while unarmed and fires it at re-arm', () => {
    const { vc, fired } = make();
    vc.raise(2);
    expect(fired).to.deep.equal([]);
    vc.write(2, 0x19); // what iavf_irq_enable_queues writes
    expect(fired).to.deep.equal([2]);
  });

  it('fires at once on SWINT_TRIG with INTENA, as iavf_force_wb asks', () => {
    const { vc, fired } = make();
    vc.write(0, 0x0100001d);
    expect(fired).to.deep.equal([0]);
    expect(vc.read(0) & DynCtl.SWINT_TRIG).to.equal(0);
  });

  it('raises nothing under WB_ON_ITR without INTENA (iavf_enable_wb_on_itr) and keeps the cause for the re-arm', () => {
    const { vc, fired } = make();
    vc.write(1, 0x19);
    vc.raise(1);
    expect(fired).to.deep.equal([1]);
    vc.write(1, DynCtl.WB_ON_ITR | (3 << DynCtl.ITR_INDX_SHIFT));
    vc.raise(1);
    vc.raise(1);
    expect(fired).to.deep.equal([1]);
    vc.write(1, 0x19);
    expect(fired).to.deep.equal([1, 1]);
  });

  it('keeps a pending cause across CLEARPBA (DPDK re-arms with INTENA | CLEARPBA) and forgets it on reset', () => {
    const { vc, fired } = make();
    vc.raise(1);
    vc.write(1, DynCtl.CLEARPBA);
    expect(fired).to.deep.equal([]);
    vc.write(1, DynCtl.INTENA | DynCtl.CLEARPBA | (3 << DynCtl.ITR_INDX_SHIFT));
    expect(fired).to.deep.equal([1]);
    vc.raise(2);
    vc.reset();
    vc.write(2, DynCtl.INTENA);
    expect(fired).to.deep.equal([1]);
  });

  it('ignores vectors the device does not have', () => {
    const { vc, fired } = make();
    vc.write(7, DynCtl.INTENA | DynCtl.SWINT_TRIG);
    vc.raise(7);
    expect(fired).to.deep.equal([]);
    expect(vc.read(7)).to.equal(0);
  });
});

describe('interrupt throttling (ITR)', () => {
  /** A clock the test moves by hand, in milliseconds. */
  const make = () => {
    let t = 1000;
    const fired: number[] = [];
    const vc = new VectorControl(
      2,
      (v) => {
        fired.push(v);
        return true;
      },
      () => t,
    );
    return { vc, fired, advance: (ms: number) => (t += ms) };
  };
  const armWithItr = (index: number, interval2us: number) =>
    DynCtl.INTENA | (index << DynCtl.ITR_INDX_SHIFT) | (interval2us << DynCtl.INTERVAL_SHIFT);

  it('holds a second cause until the ITR interval since the last interrupt is over', async () => {
    const { vc, fired, advance } = make();
    vc.write(1, armWithItr(0, 1000)); // ITR0 = 2 ms, as iavf_buildreg_itr writes it
    vc.raise(1, 0);
    expect(fired).to.deep.equal([1]);
    vc.write(1, DynCtl.INTENA | (3 << DynCtl.ITR_INDX_SHIFT)); // NAPI re-arms (0x19): no interval change
    vc.raise(1, 0);
    expect(fired, 'throttled').to.deep.equal([1]);
    expect(vc.throttled[1]).to.equal(1);
    expect(vc.readItr(1, 0)).to.equal(1000);
    advance(2);
    await new Promise((r) => setTimeout(r, 5));
    expect(fired).to.deep.equal([1, 1]);
  });

  it('does not throttle causes on ITR_NONE, nor a vector whose interval is 0', () => {
    const { vc, fired } = make();
    vc.write(0, 0x19);
    vc.raise(0);
    vc.write(0, 0x19);
    vc.raise(0);
    vc.write(1, armWithItr(1, 0));
    vc.raise(1, 1);
    vc.write(1, 0x19);
    vc.raise(1, 1);
    expect(fired).to.deep.equal([0, 0, 1, 1]);
  });

  it('fires at once when the interval has already passed, and forgets intervals on reset', () => {
    const { vc, fired, advance } = make();
    vc.writeItr(1, 0, 50); // 100 µs, through VFINT_ITRN1
    vc.write(1, 0x19);
    vc.raise(1, 0);
    advance(1);
    vc.write(1, 0x19);
    vc.raise(1, 0);
    expect(fired).to.deep.equal([1, 1]);
    vc.reset();
    expect(vc.readItr(1, 0)).to.equal(0);
  });
});

describe('ITR intervals kept where the device says', () => {
  it('reads and writes them through the given store (e.g. the shared tail page)', () => {
    const page = new Uint32Array(6);
    const vc = new VectorControl(2, () => true, undefined, {
      get: (v, i) => page[v * 3 + i],
      set: (v, i, x) => {
        page[v * 3 + i] = x;
      },
    });
    page[3] = 77; // the guest wrote VFINT_ITRN1(0, 0) in shared memory
    expect(vc.readItr(1, 0)).to.equal(77);
    vc.write(1, DynCtl.INTENA | (1 << DynCtl.ITR_INDX_SHIFT) | (12 << DynCtl.INTERVAL_SHIFT));
    expect(page[4]).to.equal(12);
  });
});
