/**
 * What a server serves: PCI config space, region handlers for the BARs (and ROM), IRQ counts, reset.
 * The server validates the description once, at construction.
 */

import type { NativeRegisters } from '@emu/native';
import type { PciConfigSpace } from '../pci/index.js';
import { IRQ_INDEX_NAMES, PCI_NUM_REGIONS, PciRegion } from '../protocol/constants.js';
import type { IrqCounts } from './irqs.js';

export interface RegionHandlers {
  /** Returns exactly `length` bytes read at `offset`. Synchronous: the client waits for the reply. */
  read?(offset: number, length: number): Uint8Array;
  /** Applies a write. Posted writes come through here too; a device must not wait on the client here. */
  write?(offset: number, data: Buffer): void;
}

export interface MmapArea {
  offset: number;
  size: number;
}

export interface RegionSpec extends RegionHandlers {
  /** Size in bytes; defaults to the BAR's size in config space. Required for the ROM. */
  size?: number;
  /**
   * Memory the client may mmap: an fd (the server keeps ownership), where the region starts in it,
   * and the areas of the region that are mappable (default: all of it). Accesses through messages
   * still go to read/write.
   */
  mmap?: { fd: number; fileOffset?: number; areas?: MmapArea[] };
  /**
   * Hot registers outside the mmap-able areas, whose REGION_READ / REGION_WRITE the socket thread
   * answers itself as it answers the mmap-able areas (docs/architecture.md, "Register traps"): memory
   * the client is not offered to map (its own fd; an access lands there, and the device reads it when it
   * likes), or registers native code serves with their effects (e.g. @emu/native's IavfVectors for
   * iavf's interrupt re-arm). Accesses the socket thread does not take still go to read/write, which
   * must do what it would.
   */
  hot?: HotArea[];
}

export type HotArea = MmapArea & ({ fd: number; fileOffset?: number } | { registers: NativeRegisters });

export interface DeviceSpec {
  config: PciConfigSpace;
  /** Handlers per region index: 0-5 BARs, 6 ROM. Config space (7) is served from `config`. */
  regions?: Partial<Record<number, RegionSpec>>;
  /** IRQ counts; by default derived from config space (INTx pin, MSI and MSI-X caps) plus one ERR and one REQ. */
  irqs?: Partial<IrqCounts>;
  /** DEVICE_RESET (after config space is back at power-on contents). */
  reset?(): void;
  /**
   * The client went away (before its DMA mappings are released). Stop every DMA the device does on
   * its own (rings, queues, mailboxes) until a guest sets it up again: the next client's memory may
   * sit where this one's rings were. The server clears Bus Master Enable as well.
   */
  disconnected?(): void;
}

export interface ResolvedRegion {
  index: number;
  size: number;
  readable: boolean;
  writable: boolean;
  spec?: RegionSpec;
}

/** Checks a device description and derives the region table and IRQ counts. Throws with a clear message. */
export function resolveDevice(device: DeviceSpec): { regions: ResolvedRegion[]; irqs: IrqCounts } {
  const cfg = device.config;
  const regions: ResolvedRegion[] = [];
  for (let index = 0; index < PCI_NUM_REGIONS; index++) {
    const spec = device.regions?.[index];
    if (index === PciRegion.CONFIG) {
      if (spec) throw new TypeError('region 7 is PCI config space: describe it with `config`, not `regions`');
      regions.push({ index, size: cfg.size, readable: true, writable: true });
      continue;
    }
    const barSize = index <= PciRegion.BAR5 ? cfg.barSize(index) : undefined;
    if (!spec) {
      if (barSize !== undefined && barSize > 0n)
        throw new TypeError(`BAR${index} is in config space but has no region`);
      regions.push({ index, size: 0, readable: false, writable: false });
      continue;
    }
    if (index === PciRegion.VGA) throw new TypeError('region 8 (VGA) is not supported');
    const size = spec.size ?? (barSize !== undefined ? Number(barSize) : undefined);
    if (size === undefined)
      throw new TypeError(`region ${index} needs a size (no BAR${index} in config space)`);
    if (barSize !== undefined && BigInt(size) !== barSize) {
      throw new TypeError(
        `region ${index} size ${size} differs from BAR${index} size ${barSize} in config space`,
      );
    }
    if (!Number.isSafeInteger(size) || size <= 0)
      throw new TypeError(`region ${index} size ${size} is invalid`);
    if (spec.mmap) {
      const { fd, fileOffset = 0, areas = [{ offset: 0, size }] } = spec.mmap;
      if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`region ${index} mmap fd ${fd} is invalid`);
      if (!Number.isSafeInteger(fileOffset) || fileOffset < 0 || fileOffset % 4096 !== 0) {
        throw new TypeError(`region ${index} mmap fileOffset ${fileOffset} must be page-aligned`);
      }
      for (const a of areas) {
        if (a.offset % 4096 !== 0 || a.size % 4096 !== 0 || a.size <= 0 || a.offset + a.size > size) {
          throw new TypeError(
            `region ${index} mmap area [${a.offset}, +${a.size}) must be page-aligned and inside the region`,
          );
        }
      }
    }
    for (const a of spec.hot ?? []) {
      if (
        !Number.isSafeInteger(a.offset) ||
        !Number.isSafeInteger(a.size) ||
        a.offset < 0 ||
        a.size <= 0 ||
        a.offset + a.size > size
      ) {
        throw new TypeError(`region ${index} hot area [${a.offset}, +${a.size}) must be inside the region`);
      }
      if ('registers' in a) continue;
      if (!Number.isInteger(a.fd) || a.fd < 0)
        throw new TypeError(`region ${index} hot area fd ${a.fd} is invalid`);
      const fileOffset = a.fileOffset ?? 0;
      if (!Number.isSafeInteger(fileOffset) || fileOffset < 0 || fileOffset % 4096 !== 0) {
        throw new TypeError(`region ${index} hot area fileOffset ${fileOffset} must be page-aligned`);
      }
    }
    regions.push({ index, size, readable: !!spec.read, writable: !!spec.write, spec });
  }
  const msi = cfg.msi;
  const msix = cfg.msix;
  const derived: IrqCounts = {
    intx: cfg.readU8(0x3d) !== 0 ? 1 : 0,
    msi: msi ? msi.vectors : 0,
    msix: msix ? msix.tableSize : 0,
    err: 1,
    req: 1,
  };
  const irqs = { ...derived, ...device.irqs };
  for (const name of IRQ_INDEX_NAMES) {
    const n = irqs[name];
    if (!Number.isInteger(n) || n < 0 || n > 2048) throw new TypeError(`irq count ${name}=${n} is invalid`);
  }
  return { regions, irqs };
}
