import { expect } from 'chai';
import { crc32c, iavfTxFrames } from './offloads.js';

describe('crc32c', () => {
  // RFC 3720 appendix B.4: the CRC's bytes as sent (little-endian), for four 32-byte inputs.
  const le = (hex: string) => Buffer.from(hex, 'hex').readUInt32LE(0);
  it('gives the test vectors of RFC 3720 appendix B.4 and the common check value', () => {
    expect(crc32c(new Uint8Array(32))).to.equal(le('aa36918a'));
    expect(crc32c(new Uint8Array(32).fill(0xff))).to.equal(le('43aba862'));
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).to.equal(le('4e79dd46'));
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).to.equal(le('5cdb3f11'));
    expect(crc32c(Buffer.from('123456789'))).to.equal(0xe3069283);
    expect(crc32c(new Uint8Array(0))).to.equal(0);
  });

  it('continues from an earlier result, whatever the split (the 8-byte and 1-byte loops agree)', () => {
    const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 131 + 7) & 0xff);
    const whole = crc32c(data);
    for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) {
      expect(crc32c(data.subarray(cut), crc32c(data.subarray(0, cut))), `cut at ${cut}`).to.equal(whole);
    }
  });

  it('refuses what is not bytes', () => {
    expect(() => crc32c('abc' as unknown as Uint8Array)).to.throw(TypeError);
    expect(() => crc32c(new Uint8Array(1), -1)).to.throw(RangeError);
  });
});

describe('iavfTxFrames', () => {
  /** An Ethernet/IPv4/TCP packet with `payload` bytes, checksums left zero. */
  function tcp(payload: number): Buffer {
    const f = Buffer.alloc(54 + payload, 0x41);
    f.fill(0, 0, 54);
    f.writeUInt16BE(0x0800, 12);
    f[14] = 0x45;
    f.writeUInt16BE(40 + payload, 16);
    f[22] = 64;
    f[23] = 6;
    Buffer.from([10, 0, 0, 1, 10, 0, 0, 2]).copy(f, 26);
    f[46] = 0x50;
    return f;
  }
  const sum = (b: Buffer) => {
    let s = 0;
    for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
    if (b.length & 1) s += b[b.length - 1] << 8;
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    return s;
  };
  const lengths = { macLen: 14, ipLen: 20, l4Len: 20 };

  it('offloads the checksums, segments TSO and inserts the VLAN tag as the descriptor fields ask', () => {
    const plain = iavfTxFrames(tcp(100), { cmd: 0x1, ...lengths });
    expect(plain).to.deep.equal({ frames: [tcp(100)], badTso: false });
    const [ip] = iavfTxFrames(tcp(100), { cmd: 0x1 | 0x60, ...lengths }).frames;
    expect(sum(ip.subarray(14, 34)), 'IPv4 header sums to 0xffff').to.equal(0xffff);
    const segs = iavfTxFrames(tcp(3000), {
      cmd: 0x1 | 0x60 | 0x100 | 0x8,
      ...lengths,
      tso: true,
      mss: 1000,
      tsoLen: 3000,
      l2tag1: 0x0064,
    });
    expect(segs.badTso).to.equal(false);
    expect(segs.frames.map((f) => f.length)).to.deep.equal([1058, 1058, 1058]);
    for (const f of segs.frames) {
      expect(f.subarray(12, 16).toString('hex')).to.equal('81000064');
      expect(sum(f.subarray(18, 38))).to.equal(0xffff);
    }
  });

  it('reports a TSO it cannot segment and sends nothing; refuses bad fields', () => {
    expect(iavfTxFrames(tcp(3000), { cmd: 0x1, ...lengths, tso: true, mss: 10, tsoLen: 3000 })).to.deep.equal(
      {
        frames: [],
        badTso: true,
      },
    );
    expect(() => iavfTxFrames(tcp(10), { cmd: 0x400, ...lengths })).to.throw(RangeError);
    expect(() => iavfTxFrames('x' as unknown as Uint8Array, { cmd: 1, ...lengths })).to.throw(TypeError);
  });
});
