import { expect } from 'chai';
import { PciConfigSpace } from './config-space.js';
import {
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_CAP_ID_VNDR,
  PCI_CAPABILITY_LIST,
  PCI_EXP_DEVCAP,
  PCI_EXP_DEVCAP2,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVSTA,
  PCI_EXP_FLAGS,
  PCI_EXP_LNKCAP,
  PCI_EXP_LNKCAP2,
  PCI_EXP_LNKCTL,
  PCI_EXP_LNKCTL2,
  PCI_EXP_LNKSTA,
  PCI_EXP_SLTCAP,
  PCI_MSI_ADDRESS_HI,
  PCI_MSI_ADDRESS_LO,
  PCI_MSI_DATA_32,
  PCI_MSI_DATA_64,
  PCI_MSI_FLAGS,
  PCI_MSI_MASK_32,
  PCI_MSI_MASK_64,
  PCI_MSI_PENDING_32,
  PCI_MSI_PENDING_64,
  PCI_MSIX_FLAGS,
  PCI_MSIX_PBA,
  PCI_MSIX_TABLE,
  PCI_PM_CTRL,
  PCI_PM_PMC,
} from './constants.js';
import type { PciBar, PciCapability, PciConfigOptions } from './types.js';

const identity = { vendorId: 0x1af4, deviceId: 0x1041, classCode: 0x020000, interruptPin: 1 };
const bars: PciBar[] = [
  { index: 0, kind: 'mem64', size: 0x4000, prefetchable: true },
  { index: 2, kind: 'mem32', size: 0x1000 },
];
const space = (capabilities: PciCapability[], extra: Partial<PciConfigOptions> = {}) =>
  new PciConfigSpace({ identity, bars, capabilities, ...extra });

/** Walks the list the way an OS does: pointer at 0x34, then next bytes, masking the low two bits. */
function walk(cfg: PciConfigSpace): [number, number][] {
  const found: [number, number][] = [];
  let ptr = cfg.readU8(PCI_CAPABILITY_LIST) & ~3;
  while (ptr !== 0 && found.length < 48) {
    found.push([ptr, cfg.readU8(ptr)]);
    ptr = cfg.readU8(ptr + 1) & ~3;
  }
  return found;
}

const msix = { id: 'msix', tableSize: 4, tableBar: 2, tableOffset: 0, pbaBar: 2, pbaOffset: 0x800 } as const;

describe('pci: capability list', () => {
  it('links capabilities from 0x40, dword aligned, in the given order', () => {
    const cfg = space([
      { id: 'msi', vectors: 4, addr64: true }, // 14 bytes -> next at 0x50
      { id: 'vendor', data: Uint8Array.of(1, 2) }, // 5 bytes -> next at 0x58
      { id: 'pm' },
      msix,
      { id: 'pcie' },
    ]);
    expect(walk(cfg)).to.deep.equal([
      [0x40, PCI_CAP_ID_MSI],
      [0x50, PCI_CAP_ID_VNDR],
      [0x58, PCI_CAP_ID_PM],
      [0x60, PCI_CAP_ID_MSIX],
      [0x6c, PCI_CAP_ID_EXP],
    ]);
    expect(cfg.capabilities).to.deep.equal([
      { id: 'msi', capId: 0x05, offset: 0x40, length: 0x0e },
      { id: 'vendor', capId: 0x09, offset: 0x50, length: 5 },
      { id: 'pm', capId: 0x01, offset: 0x58, length: 8 },
      { id: 'msix', capId: 0x11, offset: 0x60, length: 12 },
      { id: 'pcie', capId: 0x10, offset: 0x6c, length: 0x3c },
    ]);
    expect(cfg.capabilityOffset('pm')).to.equal(0x58);
    expect(cfg.capabilityOffset('msix')).to.equal(0x60);
    expect(space([{ id: 'pm' }]).capabilityOffset('msi')).to.equal(undefined);
  });

  it('capability ids and next pointers are read-only', () => {
    const cfg = space([{ id: 'pm' }, { id: 'msi', vectors: 1 }]);
    const before = cfg.read(0x40, 0x30);
    cfg.writeU16(0x40, 0xffff);
    cfg.writeU16(0x48, 0x0000);
    expect(cfg.read(0x40, 0x30)).to.deep.equal(before);
  });

  it('finds every vendor capability', () => {
    const cfg = space([
      { id: 'vendor', data: Uint8Array.of(1) },
      { id: 'pm' },
      { id: 'vendor', data: Uint8Array.of(2) },
    ]);
    expect(cfg.capabilityOffset('vendor')).to.equal(0x40);
    expect(cfg.capabilityOffsets('vendor')).to.deep.equal([0x40, 0x4c]);
  });
});

describe('pci: power management capability', () => {
  const at = 0x40;

  it('PMC: version 3, no D1/D2, no PME; PMCSR: D0 with NoSoftReset', () => {
    const cfg = space([{ id: 'pm' }]);
    expect(cfg.readU8(at)).to.equal(PCI_CAP_ID_PM);
    expect(cfg.readU16(at + PCI_PM_PMC)).to.equal(0x0003);
    expect(cfg.readU16(at + PCI_PM_CTRL)).to.equal(0x0008);
    expect(cfg.powerState).to.equal('D0');
  });

  it('PowerState is writable between D0 and D3hot; unsupported D1/D2 writes are discarded', () => {
    const cfg = space([{ id: 'pm' }]);
    cfg.writeU16(at + PCI_PM_CTRL, 0xffff); // D3hot; PME_En, data select, PME_Status stay 0
    expect(cfg.readU16(at + PCI_PM_CTRL)).to.equal(0x000b);
    expect(cfg.powerState).to.equal('D3hot');
    cfg.writeU8(at + PCI_PM_CTRL, 1);
    expect(cfg.powerState).to.equal('D3hot');
    cfg.writeU8(at + PCI_PM_CTRL, 0);
    expect(cfg.powerState).to.equal('D0');
    cfg.writeU8(at + PCI_PM_CTRL, 2);
    expect(cfg.powerState).to.equal('D0');
    expect(cfg.readU16(at + PCI_PM_PMC)).to.equal(0x0003);
  });

  it('powerState is undefined without the capability', () => {
    expect(space([]).powerState).to.equal(undefined);
  });
});

describe('pci: MSI capability', () => {
  const at = 0x40;

  it('64-bit without per-vector masking (default addr64)', () => {
    const cfg = space([{ id: 'msi', vectors: 8 }]);
    expect(cfg.readU16(at + PCI_MSI_FLAGS)).to.equal(0x0086); // 64-bit, MMC = 3
    cfg.writeU32(at + PCI_MSI_ADDRESS_LO, 0xfee0_100f); // low two bits are RO 0
    cfg.writeU32(at + PCI_MSI_ADDRESS_HI, 0x0000_0001);
    cfg.writeU16(at + PCI_MSI_DATA_64, 0x4041);
    cfg.writeU16(at + PCI_MSI_FLAGS, 0xffff); // enable, MME clamped to MMC; 64-bit flag stays
    expect(cfg.readU16(at + PCI_MSI_FLAGS)).to.equal(0x00b7);
    expect(cfg.msi).to.deep.equal({
      enabled: true,
      vectors: 8,
      vectorsEnabled: 8,
      addr64: true,
      address: 0x1_fee0_100cn,
      data: 0x4041,
    });
  });

  it('Multiple Message Enable is writable up to Multiple Message Capable', () => {
    const cfg = space([{ id: 'msi', vectors: 4 }]);
    cfg.writeU16(at + PCI_MSI_FLAGS, 0x0011); // 2 vectors + enable
    expect(cfg.msi).to.deep.include({ enabled: true, vectorsEnabled: 2 });
    cfg.writeU16(at + PCI_MSI_FLAGS, 0x0050); // 32 requested, 4 capable
    expect(cfg.msi).to.deep.include({ enabled: false, vectorsEnabled: 4 });
    expect(cfg.readU16(at + PCI_MSI_FLAGS)).to.equal(0x00a4);
  });

  it('32-bit without masking: data at 0x08, nothing beyond', () => {
    const cfg = space([{ id: 'msi', vectors: 1, addr64: false }, { id: 'pm' }]);
    expect(cfg.readU16(at + PCI_MSI_FLAGS)).to.equal(0x0000);
    expect(cfg.readU8(at + 1)).to.equal(0x4c); // 10-byte structure, next aligned to 0x4c
    cfg.writeU32(at + PCI_MSI_ADDRESS_LO, 0xfee0_0000);
    cfg.writeU16(at + PCI_MSI_DATA_32, 0x0031);
    cfg.writeU16(at + PCI_MSI_FLAGS, 0x0071); // MME clamps to 0 (one vector)
    expect(cfg.msi).to.deep.equal({
      enabled: true,
      vectors: 1,
      vectorsEnabled: 1,
      addr64: false,
      address: 0xfee0_0000n,
      data: 0x31,
    });
  });

  it('32-bit with per-vector masking: mask bits RW for implemented vectors, pending RO', () => {
    const cfg = space([{ id: 'msi', vectors: 4, addr64: false, perVectorMask: true }]);
    expect(cfg.readU16(at + PCI_MSI_FLAGS)).to.equal(0x0104);
    expect(cfg.capabilities[0].length).to.equal(0x14);
    cfg.writeU32(at + PCI_MSI_MASK_32, 0xffffffff);
    cfg.writeU32(at + PCI_MSI_PENDING_32, 0xffffffff);
    expect(cfg.readU32(at + PCI_MSI_MASK_32)).to.equal(0xf);
    expect(cfg.readU32(at + PCI_MSI_PENDING_32)).to.equal(0);
    cfg.setMsiPending(3, true);
    cfg.setMsiPending(0, true);
    cfg.setMsiPending(0, false);
    expect(cfg.msi).to.deep.include({ maskBits: 0xf, pendingBits: 0x8 });
    expect(() => cfg.setMsiPending(4, true)).to.throw(RangeError, 'MSI vector 4 is out of range (0..3)');
  });

  it('64-bit with per-vector masking and 32 vectors: all mask bits writable', () => {
    const cfg = space([{ id: 'msi', vectors: 32, perVectorMask: true }]);
    expect(cfg.readU16(at + PCI_MSI_FLAGS)).to.equal(0x018a);
    expect(cfg.capabilities[0].length).to.equal(0x18);
    cfg.writeU32(at + PCI_MSI_MASK_64, 0xffffffff);
    expect(cfg.readU32(at + PCI_MSI_MASK_64)).to.equal(0xffffffff);
    cfg.setMsiPending(31, true);
    expect(cfg.readU32(at + PCI_MSI_PENDING_64)).to.equal(0x8000_0000);
    cfg.writeU32(at + PCI_MSI_PENDING_64, 0);
    expect(cfg.msi?.pendingBits).to.equal(0x8000_0000);
  });

  it('setMsiPending needs MSI with per-vector masking', () => {
    expect(() => space([]).setMsiPending(0, true)).to.throw('no MSI capability');
    expect(() => space([{ id: 'msi', vectors: 2 }]).setMsiPending(0, true)).to.throw('no per-vector masking');
  });

  it('enabled MSI suppresses INTx', () => {
    const cfg = space([{ id: 'msi', vectors: 1 }]);
    cfg.setInterruptStatus(true);
    expect(cfg.intxAsserted).to.equal(true);
    cfg.writeU16(at + PCI_MSI_FLAGS, 1);
    expect(cfg.intxAsserted).to.equal(false);
  });
});

describe('pci: MSI-X capability', () => {
  const at = 0x40;

  it('message control holds N-1; table and PBA registers hold offset | BIR', () => {
    const cfg = space([
      { id: 'msix', tableSize: 64, tableBar: 0, tableOffset: 0x2000, pbaBar: 2, pbaOffset: 0x10 },
    ]);
    expect(cfg.readU8(at)).to.equal(PCI_CAP_ID_MSIX);
    expect(cfg.readU16(at + PCI_MSIX_FLAGS)).to.equal(63);
    expect(cfg.readU32(at + PCI_MSIX_TABLE)).to.equal(0x2000);
    expect(cfg.readU32(at + PCI_MSIX_PBA)).to.equal(0x12);
    expect(cfg.msix).to.deep.equal({
      enabled: false,
      functionMasked: false,
      tableSize: 64,
      tableBar: 0,
      tableOffset: 0x2000,
      pbaBar: 2,
      pbaOffset: 0x10,
    });
  });

  it('only enable (bit 15) and function mask (bit 14) are writable', () => {
    const cfg = space([{ ...msix, tableSize: 2048, tableBar: 0, pbaBar: 0, pbaOffset: 0x8000 }], {
      bars: [{ index: 0, kind: 'mem64', size: 0x10000 }],
    });
    cfg.writeU16(at + PCI_MSIX_FLAGS, 0xffff);
    expect(cfg.readU16(at + PCI_MSIX_FLAGS)).to.equal(0xc7ff);
    expect(cfg.msix).to.deep.include({ enabled: true, functionMasked: true, tableSize: 2048 });
    cfg.writeU8(at + PCI_MSIX_FLAGS + 1, 0x80); // byte write: enable, unmask
    expect(cfg.msix).to.deep.include({ enabled: true, functionMasked: false });
    cfg.writeU32(at + PCI_MSIX_TABLE, 0xffffffff);
    cfg.writeU32(at + PCI_MSIX_PBA, 0);
    expect(cfg.msix).to.deep.include({ tableBar: 0, tableOffset: 0, pbaBar: 0, pbaOffset: 0x8000 });
    expect(cfg.intxAsserted).to.equal(false);
  });

  it('msix is undefined without the capability', () => {
    expect(space([]).msix).to.equal(undefined);
    expect(space([]).msi).to.equal(undefined);
  });
});

describe('pci: PCI Express capability', () => {
  const at = 0x40;

  it('defaults: version 2 endpoint, 128-byte payload, x1 at 2.5 GT/s, 4096-byte space', () => {
    const cfg = space([{ id: 'pcie' }]);
    expect(cfg.size).to.equal(4096);
    expect(cfg.readU8(at)).to.equal(PCI_CAP_ID_EXP);
    expect(cfg.readU16(at + PCI_EXP_FLAGS)).to.equal(0x0002);
    expect(cfg.readU32(at + PCI_EXP_DEVCAP)).to.equal(0x0000_8000); // RBER, 128 bytes, no FLR
    expect(cfg.readU16(at + PCI_EXP_DEVCTL)).to.equal(0x2810); // relaxed ordering, no snoop, 512-byte reads
    expect(cfg.readU32(at + PCI_EXP_LNKCAP)).to.equal(0x0000_0011);
    expect(cfg.readU16(at + PCI_EXP_LNKSTA)).to.equal(0x0011);
    expect(cfg.readU32(at + PCI_EXP_LNKCAP2)).to.equal(0x2);
    expect(cfg.readU16(at + PCI_EXP_LNKCTL2)).to.equal(0x1);
    expect(cfg.readU32(at + PCI_EXP_SLTCAP)).to.equal(0);
    expect(cfg.readU32(at + PCI_EXP_DEVCAP2)).to.equal(0);
  });

  it('link speed, width and payload options', () => {
    const cfg = space([{ id: 'pcie', maxPayload: 512, linkSpeed: 16, linkWidth: 8 }]);
    expect(cfg.readU32(at + PCI_EXP_DEVCAP) & 0x7).to.equal(2);
    expect(cfg.readU32(at + PCI_EXP_LNKCAP)).to.equal(0x0000_0084);
    expect(cfg.readU16(at + PCI_EXP_LNKSTA)).to.equal(0x0084);
    expect(cfg.readU32(at + PCI_EXP_LNKCAP2)).to.equal(0x1e); // 2.5, 5, 8 and 16 GT/s
    expect(cfg.readU16(at + PCI_EXP_LNKCTL2)).to.equal(0x4);
  });

  it('rc-endpoint: port type 9 and no link registers', () => {
    const cfg = space([{ id: 'pcie', portType: 'rc-endpoint' }]);
    expect(cfg.readU16(at + PCI_EXP_FLAGS)).to.equal(0x0092);
    expect(cfg.read(at + PCI_EXP_LNKCAP, 8)).to.deep.equal(Buffer.alloc(8));
    cfg.writeU16(at + PCI_EXP_LNKCTL, 0xffff);
    cfg.writeU16(at + PCI_EXP_LNKCTL2, 0xffff);
    expect(cfg.readU16(at + PCI_EXP_LNKCTL)).to.equal(0);
    expect(cfg.readU32(at + PCI_EXP_LNKCAP2)).to.equal(0);
    expect(cfg.readU16(at + PCI_EXP_LNKCTL2)).to.equal(0);
  });

  it('device control RW fields, device status W1C bits, capability registers RO', () => {
    const cfg = space([{ id: 'pcie' }]);
    const before = cfg.read(at, 0x3c);
    cfg.writeU16(at + PCI_EXP_DEVCTL, 0xffff);
    // error reporting enables, relaxed ordering, payload, no snoop, read request; not ext tag,
    // phantom, aux PM or FLR (not advertised)
    expect(cfg.readU16(at + PCI_EXP_DEVCTL)).to.equal(0x78ff);
    cfg.writeU16(at + PCI_EXP_DEVCTL, 0x0000);
    expect(cfg.readU16(at + PCI_EXP_DEVCTL)).to.equal(0);
    cfg.writeU16(at + PCI_EXP_LNKCTL, 0xffff);
    expect(cfg.readU16(at + PCI_EXP_LNKCTL)).to.equal(0x00c8); // RCB, common clock, extended synch
    for (const reg of [PCI_EXP_FLAGS, PCI_EXP_DEVCAP, PCI_EXP_LNKCAP, PCI_EXP_LNKSTA, PCI_EXP_LNKCAP2]) {
      cfg.writeU32(at + reg, 0);
      cfg.writeU32(at + reg, 0xffffffff);
    }
    expect(cfg.read(at + PCI_EXP_FLAGS, 6)).to.deep.equal(before.subarray(PCI_EXP_FLAGS, PCI_EXP_FLAGS + 6));
    expect(cfg.readU32(at + PCI_EXP_LNKCAP)).to.equal(0x11);

    cfg.poke(at + PCI_EXP_DEVSTA, Uint8Array.of(0x2f, 0x00)); // device reports errors + transactions pending
    cfg.writeU16(at + PCI_EXP_DEVSTA, 0x0005);
    expect(cfg.readU16(at + PCI_EXP_DEVSTA)).to.equal(0x002a);
    cfg.writeU16(at + PCI_EXP_DEVSTA, 0xffff);
    expect(cfg.readU16(at + PCI_EXP_DEVSTA)).to.equal(0x0020); // TRPND is not W1C
  });

  it('extended config space 0x100..0xfff reads 0 (null extended capability header) and ignores writes', () => {
    const cfg = space([{ id: 'pcie' }]);
    expect(cfg.readU32(0x100)).to.equal(0);
    cfg.write(0x100, Buffer.alloc(0xf00, 0xff));
    expect(cfg.read(0x100, 0xf00)).to.deep.equal(Buffer.alloc(0xf00));
  });

  it('size can be forced to 256 with a pcie capability, or 4096 without one', () => {
    expect(space([{ id: 'pcie' }], { size: 256 }).size).to.equal(256);
    expect(space([], { size: 4096 }).size).to.equal(4096);
    expect(space([]).size).to.equal(256);
  });

  it('FLR: advertised, Initiate FLR resets the config space and notifies, and reads back 0', () => {
    const cfg = space([{ id: 'pcie', flr: true }]);
    expect(cfg.readU32(at + PCI_EXP_DEVCAP) & 0x1000_0000).to.equal(0x1000_0000);
    cfg.writeU16(0x04, 0x0006);
    cfg.writeU32(0x18, 0xfebf_0000);
    const events: string[] = [];
    cfg.onFunctionLevelReset(() => events.push(`flr command=${cfg.commandRegister}`));
    cfg.onWrite((offset, length) => events.push(`write ${offset}+${length}`));
    cfg.writeU16(at + PCI_EXP_DEVCTL, 0x0010); // no FLR bit: nothing happens
    expect(cfg.commandRegister).to.equal(6);
    cfg.writeU16(at + PCI_EXP_DEVCTL, 0x8000);
    expect(cfg.commandRegister).to.equal(0);
    expect(cfg.barAddress(2)).to.equal(0n);
    expect(cfg.readU16(at + PCI_EXP_DEVCTL)).to.equal(0x2810); // power-on value; the FLR bit reads 0
    expect(events).to.deep.equal([`write ${at + 8}+2`, 'flr command=0', `write ${at + 8}+2`]);
  });

  it('without flr the Initiate FLR bit is read-only', () => {
    const cfg = space([{ id: 'pcie' }]);
    cfg.writeU16(0x04, 0x0002);
    cfg.writeU8(at + PCI_EXP_DEVCTL + 1, 0x80); // also clears no-snoop and the read request size
    expect(cfg.commandRegister).to.equal(2);
    expect(cfg.readU16(at + PCI_EXP_DEVCTL)).to.equal(0x0010);
  });
});

describe('pci: vendor-specific capability', () => {
  it('holds the length byte and the data, read-only unless a writable mask is given', () => {
    const cfg = space([
      {
        id: 'vendor',
        data: Uint8Array.of(0xaa, 0xbb, 0xcc, 0xdd),
        writable: Uint8Array.of(0, 0xff, 0x0f, 0),
      },
    ]);
    expect([...cfg.read(0x40, 8)]).to.deep.equal([0x09, 0x00, 7, 0xaa, 0xbb, 0xcc, 0xdd, 0]);
    cfg.write(0x42, Uint8Array.of(0x55, 0x11, 0x22, 0x33, 0x44));
    expect([...cfg.read(0x40, 8)]).to.deep.equal([0x09, 0x00, 7, 0xaa, 0x22, 0xc3, 0xdd, 0]);
  });

  it('empty data is allowed (header only)', () => {
    const cfg = space([{ id: 'vendor', data: new Uint8Array(0) }]);
    expect([...cfg.read(0x40, 4)]).to.deep.equal([0x09, 0x00, 3, 0]);
  });

  it('copies the data (later changes to the caller array do not leak in)', () => {
    const data = Uint8Array.of(1, 2, 3);
    const cfg = space([{ id: 'vendor', data }]);
    data[0] = 9;
    expect(cfg.readU8(0x43)).to.equal(1);
  });
});
