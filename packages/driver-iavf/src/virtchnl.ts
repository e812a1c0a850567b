/**
 * virtchnl message layouts (include/linux/avf/virtchnl.h, Linux 6.12), one codec per message, and the
 * length rule of virtchnl_vc_validate_vf_msg: a message is valid only at exactly its expected length.
 */
import { struct } from '@emu/vfio-user';
import { VirtchnlOp } from './constants.js';

export const VersionInfo = struct('virtchnl_version_info', { major: 'u32', minor: 'u32' });

export const VfResourceHeader = struct('virtchnl_vf_resource', {
  numVsis: 'u16',
  numQueuePairs: 'u16',
  maxVectors: 'u16',
  maxMtu: 'u16',
  vfCapFlags: 'u32',
  rssKeySize: 'u32',
  rssLutSize: 'u32',
});
export const VSI_RESOURCE_SIZE = 16;

export const TxqInfo = struct('virtchnl_txq_info', {
  vsiId: 'u16',
  queueId: 'u16',
  ringLen: 'u16',
  headwbEnabled: 'u16',
  dmaRingAddr: 'u64',
  dmaHeadwbAddr: 'u64',
});

/** rxq_info: 40 bytes; crc_disable (u8 @20) and rxdid (u8 @21) are read by hand. */
export const RxqInfo = struct('virtchnl_rxq_info', {
  vsiId: 'u16',
  queueId: 'u16',
  ringLen: 'u32',
  hdrSize: 'u16',
  splithdrEnabled: 'u16',
  databufferSize: 'u32',
  maxPktSize: 'u32',
  crcAndRxdid: 'u32',
  dmaRingAddr: 'u64',
  rxSplitPos: 'u32',
  pad2: 'u32',
});
export const QUEUE_PAIR_INFO_SIZE = 64;
export const VsiQueueConfigHeader = struct('virtchnl_vsi_queue_config_info', {
  vsiId: 'u16',
  numQueuePairs: 'u16',
  pad: 'u32',
});

export const IrqMapHeader = struct('virtchnl_irq_map_info', { numVectors: 'u16' });
export const VectorMap = struct('virtchnl_vector_map', {
  vsiId: 'u16',
  vectorId: 'u16',
  rxqMap: 'u16',
  txqMap: 'u16',
  rxitrIdx: 'u16',
  txitrIdx: 'u16',
});

export const QueueSelect = struct('virtchnl_queue_select', {
  vsiId: 'u16',
  pad: 'u16',
  rxQueues: 'u32',
  txQueues: 'u32',
});

export const EtherAddrListHeader = struct('virtchnl_ether_addr_list', { vsiId: 'u16', numElements: 'u16' });
export const ETHER_ADDR_SIZE = 8;

export const VlanFilterListHeader = struct('virtchnl_vlan_filter_list', { vsiId: 'u16', numElements: 'u16' });
/**
 * virtchnl_vlan_caps, the GET_OFFLOAD_VLAN_V2_CAPS reply (40 bytes): the filtering caps, then the offload
 * caps; `ethertypeMatch` is the u8 ethertype_match with its 3 pad bytes.
 */
export const VlanCaps = struct('virtchnl_vlan_caps', {
  filteringOuter: 'u32',
  filteringInner: 'u32',
  filteringEthertypeInit: 'u32',
  maxFilters: 'u16',
  filteringPad: 'u16',
  strippingOuter: 'u32',
  strippingInner: 'u32',
  insertionOuter: 'u32',
  insertionInner: 'u32',
  offloadsEthertypeInit: 'u32',
  ethertypeMatch: 'u32',
});
export const VlanFilterListV2Header = struct('virtchnl_vlan_filter_list_v2', {
  vportId: 'u16',
  numElements: 'u16',
  pad: 'u32',
});
/** virtchnl_vlan_filter (32 bytes): the inner and outer virtchnl_vlan, then padding. */
export const VlanFilterV2 = struct('virtchnl_vlan_filter', {
  innerTci: 'u16',
  innerTciMask: 'u16',
  innerTpid: 'u16',
  innerPad: 'u16',
  outerTci: 'u16',
  outerTciMask: 'u16',
  outerTpid: 'u16',
  outerPad: 'u16',
  pad0: 'u64',
  pad1: 'u64',
});
export const VlanSetting = struct('virtchnl_vlan_setting', {
  outerEthertypeSetting: 'u32',
  innerEthertypeSetting: 'u32',
  vportId: 'u16',
  pad0: 'u16',
  pad1: 'u32',
});
export const PromiscInfo = struct('virtchnl_promisc_info', { vsiId: 'u16', flags: 'u16' });
export const PromiscFlag = { UNICAST: 0x1, MULTICAST: 0x2 } as const;

export const RssKeyLutHeader = struct('virtchnl_rss_key', { vsiId: 'u16', length: 'u16' });
export const RssHena = struct('virtchnl_rss_hena', { hena: 'u64' });
export const SupportedRxdids = struct('virtchnl_supported_rxdids', { rxdids: 'u64' });
export const RssHfunc = struct('virtchnl_rss_hfunc', { vsiId: 'u16', alg: 'u16', reserved: 'u32' });

export const VfResRequest = struct('virtchnl_vf_res_request', { numQueuePairs: 'u16' });

export const EthStats = struct('virtchnl_eth_stats', {
  rxBytes: 'u64',
  rxUnicast: 'u64',
  rxMulticast: 'u64',
  rxBroadcast: 'u64',
  rxDiscards: 'u64',
  rxUnknownProtocol: 'u64',
  txBytes: 'u64',
  txUnicast: 'u64',
  txMulticast: 'u64',
  txBroadcast: 'u64',
  txDiscards: 'u64',
  txErrors: 'u64',
});

/** virtchnl_pf_event: 16 bytes; the event data is laid out by hand (two forms of link speed). */
export const PF_EVENT_SIZE = 16;

export interface MacEntry {
  addr: string;
  type: number;
}

export function readMac(buf: Uint8Array, at: number): string {
  return Array.from(buf.subarray(at, at + 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}

export function writeMac(mac: string, buf: Uint8Array, at: number): void {
  macBytes(mac).forEach((b, i) => {
    buf[at + i] = b;
  });
}

export function macBytes(mac: string): number[] {
  return mac.split(':').map((h) => Number.parseInt(h, 16));
}

/**
 * Expected length of a VF→PF message, from its fixed part and counts (virtchnl_vc_validate_vf_msg), or
 * undefined for an op we do not know. `msg` is needed for ops with counts in them.
 */
export function expectedLength(op: number, msg: Buffer): number | undefined {
  const u16 = (at: number) => (msg.length >= at + 2 ? msg.readUInt16LE(at) : -1);
  switch (op) {
    case VirtchnlOp.VERSION:
      return VersionInfo.size;
    case VirtchnlOp.RESET_VF:
      return 0;
    case VirtchnlOp.GET_VF_RESOURCES:
      // 1.1 VFs send their capability bitmap; 1.0 VFs send nothing.
      return msg.length === 0 ? 0 : 4;
    case VirtchnlOp.CONFIG_VSI_QUEUES: {
      const n = u16(2);
      // The legacy sizeof rule: the struct counts one trailing queue pair.
      return n <= 0 ? Number.NaN : VsiQueueConfigHeader.size + QUEUE_PAIR_INFO_SIZE * (n + 1);
    }
    case VirtchnlOp.CONFIG_IRQ_MAP: {
      const n = u16(0);
      return n <= 0 ? Number.NaN : IrqMapHeader.size + VectorMap.size * (n + 1);
    }
    case VirtchnlOp.ENABLE_QUEUES:
    case VirtchnlOp.DISABLE_QUEUES:
    case VirtchnlOp.GET_STATS:
      return QueueSelect.size;
    case VirtchnlOp.ADD_ETH_ADDR:
    case VirtchnlOp.DEL_ETH_ADDR: {
      const n = u16(2);
      return n <= 0 ? Number.NaN : EtherAddrListHeader.size + ETHER_ADDR_SIZE * (n + 1);
    }
    case VirtchnlOp.ADD_VLAN:
    case VirtchnlOp.DEL_VLAN: {
      const n = u16(2);
      return n <= 0 ? Number.NaN : 6 + 2 * n;
    }
    case VirtchnlOp.ADD_VLAN_V2:
    case VirtchnlOp.DEL_VLAN_V2: {
      // __vss_byelem: the legacy sizeof (one filter) plus the others.
      const n = u16(2);
      return n <= 0 ? Number.NaN : VlanFilterListV2Header.size + VlanFilterV2.size * n;
    }
    case VirtchnlOp.ENABLE_VLAN_STRIPPING_V2:
    case VirtchnlOp.DISABLE_VLAN_STRIPPING_V2:
    case VirtchnlOp.ENABLE_VLAN_INSERTION_V2:
    case VirtchnlOp.DISABLE_VLAN_INSERTION_V2:
      return VlanSetting.size;
    case VirtchnlOp.CONFIG_PROMISCUOUS_MODE:
      return PromiscInfo.size;
    case VirtchnlOp.CONFIG_RSS_KEY:
    case VirtchnlOp.CONFIG_RSS_LUT: {
      const n = u16(2);
      return n < 0 ? Number.NaN : RssKeyLutHeader.size + 1 + n;
    }
    case VirtchnlOp.CONFIG_RSS_HFUNC:
      return RssHfunc.size;
    case VirtchnlOp.SET_RSS_HENA:
      return RssHena.size;
    case VirtchnlOp.GET_RSS_HENA_CAPS:
    case VirtchnlOp.ENABLE_VLAN_STRIPPING:
    case VirtchnlOp.DISABLE_VLAN_STRIPPING:
    case VirtchnlOp.GET_OFFLOAD_VLAN_V2_CAPS:
    case VirtchnlOp.GET_SUPPORTED_RXDIDS:
      return 0;
    case VirtchnlOp.REQUEST_QUEUES:
      return VfResRequest.size;
    default:
      return undefined;
  }
}
