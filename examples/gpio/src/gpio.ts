/**
 * emu_gpio: a GPIO controller, written only against @emu/emudev (the walkthrough in docs/emudev.md
 * builds this file step by step).
 *
 * BAR0, 32-bit registers:
 *   0x00 ID          RO   0x4f495047 ("GPIO")
 *   0x04 LINES       RO   number of lines (devargs `lines`, 1-32)
 *   0x08 INPUT       RO   input levels: driven by the host (attribute `inputs`), or by OUTPUT in loopback
 *   0x0c OUTPUT      RW   output levels
 *   0x10 LOOPBACK    RW   bit 0: inputs follow outputs
 *   0x14 IRQ_ENABLE  RW   lines whose changes interrupt
 *   0x18 IRQ_STATUS  RW1C lines that changed since last cleared (enabled lines only)
 *   0x1c IRQ_COUNT   RO   interrupts raised
 * A change on an enabled line latches it in IRQ_STATUS and raises MSI-X vector 0.
 * BAR2: the MSI-X table (0x0) and PBA (0x800).
 */
import { type DeviceContext, type DeviceImpl, defineDriver } from '@emu/emudev';
import { PciConfigSpace } from '@emu/vfio-user';
import { z } from 'zod';

export const GPIO_ID = 0x4f495047;
export const GpioReg = {
  ID: 0x00,
  LINES: 0x04,
  INPUT: 0x08,
  OUTPUT: 0x0c,
  LOOPBACK: 0x10,
  IRQ_ENABLE: 0x14,
  IRQ_STATUS: 0x18,
  IRQ_COUNT: 0x1c,
} as const;
export const GPIO_PCI_ID = { vendorId: 0x1b36, deviceId: 0x10f1, classCode: 0x088000 } as const;

const gpioConfig = z.object({
  lines: z.coerce.number().int().min(1).max(32).default(16).describe('number of GPIO lines'),
});

class Gpio implements DeviceImpl {
  readonly config = new PciConfigSpace({
    identity: { ...GPIO_PCI_ID, revision: 1 },
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
  readonly regions: DeviceImpl['regions'] = {
    0: { read: (o, n) => this.read(o, n), write: (o, d) => this.write(o, d) },
    2: { read: (_o, n) => Buffer.alloc(n), write: () => {} },
  };
  readonly attributes: DeviceImpl['attributes'];
  private readonly mask: number;
  private r = { hostInputs: 0, output: 0, loopback: 0, irqEnable: 0, irqStatus: 0, irqCount: 0 };
  private input = 0;

  constructor(
    private readonly ctx: DeviceContext,
    readonly lines: number,
  ) {
    this.mask = lines === 32 ? 0xffffffff : (1 << lines) - 1;
    const levels = z
      .number()
      .int()
      .min(0)
      .max(this.mask, `${lines} lines: at most 0x${this.mask.toString(16)}`);
    this.attributes = {
      inputs: {
        description: 'levels the host drives on the input lines',
        schema: levels,
        get: () => this.r.hostInputs,
        set: (v: number) => {
          this.r.hostInputs = v;
          this.update();
        },
      },
      outputs: {
        description: 'levels the guest drives on the output lines',
        schema: levels,
        get: () => this.r.output,
      },
      interrupts: { description: 'interrupts raised', schema: z.number(), get: () => this.r.irqCount },
    };
  }

  reset(): void {
    this.r = {
      hostInputs: this.r.hostInputs,
      output: 0,
      loopback: 0,
      irqEnable: 0,
      irqStatus: 0,
      irqCount: 0,
    };
    this.input = this.r.hostInputs;
  }

  selftest() {
    const id = this.read(GpioReg.ID, 4).readUInt32LE(0);
    return [{ name: 'gpio id register', ok: id === GPIO_ID, detail: `0x${id.toString(16)}` }];
  }

  private read(offset: number, length: number): Buffer {
    const bank = Buffer.alloc(0x20);
    const values = [
      GPIO_ID,
      this.lines,
      this.input,
      this.r.output,
      this.r.loopback,
      this.r.irqEnable,
      this.r.irqStatus,
      this.r.irqCount,
    ];
    values.forEach((v, i) => {
      bank.writeUInt32LE(v >>> 0, i * 4);
    });
    const out = Buffer.alloc(length);
    if (offset < bank.length) bank.copy(out, 0, offset, Math.min(bank.length, offset + length));
    return out;
  }

  private write(offset: number, data: Buffer): void {
    // 32-bit registers; other widths and offsets are ignored, as hardware would.
    if (data.length !== 4 || offset % 4 !== 0) return;
    const v = data.readUInt32LE(0);
    switch (offset) {
      case GpioReg.OUTPUT:
        this.r.output = v & this.mask;
        break;
      case GpioReg.LOOPBACK:
        this.r.loopback = v & 1;
        break;
      case GpioReg.IRQ_ENABLE:
        this.r.irqEnable = v & this.mask;
        break;
      case GpioReg.IRQ_STATUS:
        this.r.irqStatus &= ~v;
        return;
      default:
        return;
    }
    this.update();
  }

  /** Recomputes the inputs; enabled lines that changed latch and interrupt. */
  private update(): void {
    const next = (this.r.loopback ? this.r.output : this.r.hostInputs) & this.mask;
    const changed = (next ^ this.input) & this.r.irqEnable;
    this.input = next;
    if (changed === 0) return;
    this.r.irqStatus |= changed;
    this.r.irqCount++;
    this.ctx.irqs.trigger(0);
  }
}

export const gpioDriver = defineDriver({
  name: 'emu_gpio',
  type: 'gpio',
  description: 'a GPIO controller whose line changes raise an MSI-X interrupt (example driver)',
  config: gpioConfig,
  probe: (ctx, config) => new Gpio(ctx, config.lines),
});
