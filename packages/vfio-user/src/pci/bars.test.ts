import { expect } from 'chai';
import { PciConfigSpace } from './config-space.js';
import { PCI_BASE_ADDRESS_0 } from './constants.js';
import type { PciBar } from './types.js';

const identity = { vendorId: 0x1b36, deviceId: 0x0010, classCode: 0x010802 };
const space = (bars: PciBar[]) => new PciConfigSpace({ identity, bars });
const barOffset = (i: number) => PCI_BASE_ADDRESS_0 + 4 * i;

/** What a guest does to size a BAR: write all ones, read back, restore. */
function sizeBar(cfg: PciConfigSpace, i: number): number {
  const saved = cfg.readU32(barOffset(i));
  cfg.writeU32(barOffset(i), 0xffffffff);
  const probed = cfg.readU32(barOffset(i));
  cfg.writeU32(barOffset(i), saved);
  return probed;
}

describe('pci: BARs', () => {
  it('32-bit memory BAR: flag bits at power-on, size mask on sizing, address programmable', () => {
    const cfg = space([
      { index: 0, kind: 'mem32', size: 0x4000 },
      { index: 1, kind: 'mem32', size: 0x1000, prefetchable: true },
    ]);
    expect(cfg.readU32(barOffset(0))).to.equal(0);
    expect(cfg.readU32(barOffset(1))).to.equal(0x8); // prefetchable, type 00, memory
    expect(sizeBar(cfg, 0)).to.equal(0xffffc000);
    expect(sizeBar(cfg, 1)).to.equal(0xfffff008);
    cfg.writeU32(barOffset(0), 0xfebf_0123); // low bits below the size are not decoded
    expect(cfg.readU32(barOffset(0))).to.equal(0xfebf_0000);
    expect(cfg.barAddress(0)).to.equal(0xfebf_0000n);
    expect(cfg.barSize(0)).to.equal(0x4000n);
    expect(cfg.barSize(1)).to.equal(0x1000n);
  });

  it('smallest memory BAR (16 bytes) keeps all four flag bits read-only', () => {
    const cfg = space([{ index: 0, kind: 'mem32', size: 16, prefetchable: true }]);
    expect(sizeBar(cfg, 0)).to.equal(0xfffffff8);
  });

  it('2 GiB 32-bit BAR only has bit 31 writable', () => {
    const cfg = space([{ index: 0, kind: 'mem32', size: 0x8000_0000 }]);
    expect(sizeBar(cfg, 0)).to.equal(0x8000_0000);
  });

  it('I/O BAR: bit 0 set, bit 1 reserved 0', () => {
    const cfg = space([{ index: 2, kind: 'io', size: 0x20 }]);
    expect(cfg.readU32(barOffset(2))).to.equal(0x1);
    expect(sizeBar(cfg, 2)).to.equal(0xffffffe1);
    cfg.writeU32(barOffset(2), 0xc043);
    expect(cfg.readU32(barOffset(2))).to.equal(0xc041);
    expect(cfg.barAddress(2)).to.equal(0xc040n);
    expect(cfg.bar(2)).to.deep.include({ kind: 'io', size: 0x20n, prefetchable: false, address: 0xc040n });
  });

  it('smallest I/O BAR (4 bytes)', () => {
    expect(sizeBar(space([{ index: 0, kind: 'io', size: 4 }]), 0)).to.equal(0xfffffffd);
  });

  it('64-bit BAR below 4 GiB: type 10b in the low dword, upper dword fully writable', () => {
    const cfg = space([{ index: 0, kind: 'mem64', size: 0x10000, prefetchable: true }]);
    expect(cfg.readU32(barOffset(0))).to.equal(0xc);
    expect(cfg.readU32(barOffset(1))).to.equal(0);
    cfg.writeU32(barOffset(0), 0xffffffff);
    cfg.writeU32(barOffset(1), 0xffffffff);
    expect(cfg.readU32(barOffset(0))).to.equal(0xffff000c);
    expect(cfg.readU32(barOffset(1))).to.equal(0xffffffff);
    cfg.writeU32(barOffset(0), 0x8000_0000);
    cfg.writeU32(barOffset(1), 0x0000_0001);
    expect(cfg.barAddress(0)).to.equal(0x1_8000_0000n);
    expect(cfg.barSize(0)).to.equal(0x10000n);
  });

  it('64-bit BAR of 8 GiB: the low dword has no address bits, the upper dword holds the size mask', () => {
    const cfg = space([{ index: 2, kind: 'mem64', size: 8n << 30n }]);
    cfg.writeU32(barOffset(2), 0xffffffff);
    cfg.writeU32(barOffset(3), 0xffffffff);
    expect(cfg.readU32(barOffset(2))).to.equal(0x4); // 64-bit, not prefetchable, no writable bits
    expect(cfg.readU32(barOffset(3))).to.equal(0xfffffffe);
    cfg.writeU32(barOffset(3), 0x0000_0013);
    expect(cfg.barAddress(2)).to.equal(0x12_0000_0000n);
    expect(cfg.barSize(2)).to.equal(8n << 30n);
  });

  it('64-bit BAR of exactly 4 GiB', () => {
    const cfg = space([{ index: 4, kind: 'mem64', size: 4 * 2 ** 30 }]);
    expect(sizeBar(cfg, 4)).to.equal(0x4);
    expect(sizeBar(cfg, 5)).to.equal(0xffffffff);
  });

  it('partial (byte and word) writes to BARs go through the same masks', () => {
    const cfg = space([
      { index: 0, kind: 'mem32', size: 0x1000 },
      { index: 1, kind: 'io', size: 0x100 },
    ]);
    cfg.writeU8(barOffset(0), 0xff); // bits 0..7: all read-only for a 4 KiB BAR
    expect(cfg.readU32(barOffset(0))).to.equal(0);
    cfg.writeU8(barOffset(0) + 1, 0xff); // bits 8..15: only 12..15 decode
    expect(cfg.readU32(barOffset(0))).to.equal(0x0000f000);
    cfg.writeU16(barOffset(0) + 2, 0xfebc);
    expect(cfg.readU32(barOffset(0))).to.equal(0xfebcf000);
    cfg.writeU16(barOffset(1), 0xffff);
    expect(cfg.readU32(barOffset(1))).to.equal(0x0000ff01);
    // A dword write straddling two BARs.
    cfg.write(barOffset(0) + 2, Buffer.from([0x00, 0x00, 0x00, 0xd0]));
    expect(cfg.readU32(barOffset(0))).to.equal(0x0000f000);
    expect(cfg.readU32(barOffset(1))).to.equal(0x0000d001);
  });

  it('unimplemented BARs read 0 and ignore writes', () => {
    const cfg = space([{ index: 1, kind: 'mem32', size: 0x1000 }]);
    for (const i of [0, 2, 3, 4, 5]) {
      expect(sizeBar(cfg, i), `BAR${i}`).to.equal(0);
      expect(cfg.barAddress(i)).to.equal(0n);
      expect(cfg.barSize(i)).to.equal(undefined);
      expect(cfg.bar(i)).to.equal(undefined);
    }
  });

  it('lists implemented BARs; the upper half of a 64-bit BAR is not a BAR of its own', () => {
    const cfg = space([
      { index: 0, kind: 'mem64', size: 0x4000 },
      { index: 2, kind: 'io', size: 0x10 },
      { index: 4, kind: 'mem32', size: 0x100, prefetchable: true },
    ]);
    expect(cfg.bars.map((b) => [b.index, b.kind, b.size, b.prefetchable])).to.deep.equal([
      [0, 'mem64', 0x4000n, false],
      [2, 'io', 0x10n, false],
      [4, 'mem32', 0x100n, true],
    ]);
    expect(cfg.barSize(1)).to.equal(undefined);
    expect(() => cfg.barAddress(1)).to.throw(RangeError, 'BAR1 is the upper half of 64-bit BAR0');
    expect(() => cfg.barAddress(6)).to.throw(RangeError, 'BAR index 6 is out of range (0..5)');
  });

  it('reset() clears programmed addresses', () => {
    const cfg = space([{ index: 0, kind: 'mem64', size: 0x1000, prefetchable: true }]);
    cfg.writeU32(barOffset(0), 0xfe00_0000);
    cfg.writeU32(barOffset(1), 0x1);
    cfg.reset();
    expect(cfg.barAddress(0)).to.equal(0n);
    expect(cfg.readU32(barOffset(0))).to.equal(0xc);
  });
});
