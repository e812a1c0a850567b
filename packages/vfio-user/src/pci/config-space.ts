/**
 * # PCI configuration space
 *
 * `PciConfigSpace` is the contents of one function's configuration space (the
 * vfio-user region 7) with the write semantics of real hardware, so the
 * device-side server can answer the VMM's REGION_READ/REGION_WRITE of region 7
 * by calling `read(offset, length)` / `write(offset, bytes)` directly.
 *
 * Model: three byte arrays the size of the space — the contents, a write mask
 * and a write-1-to-clear mask. A guest write updates each byte as
 * `new = (old & ~wmask) | (data & wmask)`, then clears the W1C bits where the
 * data has ones. Everything is built once from the options:
 *
 * - a type-0 header from a declarative table (header.ts): IDs, command
 *   (IO/MEMORY/MASTER/PARITY/SERR/INTX_DISABLE writable), status (error bits
 *   W1C, CAP_LIST when capabilities exist), class/revision, six BARs, subsystem
 *   IDs, no expansion ROM, capabilities pointer, interrupt line (RW) and pin;
 * - BARs whose masks make sizing work as on hardware (bars.ts): write all ones,
 *   read back ~(size - 1) | flags; 64-bit BARs span two dwords;
 * - capabilities linked from 0x40 in the given order (capabilities.ts): PM,
 *   MSI, MSI-X, PCI Express (v2) and vendor-specific;
 * - for 4096-byte spaces, 0x100..0xfff reads 0 (a null extended capability
 *   header) and ignores writes.
 *
 * Reads and writes may have any alignment and length and may span registers.
 * Out-of-range accesses throw RangeError; invalid options throw PciConfigError
 * from the constructor. The device side can change device-owned bits with
 * `poke()` (bypasses masks), `setInterruptStatus()`, `setStatusBits()` and
 * `setMsiPending()`, observe guest writes with `onWrite()`, and return to the
 * power-on contents with `reset()` (FLR, VFIO_USER_DEVICE_RESET).
 */

import { type BarSlots, normalizeBars } from './bars.js';
import { CAPABILITY_IDS, msiLayout, type PlacedCapability, placeCapabilities } from './capabilities.js';
import {
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_IO_MASK,
  PCI_BASE_ADDRESS_MEM_MASK,
  PCI_CFG_SPACE_EXP_SIZE,
  PCI_CFG_SPACE_SIZE,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_INTERRUPT_PIN,
  PCI_MSI_ADDRESS_LO,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_64BIT,
  PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_FLAGS_MASKBIT,
  PCI_MSI_FLAGS_QMASK,
  PCI_MSI_FLAGS_QSIZE,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PCI_MSIX_FLAGS_QSIZE,
  PCI_MSIX_PBA,
  PCI_MSIX_PBA_BIR,
  PCI_MSIX_TABLE,
  PCI_MSIX_TABLE_BIR,
  PCI_PM_CTRL,
  PCI_PM_CTRL_STATE_MASK,
  PCI_STATUS,
  PCI_STATUS_ERROR_BITS,
  PCI_STATUS_INTERRUPT,
  PCI_STD_NUM_BARS,
} from './constants.js';
import { buildHeader, validateIdentity } from './header.js';
import type {
  PciBarInfo,
  PciCapabilityId,
  PciCapabilityInfo,
  PciConfigOptions,
  PciMsiState,
  PciMsixState,
  PciPowerState,
} from './types.js';
import { fail, hex } from './validate.js';

export type PciWriteListener = (offset: number, length: number) => void;

const POWER_STATES: readonly PciPowerState[] = ['D0', 'D1', 'D2', 'D3hot'];

export class PciConfigSpace {
  /** 256, or 4096 with PCIe extended config space. */
  readonly size: number;

  readonly #data: Buffer;
  readonly #wmask: Buffer;
  readonly #w1cmask: Buffer;
  readonly #powerOn: Buffer;
  readonly #bars: BarSlots;
  readonly #caps: readonly PlacedCapability[];
  readonly #writeListeners = new Set<PciWriteListener>();
  readonly #flrListeners = new Set<() => void>();
  readonly #resetListeners = new Set<() => void>();

  constructor(options: PciConfigOptions) {
    if (typeof options !== 'object' || options === null) fail('options are required');
    const identity = validateIdentity(options.identity);
    this.#bars = normalizeBars(options.bars);
    this.#caps = placeCapabilities(options.capabilities, this.#bars);
    const size =
      options.size ?? (this.#caps.some((c) => c.id === 'pcie') ? PCI_CFG_SPACE_EXP_SIZE : PCI_CFG_SPACE_SIZE);
    if (size !== PCI_CFG_SPACE_SIZE && size !== PCI_CFG_SPACE_EXP_SIZE) {
      fail(`size must be 256 or 4096, got ${String(size)}`);
    }
    this.size = size;
    this.#data = Buffer.alloc(size);
    this.#wmask = Buffer.alloc(size);
    this.#w1cmask = Buffer.alloc(size);
    const parts = [
      { offset: 0, image: buildHeader(identity, this.#bars, this.#caps[0]?.offset ?? 0) },
      ...this.#caps,
    ];
    for (const { offset, image } of parts) {
      image.data.copy(this.#data, offset);
      image.wmask.copy(this.#wmask, offset);
      image.w1cmask.copy(this.#w1cmask, offset);
    }
    this.#powerOn = Buffer.from(this.#data);
  }

  // --- Guest access ----------------------------------------------------------

  /** A copy of `length` bytes at `offset`. */
  read(offset: number, length: number): Buffer {
    this.#checkRange('read', offset, length);
    return Buffer.from(this.#data.subarray(offset, offset + length));
  }

  readU8(offset: number): number {
    this.#checkRange('read', offset, 1);
    return this.#data.readUInt8(offset);
  }

  readU16(offset: number): number {
    this.#checkRange('read', offset, 2);
    return this.#data.readUInt16LE(offset);
  }

  readU32(offset: number): number {
    this.#checkRange('read', offset, 4);
    return this.#data.readUInt32LE(offset);
  }

  /**
   * A guest (VMM) write: each byte goes through the write and W1C masks, then
   * capability side effects run (MSI vector clamp, PM state rule, FLR), then
   * the onWrite listeners are called with (offset, length).
   */
  write(offset: number, data: Uint8Array): void {
    this.#checkRange('write', offset, data.length);
    if (data.length === 0) return;
    const end = offset + data.length;
    const touched = this.#caps.filter(
      (c) => c.afterWrite && c.offset < end && offset < c.offset + c.image.length,
    );
    const before = touched.map((c) => Buffer.from(this.#data.subarray(c.offset, c.offset + c.image.length)));
    for (let i = 0; i < data.length; i++) {
      const at = offset + i;
      const value = data[i];
      const wmask = this.#wmask[at];
      this.#data[at] = ((this.#data[at] & ~wmask) | (value & wmask)) & ~(value & this.#w1cmask[at]);
    }
    let flr = false;
    touched.forEach((cap, i) => {
      const view = this.#data.subarray(cap.offset, cap.offset + cap.image.length);
      if (cap.afterWrite?.(view, before[i]) === 'flr') flr = true;
    });
    if (flr) {
      this.reset();
      for (const listener of [...this.#flrListeners]) listener();
    }
    for (const listener of [...this.#writeListeners]) listener(offset, data.length);
  }

  writeU8(offset: number, value: number): void {
    this.write(offset, Uint8Array.of(value & 0xff));
  }

  writeU16(offset: number, value: number): void {
    const bytes = Buffer.alloc(2);
    bytes.writeUInt16LE(value & 0xffff);
    this.write(offset, bytes);
  }

  writeU32(offset: number, value: number): void {
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32LE(value >>> 0);
    this.write(offset, bytes);
  }

  /** Called after every guest write (not after poke or reset). Returns an unsubscribe function. */
  onWrite(listener: PciWriteListener): () => void {
    this.#writeListeners.add(listener);
    return () => this.#writeListeners.delete(listener);
  }

  /**
   * Called when the guest initiates a Function Level Reset (PCIe capability
   * with `flr: true`). The config space has already been reset; the device
   * resets its own state. Runs before the onWrite listeners of that write.
   */
  onFunctionLevelReset(listener: () => void): () => void {
    this.#flrListeners.add(listener);
    return () => this.#flrListeners.delete(listener);
  }

  // --- Device side -----------------------------------------------------------

  /** Writes bytes as the device, bypassing the guest masks and side effects; no listeners run. */
  poke(offset: number, data: Uint8Array): void {
    this.#checkRange('poke', offset, data.length);
    this.#data.set(data, offset);
  }

  /** Back to the power-on contents: command, BAR addresses, capability state, everything. */
  reset(): void {
    this.#powerOn.copy(this.#data);
    for (const listener of [...this.#resetListeners]) listener();
  }

  /** Called after every reset() (FLR included). Returns an unsubscribe function. */
  onReset(listener: () => void): () => void {
    this.#resetListeners.add(listener);
    return () => this.#resetListeners.delete(listener);
  }

  /** Clears Bus Master Enable as the device (no listeners run): no DMA until the guest sets it again. */
  stopBusMaster(): void {
    const command = this.readU16(PCI_COMMAND) & ~PCI_COMMAND_MASTER;
    this.poke(PCI_COMMAND, Uint8Array.of(command & 0xff, command >> 8));
  }

  /**
   * Sets or clears Status.Interrupt (the function's INTx request). Without an
   * interrupt pin the bit stays 0, as on hardware without INTx.
   */
  setInterruptStatus(on: boolean): void {
    if (this.#data[PCI_INTERRUPT_PIN] === 0) return;
    this.#updateU16(PCI_STATUS, PCI_STATUS_INTERRUPT, on);
  }

  /** Records errors in the W1C status bits (PCI_STATUS_PARITY ... PCI_STATUS_DETECTED_PARITY). */
  setStatusBits(bits: number): void {
    if (!Number.isInteger(bits) || (bits & ~PCI_STATUS_ERROR_BITS) !== 0) {
      throw new RangeError(
        `setStatusBits accepts only the error bits ${hex(PCI_STATUS_ERROR_BITS)}, got ${String(bits)}; use setInterruptStatus() for the interrupt bit`,
      );
    }
    this.#updateU16(PCI_STATUS, bits, true);
  }

  /** Sets or clears an MSI pending bit (needs MSI with perVectorMask). */
  setMsiPending(vector: number, pending: boolean): void {
    const offset = this.capabilityOffset('msi');
    const msi = this.msi;
    if (offset === undefined || msi === undefined) throw new Error('the function has no MSI capability');
    const flags = this.readU16(offset + PCI_MSI_FLAGS);
    const layout = msiLayout((flags & PCI_MSI_FLAGS_64BIT) !== 0, (flags & PCI_MSI_FLAGS_MASKBIT) !== 0);
    if (layout.pending === undefined) throw new Error('the MSI capability has no per-vector masking');
    if (!Number.isInteger(vector) || vector < 0 || vector >= msi.vectors) {
      throw new RangeError(`MSI vector ${String(vector)} is out of range (0..${msi.vectors - 1})`);
    }
    const at = offset + layout.pending;
    const bits = this.#data.readUInt32LE(at);
    const bit = 2 ** vector;
    this.#data.writeUInt32LE(pending ? (bits | bit) >>> 0 : (bits & ~bit) >>> 0, at);
  }

  // --- Decoded state ---------------------------------------------------------

  get commandRegister(): number {
    return this.#data.readUInt16LE(PCI_COMMAND);
  }

  get statusRegister(): number {
    return this.#data.readUInt16LE(PCI_STATUS);
  }

  get ioEnabled(): boolean {
    return (this.commandRegister & PCI_COMMAND_IO) !== 0;
  }

  get memoryEnabled(): boolean {
    return (this.commandRegister & PCI_COMMAND_MEMORY) !== 0;
  }

  get busMasterEnabled(): boolean {
    return (this.commandRegister & PCI_COMMAND_MASTER) !== 0;
  }

  get intxDisabled(): boolean {
    return (this.commandRegister & PCI_COMMAND_INTX_DISABLE) !== 0;
  }

  get interruptStatus(): boolean {
    return (this.statusRegister & PCI_STATUS_INTERRUPT) !== 0;
  }

  /**
   * Whether INTx should be asserted towards the VMM: interrupt status set, INTx
   * not disabled, and neither MSI nor MSI-X enabled (they exclude INTx).
   */
  get intxAsserted(): boolean {
    return this.interruptStatus && !this.intxDisabled && !this.msi?.enabled && !this.msix?.enabled;
  }

  /** Offset of the first capability with this id (e.g. the first 'vendor' one). */
  capabilityOffset(id: PciCapabilityId): number | undefined {
    return this.#caps.find((c) => c.id === id)?.offset;
  }

  /** Offsets of all capabilities with this id, in list order. */
  capabilityOffsets(id: PciCapabilityId): number[] {
    return this.#caps.filter((c) => c.id === id).map((c) => c.offset);
  }

  /** The capability list as laid out. */
  get capabilities(): PciCapabilityInfo[] {
    return this.#caps.map((c) => ({
      id: c.id,
      capId: CAPABILITY_IDS[c.id],
      offset: c.offset,
      length: c.image.length,
    }));
  }

  /** The BAR starting at `index`; undefined when unimplemented or the upper half of a 64-bit BAR. */
  bar(index: number): PciBarInfo | undefined {
    const bar = this.#barAt(index);
    if (bar === undefined || bar.index !== index) return undefined;
    return {
      index,
      kind: bar.kind,
      size: bar.size,
      prefetchable: bar.prefetchable,
      address: this.barAddress(index),
    };
  }

  /** All implemented BARs, by index. */
  get bars(): PciBarInfo[] {
    return Array.from({ length: PCI_STD_NUM_BARS }, (_, i) => this.bar(i)).filter(
      (b): b is PciBarInfo => b !== undefined,
    );
  }

  barSize(index: number): bigint | undefined {
    return this.bar(index)?.size;
  }

  /**
   * The address the guest programmed, without flag bits (64-bit for mem64).
   * 0n for unimplemented BARs. While the guest sizes a BAR this is the sizing
   * pattern, so only trust it with the decode enable (memoryEnabled/ioEnabled) set.
   */
  barAddress(index: number): bigint {
    const bar = this.#barAt(index);
    if (bar === undefined) return 0n;
    if (bar.index !== index) throw new RangeError(`BAR${index} is the upper half of 64-bit BAR${bar.index}`);
    const low = this.#data.readUInt32LE(PCI_BASE_ADDRESS_0 + 4 * index);
    if (bar.kind === 'io') return BigInt((low & PCI_BASE_ADDRESS_IO_MASK) >>> 0);
    const address = BigInt((low & PCI_BASE_ADDRESS_MEM_MASK) >>> 0);
    if (bar.kind === 'mem32') return address;
    return (BigInt(this.#data.readUInt32LE(PCI_BASE_ADDRESS_0 + 4 * (index + 1))) << 32n) | address;
  }

  get msix(): PciMsixState | undefined {
    const offset = this.capabilityOffset('msix');
    if (offset === undefined) return undefined;
    const flags = this.#data.readUInt16LE(offset + PCI_MSIX_FLAGS);
    const table = this.#data.readUInt32LE(offset + PCI_MSIX_TABLE);
    const pba = this.#data.readUInt32LE(offset + PCI_MSIX_PBA);
    return {
      enabled: (flags & PCI_MSIX_FLAGS_ENABLE) !== 0,
      functionMasked: (flags & PCI_MSIX_FLAGS_MASKALL) !== 0,
      tableSize: (flags & PCI_MSIX_FLAGS_QSIZE) + 1,
      tableBar: table & PCI_MSIX_TABLE_BIR,
      tableOffset: (table & ~PCI_MSIX_TABLE_BIR) >>> 0,
      pbaBar: pba & PCI_MSIX_PBA_BIR,
      pbaOffset: (pba & ~PCI_MSIX_PBA_BIR) >>> 0,
    };
  }

  get msi(): PciMsiState | undefined {
    const offset = this.capabilityOffset('msi');
    if (offset === undefined) return undefined;
    const flags = this.#data.readUInt16LE(offset + PCI_MSI_FLAGS);
    const addr64 = (flags & PCI_MSI_FLAGS_64BIT) !== 0;
    const layout = msiLayout(addr64, (flags & PCI_MSI_FLAGS_MASKBIT) !== 0);
    const low = BigInt(this.#data.readUInt32LE(offset + PCI_MSI_ADDRESS_LO));
    const high =
      layout.addressHi === undefined ? 0n : BigInt(this.#data.readUInt32LE(offset + layout.addressHi));
    const state: PciMsiState = {
      enabled: (flags & PCI_MSI_FLAGS_ENABLE) !== 0,
      vectors: 1 << ((flags & PCI_MSI_FLAGS_QMASK) >> 1),
      vectorsEnabled: 1 << ((flags & PCI_MSI_FLAGS_QSIZE) >> 4),
      addr64,
      address: (high << 32n) | low,
      data: this.#data.readUInt16LE(offset + layout.data),
    };
    if (layout.mask !== undefined && layout.pending !== undefined) {
      state.maskBits = this.#data.readUInt32LE(offset + layout.mask);
      state.pendingBits = this.#data.readUInt32LE(offset + layout.pending);
    }
    return state;
  }

  /** Current PM power state; undefined without a PM capability. */
  get powerState(): PciPowerState | undefined {
    const offset = this.capabilityOffset('pm');
    if (offset === undefined) return undefined;
    return POWER_STATES[this.#data.readUInt16LE(offset + PCI_PM_CTRL) & PCI_PM_CTRL_STATE_MASK];
  }

  // --- Internals -------------------------------------------------------------

  #checkRange(op: string, offset: number, length: number): void {
    if (
      !Number.isInteger(offset) ||
      !Number.isInteger(length) ||
      offset < 0 ||
      length < 0 ||
      offset + length > this.size
    ) {
      const where = Number.isInteger(offset) && offset >= 0 ? hex(offset) : String(offset);
      throw new RangeError(
        `config space ${op} of ${String(length)} bytes at ${where} is outside the ${this.size}-byte space`,
      );
    }
  }

  #barAt(index: number) {
    if (!Number.isInteger(index) || index < 0 || index >= PCI_STD_NUM_BARS) {
      throw new RangeError(`BAR index ${String(index)} is out of range (0..5)`);
    }
    return this.#bars[index];
  }

  #updateU16(offset: number, bits: number, set: boolean): void {
    const value = this.#data.readUInt16LE(offset);
    this.#data.writeUInt16LE(set ? value | bits : value & ~bits & 0xffff, offset);
  }
}
