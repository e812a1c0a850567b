/**
 * VF→PF virtchnl messages, built byte by byte as Linux 6.12's iavf_virtchnl.c fills them, at the wire
 * lengths of virtchnl_vc_validate_vf_msg (iavf.md §4). Tests take these and break one field at a time.
 */
import { IAVF_RX_ITR, IAVF_TX_ITR, macToBytes, VIRTCHNL_LEN } from './iavf-defs.js';

/** virtchnl_version_info (iavf_send_api_ver). */
export function versionMsg(major = 1, minor = 1): Buffer {
  const b = Buffer.alloc(VIRTCHNL_LEN.VERSION);
  b.writeUInt32LE(major, 0);
  b.writeUInt32LE(minor, 4);
  return b;
}

/** The capability bitmap of GET_VF_RESOURCES (iavf_send_vf_config_msg, a 1.1 VF). */
export function vfResourcesRequest(caps: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(caps >>> 0, 0);
  return b;
}

export interface VectorMapEntry {
  vectorId: number;
  rxqMap: number;
  txqMap: number;
  rxitrIdx?: number;
  txitrIdx?: number;
}

/** virtchnl_irq_map_info: num_vectors, then 12-byte vector maps; 14 + 12n bytes. */
export function irqMapMsg(vsiId: number, maps: readonly VectorMapEntry[]): Buffer {
  const b = Buffer.alloc(VIRTCHNL_LEN.IRQ_MAP(maps.length));
  b.writeUInt16LE(maps.length, 0);
  maps.forEach((m, i) => {
    const at = 2 + VIRTCHNL_LEN.VECTOR_MAP * i;
    b.writeUInt16LE(vsiId, at);
    b.writeUInt16LE(m.vectorId, at + 2);
    b.writeUInt16LE(m.rxqMap, at + 4);
    b.writeUInt16LE(m.txqMap, at + 6);
    b.writeUInt16LE(m.rxitrIdx ?? IAVF_RX_ITR, at + 8);
    b.writeUInt16LE(m.txitrIdx ?? IAVF_TX_ITR, at + 10);
  });
  return b;
}

/**
 * The vector maps iavf_map_queues sends: rings spread round-robin over the queue vectors
 * (iavf_map_rings_to_vectors), one entry per queue vector 1..N, then vector 0 with empty maps.
 */
export function linuxVectorMaps(queuePairs: number, queueVectors: number): VectorMapEntry[] {
  const maps: VectorMapEntry[] = Array.from({ length: queueVectors }, (_, v) => ({
    vectorId: v + 1,
    rxqMap: 0,
    txqMap: 0,
  }));
  for (let q = 0; q < queuePairs; q++) {
    const m = maps[q % queueVectors];
    m.rxqMap |= 1 << q;
    m.txqMap |= 1 << q;
  }
  maps.push({ vectorId: 0, rxqMap: 0, txqMap: 0 });
  return maps;
}

export interface EtherAddr {
  mac: string;
  type: number;
}

/** virtchnl_ether_addr_list: vsi_id, num_elements, 8-byte entries; 12 + 8n bytes. */
export function etherAddrListMsg(vsiId: number, addrs: readonly EtherAddr[]): Buffer {
  const b = Buffer.alloc(VIRTCHNL_LEN.ETHER_ADDR_LIST(addrs.length));
  b.writeUInt16LE(vsiId, 0);
  b.writeUInt16LE(addrs.length, 2);
  addrs.forEach((a, i) => {
    const at = 4 + VIRTCHNL_LEN.ETHER_ADDR * i;
    macToBytes(a.mac).copy(b, at);
    b.writeUInt8(a.type, at + 6);
  });
  return b;
}

/** iavf_add_vlans / iavf_del_vlans (VLAN v1): virtchnl_vlan_filter_list of VLAN ids. */
export function vlanFilterListMsg(vsiId: number, ids: readonly number[]): Buffer {
  const b = Buffer.alloc(VIRTCHNL_LEN.VLAN_FILTER_LIST(ids.length));
  b.writeUInt16LE(vsiId, 0);
  b.writeUInt16LE(ids.length, 2);
  ids.forEach((id, i) => {
    b.writeUInt16LE(id, 4 + 2 * i);
  });
  return b;
}

/**
 * iavf_add_vlans / iavf_del_vlans with VLAN V2: one virtchnl_vlan_filter per id, the tag in `inner` or
 * `outer` as the caps' filtering_support says (TPID 0x8100, no mask).
 */
export function vlanFilterListV2Msg(
  vportId: number,
  ids: readonly number[],
  where: 'inner' | 'outer' = 'inner',
): Buffer {
  const b = Buffer.alloc(VIRTCHNL_LEN.VLAN_FILTER_LIST_V2(ids.length));
  b.writeUInt16LE(vportId, 0);
  b.writeUInt16LE(ids.length, 2);
  ids.forEach((id, i) => {
    const at = 8 + 32 * i + (where === 'inner' ? 0 : 8);
    b.writeUInt16LE(id, at);
    b.writeUInt16LE(0x8100, at + 4);
  });
  return b;
}

/** virtchnl_vlan_setting: iavf_set_vc_offload_ethertype's one ethertype bit, outer or inner. */
export function vlanSettingMsg(vportId: number, setting: { outer?: number; inner?: number }): Buffer {
  const b = Buffer.alloc(VIRTCHNL_LEN.VLAN_SETTING);
  b.writeUInt32LE((setting.outer ?? 0) >>> 0, 0);
  b.writeUInt32LE((setting.inner ?? 0) >>> 0, 4);
  b.writeUInt16LE(vportId, 8);
  return b;
}

/** virtchnl_vlan_caps, as iavf_get_vf_vlan_v2_caps keeps it. */
export interface VlanV2Caps {
  filteringOuter: number;
  filteringInner: number;
  filteringEthertypeInit: number;
  maxFilters: number;
  strippingOuter: number;
  strippingInner: number;
  insertionOuter: number;
  insertionInner: number;
  offloadsEthertypeInit: number;
  ethertypeMatch: number;
}

export function parseVlanV2Caps(b: Buffer): VlanV2Caps {
  if (b.length < VIRTCHNL_LEN.VLAN_CAPS) throw new Error(`virtchnl_vlan_caps of ${b.length} bytes`);
  return {
    filteringOuter: b.readUInt32LE(0),
    filteringInner: b.readUInt32LE(4),
    filteringEthertypeInit: b.readUInt32LE(8),
    maxFilters: b.readUInt16LE(12),
    strippingOuter: b.readUInt32LE(16),
    strippingInner: b.readUInt32LE(20),
    insertionOuter: b.readUInt32LE(24),
    insertionInner: b.readUInt32LE(28),
    offloadsEthertypeInit: b.readUInt32LE(32),
    ethertypeMatch: b[36],
  };
}

export interface TxqInfo {
  queueId: number;
  ringLen: number;
  dmaRingAddr: bigint;
  vsiId?: number;
}

export interface RxqInfo {
  queueId: number;
  ringLen: number;
  databufferSize: number;
  maxPktSize: number;
  dmaRingAddr: bigint;
  vsiId?: number;
  hdrSize?: number;
  splithdrEnabled?: number;
  crcDisable?: number;
  rxdid?: number;
}

export interface QueuePairInfo {
  txq: TxqInfo;
  rxq: RxqInfo;
}

/** virtchnl_vsi_queue_config_info: header, 64-byte pairs, one zeroed trailing pair; 72 + 64n bytes. */
export function vsiQueueConfigMsg(vsiId: number, pairs: readonly QueuePairInfo[]): Buffer {
  const b = Buffer.alloc(VIRTCHNL_LEN.VSI_QUEUE_CONFIG(pairs.length));
  b.writeUInt16LE(vsiId, 0);
  b.writeUInt16LE(pairs.length, 2);
  pairs.forEach((p, i) => {
    const tx = 8 + VIRTCHNL_LEN.QUEUE_PAIR_INFO * i;
    b.writeUInt16LE(p.txq.vsiId ?? vsiId, tx);
    b.writeUInt16LE(p.txq.queueId, tx + 2);
    b.writeUInt16LE(p.txq.ringLen, tx + 4);
    b.writeUInt16LE(0, tx + 6); // headwb_enabled: deprecated
    b.writeBigUInt64LE(p.txq.dmaRingAddr, tx + 8);
    b.writeBigUInt64LE(0n, tx + 16); // dma_headwb_addr: deprecated
    const rx = tx + VIRTCHNL_LEN.TXQ_INFO;
    b.writeUInt16LE(p.rxq.vsiId ?? vsiId, rx);
    b.writeUInt16LE(p.rxq.queueId, rx + 2);
    b.writeUInt32LE(p.rxq.ringLen, rx + 4);
    b.writeUInt16LE(p.rxq.hdrSize ?? 0, rx + 8);
    b.writeUInt16LE(p.rxq.splithdrEnabled ?? 0, rx + 10);
    b.writeUInt32LE(p.rxq.databufferSize, rx + 12);
    b.writeUInt32LE(p.rxq.maxPktSize, rx + 16);
    b.writeUInt8(p.rxq.crcDisable ?? 0, rx + 20);
    b.writeUInt8(p.rxq.rxdid ?? 0, rx + 21);
    b.writeBigUInt64LE(p.rxq.dmaRingAddr, rx + 24);
    b.writeInt32LE(0, rx + 32); // rx_split_pos
  });
  return b;
}

/** Offsets inside a CONFIG_VSI_QUEUES message, for tests that break one field. */
export const VsiQueueConfigAt = {
  numQueuePairs: 2,
  txq: (pair: number) => 8 + 64 * pair,
  rxq: (pair: number) => 8 + 64 * pair + 24,
} as const;

/** virtchnl_queue_select (ENABLE_QUEUES, DISABLE_QUEUES, GET_STATS): 12 bytes. */
export function queueSelectMsg(vsiId: number, rxQueues = 0, txQueues = 0): Buffer {
  const b = Buffer.alloc(VIRTCHNL_LEN.QUEUE_SELECT);
  b.writeUInt16LE(vsiId, 0);
  b.writeUInt32LE(rxQueues >>> 0, 4);
  b.writeUInt32LE(txQueues >>> 0, 8);
  return b;
}

/** virtchnl_promisc_info: 4 bytes. */
export function promiscMsg(vsiId: number, flags: number): Buffer {
  const b = Buffer.alloc(VIRTCHNL_LEN.PROMISC);
  b.writeUInt16LE(vsiId, 0);
  b.writeUInt16LE(flags, 2);
  return b;
}

/** virtchnl_rss_key / virtchnl_rss_lut: vsi_id, count, bytes, one pad byte; 5 + n bytes. */
export function rssKeyLutMsg(vsiId: number, bytes: Uint8Array, count = bytes.length): Buffer {
  const b = Buffer.alloc(VIRTCHNL_LEN.RSS_KEY(bytes.length));
  b.writeUInt16LE(vsiId, 0);
  b.writeUInt16LE(count, 2);
  b.set(bytes, 4);
  return b;
}

/** virtchnl_vf_res_request: 2 bytes. */
export function vfResRequestMsg(numQueuePairs: number): Buffer {
  const b = Buffer.alloc(VIRTCHNL_LEN.VF_RES_REQUEST);
  b.writeUInt16LE(numQueuePairs, 0);
  return b;
}
