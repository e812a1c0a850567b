import { expect } from 'chai';
import { crc32c } from './offloads.js';

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
