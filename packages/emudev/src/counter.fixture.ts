/**
 * A device written only against @emu/emudev, for emudev's own tests: a counter with a queue.
 * BAR0: 0x0 COUNT (RO), 0x4 INC (WO: count += step, raise MSI-X 0), 0x8 Q_BASE_LO, 0xc Q_BASE_HI,
 * 0x10 Q_SIZE, 0x14 Q_ENABLE. BAR2: the MSI-X table and PBA.
 */
import { PciConfigSpace } from '@emu/vfio-user';
import { z } from 'zod';
import { type DeviceContext, defineDriver } from './driver.js';

/** The context of the last device probed, so tests can act as the driver. */
export const probed: { ctx?: DeviceContext } = {};

export const counterDriver = defineDriver({
  name: 'emu_counter',
  type: 'counter',
  description: 'a counter that interrupts when it counts',
  config: z.object({
    step: z.coerce.number().int().min(1).max(100).default(1).describe('how much INC adds'),
    vectors: z.coerce.number().int().min(1).max(8).default(2).describe('MSI-X vectors'),
  }),
  probe(ctx, config) {
    probed.ctx = ctx;
    const pci = new PciConfigSpace({
      identity: { vendorId: 0x1b36, deviceId: 0x10ef, classCode: 0xff0000 },
      bars: [
        { index: 0, kind: 'mem32', size: 0x1000 },
        { index: 2, kind: 'mem32', size: 0x1000 },
      ],
      capabilities: [
        { id: 'msix', tableSize: config.vectors, tableBar: 2, tableOffset: 0, pbaBar: 2, pbaOffset: 0x800 },
        { id: 'pcie', flr: true },
      ],
    });
    const regs = new Uint32Array(8);
    let step = config.step;
    let incs = 0;
    return {
      config: pci,
      maxQueues: 1,
      doorbells: [{ id: 0, region: 0, offset: 4, width: 4 }],
      regions: {
        0: {
          read: (offset, length) => Buffer.from(regs.buffer).subarray(offset, offset + length),
          write: (offset, data) => {
            if (data.length !== 4) return;
            const v = data.readUInt32LE(0);
            if (offset === 4) {
              regs[0] += step;
              incs++;
              ctx.irqs.trigger(0);
              return;
            }
            if (offset >= 8 && offset <= 0x14) regs[offset / 4] = v;
            if (offset === 0x14) {
              ctx.queues.update(0, {
                base: (BigInt(regs[3]) << 32n) | BigInt(regs[2]),
                size: regs[4],
                doorbell: 0,
                vector: 1,
                enabled: v === 1,
              });
            }
          },
        },
        2: { read: (_o, n) => Buffer.alloc(n), write: () => {} },
      },
      attributes: {
        count: { description: 'the count', schema: z.number(), get: () => regs[0] },
        step: {
          description: 'how much INC adds',
          schema: z.number().int().min(1).max(100),
          get: () => step,
          set: (v: number) => {
            step = v;
          },
        },
      },
      // Each INC is one 4-byte "packet" of queue 0, while the queue is enabled.
      counters: () => ({
        queues:
          regs[5] === 1
            ? [{ queue: 0, direction: 'tx' as const, packets: incs, bytes: 4 * incs, drops: 0, errors: 0 }]
            : [],
      }),
      reset: () => regs.fill(0),
      selftest: () => [{ name: 'counter starts at 0', ok: regs[0] === 0, detail: `count ${regs[0]}` }],
    };
  },
});
