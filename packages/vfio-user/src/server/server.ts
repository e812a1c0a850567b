/**
 * The device side of vfio-user: a listening UNIX socket serving one device to one client at a time.
 *
 * Device state (config space, region contents) lives as long as the server; client state (the DMA table,
 * IRQ eventfds, negotiated capabilities) lives as long as the connection, as the spec asks: a client
 * that goes away leaves no fd or mapping behind, and the next one finds the device as it was.
 */

import { EventEmitter } from 'node:events';
import { chmodSync, chownSync } from 'node:fs';
import { basename } from 'node:path';
import {
  activity,
  closerStats,
  guardStats,
  idle,
  label,
  type TrapArea,
  TrapChannel,
  UnixListener,
  type UnixSocket,
} from '@emu/native';
import { consoleLogger, type Logger } from '../logger.js';
import { type Capabilities, encodeCapabilities, parseCapabilities } from '../protocol/capabilities.js';
import {
  Command,
  commandName,
  DEFAULT_MAX_DATA_XFER_SIZE,
  DEFAULT_MAX_DMA_MAPS,
  DEFAULT_PGSIZES,
  Errno,
  errnoName,
  HEADER_SIZE,
  IRQ_INDEX_NAMES,
  type IrqIndexName,
  MAX_DATA_XFER_SIZE,
  MIN_DATA_XFER_SIZE,
  PROTOCOL_MAJOR,
  SERVER_MAX_MSG_FDS,
} from '../protocol/constants.js';
import { ProtocolError, VfioUserError } from '../protocol/errors.js';
import { DmaAccess, RegionAccess, Version } from '../protocol/messages.js';
import { Connection, DEFAULT_MAX_QUEUED_BYTES } from '../transport/connection.js';
import type { Message } from '../transport/framer.js';
import {
  type BudgetPool,
  type BudgetStats,
  ClientBudget,
  emptyBudgetStats,
  processBudgetPool,
} from './budget.js';
import { type DeviceSpec, type ResolvedRegion, resolveDevice } from './device.js';
import { type DmaRegion, DmaTable, hex } from './dma-table.js';
import { COMMAND_TABLE, type ServerContext } from './handlers.js';
import { IrqTable } from './irqs.js';

/** The highest minor version we speak. A client gets min(its minor, this). */
export const SERVER_MINOR = 2;
/** Default time a new connection has to send VERSION. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** How often a connected client's memory is checked for faults the SIGBUS guard caught. */
const FAULT_CHECK_MS = 1000;
/** DMA_READ / DMA_WRITE requests in flight to one client; more wait for one of them to finish. */
export const DMA_REQUESTS_IN_FLIGHT = 32;

/** Who may own and reach the socket file. */
export interface SocketAccess {
  /** Permission bits of the socket file (default 0o600: only this user can connect). */
  mode?: number;
  /** Owner and group to give the socket file (chown), e.g. for QEMU running as libvirt-qemu. */
  uid?: number;
  gid?: number;
  /** Only peers running as one of these uids are served (SO_PEERCRED); others are refused and logged. */
  allowedUids?: readonly number[];
}

export interface ServerOptions {
  /** Path of the UNIX socket to listen on. */
  path: string;
  /** The device's name in thread names and stall reports (default: the socket file's, without .sock). */
  name?: string;
  logger?: Logger;
  /** Largest REGION/DMA transfer we accept and send; default 1 MiB. */
  maxDataXferSize?: number;
  /**
   * Most DMA ranges a client may map; default 65535. The client's budget may allow fewer (its share
   * of the process's memory maps): VERSION advertises what it allows.
   */
  maxDmaMaps?: number;
  /** The process-wide pools the client's budget draws on (default: this process's, from its limits). */
  budgetPool?: BudgetPool;
  /** Advertise REGION_WRITE_MULTI; default true. */
  writeMultiple?: boolean;
  /** Timeout of the DMA_READ/DMA_WRITE requests we send; default 5000 ms. */
  requestTimeoutMs?: number;
  /**
   * How long a new connection may take to send VERSION before it is closed (it holds the device's one
   * client slot meanwhile); default 10000 ms.
   */
  handshakeTimeoutMs?: number;
  /**
   * Bytes of replies a client may leave unread before we stop reading its requests until it catches
   * up; default 4 MiB.
   */
  maxQueuedBytes?: number;
  /**
   * Refuse DMA_MAP fds that are not sealed against shrinking (F_SEAL_SHRINK; QEMU's
   * memory-backend-memfd seals by default). Default false: unsealed memory (memory-backend-file,
   * hugetlbfs) is served, and a truncation under it is caught by @emu/native's SIGBUS guard.
   */
  requireSealedMemory?: boolean;
  /** The socket file's mode and owner, and which peer uids are served. */
  socket?: SocketAccess;
  /**
   * Called after each message JavaScript handled, with how long handling took (metrics histograms).
   * The accesses the socket thread answers natively are not timed (they are counted in `trapped`).
   */
  onHandled?(command: string, seconds: number): void;
}

export interface ClientInfo {
  version: { major: number; minor: number };
  capabilities: Capabilities;
  connectedAt: Date;
}

export interface ServerStats {
  connections: number;
  /** Commands handled, by name. */
  commands: Record<string, number>;
  /** Error replies sent (and errors on NO_REPLY commands, which get none), by errno name. */
  errors: Record<string, number>;
  irqsTriggered: number;
  /** Interrupts that could not be delivered (the client's eventfd full or failing): dropped. */
  irqsDropped: number;
  /**
   * Faults in mapped client memory whose file shrank (or had a hole that could not be filled): each
   * faulting page reads as zeros, and the device uses that mapping no more.
   */
  memoryFaults: number;
  /** Connections refused for their peer's uid (SocketAccess.allowedUids). */
  refusedPeers: number;
  /**
   * REGION_READ / REGION_WRITE accesses the native socket thread answered itself, without the JS loop
   * (counted under `commands` too).
   */
  trapped: number;
  dmaReadBytes: number;
  dmaWriteBytes: number;
  /** What the client holds of each resource of its budget, its limit now, refusals. */
  budget: BudgetStats;
}

/** The stats of a server that has served nobody yet. */
export function emptyServerStats(): ServerStats {
  return {
    connections: 0,
    commands: {},
    errors: {},
    irqsTriggered: 0,
    irqsDropped: 0,
    memoryFaults: 0,
    refusedPeers: 0,
    trapped: 0,
    dmaReadBytes: 0,
    dmaWriteBytes: 0,
    budget: emptyBudgetStats(),
  };
}

export interface ServerEvents {
  listening: [];
  connect: [ClientInfo];
  disconnect: [Error | undefined];
  'dma-map': [DmaRegion];
  'dma-unmap': [DmaRegion];
  irqs: [IrqIndexName];
  reset: [];
  close: [];
}

/**
 * Files a device's earlier clients sent that emu does not take and that are still being closed, past
 * which its socket turns new clients away: a file whose close never returns (a FUSE mount its client
 * ran) holds emu's closer thread, and what queues behind it is what the process holds for that device.
 */
export const MAX_CLOSING_FDS = 64;

export class VfioUserServer extends EventEmitter<ServerEvents> {
  readonly path: string;
  readonly dma: DmaTable;
  readonly irqs: IrqTable;
  readonly log: Logger;
  /** What the client may make the process hold (docs/reliability.md, "The per-client budget"). */
  readonly budget: ClientBudget;
  private readonly counters: ServerStats = emptyServerStats();
  private readonly regions: ResolvedRegion[];
  private readonly maxDataXferSize: number;
  private readonly writeMultiple: boolean;
  private listener?: UnixListener;
  private conn?: Connection;
  /** The client's socket, read and written by the native socket thread (it answers trapped accesses). */
  private channel?: TrapChannel;
  /** The channel's answered accesses already counted in stats. */
  private trapsCounted = { reads: 0, writes: 0 };
  private clientInfo?: ClientInfo;
  private handshakeTimer?: NodeJS.Timeout;
  private faultTimer?: NodeJS.Timeout;
  /** guardStats().faults when the client's memory was last checked, and faults seen per mapping. */
  private faultsSeen = 0;
  private readonly regionFaults = new WeakMap<DmaRegion, number>();
  private warnedUnsealed = false;
  /** Whether a dropped interrupt was logged since the current client connected. */
  private warnedDrop = false;
  private warnedClosing = false;
  /** The device's name for the stall detector and the closer (the fds its clients send that emu does not take). */
  private readonly owner: number;
  private readonly onHandled?: ServerOptions['onHandled'];
  private observerFailed = false;
  /** DMA requests in flight to the client, and the DMAs waiting for one to finish. */
  private dmaInFlight = 0;
  private dmaWaiters: Array<() => void> = [];

  constructor(
    readonly device: DeviceSpec,
    private readonly options: ServerOptions,
  ) {
    super();
    if (typeof options.path !== 'string' || options.path.length === 0)
      throw new TypeError('server: path is required');
    this.path = options.path;
    this.log = options.logger ?? consoleLogger('warn', 'vfio-user');
    this.maxDataXferSize = options.maxDataXferSize ?? DEFAULT_MAX_DATA_XFER_SIZE;
    if (
      !Number.isInteger(this.maxDataXferSize) ||
      this.maxDataXferSize < MIN_DATA_XFER_SIZE ||
      this.maxDataXferSize > MAX_DATA_XFER_SIZE
    ) {
      throw new RangeError(
        `server: maxDataXferSize ${this.maxDataXferSize} must be an integer from ${MIN_DATA_XFER_SIZE} to ${MAX_DATA_XFER_SIZE}`,
      );
    }
    this.writeMultiple = options.writeMultiple ?? true;
    this.onHandled = options.onHandled;
    const resolved = resolveDevice(device);
    this.regions = resolved.regions;
    const maxDmaMaps = options.maxDmaMaps ?? DEFAULT_MAX_DMA_MAPS;
    this.budget = new ClientBudget({
      pool: options.budgetPool ?? processBudgetPool(),
      caps: {
        dmaMaps: maxDmaMaps,
        queuedBytes: options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES,
        dmaRequests: DMA_REQUESTS_IN_FLIGHT,
      },
      measure: {
        fds: () => this.irqs.heldFds() + (this.conn?.heldFds ?? 0),
        queuedBytes: () => this.backlog.queuedBytes,
        dmaRequests: () => this.dmaInFlight,
      },
      log: this.log,
      name: this.path,
    });
    this.dma = new DmaTable({
      maxRegions: maxDmaMaps,
      requireSealed: options.requireSealedMemory,
      budget: this.budget,
    });
    // The DMA gate follows Bus Master Enable: no DMA, from TypeScript or native code, while it is clear.
    device.config.onWrite(() => this.updateDmaGate());
    device.config.onReset(() => this.updateDmaGate());
    this.updateDmaGate();
    this.owner = label(`device ${options.name ?? basename(this.path).replace(/\.sock$/, '')}`);
    this.irqs = new IrqTable(
      resolved.irqs,
      () => {
        // Logged once per connection: a client that never reads its eventfds would flood the log.
        if (!this.warnedDrop) {
          this.warnedDrop = true;
          this.log.warn(
            { path: this.path },
            'interrupt dropped: the client does not read its eventfd (further drops are only counted)',
          );
        }
      },
      options.name ?? basename(this.path).replace(/\.sock$/, ''),
    );
  }

  /**
   * Starts listening: the socket file is created with SocketAccess.mode (0600 by default) and given
   * its uid and gid. Throws (EADDRINUSE, EACCES, ENOENT, EPERM...) with the path in the message.
   */
  listen(): this {
    if (this.listener) throw new Error(`server ${this.path}: already listening`);
    const access = this.options.socket ?? {};
    const mode = access.mode ?? 0o600;
    const giveAway = access.uid !== undefined || access.gid !== undefined;
    // Given away, the socket opens to its mode only once it has its owner: until then it is ours alone.
    const listener = UnixListener.listen(this.path, { mode: giveAway ? 0o600 : mode });
    if (giveAway) {
      try {
        chownSync(this.path, access.uid ?? -1, access.gid ?? -1);
        chmodSync(this.path, mode);
      } catch (err) {
        listener.close();
        const e = err as NodeJS.ErrnoException;
        throw Object.assign(
          new Error(
            `cannot give socket ${this.path} to uid ${access.uid ?? '(unchanged)'} gid ${access.gid ?? '(unchanged)'}: ${e.code === 'EPERM' ? 'only root may give a file away (chown)' : e.message}`,
          ),
          { code: e.code },
        );
      }
    }
    this.listener = listener;
    // Serving, the device shares the process's pools with the others.
    this.budget.join();
    this.listener.on('connection', (socket: UnixSocket) => {
      // Whatever goes wrong with one connection costs that connection, never the listener.
      try {
        this.accept(socket);
      } catch (err) {
        this.log.error({ path: this.path, err: (err as Error).message }, 'could not take a connection');
        socket.close();
      }
    });
    this.listener.on('error', (err: Error) =>
      this.log.error({ path: this.path, err: err.message }, 'listener error'),
    );
    this.emit('listening');
    return this;
  }

  /** Counters since the server was made; accesses the socket thread answered are in `commands` too. */
  get stats(): ServerStats {
    this.countTraps();
    // Interrupts are counted where they are sent, by whichever thread sends them.
    this.counters.irqsTriggered = this.irqs.triggered;
    this.counters.irqsDropped = this.irqs.dropped;
    this.counters.budget = this.budget.stats();
    return this.counters;
  }

  get listening(): boolean {
    return this.listener !== undefined;
  }

  /** The connected client, once it negotiated. */
  get client(): ClientInfo | undefined {
    return this.clientInfo;
  }

  /** Reply bytes the client has not read yet, and whether its requests are paused because of them. */
  get backlog(): { queuedBytes: number; throttled: boolean } {
    return this.conn?.backlog ?? { queuedBytes: 0, throttled: false };
  }

  /** Stops listening, drops the client (releasing its fds and mappings) and removes the socket file. */
  close(): void {
    this.listener?.close();
    this.listener = undefined;
    this.conn?.close();
    this.budget.leave();
    this.emit('close');
  }

  /** Disconnects the current client, if any; the server keeps listening. */
  disconnect(): void {
    this.conn?.close();
  }

  /**
   * Raises an interrupt through the client's eventfd for it. Returns false when the client has not
   * enabled that vector (or has masked it, in which case it fires at unmask).
   */
  triggerIrq(index: IrqIndexName | number, vector = 0): boolean {
    const i = typeof index === 'number' ? index : IRQ_INDEX_NAMES.indexOf(index);
    return this.irqs.trigger(i, vector);
  }

  /**
   * Reads guest memory: straight from the mapping when the client gave an fd, otherwise with DMA_READ
   * messages. Rejects with a RangeError when the range is not mapped for reading.
   */
  async dmaRead(address: bigint, length: number): Promise<Buffer> {
    const hit = this.dma.target(address, length, 'read');
    this.counters.dmaReadBytes += length;
    if (hit.region.memory) return this.dma.read(address, length);
    const out = Buffer.alloc(length);
    for (let done = 0; done < length; ) {
      const n = Math.min(length - done, this.xferLimit());
      const chunk = await this.dmaMessage(Command.DMA_READ, address + BigInt(done), n);
      chunk.copy(out, done);
      done += n;
    }
    return out;
  }

  /** Writes guest memory, directly or with DMA_WRITE messages; see dmaRead. */
  async dmaWrite(address: bigint, data: Uint8Array): Promise<void> {
    const hit = this.dma.target(address, data.length, 'write');
    this.counters.dmaWriteBytes += data.length;
    if (hit.region.memory) {
      this.dma.write(address, data);
      return;
    }
    for (let done = 0; done < data.length; ) {
      const n = Math.min(data.length - done, this.xferLimit());
      await this.dmaMessage(Command.DMA_WRITE, address + BigInt(done), n, data.subarray(done, done + n));
      done += n;
    }
  }

  private updateDmaGate(): void {
    this.dma.dmaEnabled = this.device.config.busMasterEnabled;
  }

  /** Logs pages of the client's memory that vanished under us since the last look (SIGBUS guard). */
  private checkFaults(): void {
    const total = guardStats().faults;
    if (total === this.faultsSeen) return;
    this.faultsSeen = total;
    for (const region of this.dma.regions) {
      const faults = region.memory?.faults ?? 0;
      const seen = this.regionFaults.get(region) ?? 0;
      if (faults === seen) continue;
      this.regionFaults.set(region, faults);
      this.counters.memoryFaults += faults - seen;
      this.log.error(
        {
          path: this.path,
          address: `0x${hex(region.address)}`,
          size: `0x${hex(region.size)}`,
          faults,
        },
        'client memory vanished under its DMA mapping (its file shrank, or a hole in it could not be filled, e.g. no free huge pages): the device no longer uses it',
      );
    }
  }

  private xferLimit(): number {
    return Math.min(
      this.maxDataXferSize,
      this.clientInfo?.capabilities.maxDataXferSize ?? this.maxDataXferSize,
    );
  }

  private async dmaMessage(
    command: number,
    address: bigint,
    count: number,
    data?: Uint8Array,
  ): Promise<Buffer> {
    // At most DMA_REQUESTS_IN_FLIGHT at once: a client that does not answer holds no more of our memory.
    while (this.dmaInFlight >= this.budget.limit('dmaRequests')) {
      if (!this.conn) throw new VfioUserError(Errno.ENOTCONN, commandName(command), 'no client');
      await new Promise<void>((resolve) => this.dmaWaiters.push(resolve));
    }
    const conn = this.conn;
    if (!conn || !this.clientInfo) throw new VfioUserError(Errno.ENOTCONN, commandName(command), 'no client');
    const head = DmaAccess.encode({ address, count: BigInt(count) });
    const parts = data ? [head, Buffer.from(data.buffer, data.byteOffset, data.byteLength)] : [head];
    this.dmaInFlight++;
    let reply: Message;
    try {
      reply = await conn.request(command, parts, { timeoutMs: this.options.requestTimeoutMs });
    } finally {
      this.dmaInFlight--;
      this.dmaWaiters.shift()?.();
    }
    if (command === Command.DMA_WRITE) return Buffer.alloc(0);
    if (reply.payload.length !== DmaAccess.size + count) {
      throw new VfioUserError(
        Errno.EPROTO,
        'DMA_READ',
        `reply has ${reply.payload.length} bytes for ${count} asked`,
      );
    }
    return reply.payload.subarray(DmaAccess.size);
  }

  private accept(socket: UnixSocket): void {
    const allowed = this.options.socket?.allowedUids;
    if (allowed) {
      let peer: { pid: number; uid: number } | undefined;
      try {
        peer = socket.peerCredentials();
      } catch {
        peer = undefined;
      }
      if (!peer || !allowed.includes(peer.uid)) {
        this.counters.refusedPeers++;
        this.log.warn(
          { path: this.path, uid: peer?.uid, pid: peer?.pid, allowed },
          'client refused: its uid is not allowed on this socket',
        );
        socket.close();
        return;
      }
    }
    // A client that hung up just before this one connected is gone by now, not in the way.
    if (this.conn) this.channel?.settle();
    if (this.conn) {
      // One client at a time, as the spec has it; a second one is turned away at once.
      this.log.warn({ path: this.path }, 'second client refused: a client is already connected');
      socket.close();
      return;
    }
    // Files earlier clients sent that emu does not take, still being closed (their server does not
    // answer the close: a FUSE mount the client ran): no new client until they are, on this device only.
    const closing = closerStats(this.owner).pending;
    if (closing > MAX_CLOSING_FDS) {
      if (!this.warnedClosing) {
        this.warnedClosing = true;
        this.log.warn(
          { path: this.path, closing },
          'clients refused: files earlier clients sent are still being closed (logged once)',
        );
      }
      socket.close();
      return;
    }
    // The biggest valid message is a REGION_WRITE of max_data_xfer_size (or a DMA_READ reply).
    const maxMessageSize = HEADER_SIZE + RegionAccess.size + this.maxDataXferSize;
    const channel = TrapChannel.adopt(socket, {
      label: this.path,
      owner: this.owner,
      maxQueuedBytes: this.options.maxQueuedBytes,
      maxMessageSize,
      maxMessageFds: SERVER_MAX_MSG_FDS,
    });
    const conn = new Connection(channel, {
      maxMessageSize,
      maxMessageFds: SERVER_MAX_MSG_FDS,
      maxQueuedBytes: this.options.maxQueuedBytes,
      logger: this.log,
      name: this.path,
      owner: this.owner,
      requestTimeoutMs: this.options.requestTimeoutMs,
    });
    this.conn = conn;
    this.channel = channel;
    this.trapsCounted = { reads: 0, writes: 0 };
    this.counters.connections++;
    this.warnedDrop = false;
    const ctx = this.context();
    conn.on('command', (msg) => this.dispatch(conn, ctx, msg));
    conn.on('close', (reason) => this.onDisconnect(conn, reason));
    const timeoutMs = this.options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
    this.handshakeTimer = setTimeout(() => {
      if (this.conn !== conn || this.clientInfo) return;
      this.log.warn(
        { path: this.path, timeoutMs },
        `client sent no VERSION within ${timeoutMs} ms: disconnected, so the next client can connect`,
      );
      conn.close();
    }, timeoutMs);
    this.faultsSeen = guardStats().faults;
    this.faultTimer = setInterval(() => this.checkFaults(), FAULT_CHECK_MS);
    this.faultTimer.unref();
    this.warnedUnsealed = false;
    this.log.info({ path: this.path }, 'client connected');
  }

  private onDisconnect(conn: Connection, reason: Error | undefined): void {
    if (this.conn !== conn) return;
    clearTimeout(this.handshakeTimer);
    clearInterval(this.faultTimer);
    this.checkFaults();
    this.countTraps();
    this.channel = undefined;
    // No DMA from here until a guest sets the device up again: the next client's memory may sit at the
    // IOVAs this one's rings and buffers were programmed at. The device stops its own DMA, and Bus
    // Master Enable is cleared, so nothing lands before the next guest enables bus mastering.
    try {
      this.device.disconnected?.();
    } catch (err) {
      this.log.error({ path: this.path, err: (err as Error).message }, 'device disconnect handler failed');
    }
    this.device.config.stopBusMaster();
    this.updateDmaGate();
    for (const r of this.dma.regions) {
      this.emit('dma-unmap', r);
      this.dma.remove(r);
    }
    this.irqs.clear();
    this.conn = undefined;
    this.budget.disconnected();
    // DMAs waiting for a request slot fail now, not when a slot frees.
    for (const wake of this.dmaWaiters.splice(0)) wake();
    const hadClient = this.clientInfo !== undefined;
    this.clientInfo = undefined;
    this.log.info({ path: this.path, reason: reason?.message }, 'client disconnected');
    if (hadClient) this.emit('disconnect', reason);
  }

  private dispatch(conn: Connection, ctx: ServerContext, msg: Message): void {
    const { header } = msg;
    const name = commandName(header.command);
    const started = this.onHandled ? performance.now() : 0;
    // What the event loop is doing, should it stall in it (the stall detector, @emu/native's Watchdog).
    activity(`vfio-user ${name} on ${this.path}`);
    try {
      this.counters.commands[name] = (this.counters.commands[name] ?? 0) + 1;
      if (msg.excessFds) {
        throw new ProtocolError(
          Errno.EINVAL,
          `${name}: ${msg.excessFds + msg.fds.length} fds, more than max_msg_fds ${SERVER_MAX_MSG_FDS}`,
        );
      }
      if (header.command === Command.VERSION) {
        this.negotiate(conn, msg);
        return;
      }
      if (!this.clientInfo) throw new ProtocolError(Errno.EINVAL, `${name} before VERSION`);
      const spec = COMMAND_TABLE[header.command];
      if (!spec) throw new ProtocolError(Errno.ENOSYS, `unknown command ${header.command}`);
      if (msg.payload.length < spec.minPayload) {
        throw new ProtocolError(
          Errno.EINVAL,
          `${name}: payload ${msg.payload.length} bytes, need ${spec.minPayload}`,
        );
      }
      if (msg.fds.length > spec.maxFds) {
        throw new ProtocolError(
          Errno.EINVAL,
          `${name}: ${msg.fds.length} fds, at most ${spec.maxFds} allowed`,
        );
      }
      const reply = spec.handle(ctx, msg);
      const fds = reply?.fds?.length ?? 0;
      // No reply carries more fds than the client said it takes (a handler that would is a bug).
      if (fds > ctx.clientMaxFds)
        throw new Error(`${name}: reply of ${fds} fds for a client that takes ${ctx.clientMaxFds}`);
      conn.reply(msg, reply?.payload, reply?.fds);
    } catch (err) {
      const errno = err instanceof ProtocolError ? err.errno : Errno.EINVAL;
      const errName = errnoName(errno);
      this.counters.errors[errName] = (this.counters.errors[errName] ?? 0) + 1;
      const level = err instanceof ProtocolError ? 'warn' : 'error';
      this.log[level](
        { path: this.path, msgId: header.msgId, command: name, errno: errName },
        (err as Error).message,
      );
      conn.replyError(header, errno);
      // A refused VERSION ends the connection, as the spec and libvfio-user have it: the slot is free.
      if (header.command === Command.VERSION && !this.clientInfo) conn.close();
    } finally {
      // The fds a handler did not take are the Connection's to close.
      if (this.onHandled) this.observe(name, (performance.now() - started) / 1000);
      idle();
    }
  }

  /** An observer that throws must not cost the client its reply or the process its life. */
  private observe(command: string, seconds: number): void {
    try {
      this.onHandled!(command, seconds);
    } catch (err) {
      if (!this.observerFailed)
        this.log.error({ path: this.path }, `onHandled failed: ${(err as Error).message}`);
      this.observerFailed = true;
    }
  }

  private negotiate(conn: Connection, msg: Message): void {
    if (this.clientInfo) throw new ProtocolError(Errno.EINVAL, 'VERSION sent twice');
    if (msg.fds.length > 0) throw new ProtocolError(Errno.EINVAL, 'VERSION must not carry fds');
    const v = Version.decode(msg.payload);
    if (v.major !== PROTOCOL_MAJOR) {
      throw new ProtocolError(
        Errno.ENOTSUP,
        `VERSION ${v.major}.${v.minor}: only major ${PROTOCOL_MAJOR} exists`,
      );
    }
    const { caps, unknown } = parseCapabilities(msg.payload.subarray(Version.size));
    if (unknown.length > 0)
      this.log.info({ path: this.path, unknown }, 'VERSION: ignoring unknown capabilities');
    if (caps.twinSocket)
      this.log.info({ path: this.path }, 'VERSION: twin-socket mode offered, not enabled (one socket)');
    const minor = Math.min(v.minor, SERVER_MINOR);
    // The client's own max_dma_maps lowers its budget; what we advertise is what the budget allows of
    // the kind that costs most (a map with an fd: a memory map), and never above the spec's default,
    // the most QEMU takes.
    this.budget.connected({ dmaMaps: caps.maxDmaMaps });
    const ours = encodeCapabilities({
      maxMsgFds: SERVER_MAX_MSG_FDS,
      maxDataXferSize: this.maxDataXferSize,
      maxDmaMaps: Math.min(DEFAULT_MAX_DMA_MAPS, this.budget.limit('memoryMaps')),
      pgsizes: DEFAULT_PGSIZES,
      writeMultiple: this.writeMultiple && caps.writeMultiple,
    });
    conn.reply(msg, [Version.encode({ major: PROTOCOL_MAJOR, minor }), ours]);
    clearTimeout(this.handshakeTimer);
    this.clientInfo = {
      version: { major: PROTOCOL_MAJOR, minor },
      capabilities: caps,
      connectedAt: new Date(),
    };
    this.log.info({ path: this.path, version: `0.${minor}`, caps }, 'client negotiated');
    this.trapAreas();
    this.emit('connect', this.clientInfo);
  }

  /**
   * From VERSION on, the socket thread answers REGION_READ / REGION_WRITE inside the regions' mmap-able
   * areas itself, from the same memory the client may map: see docs/architecture.md, "Register traps".
   */
  private trapAreas(): void {
    const areas = this.regions.flatMap((r): TrapArea[] => {
      const access = { region: r.index, readable: r.readable, writable: r.writable };
      const hot = (r.spec?.hot ?? []).map(
        (a): TrapArea =>
          'registers' in a
            ? { ...access, offset: a.offset, size: a.size, registers: a.registers }
            : { ...access, offset: a.offset, size: a.size, fd: a.fd, fileOffset: a.fileOffset ?? 0 },
      );
      const mmap = r.spec?.mmap;
      if (!mmap) return hot;
      const { fd, fileOffset = 0, areas: list = [{ offset: 0, size: r.size }] } = mmap;
      return [
        ...hot,
        ...list.map((a) => ({
          ...access,
          offset: a.offset,
          size: a.size,
          fd,
          fileOffset: fileOffset + a.offset,
        })),
      ];
    });
    if (areas.length === 0 || !this.channel) return;
    try {
      this.channel.setAreas(areas);
    } catch (err) {
      // Served by the region handlers instead, as before VERSION: slower, nothing lost.
      this.log.warn({ path: this.path, err: (err as Error).message }, 'register traps stay with JavaScript');
    }
  }

  /** Folds what the socket thread answered since the last look into the command counts. */
  private countTraps(): void {
    const channel = this.channel;
    if (!channel) return;
    const { servedReads, servedWrites } = channel.stats();
    const reads = servedReads - this.trapsCounted.reads;
    const writes = servedWrites - this.trapsCounted.writes;
    if (reads === 0 && writes === 0) return;
    this.trapsCounted = { reads: servedReads, writes: servedWrites };
    const c = this.counters.commands;
    if (reads > 0) c.REGION_READ = (c.REGION_READ ?? 0) + reads;
    if (writes > 0) c.REGION_WRITE = (c.REGION_WRITE ?? 0) + writes;
    this.counters.trapped += reads + writes;
  }

  private context(): ServerContext {
    const server = this;
    return {
      regions: this.regions,
      dma: this.dma,
      irqs: this.irqs,
      budget: this.budget,
      maxDataXferSize: this.maxDataXferSize,
      get clientMaxFds() {
        return server.clientInfo?.capabilities.maxMsgFds ?? 0;
      },
      get writeMultiple() {
        return server.writeMultiple && (server.clientInfo?.capabilities.writeMultiple ?? false);
      },
      resettable: true,
      regionRead: (region, offset, length) => {
        if (region.index === 7) return this.device.config.read(offset, length);
        const data = region.spec!.read!(offset, length);
        if (data.byteLength !== length) {
          throw new Error(
            `region ${region.index} read handler returned ${data.byteLength} bytes for ${length}`,
          );
        }
        return data;
      },
      regionWrite: (region, offset, data) => {
        if (region.index === 7) this.device.config.write(offset, data);
        else region.spec!.write!(offset, data);
      },
      reset: () => {
        this.device.config.reset();
        this.device.reset?.();
        this.emit('reset');
      },
      dmaMapped: (region) => {
        if (region.memory && !region.sealed && !this.warnedUnsealed) {
          this.warnedUnsealed = true;
          this.log.info(
            { path: this.path, address: `0x${hex(region.address)}` },
            'client memory is not sealed against shrinking (F_SEAL_SHRINK): a truncation under it is caught and logged',
          );
        }
        this.log.debug(
          {
            path: this.path,
            address: `0x${hex(region.address)}`,
            size: `0x${hex(region.size)}`,
            fd: !!region.memory,
          },
          'DMA map',
        );
        this.emit('dma-map', region);
      },
      dmaUnmapping: (region) => this.emit('dma-unmap', region),
      irqsChanged: (index) => this.emit('irqs', index),
    };
  }
}
