/**
 * Drivers for the bus's tests, written only against @emu/emudev (and PciConfigSpace): one BAR of
 * registers, and a config schema with a key of every kind devargs coerce to.
 * BAR0: 0x0 ID (RO, TEST_ID), 0x4 UNIT (RO, the `unit` key), 0x8.. scratch registers (RW, `regs` of them).
 */
import { defineDriver } from '@emu/emudev';
import { PciConfigSpace } from '@emu/vfio-user';
import { z } from 'zod';

export const TEST_ID = 0x54534554;

export const testDriver = defineDriver({
  name: 'emu_test',
  type: 'test',
  description: 'a register file for the bus tests',
  config: z.object({
    regs: z.coerce.number().int().min(1).max(16).default(4).describe('scratch registers'),
    unit: z.number().int().min(0).default(0).describe('value of the UNIT register'),
    ratio: z.number().optional().describe('a fraction, for show'),
    fast: z.boolean().default(false).describe('go fast'),
    pace: z.enum(['slow', 'fast']).default('slow').describe('speed'),
    mac: z
      .string()
      .regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, 'expected a MAC address like 02:00:00:00:00:01')
      .optional()
      .describe('MAC address'),
    fail: z.enum(['none', 'probe', 'start']).default('none').describe('where to fail, for tests'),
  }),
  probe(_ctx, config) {
    if (config.fail === 'probe') throw new Error('probe failed on purpose');
    const regs = new Uint32Array(2 + config.regs);
    regs[0] = TEST_ID;
    regs[1] = config.unit;
    return {
      config: new PciConfigSpace({
        identity: { vendorId: 0x1b36, deviceId: 0x10fe, classCode: 0xff0000 },
        bars: [{ index: 0, kind: 'mem32', size: 0x1000 }],
      }),
      regions: {
        0: {
          read: (offset, length) => {
            const out = Buffer.alloc(length);
            Buffer.from(regs.buffer).copy(out, 0, offset, Math.min(offset + length, regs.byteLength));
            return out;
          },
          write: (offset, data) => {
            if (data.length === 4 && offset >= 8 && offset < regs.byteLength)
              regs[offset / 4] = data.readUInt32LE(0);
          },
        },
      },
      start() {
        if (config.fail === 'start') throw new Error('start failed on purpose');
      },
    };
  },
});

/** A driver with a key that has no default. */
export const strictDriver = defineDriver({
  name: 'emu_strict',
  type: 'test',
  description: 'needs a serial number',
  config: z.object({ serial: z.string().min(4).describe('serial number') }),
  probe: (ctx, config) => testDriver.probe(ctx, testDriver.config.parse({ unit: config.serial.length })),
});
