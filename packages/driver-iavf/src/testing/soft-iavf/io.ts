/**
 * What every part of SoftIavf shares: BAR0 register access over the vfio-user client (rd32, wr32,
 * iavf_flush), the waits its polling loops take, and the eventfd wait of an MSI-X vector.
 */
import type { EventFd } from '@emu/native';
import { PciRegion, type VfioUserClient } from '@emu/vfio-user';
import { IAVF } from '../iavf-defs.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The pause between two polls of a register or descriptor: the first 20 yield to the event loop only
 * (the device usually answers within a turn), later ones sleep 1 ms so that a slow device is not spun on.
 */
export const pollPause = (polls: number): Promise<unknown> =>
  polls < 20 ? new Promise((r) => setImmediate(r)) : sleep(1);

export const lo32 = (v: bigint) => Number(v & 0xffffffffn);
export const hi32 = (v: bigint) => Number(v >> 32n);

/** Waits up to `ms` for an interrupt on an eventfd; true if one came (the count is consumed). */
export async function waitEventFd(fd: EventFd, ms: number): Promise<boolean> {
  try {
    await fd.wait(ms);
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === 'ETIMEDOUT') return false;
    throw err;
  }
}

/** BAR0 as the driver's rd32 / wr32 see it. */
export class Bar0 {
  constructor(private readonly client: VfioUserClient) {}

  async rd32(reg: number): Promise<number> {
    return (await this.client.regionRead(PciRegion.BAR0, reg, 4)).readUInt32LE(0);
  }

  async wr32(reg: number, value: number): Promise<void> {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value >>> 0, 0);
    await this.client.regionWrite(PciRegion.BAR0, reg, b);
  }

  /** iavf_flush: a read of VFGEN_RSTAT. */
  async flush(): Promise<number> {
    return this.rd32(IAVF.VFGEN_RSTAT);
  }
}
