// The type-0 configuration header (offsets 0x00..0x3f) as a declarative table.
// Bytes not listed (0x35..0x3b) are reserved: read 0, writes ignored.

import { type BarDword, type BarSlots, barDwords } from './bars.js';
import {
  PCI_BASE_ADDRESS_0,
  PCI_BIST,
  PCI_CACHE_LINE_SIZE,
  PCI_CAPABILITY_LIST,
  PCI_CARDBUS_CIS,
  PCI_CLASS_DEVICE,
  PCI_CLASS_PROG,
  PCI_COMMAND,
  PCI_COMMAND_WRITABLE,
  PCI_DEVICE_ID,
  PCI_HEADER_TYPE,
  PCI_HEADER_TYPE_NORMAL,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_LATENCY_TIMER,
  PCI_MAX_LAT,
  PCI_MIN_GNT,
  PCI_REVISION_ID,
  PCI_ROM_ADDRESS,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STATUS_ERROR_BITS,
  PCI_STD_HEADER_SIZEOF,
  PCI_STD_NUM_BARS,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
} from './constants.js';
import { RegisterImage } from './registers.js';
import type { PciIdentity } from './types.js';
import { fail, requireUint } from './validate.js';

/** Everything the header's contents depend on. */
export interface HeaderContext {
  identity: Required<PciIdentity>;
  bars: readonly BarDword[];
  /** Offset of the first capability, 0 when there are none. */
  capabilityPointer: number;
}

type FromContext = number | ((ctx: HeaderContext) => number);

export interface HeaderRegister {
  offset: number;
  size: 1 | 2 | 4;
  name: string;
  /** Power-on value; default 0. */
  value?: FromContext;
  /** Guest-writable bits; default none. */
  writable?: FromContext;
  /** Write-1-to-clear bits; default none. */
  w1c?: FromContext;
}

const barRegisters: HeaderRegister[] = Array.from({ length: PCI_STD_NUM_BARS }, (_, i) => ({
  offset: PCI_BASE_ADDRESS_0 + 4 * i,
  size: 4,
  name: `bar${i}`,
  value: (ctx) => ctx.bars[i].value,
  writable: (ctx) => ctx.bars[i].writable,
}));

export const HEADER_REGISTERS: readonly HeaderRegister[] = [
  { offset: PCI_VENDOR_ID, size: 2, name: 'vendor-id', value: (ctx) => ctx.identity.vendorId },
  { offset: PCI_DEVICE_ID, size: 2, name: 'device-id', value: (ctx) => ctx.identity.deviceId },
  { offset: PCI_COMMAND, size: 2, name: 'command', writable: PCI_COMMAND_WRITABLE },
  {
    offset: PCI_STATUS,
    size: 2,
    name: 'status',
    // Interrupt status (bit 3) is device-driven; DEVSEL timing "fast" (0) as PCIe requires.
    value: (ctx) => (ctx.capabilityPointer !== 0 ? PCI_STATUS_CAP_LIST : 0),
    w1c: PCI_STATUS_ERROR_BITS,
  },
  { offset: PCI_REVISION_ID, size: 1, name: 'revision-id', value: (ctx) => ctx.identity.revision },
  { offset: PCI_CLASS_PROG, size: 1, name: 'prog-if', value: (ctx) => ctx.identity.classCode & 0xff },
  { offset: PCI_CLASS_DEVICE, size: 2, name: 'class-device', value: (ctx) => ctx.identity.classCode >>> 8 },
  // No effect on an emulated device, but software (and PCIe) expects it to be RW.
  { offset: PCI_CACHE_LINE_SIZE, size: 1, name: 'cache-line-size', writable: 0xff },
  { offset: PCI_LATENCY_TIMER, size: 1, name: 'latency-timer' }, // hardwired 0 as on PCIe
  { offset: PCI_HEADER_TYPE, size: 1, name: 'header-type', value: PCI_HEADER_TYPE_NORMAL }, // single function
  { offset: PCI_BIST, size: 1, name: 'bist' }, // not BIST capable
  ...barRegisters,
  { offset: PCI_CARDBUS_CIS, size: 4, name: 'cardbus-cis' },
  {
    offset: PCI_SUBSYSTEM_VENDOR_ID,
    size: 2,
    name: 'subsystem-vendor-id',
    value: (ctx) => ctx.identity.subsystemVendorId,
  },
  { offset: PCI_SUBSYSTEM_ID, size: 2, name: 'subsystem-id', value: (ctx) => ctx.identity.subsystemId },
  { offset: PCI_ROM_ADDRESS, size: 4, name: 'expansion-rom' }, // no ROM: reads 0, sizing finds nothing
  {
    offset: PCI_CAPABILITY_LIST,
    size: 1,
    name: 'capabilities-pointer',
    value: (ctx) => ctx.capabilityPointer,
  },
  { offset: PCI_INTERRUPT_LINE, size: 1, name: 'interrupt-line', writable: 0xff }, // scratch for the OS
  { offset: PCI_INTERRUPT_PIN, size: 1, name: 'interrupt-pin', value: (ctx) => ctx.identity.interruptPin },
  { offset: PCI_MIN_GNT, size: 1, name: 'min-gnt' },
  { offset: PCI_MAX_LAT, size: 1, name: 'max-lat' },
];

const resolve = (field: FromContext | undefined, ctx: HeaderContext): number =>
  typeof field === 'function' ? field(ctx) : (field ?? 0);

export function validateIdentity(identity: unknown): Required<PciIdentity> {
  if (typeof identity !== 'object' || identity === null) fail('identity is required');
  const id = identity as PciIdentity;
  const vendorId = requireUint('identity.vendorId', id.vendorId, 16);
  if (vendorId === 0xffff) fail('identity.vendorId 0xffff is invalid (it is what an empty slot reads)');
  const deviceId = requireUint('identity.deviceId', id.deviceId, 16);
  const interruptPin = requireUint('identity.interruptPin', id.interruptPin ?? 0, 8);
  if (interruptPin > 4)
    fail(`identity.interruptPin ${interruptPin} is out of range (0 = none, 1..4 = INTA#..INTD#)`);
  return {
    vendorId,
    deviceId,
    subsystemVendorId: requireUint('identity.subsystemVendorId', id.subsystemVendorId ?? vendorId, 16),
    subsystemId: requireUint('identity.subsystemId', id.subsystemId ?? deviceId, 16),
    classCode: requireUint('identity.classCode', id.classCode, 24),
    revision: requireUint('identity.revision', id.revision ?? 0, 8),
    interruptPin,
  };
}

export function buildHeader(identity: Required<PciIdentity>, slots: BarSlots, capabilityPointer: number) {
  const ctx: HeaderContext = { identity, bars: barDwords(slots), capabilityPointer };
  const image = new RegisterImage(PCI_STD_HEADER_SIZEOF);
  for (const reg of HEADER_REGISTERS) {
    image.field(reg.offset, reg.size, {
      value: resolve(reg.value, ctx),
      writable: resolve(reg.writable, ctx),
      w1c: resolve(reg.w1c, ctx),
    });
  }
  return image;
}
