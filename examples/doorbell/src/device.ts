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
 *   0x18 DMA_ADDR_LO / 0x1c DMA_ADDR_HI  RW  guest address of a DMA buffer
 *   0x20 DMA_LEN   RW  its length (at most 64 KiB)
 *   0x24 DMA_CMD   WO  1: read the buffer, store the sum of its bytes in DMA_SUM, write every byte
 *                      back inverted, then raise MSI-X vector 0. Needs bus mastering enabled.
 *   0x28 DMA_SUM   RO  the sum from the last DMA command
 *   0x2c DMA_STATUS RO 0 idle, 1 busy, 2 done, 3 failed (address outside guest memory, or no bus master)
 * BAR2 (4 KiB): the MSI-X table (offset 0) and PBA (offset 0x800), one vector. QEMU emulates the
 * table itself and only reads the PBA through us.
 */
import { type DeviceSpec, PciConfigSpace, type ServerOptions, VfioUserServer } from '@emu/vfio-user';

export const DOORBELL_IDS = { vendorId: 0x1b36, deviceId: 0x10ee, classCode: 0xff0000 } as const;
export const MAGIC = 0x454d5530;
export const Reg = {
  MAGIC: 0x00,
  SCRATCH: 0x04,
  RING: 0x08,
  LAST: 0x0c,
  RINGS: 0x10,
  DELIVERED: 0x14,
  DMA_ADDR_LO: 0x18,
  DMA_ADDR_HI: 0x1c,
  DMA_LEN: 0x20,
  DMA_CMD: 0x24,
  DMA_SUM: 0x28,
  DMA_STATUS: 0x2c,
} as const;
export const DmaStatus = { IDLE: 0, BUSY: 1, DONE: 2, FAILED: 3 } as const;
const MAX_DMA = 64 * 1024;
const REG_BANK_SIZE = 0x30;

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
  private readonly regs = {
    scratch: 0,
    last: 0,
    rings: 0,
    delivered: 0,
    dmaLo: 0,
    dmaHi: 0,
    dmaLen: 0,
    dmaSum: 0,
    dmaStatus: DmaStatus.IDLE as number,
  };
  private readonly powerOn = { ...this.regs };

  constructor(options: ServerOptions) {
    const spec: DeviceSpec = {
      config: this.config,
      regions: {
        0: { read: (o, n) => this.readRegs(o, n), write: (o, d) => this.writeRegs(o, d) },
        2: { read: (_o, n) => Buffer.alloc(n), write: () => {} },
      },
      reset: () => {
        Object.assign(this.regs, this.powerOn);
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
    const r = this.regs;
    const bank = Buffer.alloc(REG_BANK_SIZE);
    bank.writeUInt32LE(MAGIC, Reg.MAGIC);
    bank.writeUInt32LE(r.scratch, Reg.SCRATCH);
    bank.writeUInt32LE(r.last, Reg.LAST);
    bank.writeUInt32LE(r.rings, Reg.RINGS);
    bank.writeUInt32LE(r.delivered, Reg.DELIVERED);
    bank.writeUInt32LE(r.dmaLo, Reg.DMA_ADDR_LO);
    bank.writeUInt32LE(r.dmaHi, Reg.DMA_ADDR_HI);
    bank.writeUInt32LE(r.dmaLen, Reg.DMA_LEN);
    bank.writeUInt32LE(r.dmaSum, Reg.DMA_SUM);
    bank.writeUInt32LE(r.dmaStatus, Reg.DMA_STATUS);
    const out = Buffer.alloc(length);
    if (offset < bank.length) bank.copy(out, 0, offset, Math.min(bank.length, offset + length));
    return out;
  }

  private writeRegs(offset: number, data: Buffer): void {
    // Registers are 32-bit; a narrower or unaligned write is ignored, as on most hardware.
    if (data.length !== 4 || offset % 4 !== 0) return;
    const value = data.readUInt32LE(0);
    const r = this.regs;
    switch (offset) {
      case Reg.SCRATCH:
        r.scratch = value;
        break;
      case Reg.RING:
        r.last = value;
        this.ring();
        break;
      case Reg.DMA_ADDR_LO:
        r.dmaLo = value;
        break;
      case Reg.DMA_ADDR_HI:
        r.dmaHi = value;
        break;
      case Reg.DMA_LEN:
        r.dmaLen = Math.min(value, MAX_DMA);
        break;
      case Reg.DMA_CMD:
        if (value === 1 && r.dmaStatus !== DmaStatus.BUSY) void this.runDma();
        break;
    }
  }

  private ring(): void {
    this.regs.rings++;
    if (this.server.triggerIrq('msix', 0)) this.regs.delivered++;
  }

  /** Runs after the register write has been answered: DMA may need messages to the client. */
  private async runDma(): Promise<void> {
    const r = this.regs;
    r.dmaStatus = DmaStatus.BUSY;
    const address = (BigInt(r.dmaHi) << 32n) | BigInt(r.dmaLo);
    try {
      if (!this.config.busMasterEnabled) throw new Error('bus mastering is off');
      const data = await this.server.dmaRead(address, r.dmaLen);
      r.dmaSum = data.reduce((sum, b) => (sum + b) >>> 0, 0);
      await this.server.dmaWrite(
        address,
        data.map((b) => ~b & 0xff),
      );
      r.dmaStatus = DmaStatus.DONE;
    } catch (err) {
      this.server.log.warn(
        { address: `0x${address.toString(16)}`, length: r.dmaLen },
        `DMA failed: ${(err as Error).message}`,
      );
      r.dmaStatus = DmaStatus.FAILED;
    }
    this.ring();
  }
}
