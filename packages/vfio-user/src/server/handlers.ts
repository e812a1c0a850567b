/**
 * The server's command table: per command, what a valid request looks like (payload size, fds) and its
 * handler. The dispatcher (server.ts) checks the declared shape uniformly; handlers check the rest and
 * throw ProtocolError, which becomes the error reply.
 */
import type { IrqIndexName } from '../protocol/constants.js';
import {
  Command,
  DeviceFlag,
  DmaMapFlag,
  DmaUnmapFlag,
  Errno,
  IRQ_INDEX_NAMES,
  IrqSetFlag,
  PCI_NUM_IRQS,
  PCI_NUM_REGIONS,
  RegionCap,
  RegionFlag,
  SERVER_MAX_MSG_FDS,
} from '../protocol/constants.js';
import { ProtocolError } from '../protocol/errors.js';
import {
  DeviceInfo,
  DmaMap,
  DmaUnmap,
  IrqInfo,
  IrqSet,
  RegionAccess,
  RegionCapHeader,
  RegionInfo,
  RegionIoFds,
  SparseMmapArea,
  SparseMmapHeader,
  WRITE_MULTI_ENTRY_SIZE,
  WRITE_MULTI_MAX_DATA,
  WriteMultiCount,
  WriteMultiEntry,
} from '../protocol/messages.js';
import { type Message, takeFds } from '../transport/framer.js';
import type { ClientBudget } from './budget.js';
import type { ResolvedRegion } from './device.js';
import type { DmaRegion, DmaTable } from './dma-table.js';
import { hex } from './dma-table.js';
import type { IrqTable } from './irqs.js';

export interface Reply {
  payload?: Buffer | Buffer[];
  fds?: number[];
}

/** What handlers may touch: the server's state for the current client. */
export interface ServerContext {
  readonly regions: readonly ResolvedRegion[];
  readonly dma: DmaTable;
  readonly irqs: IrqTable;
  /** What the client may make us hold (the DMA table charges it for maps itself). */
  readonly budget: ClientBudget;
  readonly maxDataXferSize: number;
  /** Most fds the client takes in one message (its max_msg_fds); no reply carries more. */
  readonly clientMaxFds: number;
  readonly writeMultiple: boolean;
  readonly resettable: boolean;
  regionRead(region: ResolvedRegion, offset: number, length: number): Uint8Array;
  regionWrite(region: ResolvedRegion, offset: number, data: Buffer): void;
  reset(): void;
  dmaMapped(region: DmaRegion): void;
  /** Called before the mapping goes away, so users stop touching it. */
  dmaUnmapping(region: DmaRegion): void;
  irqsChanged(index: IrqIndexName): void;
}

export interface CommandSpec {
  /** Fewest payload bytes a valid request has. */
  minPayload: number;
  /** How many fds a valid request may carry. */
  maxFds: number;
  handle(ctx: ServerContext, msg: Message): Reply | undefined;
}

const einval = (m: string) => new ProtocolError(Errno.EINVAL, m);

function checkArgsz(name: string, argsz: number, min: number): void {
  if (argsz < min) throw einval(`${name}: argsz ${argsz} is below ${min}`);
}

function regionAt(ctx: ServerContext, index: number, what: string): ResolvedRegion {
  const r = ctx.regions[index];
  if (!r) throw einval(`${what}: no region ${index} (the device has ${ctx.regions.length})`);
  return r;
}

/** Bounds of a region access: count within max_data_xfer_size, [offset, offset+count) inside the region. */
function checkAccess(
  ctx: ServerContext,
  r: ResolvedRegion,
  offset: bigint,
  count: number,
  what: string,
): number {
  if (count > ctx.maxDataXferSize) throw einval(`${what}: count ${count} is above ${ctx.maxDataXferSize}`);
  if (offset > BigInt(r.size) || BigInt(count) > BigInt(r.size) - offset) {
    throw einval(
      `${what}: [0x${hex(offset)}, +${count}) is outside region ${r.index} (size 0x${hex(r.size)})`,
    );
  }
  return Number(offset);
}

const handleDmaMap: CommandSpec['handle'] = (ctx, msg) => {
  const req = DmaMap.decode(msg.payload);
  checkArgsz('DMA_MAP', req.argsz, DmaMap.size);
  if (req.flags & ~(DmaMapFlag.READ | DmaMapFlag.WRITE))
    throw einval(`DMA_MAP: unknown flags 0x${hex(req.flags)}`);
  const fd = msg.fds.length === 1 ? msg.fds[0] : undefined;
  const region = ctx.dma.add({
    address: req.address,
    size: req.size,
    readable: (req.flags & DmaMapFlag.READ) !== 0,
    writable: (req.flags & DmaMapFlag.WRITE) !== 0,
    fileOffset: req.offset,
    fd,
  });
  ctx.dmaMapped(region);
  return {};
};

const handleDmaUnmap: CommandSpec['handle'] = (ctx, msg) => {
  const req = DmaUnmap.decode(msg.payload);
  checkArgsz('DMA_UNMAP', req.argsz, DmaUnmap.size);
  if (req.flags & DmaUnmapFlag.GET_DIRTY_BITMAP) {
    throw new ProtocolError(Errno.ENOTSUP, 'DMA_UNMAP: dirty page tracking is not supported');
  }
  if (req.flags & ~DmaUnmapFlag.ALL) throw einval(`DMA_UNMAP: unknown flags 0x${hex(req.flags)}`);
  if (req.flags & DmaUnmapFlag.ALL && (req.address !== 0n || req.size !== 0n)) {
    throw einval('DMA_UNMAP: ALL needs address and size 0');
  }
  const doomed =
    req.flags & DmaUnmapFlag.ALL ? [...ctx.dma.regions] : ctx.dma.rangesWithin(req.address, req.size);
  for (const r of doomed) {
    ctx.dmaUnmapping(r);
    ctx.dma.remove(r);
  }
  return {
    payload: DmaUnmap.encode({
      argsz: DmaUnmap.size,
      flags: req.flags,
      address: req.address,
      size: req.size,
    }),
  };
};

const handleDeviceGetInfo: CommandSpec['handle'] = (ctx, msg) => {
  const req = DeviceInfo.decode(msg.payload);
  checkArgsz('DEVICE_GET_INFO', req.argsz, DeviceInfo.size);
  return {
    payload: DeviceInfo.encode({
      argsz: DeviceInfo.size,
      flags: DeviceFlag.PCI | (ctx.resettable ? DeviceFlag.RESET : 0),
      numRegions: PCI_NUM_REGIONS,
      numIrqs: PCI_NUM_IRQS,
    }),
  };
};

const handleGetRegionInfo: CommandSpec['handle'] = (ctx, msg) => {
  const req = RegionInfo.decode(msg.payload);
  checkArgsz('DEVICE_GET_REGION_INFO', req.argsz, RegionInfo.size);
  const r = regionAt(ctx, req.index, 'DEVICE_GET_REGION_INFO');
  let flags = (r.readable ? RegionFlag.READ : 0) | (r.writable ? RegionFlag.WRITE : 0);
  // A client that takes no fds cannot map the region: it reads and writes it with messages.
  const mmap = ctx.clientMaxFds > 0 ? r.spec?.mmap : undefined;
  if (!mmap) {
    return {
      payload: RegionInfo.encode({ argsz: RegionInfo.size, flags, index: r.index, size: BigInt(r.size) }),
    };
  }
  flags |= RegionFlag.MMAP;
  const areas = mmap.areas ?? [{ offset: 0, size: r.size }];
  const whole = areas.length === 1 && areas[0].offset === 0 && areas[0].size === r.size;
  const base = { index: r.index, size: BigInt(r.size), offset: BigInt(mmap.fileOffset ?? 0) };
  if (whole)
    return { payload: RegionInfo.encode({ argsz: RegionInfo.size, flags, ...base }), fds: [mmap.fd] };
  // A sparse mmap capability. If the client's buffer is too small, say how big it must be and send no
  // caps, no CAPS flag and no fd (as libvfio-user does): the client asks again. QEMU refuses a reply
  // with CAPS whose cap_offset is 0 (EINVAL, "failed to get region info").
  const capSize = RegionCapHeader.size + SparseMmapHeader.size + areas.length * SparseMmapArea.size;
  const argsz = RegionInfo.size + capSize;
  if (req.argsz < argsz) return { payload: RegionInfo.encode({ argsz, flags, ...base }) };
  flags |= RegionFlag.CAPS;
  const cap = Buffer.alloc(capSize);
  RegionCapHeader.encodeInto({ id: RegionCap.SPARSE_MMAP, version: 1, next: 0 }, cap, 0);
  SparseMmapHeader.encodeInto({ nrAreas: areas.length }, cap, RegionCapHeader.size);
  areas.forEach((a, i) => {
    SparseMmapArea.encodeInto(
      { offset: BigInt(a.offset), size: BigInt(a.size) },
      cap,
      RegionCapHeader.size + SparseMmapHeader.size + i * SparseMmapArea.size,
    );
  });
  return {
    payload: [RegionInfo.encode({ argsz, flags, capOffset: RegionInfo.size, ...base }), cap],
    fds: [mmap.fd],
  };
};

const handleGetRegionIoFds: CommandSpec['handle'] = (ctx, msg) => {
  const req = RegionIoFds.decode(msg.payload);
  checkArgsz('DEVICE_GET_REGION_IO_FDS', req.argsz, RegionIoFds.size);
  if (req.flags !== 0) throw einval(`DEVICE_GET_REGION_IO_FDS: flags must be 0, got 0x${hex(req.flags)}`);
  const r = regionAt(ctx, req.index, 'DEVICE_GET_REGION_IO_FDS');
  // No region of ours has ioeventfds: an empty list (argsz says how much the full list takes).
  return { payload: RegionIoFds.encode({ argsz: RegionIoFds.size, flags: 0, index: r.index, count: 0 }) };
};

const handleGetIrqInfo: CommandSpec['handle'] = (ctx, msg) => {
  const req = IrqInfo.decode(msg.payload);
  checkArgsz('DEVICE_GET_IRQ_INFO', req.argsz, IrqInfo.size);
  if (req.index >= PCI_NUM_IRQS) throw einval(`DEVICE_GET_IRQ_INFO: no IRQ index ${req.index}`);
  return {
    payload: IrqInfo.encode({
      argsz: IrqInfo.size,
      flags: ctx.irqs.infoFlags(req.index),
      index: req.index,
      count: ctx.irqs.count(req.index),
    }),
  };
};

const handleSetIrqs: CommandSpec['handle'] = (ctx, msg) => {
  const req = IrqSet.decode(msg.payload);
  checkArgsz('DEVICE_SET_IRQS', req.argsz, IrqSet.size);
  const tail = msg.payload.subarray(IrqSet.size);
  const bools = req.flags & IrqSetFlag.DATA_BOOL ? tail : undefined;
  if (!bools && tail.length > 0) throw einval(`DEVICE_SET_IRQS: ${tail.length} unexpected data bytes`);
  // Eventfds are fds the client makes us hold: those it replaces are given back.
  const more = msg.fds.length - ctx.irqs.heldIn(req.index, req.start, req.count);
  if (msg.fds.length > 0 && more > 0) ctx.budget.take('fds', more);
  // From here the IRQ table owns the fds: it adopts them, or closes them on error.
  const fds = takeFds(msg);
  ctx.irqs.set({ flags: req.flags, index: req.index, start: req.start, count: req.count, bools, fds });
  ctx.irqsChanged(IRQ_INDEX_NAMES[req.index]);
  return {};
};

const handleRegionRead: CommandSpec['handle'] = (ctx, msg) => {
  const req = RegionAccess.decode(msg.payload);
  if (msg.payload.length !== RegionAccess.size)
    throw einval(`REGION_READ: payload is ${msg.payload.length} bytes`);
  const r = regionAt(ctx, req.region, 'REGION_READ');
  if (!r.readable) throw einval(`REGION_READ: region ${r.index} is not readable`);
  const offset = checkAccess(ctx, r, req.offset, req.count, 'REGION_READ');
  const data = req.count === 0 ? new Uint8Array(0) : ctx.regionRead(r, offset, req.count);
  return { payload: [RegionAccess.encode(req), Buffer.from(data.buffer, data.byteOffset, data.byteLength)] };
};

const handleRegionWrite: CommandSpec['handle'] = (ctx, msg) => {
  const req = RegionAccess.decode(msg.payload);
  const data = msg.payload.subarray(RegionAccess.size);
  if (data.length !== req.count)
    throw einval(`REGION_WRITE: count ${req.count} but ${data.length} data bytes`);
  const r = regionAt(ctx, req.region, 'REGION_WRITE');
  if (!r.writable) throw einval(`REGION_WRITE: region ${r.index} is not writable`);
  const offset = checkAccess(ctx, r, req.offset, req.count, 'REGION_WRITE');
  if (req.count > 0) ctx.regionWrite(r, offset, data);
  return { payload: RegionAccess.encode(req) };
};

const handleRegionWriteMulti: CommandSpec['handle'] = (ctx, msg) => {
  if (!ctx.writeMultiple) throw einval('REGION_WRITE_MULTI was not negotiated');
  const { count } = WriteMultiCount.decode(msg.payload);
  const expect = BigInt(WriteMultiCount.size) + count * BigInt(WRITE_MULTI_ENTRY_SIZE);
  if (BigInt(msg.payload.length) !== expect) {
    throw einval(
      `REGION_WRITE_MULTI: ${count} writes need ${expect} payload bytes, got ${msg.payload.length}`,
    );
  }
  // Check every write before doing any, so a bad batch changes nothing.
  const writes = Array.from({ length: Number(count) }, (_, i) => {
    const at = WriteMultiCount.size + i * WRITE_MULTI_ENTRY_SIZE;
    const w = WriteMultiEntry.decode(msg.payload, at);
    if (w.count > WRITE_MULTI_MAX_DATA)
      throw einval(`REGION_WRITE_MULTI: write ${i} count ${w.count} is above 8`);
    const r = regionAt(ctx, w.region, 'REGION_WRITE_MULTI');
    if (!r.writable) throw einval(`REGION_WRITE_MULTI: region ${r.index} is not writable`);
    const offset = checkAccess(ctx, r, w.offset, w.count, 'REGION_WRITE_MULTI');
    const data = msg.payload.subarray(at + WriteMultiEntry.size, at + WriteMultiEntry.size + w.count);
    return { r, offset, data };
  });
  for (const w of writes) if (w.data.length > 0) ctx.regionWrite(w.r, w.offset, w.data);
  return { payload: WriteMultiCount.encode({ count }) };
};

const handleDeviceReset: CommandSpec['handle'] = (ctx) => {
  if (!ctx.resettable) throw new ProtocolError(Errno.ENOTSUP, 'DEVICE_RESET: the device cannot reset');
  ctx.reset();
  return {};
};

const notSupported =
  (what: string): CommandSpec['handle'] =>
  () => {
    throw new ProtocolError(Errno.ENOTSUP, `${what} is not supported`);
  };

/** VERSION is handled by the server itself: it must come first, once. */
export const COMMAND_TABLE: Readonly<Partial<Record<number, CommandSpec>>> = {
  [Command.DMA_MAP]: { minPayload: DmaMap.size, maxFds: 1, handle: handleDmaMap },
  [Command.DMA_UNMAP]: { minPayload: DmaUnmap.size, maxFds: 0, handle: handleDmaUnmap },
  [Command.DEVICE_GET_INFO]: { minPayload: DeviceInfo.size, maxFds: 0, handle: handleDeviceGetInfo },
  [Command.DEVICE_GET_REGION_INFO]: { minPayload: RegionInfo.size, maxFds: 0, handle: handleGetRegionInfo },
  [Command.DEVICE_GET_REGION_IO_FDS]: {
    minPayload: RegionIoFds.size,
    maxFds: 0,
    handle: handleGetRegionIoFds,
  },
  [Command.DEVICE_GET_IRQ_INFO]: { minPayload: IrqInfo.size, maxFds: 0, handle: handleGetIrqInfo },
  [Command.DEVICE_SET_IRQS]: {
    minPayload: IrqSet.size,
    maxFds: SERVER_MAX_MSG_FDS,
    handle: handleSetIrqs,
  },
  [Command.REGION_READ]: { minPayload: RegionAccess.size, maxFds: 0, handle: handleRegionRead },
  [Command.REGION_WRITE]: { minPayload: RegionAccess.size, maxFds: 0, handle: handleRegionWrite },
  [Command.DEVICE_RESET]: { minPayload: 0, maxFds: 0, handle: handleDeviceReset },
  [Command.REGION_WRITE_MULTI]: {
    minPayload: WriteMultiCount.size,
    maxFds: 0,
    handle: handleRegionWriteMulti,
  },
  [Command.DIRTY_PAGES]: { minPayload: 0, maxFds: 0, handle: notSupported('DIRTY_PAGES (migration v1)') },
  [Command.DEVICE_FEATURE]: { minPayload: 8, maxFds: 0, handle: notSupported('DEVICE_FEATURE (migration)') },
  [Command.MIG_DATA_READ]: { minPayload: 8, maxFds: 0, handle: notSupported('MIG_DATA_READ (migration)') },
  [Command.MIG_DATA_WRITE]: { minPayload: 8, maxFds: 0, handle: notSupported('MIG_DATA_WRITE (migration)') },
};
