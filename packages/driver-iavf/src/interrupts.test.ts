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

  it('forgets a pending cause on CLEARPBA and on reset', () => {
    const { vc, fired } = make();
    vc.raise(1);
    vc.write(1, DynCtl.CLEARPBA);
    vc.write(1, DynCtl.INTENA);
    vc.raise(2);
    vc.reset();
    vc.write(2, DynCtl.INTENA);
    expect(fired).to.deep.equal([]);
  });

  it('ignores vectors the device does not have', () => {
    const { vc, fired } = make();
    vc.write(7, DynCtl.INTENA | DynCtl.SWINT_TRIG);
    vc.raise(7);
    expect(fired).to.deep.equal([]);
    expect(vc.read(7)).to.equal(0);
  });
});
