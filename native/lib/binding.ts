// The only module that loads the .node file, and the TypeScript shape of the raw binding.
// Everything here is internal: lib/*.ts wrap it with validation and SystemErrors.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** The package root: lib/ (run by tsx) and dist/ (built by tsup) are both one level below it. */
export const packageRoot: string = fileURLToPath(new URL('..', import.meta.url));

const requireNative = createRequire(import.meta.url);
const nodeGypBuild = requireNative('node-gyp-build') as { resolve(dir: string): string };

function locate(): string {
  try {
    return nodeGypBuild.resolve(packageRoot);
  } catch (error) {
    throw new Error(
      `@emu/native: no native binding for ${process.platform}-${process.arch} in ${packageRoot} ` +
        '(run `pnpm --filter @emu/native native:prebuild`)',
      { cause: error },
    );
  }
}

/** The .node file in use: EMU_NATIVE_BINDING when set (a sanitizer build, scripts/test-sanitizers.sh),
 * else build/Release when a local build exists (node-gyp-build prefers it), else the committed prebuild. */
export const bindingPath: string = process.env.EMU_NATIVE_BINDING || locate();

/** Native errors carry the raw errno (positive) and the syscall; lib/errors.ts builds the rest. */
/** Where an access lands: in one direct range, nowhere, in an fd-less range, or without the access. */
export type GuestLookup = 'ok' | 'miss' | 'indirect' | 'denied';

/**
 * Why a TX walk ended:
 * - `caught-up`: head reached tail;
 * - `incomplete`: the packet at head has no EOP before the tail yet (head waits at its first
 *   descriptor, as hardware waits for the rest);
 * - `indirect`: a descriptor or buffer is reachable only by DMA messages (head at its packet): walk
 *   again through a StagedMemory holding what the result's `need` names;
 * - `ring`: the ring is not in guest memory the device may read and write: nothing was done;
 * - `bad-index`: head or tail is beyond the ring: nothing was done;
 * - `budget`: the pass produced `maxFrames` frames or `maxBytes` bytes, so it started no more packets
 *   (head at the next one): call again later, after other work has had its turn.
 */
export type IavfTxStop = 'caught-up' | 'incomplete' | 'indirect' | 'ring' | 'bad-index' | 'budget';

export interface IavfTxCounts {
  /** Buffers outside guest memory (or not readable); their packets were dropped. */
  badAddress: number;
  /** Buffers of 0 bytes; their packets were dropped. */
  badLength: number;
  /** Packets with more buffers than allowed (16; 64 with TSO) and no EOP: dropped there. */
  noEop: number;
  /** TSO requests that cannot be segmented (not TCP, headers that do not fit, MSS below 64): dropped. */
  badTso: number;
  /** Packets shorter than 14 bytes, or longer than 16 KiB without TSO (256 KiB with): dropped. */
  dropped: number;
  /** Descriptors with RS written back done (DTYPE 0xF). */
  completed: number;
}

/**
 * What became of a frame offered to an RX ring:
 * - `ok`: written (head moved past its descriptors);
 * - `no-buffers`: fewer free descriptors between head and tail than it needs;
 * - `too-big`: longer than maxFrame, or than 5 buffers;
 * - `bad-index`: tail (or head) beyond the ring;
 * - `bad-buffer`: a buffer outside guest memory: its descriptors went back to the driver written back
 *   with DD, and EOF + RXE on the last, so the driver drops the frame (head moved past them);
 * - `ring`: the ring is not in guest memory the device may read and write; `indirect`: a descriptor or
 *   buffer reachable only by DMA messages (walk again through a StagedMemory holding what `need` names).
 *   Nothing was done for these two.
 */
export type IavfRxStatus = 'ok' | 'no-buffers' | 'too-big' | 'bad-index' | 'bad-buffer' | 'ring' | 'indirect';

/** A descriptor ring as the ring calls take it: its IOVA and its length in descriptors. */
export interface NativeRing {
  ring: bigint;
  ringLen: number;
}

/** A StagedMemory of the raw binding (src/memory/staged_memory_js.h). */
export interface NativeStagedMemory {
  add(iova: bigint, bytes: Uint8Array | null, length: number): boolean;
  readonly bytes: number;
}

/** What a ring walk through a StagedMemory leaves its caller (src/memory/staged_space.h). */
export interface StagedReport {
  /** The range the walk stopped for, when it stopped `indirect`: fetch it, add it, walk again. */
  need?: { iova: bigint; length: number };
  /** The walk's stores into guest memory, oldest first: write them in this order. */
  writes: Array<{ iova: bigint; bytes: Buffer }>;
}

/** What a packet's descriptors asked for: the TX walk's report per packet (with `offload: false`). */
export interface IavfTxPacketMeta {
  /** CMD of the EOP descriptor (EOP, RS, ICRC, IIPT, L4T, …). */
  cmd: number;
  /** MACLEN, IPLEN, L4LEN, in bytes. */
  macLen: number;
  ipLen: number;
  l4Len: number;
  /** From the packet's context descriptor, if any. */
  tso: boolean;
  mss: number;
  tsoLen: number;
  /** The EOP descriptor's L2TAG1: the VLAN tag IL2TAG1 (in `cmd`) asks to insert. */
  l2tag1: number;
}

export interface NativeError extends Error {
  errno: number;
  syscall: string;
}

export interface NativePoller {
  /** Watch for pollReadable | pollWritable; replaces the previous set. */
  start(events: number): void;
  stop(): void;
  /** Stops and releases the libuv handle (the fd stays open). */
  close(): void;
}

export interface RecvResult {
  data: Buffer;
  /** fds received with this chunk: they came with the write holding its last byte. */
  fds: number[];
  /** MSG_CTRUNC: some fds were lost. */
  truncated: boolean;
}

export interface MapResult {
  /** The mapping (src/memory/mapping.h): pass it back to the mapping* calls and GuestMemoryTable.addMapping. */
  handle: object;
  address: bigint;
}

export interface FileInfo {
  /** S_ISREG: memfds, tmpfs, hugetlbfs and ordinary files. */
  regular: boolean;
  size: bigint;
  /** F_GET_SEALS (0 for files that cannot be sealed). */
  seals: number;
}

/** A GuestMemoryTable of the raw binding (src/memory/guest_memory.h, src/iavf/iavf_rings.cc). */
export interface NativeGuestMemoryTable {
  add(iova: bigint, memory: ArrayBuffer | ArrayBufferView, readable: boolean, writable: boolean): void;
  addMapping(iova: bigint, mapping: object, readable: boolean, writable: boolean): void;
  addIndirect(iova: bigint, size: bigint, readable: boolean, writable: boolean): void;
  remove(iova: bigint): boolean;
  clear(): void;
  list(): Array<{ iova: bigint; size: bigint; direct: boolean; readable: boolean; writable: boolean }>;
  lookup(iova: bigint, length: bigint, write: boolean): GuestLookup;
  /** Start of the range holding [iova, iova + length), or null. */
  find(iova: bigint, length: bigint): bigint | null;
  overlapping(iova: bigint, size: bigint): { iova: bigint; size: bigint } | null;
  within(iova: bigint, size: bigint): { starts: bigint[]; straddler: { iova: bigint; size: bigint } | null };
  setEnabled(enabled: boolean): void;
  readonly enabled: boolean;
  readonly count: number;
  txRing(
    options: NativeRing & {
      head: number;
      tail: number;
      offload: boolean;
      maxFrames: number;
      maxBytes: number;
      stage?: NativeStagedMemory;
    },
  ): {
    head: number;
    stop: IavfTxStop;
    counts: IavfTxCounts;
    frames: Buffer[];
    meta?: IavfTxPacketMeta[];
  } & Partial<StagedReport>;
  rxRing(
    options: NativeRing & {
      head: number;
      tail: number;
      bufferSize: number;
      maxFrame: number;
      descSize: 16 | 32;
      frame: Uint8Array;
      hash?: number;
      l2tag1?: number;
      stage?: NativeStagedMemory;
    },
  ): { status: IavfRxStatus; head: number } & Partial<StagedReport>;
  guestPostTx(
    options: NativeRing & { next: number; count: number; buffer: bigint; length: number; cmd: number },
  ): number;
  guestPostRx(
    options: NativeRing & {
      next: number;
      count: number;
      buffers: bigint;
      bufferSize: number;
      descSize: 16 | 32;
    },
  ): number;
  guestReapTx(options: NativeRing & { next: number; max: number }): number;
  guestReapRx(options: NativeRing & { next: number; max: number; descSize: 16 | 32 }): number;
}

export interface DoorbellWatcherOptions {
  minSleepUs?: number;
  maxSleepUs?: number;
  busyPolls?: number;
  warmSleepUs?: number;
  warmMs?: number;
}

export interface NativeDoorbellWatcher {
  start(): void;
  stop(): void;
  close(): void;
  stats(): { polls: number; notifications: number; running: boolean };
}

/** An area TrapChannel answers accesses to, from memory or a register block (src/transport/trap_channel.cc). */
export interface NativeTrapArea {
  region: number;
  offset: bigint;
  size: number;
  readable: boolean;
  writable: boolean;
  fd?: number;
  fileOffset?: bigint;
  /** A native object that is a RegisterBlock (src/transport/register_block.h): an IavfVectors. */
  registers?: object;
}

/** src/irq/irq_lines.h's IrqLines::Result, by name. */
export interface NativeIrqResults {
  fired: number;
  pending: number;
  none: number;
  dropped: number;
}

/** src/irq/irq_writer.h's event bits, by name. */
export interface NativeIrqWriterEvents {
  dropped: number;
}

export interface NativeIrqWriter {
  start(): void;
  stop(): void;
  idle(): boolean;
  busyNs(): number;
  close(): void;
}

export interface NativeIrqLines {
  assign(vector: number, fd: number): void;
  trigger(vector: number): number;
  mask(vector: number, on: boolean): number;
  enabled(vector: number): boolean;
  clear(): void;
  counts(): { triggered: number; dropped: number };
  close(): void;
}

export interface NativeIavfVectors {
  setLines(lines: NativeIrqLines | null): void;
  read(vector: number): number;
  write(vector: number, value: number): void;
  readItr(vector: number, index: number): number;
  writeItr(vector: number, index: number, interval: number): void;
  raise(vector: number, itrIndex: number): void;
  reset(): void;
  advance(ns: number): void;
  counts(): { fired: number[]; throttled: number[] };
  close(): void;
}

/** The BAR0 offsets src/iavf/iavf_vectors.h knows. */
export interface NativeIavfVectorsLayout {
  itrn1Offset: number;
  itrn1Stride: number;
  dynCtln1Offset: number;
  dynCtln1Count: number;
  maxVectors: number;
}

/** What a TrapChannel framed (src/transport/message_framer.h), by kind (kFrameKindNames). */
export type FrameKind = 'message' | 'oversized' | 'undersized';

/** One framed message, or the header of one the framer refused; its fds are the listener's from here. */
export interface ChannelFrame {
  /**
   * - `message`: `bytes` is the whole message;
   * - `oversized`: its header said more than maxMessageSize: `bytes` is the header, the rest was skipped;
   * - `undersized`: its header said less than the header's 16 bytes: `bytes` is those 16 bytes.
   */
  kind: FrameKind;
  bytes: Buffer;
  fds: number[];
  /** fds that came for it beyond maxMessageFds, released on arrival: refuse the message. */
  excess: number;
}

export interface NativeTrapChannel {
  /** 0, or -errno once the socket failed. */
  write(data: Uint8Array, fds: readonly number[]): number;
  take(): {
    frames: ChannelFrame[];
    seq: number;
    end: boolean;
    errno: number;
    truncated: boolean;
    drained: boolean;
    /** Whether reading goes on (not paused, within its bounds, not at the end). */
    reading: boolean;
  };
  ack(seq: number): void;
  pause(): void;
  resume(): void;
  setAreas(areas: NativeTrapArea[]): void;
  queuedBytes(): number;
  heldFds(): number;
  stats(): { servedReads: number; servedWrites: number };
  /** Reads what the socket holds now on the calling thread; whether reading goes on. */
  settle(): boolean;
  close(): void;
}

export interface NativeWorkerStats {
  running: boolean;
  nics: number;
  polls: number;
  frames: number;
}

export interface NativeDataPlane {
  stats(): NativeWorkerStats & { workers: NativeWorkerStats[] };
  close(): void;
}

export interface NativePortCounters {
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  drops: { runt: number; oversize: number; noDestination: number; overrun: number; error: number };
}

export interface NativeSwitchCounters {
  /** MACs learned (new entries). */
  learned: number;
  /** Entries that moved to another port. */
  moved: number;
  /** Entries removed by aging. */
  aged: number;
  /** Source MACs not learned because the table was full. */
  tableFull: number;
  /** Frames flooded: broadcast, multicast and unknown unicast. */
  flooded: number;
  /** Of those, unicast to an unknown (or aged-out) MAC. */
  unknownUnicast: number;
  /** Capture copies of native ports' frames dropped for want of room on their way to JavaScript. */
  captureDrops: number;
}

export interface NativeSwitch {
  addPort(mtu: number): number;
  removePort(id: number): void;
  forward(from: number, frame: Uint8Array, now: number): number[] | -1;
  lookup(mac: number, now: number): number;
  macTable(now: number): Array<[mac: number, port: number, lastSeen: number]>;
  counters(): NativeSwitchCounters;
  portCounters(id: number): NativePortCounters;
  flush(): void;
  setMirror(id: number, on: boolean): void;
  close(): void;
}

export interface NativeIavfNic {
  configure(config: object): void;
  setTable(table: NativeGuestMemoryTable | null): void;
  attach(sw: NativeSwitch, mtu: number): number;
  detach(): void;
  start(): void;
  stop(): void;
  kick(): void;
  resetHeads(): void;
  receive(frame: Uint8Array): boolean;
  route(frame: Uint8Array): { queue: number; hash?: number; frame?: Uint8Array; l2tag1?: number } | null;
  egress(frame: Uint8Array, queue: number): Uint8Array | null;
  setVectors(vectors: NativeIavfVectors | null): void;
  info(): { native?: boolean; started?: boolean; port?: number; bursts?: number; largestTurn?: number };
  close(): void;
}

/** src/dataplane/core.h's layout of an IavfNic's state (heads, then counters). */
export interface NativeDataPlaneLayout {
  queues: number;
  queueStats: number;
  txStats: number;
  rxStats: number;
  rxKinds: number;
  txKinds: number;
  filtered: number;
  spoofed: number;
  counterCount: number;
  headsBytes: number;
  stateBytes: number;
  eventSlow: number;
  eventBadTail: number;
  eventFault: number;
}

export interface NativeBinding {
  /** Test-only (src/base/fault_injection.h). */
  injectFault(point: string): void;
  /** Test-only (src/base/fault_injection.cc). */
  lingeringSocket(seconds: number): { fd: number; peer: number; listener: number };
  readonly Watchdog: new (options: {
    thresholdMs: number;
    onStalls(
      reports: Array<{ thread: string; doing: string; subject: string; ms: number; ended: boolean }>,
    ): void;
  }) => { close(): void };
  watchdogLabel(text: string): number;
  fileKind(fd: number): { kind: number; filesystem: string };
  readonly fileKinds: { eventfd: number; memory: number; diskFile: number; other: number; closed: number };
  releaseFd(fd: number, owner: number): boolean;
  closerStats(owner?: number): { pending: number; closed: number };
  watchdogStats(): Record<string, number>;
  readonly watchdogActivity: Int32Array;
  readonly pageSize: number;
  readonly sourceHash: string;
  readonly maxFds: number;
  readonly recvBufferSize: number;
  readonly pollReadable: number;
  readonly pollWritable: number;
  readonly Poller: new (fd: number, callback: (errno: number, events: number) => void) => NativePoller;
  close(fd: number): void;
  dupCloexec(fd: number): number;
  /** Sets O_NONBLOCK; true if it was clear. */
  setNonblocking(fd: number, on?: boolean): boolean;
  unixListen(path: string, backlog: number, mode: number): number;
  /** New fd, or -errno. */
  unixAccept(fd: number): number;
  unixConnect(path: string): number;
  unixSocketpair(): [number, number];
  /** Bytes sent, or -errno. */
  sendmsg(fd: number, data: Uint8Array, fds: readonly number[]): number;
  /** 0 at end of stream, -errno, or the chunk read. */
  recvmsg(fd: number): number | RecvResult;
  /** Pending SO_ERROR, 0 if none. */
  socketError(fd: number): number;
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };
  mmap(fd: number, offset: bigint, length: number, writable: boolean): MapResult;
  mappingView(handle: object, offset: number, length: number): ArrayBuffer;
  mappingRead(handle: object, offset: number, length: number): Buffer;
  mappingWrite(handle: object, offset: number, length: number, data: Uint8Array): void;
  mappingFaults(handle: object): number;
  munmap(handle: object): void;
  guardStats(): { faults: number; lastAddress: bigint; installed: boolean };
  eventfd(initval: number, semaphore: boolean): number;
  eventfdRead(fd: number): bigint | null;
  eventfdWrite(fd: number, value: bigint): void;
  memfdCreate(name: string, size: bigint, seal: boolean): number;
  sdNotify(path: string, state: string): void;
  fileInfo(fd: number): FileInfo;
  readonly sealShrink: number;
  readonly sealGrow: number;
  readonly sealSeal: number;
  readonly sealWrite: number;
  /** '/dev/net/tun'. */
  readonly tunPath: string;
  /** open(/dev/net/tun) + TUNSETIFF(IFF_TAP | IFF_NO_PI): the fd and the name the kernel gave. */
  tapOpen(name: string): { fd: number; name: string };
  /** One frame into buf: its length, or -errno (-EAGAIN when none is pending). */
  readFrame(fd: number, buf: Uint8Array): number;
  /** One frame: bytes written, or -errno. */
  writeFrame(fd: number, buf: Uint8Array): number;
  readonly GuestMemoryTable: new () => NativeGuestMemoryTable;
  readonly StagedMemory: new () => NativeStagedMemory;
  readonly TrapChannel: new (
    fd: number,
    callback: () => void,
    options: {
      maxQueuedBytes?: number;
      maxMessageSize: number;
      maxMessageFds: number;
      label?: string;
      owner?: number;
    },
  ) => NativeTrapChannel;
  /** The vfio-user wire facts src/transport/vfio_user_wire.h holds (checked against @emu/vfio-user's constants). */
  readonly vfioUserWire: {
    headerSize: number;
    maxTrapMessage: number;
    regionRead: number;
    regionWrite: number;
    typeMask: number;
    typeCommand: number;
    typeReply: number;
    noReply: number;
    regionAccessSize: number;
  };
  readonly DoorbellWatcher: new (
    fd: number,
    fileOffset: number,
    words: number,
    callback: (mask: number) => void,
    options: DoorbellWatcherOptions,
  ) => NativeDoorbellWatcher;
  readonly DataPlane: new (options: object) => NativeDataPlane;
  readonly NativeSwitch: new (
    plane: NativeDataPlane,
    options: {
      agingMs: number;
      maxMacs: number;
      now: number;
      onEscape: (ports: number[], frames: Buffer[], copies: boolean[]) => void;
    },
  ) => NativeSwitch;
  readonly IavfNic: new (
    plane: NativeDataPlane,
    tailFd: number,
    state: ArrayBuffer,
    onEvents: (flags: number) => void,
    label?: string,
  ) => NativeIavfNic;
  readonly dataPlaneLayout: NativeDataPlaneLayout;
  readonly IrqWriter: new (name: string, onEvents?: (flags: number) => void) => NativeIrqWriter;
  readonly irqWriterEvents: NativeIrqWriterEvents;
  readonly IrqLines: new (count: number, writer: NativeIrqWriter) => NativeIrqLines;
  readonly irqResults: NativeIrqResults;
  readonly IavfVectors: new (count: number, tailFd: number, manualClock: boolean) => NativeIavfVectors;
  readonly iavfVectorsLayout: NativeIavfVectorsLayout;
  iavfGuestForward(sides: object[], warmupMs: number, runMs: number): { frames: number; seconds: number };
  crc32c(data: Uint8Array, previous: number): number;
  iavfRxOffloadBits(frame: Uint8Array): bigint;
  /** The fields as the TX walk reports them per packet (IavfTxPacketMeta). */
  iavfTxFrames(packet: Uint8Array, desc: IavfTxPacketMeta): { frames: Buffer[]; badTso: boolean };
}

export const binding = requireNative(bindingPath) as NativeBinding;
