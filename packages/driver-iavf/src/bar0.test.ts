import { IAVF_VECTORS_LAYOUT } from '@emu/native';
import { expect } from 'chai';
import { RegisterFile } from './bar0.js';
import { MAX_QUEUE_PAIRS, Reg } from './constants.js';

function capture() {
  const lines: string[] = [];
  const at = (_o: object | string, msg?: string) => lines.push(msg ?? String(_o));
  return { lines, log: { debug: at, info: at, warn: at, error: at } };
}

describe('BAR0 register file', () => {
  const make = () => {
    const store = new Uint32Array(4);
    const { lines, log } = capture();
    const file = new RegisterFile(
      0x1000,
      [
        {
          name: 'ARR',
          offset: 0x100,
          count: 4,
          stride: 8,
          read: (i) => store[i],
          write: (i, v) => {
            store[i] = v;
          },
        },
        { name: 'RO', offset: 0x10, read: () => 0xdeadbeef },
      ],
      log,
    );
    return { file, store, lines };
  };

  it('dispatches each dword to its family and index', () => {
    const { file, store } = make();
    file.writeDword(0x118, 7);
    expect(store[3]).to.equal(7);
    expect(file.readDword(0x118)).to.equal(7);
    expect(file.describe(0x108)).to.equal('ARR(1)');
    expect(file.describe(0x10)).to.equal('RO');
  });

  it('reads unknown offsets as 0 and logs each one once', () => {
    const { file, lines } = make();
    expect(file.readDword(0x104)).to.equal(0);
    file.readDword(0x104);
    file.writeDword(0x200, 1);
    expect(file.unknownAccesses).to.equal(3);
    expect(lines.filter((l) => l.includes('unimplemented'))).to.have.length(2);
  });

  it('ignores writes to read-only registers', () => {
    const { file } = make();
    file.writeDword(0x10, 1);
    expect(file.readDword(0x10)).to.equal(0xdeadbeef);
  });

  it('serves reads of any width and writes of whole dwords', () => {
    const { file, store } = make();
    // 0xdeadbeef is ef be ad de in memory: two bytes from 0x11 are be ad.
    expect(file.read(0x11, 2).toString('hex')).to.equal('bead');
    expect(file.read(0x0e, 4).toString('hex')).to.equal('0000efbe');
    file.write(0x100, Buffer.from([1, 0, 0, 0, 2, 0, 0, 0]));
    expect([store[0], file.readDword(0x104)]).to.deep.equal([1, 0]);
    file.write(0x108, Buffer.from([9, 9])); // a partial dword: ignored
    expect(store[1]).to.equal(0);
  });

  it('refuses a table whose registers overlap', () => {
    const { log } = capture();
    expect(
      () =>
        new RegisterFile(
          0x100,
          [
            { name: 'A', offset: 0, count: 2, read: () => 0 },
            { name: 'B', offset: 4, read: () => 0 },
          ],
          log,
        ),
    ).to.throw('register B at 0x4 overlaps A');
  });
});

describe('BAR0 interrupt registers in native code', () => {
  it('the native vectors use the offsets of the register map (VFINT_ITRN1 in the tail page, VFINT_DYN_CTLN1)', () => {
    expect(IAVF_VECTORS_LAYOUT).to.deep.equal({
      itrn1Offset: Reg.VFINT_ITRN1(0, 0),
      itrn1Stride: Reg.VFINT_ITRN1(1, 0) - Reg.VFINT_ITRN1(0, 0),
      dynCtln1Offset: Reg.VFINT_DYN_CTLN1(0),
      dynCtln1Count: 64, // Linux iavf_register.h: IAVF_VFINT_DYN_CTLN1_MAX_INDEX 63
      maxVectors: MAX_QUEUE_PAIRS + 1,
    });
  });
});
