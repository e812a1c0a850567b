// @emu/network: what emu's NICs plug into. See README.md.
export type { NetworkOptions } from './base-network.js';
export { NetworkError, type NetworkErrorCode } from './errors.js';
export {
  DEFAULT_MTU,
  ETH_HEADER_LEN,
  formatMac,
  MAX_MTU,
  MIN_MTU,
  maxFrameLength,
  parseMac,
  VLAN_TAG_LEN,
} from './ethernet.js';
export { Loopback } from './loopback.js';
export {
  type CapturedAttachment,
  DEFAULT_SNAPLEN,
  LINKTYPE_ETHERNET,
  type PcapFile,
  type PcapRecord,
  PcapWriter,
  type PcapWriterOptions,
  readPcap,
  withCapture,
} from './pcap.js';
export { PointToPoint } from './point-to-point.js';
export {
  type Attachment,
  type AttachOptions,
  DROP_REASONS,
  type DropReason,
  type NativePort,
  type Network,
  type NetworkStats,
  type Port,
  type PortStats,
  type PortStatsRow,
  snapshotPortStats,
  totalDrops,
} from './port.js';
export {
  type CaptureStatsRow,
  DEFAULT_NETWORK,
  formatNetSpec,
  type NetSpec,
  NetworkRegistry,
  type NetworkRegistryOptions,
  type NicAttachment,
  type NicAttachOptions,
  parseNetSpec,
  type RegistryStats,
  type TapStatsRow,
} from './registry.js';
export {
  DEFAULT_AGING_MS,
  DEFAULT_MAX_MACS,
  isValidSwitchName,
  L2Switch,
  type L2SwitchOptions,
  type MacTableEntry,
  type SwitchCounters,
  type SwitchStats,
} from './switch.js';
export { type TapBackend, TapPort, type TapPortOptions, type TapStats } from './tap-port.js';
