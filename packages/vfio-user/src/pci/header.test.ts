import { expect } from 'chai';
import { PciConfigSpace } from './config-space.js';
import {
  PCI_BIST,
  PCI_CACHE_LINE_SIZE,
  PCI_CAPABILITY_LIST,
  PCI_CARDBUS_CIS,
  PCI_CLASS_DEVICE,
  PCI_CLASS_PROG,
  PCI_CLASS_REVISION,
  PCI_COMMAND,
  PCI_DEVICE_ID,
  PCI_HEADER_TYPE,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_LATENCY_TIMER,
  PCI_MAX_LAT,
  PCI_MIN_GNT,
  PCI_REVISION_ID,
  PCI_ROM_ADDRESS,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STATUS_DETECTED_PARITY,
  PCI_STATUS_INTERRUPT,
  PCI_STATUS_REC_MASTER_ABORT,
  PCI_STATUS_SIG_TARGET_ABORT,
  PCI_STD_HEADER_SIZEOF,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
} from './constants.js';
import { HEADER_REGISTERS } from './header.js';
import type { PciConfigOptions } from './types.js';

const identity = { vendorId: 0x1af4, deviceId: 0x1041, classCode: 0x020000 };
const space = (extra: Partial<PciConfigOptions> = {}) => new PciConfigSpace({ identity, bars: [], ...extra });

describe('pci: type-0 header', () => {
  it('the register table covers each header byte at most once', () => {
    const owner = Array.from<string | undefined>({ length: PCI_STD_HEADER_SIZEOF });
    for (const reg of HEADER_REGISTERS) {
      for (let i = reg.offset; i < reg.offset + reg.size; i++) {
        expect(owner[i], `byte ${i} in ${reg.name}`).to.equal(undefined);
        owner[i] = reg.name;
      }
    }
    const unlisted = owner.flatMap((name, i) => (name === undefined ? [i] : []));
    expect(unlisted).to.deep.equal([0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b]); // reserved
  });

  it('holds the identity, with the subsystem ids defaulting to vendor/device', () => {
    const cfg = new PciConfigSpace({
      identity: { vendorId: 0x8086, deviceId: 0x100e, classCode: 0x010802, revision: 0x03, interruptPin: 1 },
      bars: [],
    });
    expect(cfg.size).to.equal(256);
    expect(cfg.readU16(PCI_VENDOR_ID)).to.equal(0x8086);
    expect(cfg.readU16(PCI_DEVICE_ID)).to.equal(0x100e);
    expect(cfg.readU32(PCI_CLASS_REVISION)).to.equal(0x01080203);
    expect(cfg.readU8(PCI_REVISION_ID)).to.equal(0x03);
    expect(cfg.readU8(PCI_CLASS_PROG)).to.equal(0x02);
    expect(cfg.readU16(PCI_CLASS_DEVICE)).to.equal(0x0108);
    expect(cfg.readU16(PCI_SUBSYSTEM_VENDOR_ID)).to.equal(0x8086);
    expect(cfg.readU16(PCI_SUBSYSTEM_ID)).to.equal(0x100e);
    expect(cfg.readU8(PCI_INTERRUPT_PIN)).to.equal(1);
  });

  it('uses explicit subsystem ids', () => {
    const cfg = space({ identity: { ...identity, subsystemVendorId: 0x1af4, subsystemId: 0x1100 } });
    expect(cfg.readU32(PCI_SUBSYSTEM_VENDOR_ID)).to.equal(0x11001af4);
  });

  it('reads zero for the fixed fields: header type 0 single-function, BIST, CIS, ROM, min_gnt, max_lat', () => {
    const cfg = space();
    expect(cfg.readU8(PCI_HEADER_TYPE)).to.equal(0);
    for (const offset of [PCI_LATENCY_TIMER, PCI_BIST, PCI_MIN_GNT, PCI_MAX_LAT, PCI_INTERRUPT_PIN]) {
      expect(cfg.readU8(offset), `offset ${offset}`).to.equal(0);
    }
    expect(cfg.readU32(PCI_CARDBUS_CIS)).to.equal(0);
    expect(cfg.readU32(PCI_ROM_ADDRESS)).to.equal(0);
    expect(cfg.readU16(PCI_STATUS)).to.equal(0);
    expect(cfg.readU8(PCI_CAPABILITY_LIST)).to.equal(0);
  });

  it('ignores writes to read-only header fields, the ROM BAR and reserved bytes', () => {
    const cfg = space({ identity: { ...identity, interruptPin: 1 } });
    const before = cfg.read(0, 64);
    cfg.write(PCI_VENDOR_ID, Buffer.alloc(12, 0xff).fill(0, 4, 8)); // IDs, class, revision (command/status left 0)
    cfg.writeU32(PCI_ROM_ADDRESS, 0xfffff800); // ROM sizing finds no ROM
    cfg.writeU32(PCI_ROM_ADDRESS, 0xfffff801);
    cfg.write(0x34, Buffer.alloc(8, 0xff)); // cap pointer + reserved
    cfg.writeU8(PCI_INTERRUPT_PIN, 4);
    cfg.writeU16(PCI_MIN_GNT, 0xffff);
    cfg.writeU8(PCI_HEADER_TYPE, 0x80);
    cfg.writeU8(PCI_LATENCY_TIMER, 0x40);
    cfg.writeU8(PCI_BIST, 0x40);
    expect(cfg.read(0, 64)).to.deep.equal(before);
  });

  it('lets the guest write the interrupt line and cache line size', () => {
    const cfg = space();
    cfg.writeU8(PCI_INTERRUPT_LINE, 11);
    cfg.writeU8(PCI_CACHE_LINE_SIZE, 0x10);
    expect(cfg.readU8(PCI_INTERRUPT_LINE)).to.equal(11);
    expect(cfg.readU8(PCI_CACHE_LINE_SIZE)).to.equal(0x10);
  });

  it('command: IO, MEMORY, MASTER, PARITY, SERR and INTX_DISABLE are writable, the rest RO 0', () => {
    const cfg = space();
    cfg.writeU16(PCI_COMMAND, 0xffff);
    expect(cfg.commandRegister).to.equal(0x0547);
    expect([cfg.ioEnabled, cfg.memoryEnabled, cfg.busMasterEnabled, cfg.intxDisabled]).to.deep.equal([
      true,
      true,
      true,
      true,
    ]);
    cfg.writeU16(PCI_COMMAND, 0x0002);
    expect(cfg.commandRegister).to.equal(0x0002);
    expect([cfg.ioEnabled, cfg.memoryEnabled, cfg.busMasterEnabled, cfg.intxDisabled]).to.deep.equal([
      false,
      true,
      false,
      false,
    ]);
  });

  it('status: read-only except the write-1-to-clear error bits', () => {
    const cfg = space({ identity: { ...identity, interruptPin: 1 } });
    cfg.writeU16(PCI_STATUS, 0xffff);
    expect(cfg.statusRegister).to.equal(0);
    cfg.setStatusBits(PCI_STATUS_SIG_TARGET_ABORT | PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_DETECTED_PARITY);
    cfg.setInterruptStatus(true);
    expect(cfg.statusRegister).to.equal(0xa808);
    cfg.writeU16(PCI_STATUS, PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_INTERRUPT); // clears one error, not INTx
    expect(cfg.statusRegister).to.equal(0x8808);
    cfg.writeU8(PCI_STATUS + 1, 0xff); // byte write clears the rest
    expect(cfg.statusRegister).to.equal(PCI_STATUS_INTERRUPT);
  });

  it('status: CAP_LIST is set and the pointer is 0x40 when capabilities exist', () => {
    const cfg = space({ capabilities: [{ id: 'pm' }] });
    expect(cfg.statusRegister & PCI_STATUS_CAP_LIST).to.equal(PCI_STATUS_CAP_LIST);
    expect(cfg.readU8(PCI_CAPABILITY_LIST)).to.equal(0x40);
    cfg.writeU16(PCI_STATUS, 0xffff);
    expect(cfg.statusRegister).to.equal(PCI_STATUS_CAP_LIST);
  });

  it('setStatusBits refuses non-error bits', () => {
    expect(() => space().setStatusBits(PCI_STATUS_INTERRUPT)).to.throw(
      RangeError,
      'use setInterruptStatus()',
    );
    expect(() => space().setStatusBits(PCI_STATUS_CAP_LIST)).to.throw(
      RangeError,
      'only the error bits 0xf900',
    );
  });

  it('interrupt status and intxAsserted follow INTX_DISABLE; no pin means no interrupt status', () => {
    const cfg = space({ identity: { ...identity, interruptPin: 1 } });
    expect(cfg.intxAsserted).to.equal(false);
    cfg.setInterruptStatus(true);
    expect([cfg.interruptStatus, cfg.intxAsserted]).to.deep.equal([true, true]);
    cfg.writeU16(PCI_COMMAND, 0x0400);
    expect([cfg.interruptStatus, cfg.intxAsserted]).to.deep.equal([true, false]); // status still reflects the request
    cfg.writeU16(PCI_COMMAND, 0);
    cfg.setInterruptStatus(false);
    expect([cfg.interruptStatus, cfg.intxAsserted]).to.deep.equal([false, false]);

    const noPin = space();
    noPin.setInterruptStatus(true);
    expect(noPin.interruptStatus).to.equal(false);
  });
});
