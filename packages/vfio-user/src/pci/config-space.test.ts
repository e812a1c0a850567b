import { expect } from 'chai';
import { PciConfigSpace } from './config-space.js';
import { PCI_BASE_ADDRESS_0, PCI_COMMAND, PCI_INTERRUPT_LINE, PCI_STATUS } from './constants.js';
import type { PciConfigOptions } from './types.js';

const options: PciConfigOptions = {
  identity: { vendorId: 0x1af4, deviceId: 0x1041, classCode: 0x020000, revision: 1, interruptPin: 1 },
  bars: [
    { index: 0, kind: 'mem32', size: 0x1000 },
    { index: 1, kind: 'io', size: 0x40 },
    { index: 2, kind: 'mem64', size: 0x100000, prefetchable: true },
  ],
  capabilities: [
    { id: 'pm' },
    { id: 'msi', vectors: 4, perVectorMask: true },
    { id: 'msix', tableSize: 8, tableBar: 0, tableOffset: 0, pbaBar: 0, pbaOffset: 0x800 },
    { id: 'pcie' },
  ],
};

describe('pci: config space access', () => {
  it('reads any byte range at any alignment, consistent with the word views', () => {
    const cfg = new PciConfigSpace(options);
    const whole = cfg.read(0, cfg.size);
    expect(whole.length).to.equal(4096);
    for (let offset = 0; offset < 0x48; offset++) {
      for (const length of [1, 2, 3, 4, 5, 8]) {
        expect(cfg.read(offset, length)).to.deep.equal(whole.subarray(offset, offset + length));
      }
      expect(cfg.readU8(offset)).to.equal(whole.readUInt8(offset));
      expect(cfg.readU16(offset)).to.equal(whole.readUInt16LE(offset));
      expect(cfg.readU32(offset)).to.equal(whole.readUInt32LE(offset));
    }
    expect(cfg.readU32(0)).to.equal(0x10411af4);
    expect(cfg.readU16(1)).to.equal(0x411a); // unaligned word across vendor/device
    expect(cfg.read(0xffc, 4)).to.deep.equal(Buffer.alloc(4));
    expect(cfg.read(0x20, 0)).to.deep.equal(Buffer.alloc(0));
  });

  it('read returns a copy', () => {
    const cfg = new PciConfigSpace(options);
    const bytes = cfg.read(0, 4);
    bytes.fill(0);
    expect(cfg.readU16(0)).to.equal(0x1af4);
  });

  it('a single write may span several registers, each with its own masks', () => {
    const cfg = new PciConfigSpace(options);
    cfg.setStatusBits(0x2000);
    // command (RW subset), status (W1C), class/revision (RO), cache line (RW), latency/header/BIST (RO)
    cfg.write(PCI_COMMAND, Buffer.from('ffffffff' + 'ffffffff' + 'ffffffff', 'hex'));
    expect(cfg.readU16(PCI_COMMAND)).to.equal(0x0547);
    expect(cfg.readU16(PCI_STATUS)).to.equal(0x0010);
    expect(cfg.readU32(0x08)).to.equal(0x02000001);
    expect(cfg.readU32(0x0c)).to.equal(0x000000ff);
    // An unaligned 7-byte write from the middle of BAR0 into BAR2.
    cfg.write(PCI_BASE_ADDRESS_0 + 2, Uint8Array.of(0xbf, 0xfe, 0x81, 0xc0, 0x00, 0x00, 0x20));
    expect(cfg.barAddress(0)).to.equal(0xfebf_0000n);
    expect(cfg.barAddress(1)).to.equal(0xc080n);
    expect(cfg.readU32(PCI_BASE_ADDRESS_0 + 8)).to.equal(0x0000000c); // size mask keeps the low 20 bits
    cfg.write(PCI_BASE_ADDRESS_0 + 10, Uint8Array.of(0xf0, 0xff, 0x12, 0, 0, 0));
    expect(cfg.barAddress(2)).to.equal(0x12_fff0_0000n);
  });

  it('a write across the end of one capability into the next applies both', () => {
    const cfg = new PciConfigSpace(options);
    const msiAt = cfg.capabilityOffset('msi')!;
    const msixAt = cfg.capabilityOffset('msix')!;
    expect(msixAt).to.equal(msiAt + 0x18);
    const bytes = Buffer.alloc(8);
    bytes.writeUInt32LE(0xffffffff, 0); // MSI pending (RO)
    bytes.writeUInt32LE(0xffff1111, 4); // MSI-X id/next (RO) + control (enable, mask)
    cfg.write(msiAt + 0x14, bytes);
    expect(cfg.msi?.pendingBits).to.equal(0);
    expect(cfg.msix).to.deep.include({ enabled: true, functionMasked: true, tableSize: 8 });
  });

  it('throws RangeError outside the space, for negative or fractional offsets and lengths', () => {
    const cfg = new PciConfigSpace({ ...options, capabilities: [] });
    expect(cfg.size).to.equal(256);
    expect(() => cfg.read(0xfe, 4)).to.throw(
      RangeError,
      'config space read of 4 bytes at 0xfe is outside the 256-byte space',
    );
    expect(() => cfg.read(256, 1)).to.throw(RangeError);
    expect(() => cfg.read(-1, 1)).to.throw(RangeError, 'at -1');
    expect(() => cfg.read(1.5, 1)).to.throw(RangeError);
    expect(() => cfg.read(0, -1)).to.throw(RangeError);
    expect(() => cfg.readU32(253)).to.throw(RangeError);
    expect(() => cfg.write(0xff, Uint8Array.of(1, 2))).to.throw(RangeError, 'write of 2 bytes at 0xff');
    expect(() => cfg.poke(0x100, Uint8Array.of(1))).to.throw(RangeError, 'poke of 1 bytes at 0x100');
    expect(cfg.read(0xff, 1).length).to.equal(1);
  });

  it('onWrite listeners see every guest write after it is applied, and can unsubscribe', () => {
    const cfg = new PciConfigSpace(options);
    const seen: [number, number, number][] = [];
    const off = cfg.onWrite((offset, length) => seen.push([offset, length, cfg.commandRegister]));
    cfg.writeU16(PCI_COMMAND, 0x0006);
    cfg.write(0x00, Uint8Array.of(0)); // read-only, still reported
    cfg.write(0x10, new Uint8Array(0)); // empty: nothing to report
    off();
    cfg.writeU16(PCI_COMMAND, 0);
    expect(seen).to.deep.equal([
      [PCI_COMMAND, 2, 6],
      [0, 1, 6],
    ]);
  });

  it('poke bypasses the guest masks and does not notify', () => {
    const cfg = new PciConfigSpace(options);
    let calls = 0;
    cfg.onWrite(() => calls++);
    cfg.poke(0x2c, Uint8Array.of(0x34, 0x12));
    expect(cfg.readU16(0x2c)).to.equal(0x1234);
    expect(calls).to.equal(0);
  });

  it('reset() restores the power-on contents: command, status, BARs, capabilities, pokes', () => {
    const cfg = new PciConfigSpace(options);
    const powerOn = cfg.read(0, cfg.size);
    cfg.writeU16(PCI_COMMAND, 0x0407);
    cfg.setStatusBits(0x8000);
    cfg.setInterruptStatus(true);
    cfg.writeU8(PCI_INTERRUPT_LINE, 10);
    for (let i = 0; i < 6; i++) cfg.writeU32(PCI_BASE_ADDRESS_0 + 4 * i, 0xffffffff);
    const pm = cfg.capabilityOffset('pm')!;
    cfg.writeU16(pm + 4, 3);
    const msi = cfg.capabilityOffset('msi')!;
    cfg.write(msi + 2, Buffer.alloc(0x16, 0xff));
    const msix = cfg.capabilityOffset('msix')!;
    cfg.writeU16(msix + 2, 0xc000);
    cfg.poke(0x2c, Uint8Array.of(0, 0));
    expect(cfg.read(0, cfg.size)).to.not.deep.equal(powerOn);
    cfg.reset();
    expect(cfg.read(0, cfg.size)).to.deep.equal(powerOn);
    expect(cfg.commandRegister).to.equal(0);
    expect(cfg.bars.map((b) => b.address)).to.deep.equal([0n, 0n, 0n]);
    expect(cfg.msi).to.deep.include({ enabled: false, vectorsEnabled: 1, address: 0n, maskBits: 0 });
    expect(cfg.msix).to.deep.include({ enabled: false, functionMasked: false });
    expect(cfg.powerState).to.equal('D0');
  });
});
