// Base Address Registers: validation and the value/write-mask pair of each BAR dword.
//
// Sizing works like hardware: the address bits at and above log2(size) are
// writable, everything below is read-only, so writing all ones reads back
// ~(size - 1) | flags (PCI Local Bus 3.0, 6.2.5.1).

import {
  PCI_BASE_ADDRESS_IO_MASK,
  PCI_BASE_ADDRESS_MEM_MASK,
  PCI_BASE_ADDRESS_MEM_PREFETCH,
  PCI_BASE_ADDRESS_MEM_TYPE_32,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_BASE_ADDRESS_SPACE_IO,
  PCI_BASE_ADDRESS_SPACE_MEMORY,
  PCI_STD_NUM_BARS,
} from './constants.js';
import type { PciBar, PciBarKind } from './types.js';
import { fail, isPowerOfTwo } from './validate.js';

export interface NormalizedBar {
  index: number;
  kind: PciBarKind;
  size: bigint;
  prefetchable: boolean;
}

/** BAR slots 0..5: the BAR occupying each slot (a mem64 BAR occupies its index and index + 1). */
export type BarSlots = readonly (NormalizedBar | undefined)[];

export interface BarDword {
  value: number;
  writable: number;
}

const MIN_SIZE: Record<PciBarKind, bigint> = { mem32: 16n, mem64: 16n, io: 4n };
// mem32: bit 31 is the highest address bit; io: PCI 3.0 6.2.5.1 limits an I/O BAR to 256 bytes.
const MAX_SIZE: Record<PciBarKind, bigint> = { mem32: 1n << 31n, mem64: 1n << 63n, io: 256n };
const KIND_NAME: Record<PciBarKind, string> = { mem32: '32-bit memory', mem64: '64-bit memory', io: 'I/O' };

function toBigSize(bar: PciBar): bigint {
  const { size } = bar;
  if (typeof size === 'bigint') {
    if (bar.kind === 'mem64') return size;
    fail(`BAR${bar.index} size must be a number; only mem64 accepts a bigint`);
  }
  if (typeof size === 'number' && Number.isSafeInteger(size)) return BigInt(size);
  return fail(`BAR${bar.index} size ${String(size)} is not an integer`);
}

export function normalizeBars(bars: unknown): BarSlots {
  if (!Array.isArray(bars)) fail('bars must be an array');
  const slots: (NormalizedBar | undefined)[] = new Array(PCI_STD_NUM_BARS).fill(undefined);
  for (const bar of bars as PciBar[]) {
    const { index, kind } = bar ?? {};
    if (!Number.isInteger(index) || index < 0 || index >= PCI_STD_NUM_BARS) {
      fail(`BAR index ${String(index)} is out of range (0..5)`);
    }
    if (typeof kind !== 'string' || !Object.hasOwn(KIND_NAME, kind))
      fail(`BAR${index} has unknown kind ${JSON.stringify(kind)}`);
    const size = toBigSize(bar);
    if (!isPowerOfTwo(size)) fail(`BAR${index} size ${size} is not a power of two`);
    if (size < MIN_SIZE[kind]) {
      fail(`BAR${index} ${KIND_NAME[kind]} size ${size} is below the ${MIN_SIZE[kind]}-byte minimum`);
    }
    if (size > MAX_SIZE[kind]) {
      fail(`BAR${index} ${KIND_NAME[kind]} size ${size} exceeds the ${MAX_SIZE[kind]}-byte maximum`);
    }
    if (kind === 'mem64' && index === PCI_STD_NUM_BARS - 1) {
      fail(`BAR5 cannot be 64-bit: it would need BAR5 and a nonexistent BAR6`);
    }
    const normalized: NormalizedBar = {
      index,
      kind,
      size,
      prefetchable: bar.kind !== 'io' && bar.prefetchable === true,
    };
    const used = kind === 'mem64' ? [index, index + 1] : [index];
    for (const slot of used) {
      const other = slots[slot];
      if (other === undefined) continue;
      if (other.index === index) fail(`BAR${index} is defined twice`);
      if (slot === index) fail(`BAR${index} is already the upper half of 64-bit BAR${other.index}`);
      fail(`64-bit BAR${index} needs BAR${slot} for its upper half, but BAR${slot} is already defined`);
    }
    for (const slot of used) slots[slot] = normalized;
  }
  return slots;
}

/** Power-on value and write mask of each of the six BAR dwords. */
export function barDwords(slots: BarSlots): BarDword[] {
  return slots.map((bar, slot): BarDword => {
    if (bar === undefined) return { value: 0, writable: 0 }; // unimplemented: reads 0, ignores writes
    const addressMask = ~(bar.size - 1n) & 0xffff_ffff_ffff_ffffn;
    if (bar.kind === 'io') {
      return {
        value: PCI_BASE_ADDRESS_SPACE_IO,
        writable: Number(addressMask & BigInt(PCI_BASE_ADDRESS_IO_MASK)),
      };
    }
    if (bar.kind === 'mem64' && slot === bar.index + 1) {
      // Upper dword: all address bits; for sizes >= 4 GiB its low bits are part of the size mask.
      return { value: 0, writable: Number(addressMask >> 32n) };
    }
    const type = bar.kind === 'mem64' ? PCI_BASE_ADDRESS_MEM_TYPE_64 : PCI_BASE_ADDRESS_MEM_TYPE_32;
    return {
      value: PCI_BASE_ADDRESS_SPACE_MEMORY | type | (bar.prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0),
      writable: Number(addressMask & BigInt(PCI_BASE_ADDRESS_MEM_MASK)),
    };
  });
}
