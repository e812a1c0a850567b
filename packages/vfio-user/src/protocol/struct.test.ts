import { expect } from 'chai';
import { DmaMap, Header, RegionInfo } from './messages.js';
import { StructRangeError, struct } from './struct.js';

describe('struct codec', () => {
  it('lays fields out little-endian in declaration order', () => {
    const buf = Header.encode({ msgId: 0x1234, command: 5, size: 48, flags: 1, error: 0 });
    expect(buf.toString('hex')).to.equal('341205003000000001000000' + '00000000');
    expect(Header.size).to.equal(16);
  });

  it('round-trips u64 fields as bigint', () => {
    const value = { argsz: 32, flags: 3, offset: 0x1000n, address: 0xfffff000_00000000n, size: 1n << 40n };
    expect(DmaMap.decode(DmaMap.encode(value))).to.deep.equal(value);
    expect(DmaMap.size).to.equal(32);
    expect(RegionInfo.size).to.equal(32);
  });

  it('encodes missing fields as zero', () => {
    expect(RegionInfo.encode({ index: 7 }).toString('hex')).to.equal(`${'00'.repeat(8)}07${'00'.repeat(23)}`);
  });

  it('refuses values that do not fit and buffers that are too short', () => {
    const s = struct('t', { a: 'u16', b: 'u32' });
    expect(() => s.encode({ a: 0x10000 })).to.throw(StructRangeError, 't.a: 65536 does not fit in u16');
    expect(() => s.encode({ b: -1 })).to.throw(StructRangeError, 'does not fit in u32');
    expect(() => s.encode({ b: 1.5 })).to.throw(StructRangeError);
    expect(() => s.decode(Buffer.alloc(5))).to.throw(StructRangeError, 't: need 6 bytes, have 5');
    expect(() => DmaMap.encode({ size: -1n })).to.throw(StructRangeError, 'u64');
  });

  it('decodes at an offset inside a larger buffer', () => {
    const buf = Buffer.concat([Buffer.alloc(3, 0xff), Header.encode({ msgId: 9, size: 16 })]);
    expect(Header.decode(buf, 3)).to.include({ msgId: 9, size: 16 });
  });
});
