// @emu/native: the syscalls emu needs that Node does not offer, behind a validated, typed API.
import { binding } from './binding.js';

/** sysconf(_SC_PAGESIZE). */
export const PAGE_SIZE: number = binding.pageSize;
/** Hash of the native sources the loaded .node was built from (see scripts/source-hash.mjs). */
export const sourceHash: string = binding.sourceHash;

export { closerStats, type FileKind, fileKind, releaseFd } from './client-files.js';
export {
  DataPlane,
  type DataPlaneOptions,
  type DataPlaneStats,
  IavfNic,
  type IavfNicConfig,
  type IavfNicEvents,
  type IavfNicOptions,
  type IavfNicQueue,
  type IavfNicRxQueue,
  NIC_STATE,
  SwitchCore,
  type SwitchCoreCounters,
  type SwitchCoreOptions,
  type SwitchPortCounters,
} from './dataplane.js';
export { DoorbellWatcher, type DoorbellWatcherOptions } from './doorbell-watcher.js';
export { isSystemError, type SystemError } from './errors.js';
export { checkEventFd, EventFd, type EventFdOptions } from './eventfd.js';
export { closeFd, setNonblocking } from './fd.js';
export { type GuardStats, guardStats } from './guard.js';
export {
  type GuestLookup,
  GuestMemoryTable,
  type GuestRange,
  type GuestRangeAccess,
  type IavfGuestForwardSide,
  type IavfRing,
  type IavfRxDescSize,
  type IavfRxOptions,
  type IavfRxQueue,
  type IavfRxResult,
  type IavfRxStatus,
  type IavfTxCounts,
  type IavfTxOptions,
  type IavfTxPacketMeta,
  type IavfTxResult,
  type IavfTxStop,
  iavfGuestForward,
  iavfGuestPostRx,
  iavfGuestPostTx,
  iavfGuestReapRx,
  iavfGuestReapTx,
  iavfRxRing,
  iavfTxRing,
  StagedMemory,
  type StagedReport,
} from './iavf-rings.js';
export { IAVF_VECTORS_LAYOUT, IavfVectors, type IavfVectorsOptions, ITR_NONE } from './iavf-vectors.js';
export { IrqLines, type IrqResult, IrqWriter, type IrqWriterOptions } from './irq-lines.js';
export { type FileInfo, fileInfo, type MemfdOptions, memfdCreate, Seal } from './memfd.js';
export { MAX_MAPPING_LENGTH, MappedMemory, type MmapProtection } from './mmap.js';
export { crc32c, type IavfTxPacketFields, iavfRxOffloadBits, iavfTxFrames } from './offloads.js';
export { notifySystemd } from './sd-notify.js';
export { TapDevice, type TapErrorListener, type TapFrameListener } from './tap.js';
export {
  type ChannelFrame,
  type FrameKind,
  type MessageSocket,
  type NativeRegisters,
  type TrapArea,
  TrapChannel,
  type TrapChannelEvents,
  type TrapChannelOptions,
  type TrapChannelStats,
  vfioUserWire,
} from './trap-channel.js';
export {
  type PeerCredentials,
  UnixListener,
  type UnixListenerEvents,
  type UnixListenOptions,
  UnixSocket,
  type UnixSocketEvents,
} from './unix-socket.js';
export { activity, idle, label, type StallReport, Watchdog, type WatchdogOptions } from './watchdog.js';
