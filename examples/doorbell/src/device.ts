/**
 * The doorbell device: the smallest useful PCI device, served by @emu/vfio-user with no other layer.
 *
 * BAR0 (4 KiB of registers):
 *   0x00 MAGIC     RO  0x454d5530 ("EMU0")
 *   0x04 SCRATCH   RW  any value, kept across client reconnects, cleared by reset
 *   0x08 RING      WO  writing V raises MSI-X vector 0 and stores V in LAST
 *   0x0c LAST      RO  the last value written to RING
 *   0x10 RINGS     RO  how many times RING was written
 *   0x14 DELIVERED RO  how many of those reached the client's eventfd (vector enabled and unmasked)
 * BAR2 (4 KiB): the MSI-X table (offset 0) and PBA (offset 0x800), one vector. QEMU emulates the
 * table itself and only reads the PBA through us.
 */
import { PciConfigSpace, type DeviceSpec, VfioUserServer, type ServerOptions } from '@emu/vfio-user';

export const DOORBELL_IDS = { vendorId: 0x1b36, deviceId: 0x10ee, classCode: 0xff0000 } as const;
export const MAGIC = 0x454d5530;
export const Reg = { MAGIC: 0x00, SCRATCH: 0x04, RING: 0x08, LAST: 0x0c, RINGS: 0x10, DELIVERED: 0x14 } as const;

export class DoorbellDevice {
  readonly config = new PciConfigSpace({
    identity: { ...DOORBELL_IDS, revision: 1 },
    bars: [
      { index: 0, kind: 'mem32', size: 0x1000 },
      { index: 2, kind: 'mem32', size: 0x1000 },
    ],
    capabilities: [
      { id: 'pm' },
      { id: 'msix', tableSize: 1, tableBar: 2, tableOffset: 0, pbaBar: 2, pbaOffset: 0x800 },
      { id: 'pcie' },
    ],
  });
  readonly server: VfioUserServer;
  private readonly regs = { scratch: 0, last: 0, rings: 0, delivered: 0 };

  constructor(options: ServerOptions) {
    const spec: DeviceSpec = {
      config: this.config,
      regions: {
        0: { read: (o, n) => this.readRegs(o, n), write: (o, d) => this.writeRegs(o, d) },
        2: { read: (_o, n) => Buffer.alloc(n), write: () => {} },
      },
      reset: () => {
        Object.assign(this.regs, { scratch: 0, last: 0, rings: 0, delivered: 0 });
      },
    };
    this.server = new VfioUserServer(spec, options);
  }

  listen(): this {
    this.server.listen();
    return this;
  }

  close(): void {
    this.server.close();
  }

  get stats() {
    return { ...this.regs };
  }

  private readRegs(offset: number, length: number): Buffer {
    const bank = Buffer.alloc(0x18);
    bank.writeUInt32LE(MAGIC, Reg.MAGIC);
    bank.writeUInt32LE(this.regs.scratch, Reg.SCRATCH);
    bank.writeUInt32LE(this.regs.last, Reg.LAST);
    bank.writeUInt32LE(this.regs.rings, Reg.RINGS);
    bank.writeUInt32LE(this.regs.delivered, Reg.DELIVERED);
    const out = Buffer.alloc(length);
    if (offset < bank.length) bank.copy(out, 0, offset, Math.min(bank.length, offset + length));
    return out;
  }

  private writeRegs(offset: number, data: Buffer): void {
    // Registers are 32-bit; a narrower or unaligned write is ignored, as on most hardware.
    if (data.length !== 4 || offset % 4 !== 0) return;
    const value = data.readUInt32LE(0);
    if (offset === Reg.SCRATCH) this.regs.scratch = value;
    else if (offset === Reg.RING) {
      this.regs.last = value;
      this.regs.rings++;
      if (this.server.triggerIrq('msix', 0)) this.regs.delivered++;
    }
  }
}
