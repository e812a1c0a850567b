/**
 * The VMM side of vfio-user: connect to any vfio-user device, negotiate, map memory, read and write its
 * regions, hand it IRQ eventfds and reset it. It also answers the server's DMA_READ / DMA_WRITE for the
 * memory it mapped, from the buffers (or fds) given to dmaMap.
 */
import { EventEmitter } from 'node:events';
import { type EventFd, GuestMemoryTable, MappedMemory, UnixSocket } from '@emu/native';
import { consoleLogger, type Logger } from '../logger.js';
import { PCI_COMMAND, PCI_COMMAND_MASTER } from '../pci/constants.js';
import { type Capabilities, encodeCapabilities, parseCapabilities } from '../protocol/capabilities.js';
import {
  CLIENT_MAX_MSG_FDS,
  Command,
  commandName,
  DEFAULT_MAX_DATA_XFER_SIZE,
  DEFAULT_MAX_DMA_MAPS,
  DEFAULT_PGSIZES,
  DmaMapFlag,
  DmaUnmapFlag,
  Errno,
  HEADER_SIZE,
  IRQ_INDEX_NAMES,
  type IrqIndexName,
  IrqSetFlag,
  PciRegion,
  RegionCap,
  RegionFlag,
  SCM_MAX_FD,
} from '../protocol/constants.js';
import { ProtocolError, VfioUserError } from '../protocol/errors.js';
import {
  DeviceInfo,
  DmaAccess,
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
  Version,
  WRITE_MULTI_ENTRY_SIZE,
  WriteMultiCount,
  WriteMultiEntry,
} from '../protocol/messages.js';
import { Connection } from '../transport/connection.js';
import { type Message, safeClose } from '../transport/framer.js';

export interface ClientOptions {
  logger?: Logger;
  /** The minor version to ask for; default 2. QEMU asks for 0. */
  minor?: number;
  /** Most fds we accept per message; default 16. */
  maxMsgFds?: number;
  maxDataXferSize?: number;
  /** Reply timeout; default 5000 ms. */
  timeoutMs?: number;
}

export interface DeviceInfoResult {
  flags: number;
  numRegions: number;
  numIrqs: number;
  resettable: boolean;
  pci: boolean;
}

export interface RegionInfoResult {
  index: number;
  flags: number;
  size: bigint;
  /** Offset of the region in `fd`, for mmap. */
  offset: bigint;
  readable: boolean;
  writable: boolean;
  mmappable: boolean;
  /** Mappable areas (sparse mmap capability); the whole region when mmappable without one. */
  areas: Array<{ offset: bigint; size: bigint }>;
  /** The region's fd when mmappable; owned by the caller (close it, or pass it to mapRegion). */
  fd?: number;
}

export interface IrqInfoResult {
  index: number;
  flags: number;
  count: number;
}

export interface DmaMapOptions {
  address: bigint;
  size: bigint;
  /** An fd the server can mmap (e.g. a memfd); the client keeps its own. */
  fd?: number;
  fileOffset?: bigint;
  /**
   * The bytes behind the range, for answering the server's DMA_READ / DMA_WRITE. With an fd and no
   * memory, the client maps the fd itself.
   */
  memory?: Uint8Array;
  readable?: boolean;
  writable?: boolean;
}

export interface RegionWrite {
  region: number;
  offset: bigint | number;
  data: Uint8Array;
}

interface ClientDmaRange {
  address: bigint;
  size: bigint;
  readable: boolean;
  writable: boolean;
  /** The bytes the caller gave, or the client's own mapping of the fd (any size). */
  memory?: Uint8Array;
  own?: MappedMemory;
}

export class VfioUserClient extends EventEmitter<{ close: [Error | undefined] }> {
  /** Capabilities and version the server answered with. */
  server!: { version: { major: number; minor: number }; capabilities: Capabilities };
  /** What we mapped, by address; `index` finds ranges in O(log n) (no host memory in it). */
  private readonly ranges = new Map<bigint, ClientDmaRange>();
  private readonly index = new GuestMemoryTable();
  private readonly conn: Connection;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  /** The max_msg_fds we advertise: most fds we take on one message from the server. */
  private readonly maxMsgFds: number;
  /** The max_data_xfer_size we advertise: most bytes the server's DMA_READ/WRITE may move at once. */
  private readonly maxDataXferSize: number;

  private constructor(socket: UnixSocket, path: string, options: ClientOptions) {
    super();
    this.log = options.logger ?? consoleLogger('warn', 'vfio-user-client');
    this.timeoutMs = options.timeoutMs ?? 5000;
    const maxData = options.maxDataXferSize ?? DEFAULT_MAX_DATA_XFER_SIZE;
    this.maxDataXferSize = maxData;
    this.maxMsgFds = options.maxMsgFds ?? CLIENT_MAX_MSG_FDS;
    this.conn = new Connection(socket, {
      maxMessageSize: HEADER_SIZE + RegionAccess.size + maxData + 64,
      // What we advertise is what we hold: more fds on one message are closed and it is refused.
      maxMessageFds: this.maxMsgFds,
      logger: this.log,
      name: path,
      requestTimeoutMs: this.timeoutMs,
    });
    this.conn.on('command', (msg) => this.serve(msg));
    this.conn.on('close', (reason) => {
      this.forgetRanges();
      this.emit('close', reason);
    });
  }

  /** Connects and negotiates. Rejects with the socket error (ENOENT, ECONNREFUSED) or the VERSION failure. */
  static async connect(path: string, options: ClientOptions = {}): Promise<VfioUserClient> {
    const client = new VfioUserClient(UnixSocket.connect(path), path, options);
    try {
      await client.negotiate(options);
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  get closed(): boolean {
    return this.conn.closed;
  }

  close(): void {
    this.conn.close();
  }

  /**
   * Sends any command as is and resolves with the raw reply: for tools and tests. The reply's fds
   * (at most `replyFds`, default 0) are the caller's.
   */
  request(
    command: number,
    payload: Buffer | Buffer[],
    opts: { fds?: number[]; noReply?: boolean; replyFds?: number } = {},
  ) {
    return this.conn.request(command, payload, { timeoutMs: this.timeoutMs, ...opts });
  }

  async getDeviceInfo(): Promise<DeviceInfoResult> {
    const r = await this.call(Command.DEVICE_GET_INFO, DeviceInfo.encode({ argsz: DeviceInfo.size }));
    const info = DeviceInfo.decode(r.payload);
    return {
      flags: info.flags,
      numRegions: info.numRegions,
      numIrqs: info.numIrqs,
      resettable: (info.flags & 1) !== 0,
      pci: (info.flags & 2) !== 0,
    };
  }

  /** Region info, asking again with a bigger buffer when the server has capabilities to send. */
  async getRegionInfo(index: number): Promise<RegionInfoResult> {
    let argsz = RegionInfo.size;
    for (let attempt = 0; attempt < 2; attempt++) {
      const r = await this.call(
        Command.DEVICE_GET_REGION_INFO,
        RegionInfo.encode({ argsz, index }),
        [],
        Math.min(1, this.maxMsgFds),
      );
      let info: ReturnType<typeof RegionInfo.decode>;
      try {
        info = RegionInfo.decode(r.payload);
      } catch (err) {
        // A reply too short to hold a region info: its fd is ours, and useless.
        for (const fd of r.fds) safeClose(fd);
        throw new VfioUserError(Errno.EPROTO, 'DEVICE_GET_REGION_INFO', (err as Error).message);
      }
      if (info.argsz > argsz && attempt === 0) {
        for (const fd of r.fds) safeClose(fd);
        argsz = info.argsz;
        continue;
      }
      const mmappable = (info.flags & RegionFlag.MMAP) !== 0;
      let areas: RegionInfoResult['areas'] = mmappable ? [{ offset: 0n, size: info.size }] : [];
      if (info.flags & RegionFlag.CAPS && info.capOffset >= RegionInfo.size) {
        areas = this.parseSparse(r.payload, info.capOffset) ?? areas;
      }
      return {
        index: info.index,
        flags: info.flags,
        size: info.size,
        offset: info.offset,
        readable: (info.flags & RegionFlag.READ) !== 0,
        writable: (info.flags & RegionFlag.WRITE) !== 0,
        mmappable,
        areas,
        fd: r.fds[0],
      };
    }
    throw new VfioUserError(Errno.EPROTO, 'DEVICE_GET_REGION_INFO', 'server kept asking for a bigger buffer');
  }

  /** Maps a region's mappable areas from the fd its info carried; closes the fd. */
  mapRegion(info: RegionInfoResult): Array<{ offset: bigint; memory: MappedMemory }> {
    if (info.fd === undefined) throw new Error(`region ${info.index} has no fd to map`);
    const mapped: Array<{ offset: bigint; memory: MappedMemory }> = [];
    try {
      for (const a of info.areas) {
        const memory = MappedMemory.map(info.fd, info.offset + a.offset, Number(a.size), {
          read: info.readable,
          write: info.writable,
        });
        mapped.push({ offset: a.offset, memory });
      }
      return mapped;
    } catch (err) {
      // All areas or none: the ones mapped before the failure go too.
      for (const m of mapped) m.memory.unmap();
      throw err;
    } finally {
      safeClose(info.fd);
      info.fd = undefined;
    }
  }

  async getRegionIoFds(index: number): Promise<{ count: number; fds: number[]; payload: Buffer }> {
    const r = await this.call(
      Command.DEVICE_GET_REGION_IO_FDS,
      RegionIoFds.encode({ argsz: RegionIoFds.size, index }),
      [],
      this.maxMsgFds,
    );
    try {
      const info = RegionIoFds.decode(r.payload);
      return { count: info.count, fds: r.fds, payload: r.payload };
    } catch (err) {
      for (const fd of r.fds) safeClose(fd);
      throw new VfioUserError(Errno.EPROTO, 'DEVICE_GET_REGION_IO_FDS', (err as Error).message);
    }
  }

  async getIrqInfo(index: number | IrqIndexName): Promise<IrqInfoResult> {
    const i = irqIndex(index);
    const r = await this.call(Command.DEVICE_GET_IRQ_INFO, IrqInfo.encode({ argsz: IrqInfo.size, index: i }));
    const info = IrqInfo.decode(r.payload);
    return { index: info.index, flags: info.flags, count: info.count };
  }

  /**
   * Hands eventfds to the server for vectors start.. of an IRQ index (null de-assigns a vector), in
   * chunks the server accepts, as QEMU does.
   */
  async setIrqEventfds(
    index: number | IrqIndexName,
    start: number,
    fds: ReadonlyArray<EventFd | number | null>,
  ) {
    const i = irqIndex(index);
    const max = Math.min(this.server.capabilities.maxMsgFds, SCM_MAX_FD);
    if (max === 0 && fds.some((f) => f !== null)) {
      throw new VfioUserError(Errno.ENOTSUP, 'DEVICE_SET_IRQS', 'the server takes no fds (max_msg_fds 0)');
    }
    const flags = IrqSetFlag.DATA_EVENTFD | IrqSetFlag.ACTION_TRIGGER;
    for (let at = 0; at < fds.length; ) {
      // Each message is all-valid or all-none.
      const none = fds[at] === null;
      let n = 0;
      // fd-less (de-assigning) runs need no fds: any length the count field holds.
      const most = none ? fds.length : max;
      while (at + n < fds.length && n < most && (fds[at + n] === null) === none) n++;
      const chunk = fds.slice(at, at + n).map((f) => (f === null ? -1 : typeof f === 'number' ? f : f.fd));
      const payload = IrqSet.encode({ argsz: IrqSet.size, flags, index: i, start: start + at, count: n });
      await this.call(Command.DEVICE_SET_IRQS, payload, none ? [] : chunk);
      at += n;
    }
  }

  /** Disables every vector of an IRQ index (count 0, DATA_NONE, TRIGGER). */
  async disableIrqs(index: number | IrqIndexName): Promise<void> {
    const flags = IrqSetFlag.DATA_NONE | IrqSetFlag.ACTION_TRIGGER;
    await this.call(
      Command.DEVICE_SET_IRQS,
      IrqSet.encode({ argsz: IrqSet.size, flags, index: irqIndex(index) }),
    );
  }

  /** MASK / UNMASK / TRIGGER vectors [start, start+count), optionally only those set in `select`. */
  async irqAction(
    index: number | IrqIndexName,
    action: 'mask' | 'unmask' | 'trigger',
    start: number,
    count: number,
    select?: boolean[],
  ): Promise<void> {
    const act =
      action === 'mask'
        ? IrqSetFlag.ACTION_MASK
        : action === 'unmask'
          ? IrqSetFlag.ACTION_UNMASK
          : IrqSetFlag.ACTION_TRIGGER;
    const data = select ? IrqSetFlag.DATA_BOOL : IrqSetFlag.DATA_NONE;
    const bools = select ? Buffer.from(select.map((b) => (b ? 1 : 0))) : Buffer.alloc(0);
    const head = IrqSet.encode({
      argsz: IrqSet.size + bools.length,
      flags: act | data,
      index: irqIndex(index),
      start,
      count,
    });
    await this.call(Command.DEVICE_SET_IRQS, [head, bools]);
  }

  async regionRead(region: number, offset: bigint | number, count: number): Promise<Buffer> {
    this.checkXfer(count);
    const req = RegionAccess.encode({ offset: BigInt(offset), region, count });
    const r = await this.call(Command.REGION_READ, req);
    const data = r.payload.subarray(RegionAccess.size);
    if (data.length !== count) {
      throw new VfioUserError(Errno.EPROTO, 'REGION_READ', `asked ${count} bytes, got ${data.length}`);
    }
    return data;
  }

  /**
   * Sets (or clears) Bus Master Enable in the device's command register, as a guest driver's
   * pci_set_master() does: a device may only DMA while it is set.
   */
  async setBusMaster(enabled = true): Promise<void> {
    const command = (await this.regionRead(PciRegion.CONFIG, PCI_COMMAND, 2)).readUInt16LE(0);
    const next = enabled ? command | PCI_COMMAND_MASTER : command & ~PCI_COMMAND_MASTER;
    const data = Buffer.alloc(2);
    data.writeUInt16LE(next);
    await this.regionWrite(PciRegion.CONFIG, PCI_COMMAND, data);
  }

  /** Writes a region; `posted` sends it with NO_REPLY, as QEMU does for BAR writes. */
  async regionWrite(
    region: number,
    offset: bigint | number,
    data: Uint8Array,
    opts: { posted?: boolean } = {},
  ) {
    this.checkXfer(data.length);
    const req = RegionAccess.encode({ offset: BigInt(offset), region, count: data.length });
    await this.call(Command.REGION_WRITE, [req, Buffer.from(data)], [], 0, opts.posted);
  }

  /** Several small writes (≤ 8 bytes each) in one REGION_WRITE_MULTI, if the server offered it. */
  async regionWriteMulti(writes: readonly RegionWrite[], opts: { posted?: boolean } = {}): Promise<void> {
    if (!this.server.capabilities.writeMultiple) {
      throw new VfioUserError(Errno.ENOTSUP, 'REGION_WRITE_MULTI', 'the server did not offer write_multiple');
    }
    const buf = Buffer.alloc(WriteMultiCount.size + writes.length * WRITE_MULTI_ENTRY_SIZE);
    WriteMultiCount.encodeInto({ count: BigInt(writes.length) }, buf, 0);
    writes.forEach((w, i) => {
      if (w.data.length > 8) throw new RangeError(`write ${i}: ${w.data.length} bytes, at most 8`);
      const at = WriteMultiCount.size + i * WRITE_MULTI_ENTRY_SIZE;
      WriteMultiEntry.encodeInto(
        { offset: BigInt(w.offset), region: w.region, count: w.data.length },
        buf,
        at,
      );
      buf.set(w.data, at + WriteMultiEntry.size);
    });
    await this.call(Command.REGION_WRITE_MULTI, buf, [], 0, opts.posted);
  }

  async dmaMap(opts: DmaMapOptions): Promise<void> {
    const readable = opts.readable ?? true;
    const writable = opts.writable ?? true;
    const memory = opts.memory;
    if (opts.fd !== undefined && this.server.capabilities.maxMsgFds === 0) {
      throw new VfioUserError(
        Errno.ENOTSUP,
        'DMA_MAP',
        'the server takes no fds (max_msg_fds 0): map memory only',
      );
    }
    let own: MappedMemory | undefined;
    if (!memory && opts.fd !== undefined) {
      own = MappedMemory.map(opts.fd, opts.fileOffset ?? 0n, Number(opts.size));
    }
    if (!memory && !own) throw new TypeError('dmaMap needs `memory`, an `fd`, or both');
    if (memory && BigInt(memory.byteLength) < opts.size)
      throw new RangeError('dmaMap: memory is smaller than size');
    const flags = (readable ? DmaMapFlag.READ : 0) | (writable ? DmaMapFlag.WRITE : 0);
    const payload = DmaMap.encode({
      argsz: DmaMap.size,
      flags,
      offset: opts.fileOffset ?? 0n,
      address: opts.address,
      size: opts.size,
    });
    try {
      await this.call(Command.DMA_MAP, payload, opts.fd !== undefined ? [opts.fd] : []);
    } catch (err) {
      own?.unmap();
      throw err;
    }
    this.ranges.set(opts.address, {
      address: opts.address,
      size: opts.size,
      readable,
      writable,
      memory,
      own,
    });
    this.index.addIndirect(opts.address, opts.size);
  }

  async dmaUnmap(address: bigint, size: bigint): Promise<void> {
    await this.call(Command.DMA_UNMAP, DmaUnmap.encode({ argsz: DmaUnmap.size, address, size }));
    // The server removed every range inside the window (Linux VFIO semantics); so do we.
    for (const start of this.index.within(address, size).starts) this.forget(start);
  }

  async dmaUnmapAll(): Promise<void> {
    await this.call(Command.DMA_UNMAP, DmaUnmap.encode({ argsz: DmaUnmap.size, flags: DmaUnmapFlag.ALL }));
    this.forgetRanges();
  }

  private forget(address: bigint): void {
    this.ranges.get(address)?.own?.unmap();
    this.ranges.delete(address);
    this.index.remove(address);
  }

  private forgetRanges(): void {
    for (const r of this.ranges.values()) r.own?.unmap();
    this.ranges.clear();
    this.index.clear();
  }

  async reset(): Promise<void> {
    await this.call(Command.DEVICE_RESET, []);
  }

  private async negotiate(options: ClientOptions): Promise<void> {
    const caps = encodeCapabilities({
      maxMsgFds: this.maxMsgFds,
      maxDataXferSize: this.maxDataXferSize,
      pgsizes: DEFAULT_PGSIZES,
      maxDmaMaps: DEFAULT_MAX_DMA_MAPS,
      writeMultiple: true,
    });
    const minor = options.minor ?? 2;
    const r = await this.call(Command.VERSION, [Version.encode({ major: 0, minor }), caps]);
    const v = Version.decode(r.payload);
    if (v.major !== 0 || v.minor > minor) {
      throw new VfioUserError(Errno.EPROTO, 'VERSION', `server answered ${v.major}.${v.minor} to 0.${minor}`);
    }
    let parsed: ReturnType<typeof parseCapabilities>;
    try {
      parsed = parseCapabilities(r.payload.subarray(Version.size));
    } catch (err) {
      throw new VfioUserError(Errno.EPROTO, 'VERSION', (err as Error).message);
    }
    this.server = { version: { major: v.major, minor: v.minor }, capabilities: parsed.caps };
  }

  /** A request whose reply may carry `replyFds` fds (then ours to close); noReply: posted. */
  private call(
    command: number,
    payload: Buffer | Buffer[],
    fds: number[] = [],
    replyFds = 0,
    noReply = false,
  ) {
    return this.conn.request(command, payload, { fds, noReply, replyFds, timeoutMs: this.timeoutMs });
  }

  private checkXfer(count: number): void {
    const max = this.server.capabilities.maxDataXferSize;
    if (count > max)
      throw new RangeError(`transfer of ${count} bytes is above the server's max_data_xfer_size ${max}`);
  }

  private parseSparse(payload: Buffer, capOffset: number): RegionInfoResult['areas'] | undefined {
    // Caps are chained by offsets from the start of the region info; guard against loops and overruns.
    for (let at = capOffset, hops = 0; at !== 0 && hops < 16; hops++) {
      if (at + RegionCapHeader.size > payload.length) return undefined;
      const cap = RegionCapHeader.decode(payload, at);
      if (cap.id === RegionCap.SPARSE_MMAP) {
        const { nrAreas } = SparseMmapHeader.decode(payload, at + RegionCapHeader.size);
        const first = at + RegionCapHeader.size + SparseMmapHeader.size;
        if (first + nrAreas * SparseMmapArea.size > payload.length) return undefined;
        return Array.from({ length: nrAreas }, (_, i) =>
          SparseMmapArea.decode(payload, first + i * SparseMmapArea.size),
        );
      }
      at = cap.next;
    }
    return undefined;
  }

  /** Server-to-client commands: DMA_READ / DMA_WRITE on the memory we mapped. */
  private serve(msg: Message): void {
    const { header } = msg;
    try {
      if (msg.fds.length > 0)
        throw new ProtocolError(Errno.EINVAL, `${commandName(header.command)} carried fds`);
      if (header.command !== Command.DMA_READ && header.command !== Command.DMA_WRITE) {
        throw new ProtocolError(Errno.ENOSYS, `server sent ${commandName(header.command)}`);
      }
      const head = DmaAccess.decode(msg.payload);
      const address = head.address;
      const count = Number(head.count);
      // What we advertised we take (the server's own max_data_xfer_size bounds what it takes).
      const max = this.maxDataXferSize;
      if (count > max)
        throw new ProtocolError(Errno.EINVAL, `${commandName(header.command)} of ${count} bytes`);
      const write = header.command === Command.DMA_WRITE;
      const start = this.index.find(address, count);
      const range = start === undefined ? undefined : this.ranges.get(start);
      if (!range || (write ? !range.writable : !range.readable)) {
        throw new ProtocolError(
          Errno.EFAULT,
          `DMA ${write ? 'write' : 'read'} [0x${address.toString(16)}, +${count})`,
        );
      }
      const at = Number(address - range.address);
      if (write) {
        const data = msg.payload.subarray(DmaAccess.size);
        if (data.length !== count)
          throw new ProtocolError(Errno.EINVAL, `DMA_WRITE: ${data.length} bytes for ${count}`);
        if (range.memory) range.memory.set(data, at);
        else range.own!.write(at, data);
        this.conn.reply(msg, msg.payload.subarray(0, DmaAccess.size));
      } else {
        const data = range.memory
          ? Buffer.from(range.memory.subarray(at, at + count))
          : range.own!.read(at, count);
        this.conn.reply(msg, [msg.payload.subarray(0, DmaAccess.size), data]);
      }
    } catch (err) {
      const errno = err instanceof ProtocolError ? err.errno : Errno.EINVAL;
      this.log.warn({ command: commandName(header.command) }, (err as Error).message);
      this.conn.replyError(header, errno);
    }
  }
}

function irqIndex(index: number | IrqIndexName): number {
  const i = typeof index === 'number' ? index : IRQ_INDEX_NAMES.indexOf(index);
  if (i < 0) throw new RangeError(`unknown IRQ index ${index}`);
  return i;
}
