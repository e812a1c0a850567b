/**
 * The guest driver's own copy of the AVF numbers and virtchnl layouts, written from Linux 6.12's
 * iavf_register.h, iavf_adminq_cmd.h and include/linux/avf/virtchnl.h, independently of
 * the device's constants.ts / virtchnl.ts, so that a mistake on one side shows up as a test failure
 * instead of cancelling out. Names follow Linux.
 */

/** BAR0 registers (iavf_register.h). */
export const IAVF = {
  QTX_TAIL1: (q: number) => 0x0000 + 4 * q,
  QRX_TAIL1: (q: number) => 0x2000 + 4 * q,
  VFINT_DYN_CTLN1: (v: number) => 0x3800 + 4 * v,
  VFINT_ICR01: 0x4800,
  VFINT_ICR0_ENA1: 0x5000,
  VFINT_DYN_CTL01: 0x5c00,
  VF_ARQBAH1: 0x6000,
  VF_ATQH1: 0x6400,
  VF_ATQLEN1: 0x6800,
  VF_ARQBAL1: 0x6c00,
  VF_ARQT1: 0x7000,
  VF_ARQH1: 0x7400,
  VF_ATQBAH1: 0x7800,
  VF_ATQBAL1: 0x7c00,
  VF_ARQLEN1: 0x8000,
  VF_ATQT1: 0x8400,
  VFGEN_RSTAT: 0x8800,
} as const;

export const AQ_LEN_MASK = 0x3ff;
export const AQ_HEAD_MASK = 0x3ff;
export const AQLEN_VFE = 1 << 28;
export const AQLEN_OVFL = 1 << 29;
export const AQLEN_CRIT = 1 << 30;
export const AQLEN_ENABLE = 0x80000000;
export const AQLEN_ERRORS = AQLEN_VFE | AQLEN_OVFL | AQLEN_CRIT;

export const RSTAT_VFR_STATE_MASK = 0x3;
export const VFR_INPROGRESS = 0;
export const VFR_COMPLETED = 1;
export const VFR_VFACTIVE = 2;

/** DYN_CTL bits. */
export const DYN_CTL_INTENA = 0x1;
export const DYN_CTL_CLEARPBA = 0x2;
export const DYN_CTL_SWINT_TRIG = 0x4;
export const DYN_CTL_ITR_INDX_3 = 0x3 << 3;
export const DYN_CTL_SW_ITR_INDX_ENA = 1 << 24;
/** iavf_misc_irq_enable / iavf_irq_enable_queues: INTENA | ITR_INDX(3). */
export const DYN_CTL_ENABLE = DYN_CTL_INTENA | DYN_CTL_ITR_INDX_3; // 0x19
/** DPDK's iavf_enable_irq0 / iavf_disable_irq0 writes to DYN_CTL01 (with ICR0_ENA1 = ADMINQ / 0). */
export const DPDK_DYN_CTL01_ENABLE = DYN_CTL_INTENA | DYN_CTL_CLEARPBA | DYN_CTL_ITR_INDX_3; // 0x1b
export const DPDK_DYN_CTL01_DISABLE = DYN_CTL_ITR_INDX_3; // 0x18
/** iavf_enable_wb_on_itr: WB_ON_ITR | ITR_INDX(3), INTENA left 0 (NAPI keeps polling). */
export const DYN_CTL_WB_ON_ITR = ((1 << 30) | DYN_CTL_ITR_INDX_3) >>> 0; // 0x40000018
/** iavf_force_wb: INTENA | ITR_INDX(3) | SWINT_TRIG | SW_ITR_INDX_ENA. */
export const DYN_CTL_FORCE_WB = DYN_CTL_ENABLE | DYN_CTL_SWINT_TRIG | DYN_CTL_SW_ITR_INDX_ENA; // 0x0100001d
export const ICR0_ADMINQ = 0x40000000;

/** Admin queue descriptor (struct iavf_aq_desc, 32 bytes). */
export const AQ_DESC = {
  SIZE: 32,
  FLAGS: 0x00,
  OPCODE: 0x02,
  DATALEN: 0x04,
  RETVAL: 0x06,
  COOKIE_HIGH: 0x08,
  COOKIE_LOW: 0x0c,
  PARAM0: 0x10,
  PARAM1: 0x14,
  ADDR_HIGH: 0x18,
  ADDR_LOW: 0x1c,
} as const;

export const AQ_FLAG = {
  DD: 0x1,
  CMP: 0x2,
  ERR: 0x4,
  VFE: 0x8,
  LB: 0x200,
  RD: 0x400,
  VFC: 0x800,
  BUF: 0x1000,
  SI: 0x2000,
  EI: 0x4000,
  FE: 0x8000,
} as const;

/** IAVF_AQ_LARGE_BUF: buffers above this carry LB. */
export const AQ_LARGE_BUF = 512;
export const AQC_OPC_QUEUE_SHUTDOWN = 0x0003;
export const AQC_OPC_SEND_MSG_TO_PF = 0x0801;
export const AQC_OPC_SEND_MSG_TO_VF = 0x0802;
export const AQ_DRIVER_UNLOADING = 0x1;

export const VIRTCHNL_OP = {
  UNKNOWN: 0,
  VERSION: 1,
  RESET_VF: 2,
  GET_VF_RESOURCES: 3,
  CONFIG_TX_QUEUE: 4,
  CONFIG_RX_QUEUE: 5,
  CONFIG_VSI_QUEUES: 6,
  CONFIG_IRQ_MAP: 7,
  ENABLE_QUEUES: 8,
  DISABLE_QUEUES: 9,
  ADD_ETH_ADDR: 10,
  DEL_ETH_ADDR: 11,
  ADD_VLAN: 12,
  DEL_VLAN: 13,
  CONFIG_PROMISCUOUS_MODE: 14,
  GET_STATS: 15,
  EVENT: 17,
  CONFIG_RSS_HFUNC: 18,
  CONFIG_RSS_KEY: 23,
  CONFIG_RSS_LUT: 24,
  GET_RSS_HENA_CAPS: 25,
  SET_RSS_HENA: 26,
  ENABLE_VLAN_STRIPPING: 27,
  DISABLE_VLAN_STRIPPING: 28,
  REQUEST_QUEUES: 29,
  ENABLE_CHANNELS: 30,
  DISABLE_CHANNELS: 31,
  ADD_CLOUD_FILTER: 32,
  DEL_CLOUD_FILTER: 33,
  GET_SUPPORTED_RXDIDS: 44,
  GET_OFFLOAD_VLAN_V2_CAPS: 51,
  ADD_VLAN_V2: 52,
  DEL_VLAN_V2: 53,
  ENABLE_VLAN_STRIPPING_V2: 54,
  DISABLE_VLAN_STRIPPING_V2: 55,
  ENABLE_VLAN_INSERTION_V2: 56,
  DISABLE_VLAN_INSERTION_V2: 57,
} as const;

const OP_NAME = new Map<number, string>(Object.entries(VIRTCHNL_OP).map(([k, v]) => [v, k]));
export const opName = (op: number) => OP_NAME.get(op) ?? `OP_${op}`;

export const VIRTCHNL_STATUS = {
  SUCCESS: 0,
  ERR_PARAM: -5,
  ERR_NO_MEMORY: -18,
  ERR_OPCODE_MISMATCH: -38,
  ERR_CQP_COMPL: -39,
  ERR_INVALID_VF_ID: -40,
  ERR_ADMIN_QUEUE_ERROR: -53,
  ERR_NOT_SUPPORTED: -64,
} as const;

export const VF_CAP = {
  L2: 1 << 0,
  RSS_AQ: 1 << 3,
  RSS_REG: 1 << 4,
  WB_ON_ITR: 1 << 5,
  REQ_QUEUES: 1 << 6,
  ADV_LINK_SPEED: 1 << 7,
  CRC: 1 << 10,
  VLAN_V2: 1 << 15,
  VLAN: 1 << 16,
  RSS_PF: 1 << 19,
  RX_FLEX_DESC: 1 << 26,
} as const;

/** What iavf_send_vf_config_msg asks for in Linux 6.12. */
export const LINUX_6_12_CAPS = 0x1abd8cf9;

export const VIRTCHNL_VSI_SRIOV = 6;
export const VIRTCHNL_ETHER_ADDR_PRIMARY = 1;
export const VIRTCHNL_EVENT_LINK_CHANGE = 1;
export const VIRTCHNL_EVENT_RESET_IMPENDING = 2;
export const FLAG_VF_UNICAST_PROMISC = 0x1;
export const FLAG_VF_MULTICAST_PROMISC = 0x2;

/** Linux's rings and buffers. */
export const IAVF_DEFAULT_TXD = 512;
export const IAVF_DEFAULT_RXD = 512;
export const IAVF_TX_DESC_SIZE = 16;
export const IAVF_RX_DESC_SIZE = 32;
/** union iavf_16byte_rx_desc: what RXDID 0 (LEGACY_0) asks for. */
export const IAVF_RX_DESC_SIZE_16 = 16;
/** virtchnl.h VIRTCHNL_RXDID_*: the legacy formats, and one flex format (what DPDK asks for by default). */
export const VIRTCHNL_RXDID = { LEGACY_0: 0, LEGACY_1: 1, COMMS_OVS_1: 22 } as const;
export const IAVF_AQ_LEN = 32;
export const IAVF_MAX_AQ_BUF_SIZE = 4096;
/** LIBETH_RX_LL_LEN: Ethernet header, two VLAN tags and the FCS. */
export const LIBETH_RX_LL_LEN = 26;
/** Upper bound Linux puts on max_pkt_size before min_not_zero(vf_res->max_mtu, ·). */
export const LIBIE_MAX_RX_FRM_LEN = 16382;
/** rxitr_idx / txitr_idx in CONFIG_IRQ_MAP (IAVF_RX_ITR, IAVF_TX_ITR). */
export const IAVF_RX_ITR = 0;
export const IAVF_TX_ITR = 1;

/** Byte sizes and wire lengths (the legacy sizeof rule: one trailing element counted). */
export const VIRTCHNL_LEN = {
  VERSION: 8,
  VF_RESOURCE_HEADER: 20,
  VSI_RESOURCE: 16,
  VF_RESOURCE: (vsis: number) => 36 + 16 * vsis,
  VSI_QUEUE_CONFIG: (pairs: number) => 72 + 64 * pairs,
  QUEUE_PAIR_INFO: 64,
  TXQ_INFO: 24,
  RXQ_INFO: 40,
  IRQ_MAP: (vectors: number) => 14 + 12 * vectors,
  VECTOR_MAP: 12,
  QUEUE_SELECT: 12,
  ETHER_ADDR_LIST: (n: number) => 12 + 8 * n,
  ETHER_ADDR: 8,
  /** virtchnl_vlan_filter_list with n ids: the legacy sizeof (one id) plus n. */
  VLAN_FILTER_LIST: (n: number) => 6 + 2 * n,
  /** virtchnl_vlan_filter_list_v2 with n filters of 32 bytes. */
  VLAN_FILTER_LIST_V2: (n: number) => 8 + 32 * n,
  VLAN_SETTING: 16,
  VLAN_CAPS: 40,
  PROMISC: 4,
  RSS_KEY: (n: number) => 5 + n,
  RSS_LUT: (n: number) => 5 + n,
  ETH_STATS: 96,
  PF_EVENT: 16,
  VF_RES_REQUEST: 2,
} as const;

export function macToBytes(mac: string): Buffer {
  const parts = mac.split(':');
  if (parts.length !== 6) throw new TypeError(`not a MAC address: ${mac}`);
  return Buffer.from(parts.map((p) => Number.parseInt(p, 16)));
}

export function bytesToMac(b: Uint8Array): string {
  return Array.from(b.subarray(0, 6), (x) => x.toString(16).padStart(2, '0')).join(':');
}

/** struct virtchnl_vf_resource, parsed as iavf_vf_parse_hw_config does. */
export interface VfResource {
  numVsis: number;
  numQueuePairs: number;
  maxVectors: number;
  maxMtu: number;
  vfCapFlags: number;
  rssKeySize: number;
  rssLutSize: number;
  vsis: VsiResource[];
  /** The first VSI of type SRIOV (Linux requires one: "No LAN VSI found"). */
  lanVsi?: VsiResource;
  length: number;
}

export interface VsiResource {
  vsiId: number;
  numQueuePairs: number;
  vsiType: number;
  qsetHandle: number;
  defaultMac: string;
}

export function parseVfResource(b: Buffer): VfResource {
  if (b.length < VIRTCHNL_LEN.VF_RESOURCE_HEADER) throw new RangeError(`vf_resource of ${b.length} bytes`);
  const numVsis = b.readUInt16LE(0);
  const vsis: VsiResource[] = [];
  for (let i = 0; i < numVsis; i++) {
    const at = VIRTCHNL_LEN.VF_RESOURCE_HEADER + VIRTCHNL_LEN.VSI_RESOURCE * i;
    if (at + VIRTCHNL_LEN.VSI_RESOURCE > b.length) break;
    vsis.push({
      vsiId: b.readUInt16LE(at),
      numQueuePairs: b.readUInt16LE(at + 2),
      vsiType: b.readInt32LE(at + 4),
      qsetHandle: b.readUInt16LE(at + 8),
      defaultMac: bytesToMac(b.subarray(at + 10, at + 16)),
    });
  }
  return {
    numVsis,
    numQueuePairs: b.readUInt16LE(2),
    maxVectors: b.readUInt16LE(4),
    maxMtu: b.readUInt16LE(6),
    vfCapFlags: b.readUInt32LE(8),
    rssKeySize: b.readUInt32LE(12),
    rssLutSize: b.readUInt32LE(16),
    vsis,
    lanVsi: vsis.find((v) => v.vsiType === VIRTCHNL_VSI_SRIOV),
    length: b.length,
  };
}

/** struct virtchnl_pf_event. */
export interface PfEvent {
  event: number;
  severity: number;
  /** LINK_CHANGE only. */
  link?: { up: boolean; speed: number; advanced: boolean };
}

export function parsePfEvent(b: Buffer, advancedLinkSpeed: boolean): PfEvent {
  if (b.length < VIRTCHNL_LEN.PF_EVENT) throw new RangeError(`virtchnl_pf_event of ${b.length} bytes`);
  const event = b.readInt32LE(0);
  const out: PfEvent = { event, severity: b.readInt32LE(12) };
  if (event === VIRTCHNL_EVENT_LINK_CHANGE) {
    out.link = { speed: b.readUInt32LE(4), up: b.readUInt8(8) !== 0, advanced: advancedLinkSpeed };
  }
  return out;
}

/** virtchnl_eth_stats, in wire order. */
export const ETH_STATS_FIELDS = [
  'rxBytes',
  'rxUnicast',
  'rxMulticast',
  'rxBroadcast',
  'rxDiscards',
  'rxUnknownProtocol',
  'txBytes',
  'txUnicast',
  'txMulticast',
  'txBroadcast',
  'txDiscards',
  'txErrors',
] as const;
export type EthStats = Record<(typeof ETH_STATS_FIELDS)[number], bigint>;

export function parseEthStats(b: Buffer): EthStats {
  if (b.length < VIRTCHNL_LEN.ETH_STATS) throw new RangeError(`virtchnl_eth_stats of ${b.length} bytes`);
  return Object.fromEntries(ETH_STATS_FIELDS.map((f, i) => [f, b.readBigUInt64LE(8 * i)])) as EthStats;
}

/** TX descriptors (iavf_type.h: struct iavf_tx_desc, struct iavf_tx_context_desc; iavf.md §5). */
export const TX_DESC = {
  DTYPE_DATA: 0x0,
  DTYPE_CONTEXT: 0x1,
  DTYPE_DESC_DONE: 0xf,
  DTYPE_MASK: 0xfn,
  CMD_SHIFT: 4n,
  OFFSET_SHIFT: 16n,
  BUF_SZ_SHIFT: 34n,
  L2TAG1_SHIFT: 48n,
  /** BUF_SZ is 14 bits. */
  MAX_BUF_SZ: 0x3fff,
} as const;

/** Data descriptor CMD bits (qword1 [13:4]). */
export const TX_CMD = {
  EOP: 0x001,
  RS: 0x002,
  ICRC: 0x004,
  IL2TAG1: 0x008,
  IIPT_IPV6: 0x020,
  IIPT_IPV4: 0x040,
  IIPT_IPV4_CSUM: 0x060,
  L4T_TCP: 0x100,
  L4T_SCTP: 0x200,
  L4T_UDP: 0x300,
} as const;

/** Data descriptor OFFSET field: MACLEN in 2-byte words, IPLEN and L4LEN in 4-byte words. */
export const TX_OFFSET = { MACLEN_SHIFT: 0, IPLEN_SHIFT: 7, L4LEN_SHIFT: 14 } as const;

/** Context descriptor type_cmd_tso_mss: CMD [19:4] (TSO = 0x01), TSO_LEN [47:30], MSS [63:50]. */
export const TX_CTX = { CMD_TSO: 0x01, CMD_SHIFT: 4n, TSO_LEN_SHIFT: 30n, MSS_SHIFT: 50n } as const;

/** IAVF_MAX_BUFFER_TXD: data descriptors Linux lets one packet use (it linearizes beyond). */
export const IAVF_MAX_BUFFER_TXD = 8;
/** IAVF_MAX_DATA_PER_TXD_ALIGNED: how Linux cuts a large buffer across descriptors. */
export const IAVF_MAX_DATA_PER_TXD_ALIGNED = 12 * 1024;

/** Legacy 32-byte RX write-back, qword1 status_error_len (iavf.md §5). */
export const RX_WB = {
  DD: 1n << 0n,
  EOF: 1n << 1n,
  /** L2TAG1P: qword0 [31:16] holds a stripped VLAN tag. */
  L2TAG1P: 1n << 2n,
  L3L4P: 1n << 3n,
  FLTSTAT_SHIFT: 12n,
  FLTSTAT_RSS_HASH: 3,
  ERROR_SHIFT: 19n,
  /** RXE, bit 0 of the error field: the packet was dropped. */
  ERROR_RXE: 1,
  /** IPE (bit 3 of the error field): bad IPv4 header checksum; L4E (bit 4): bad L4 checksum. */
  ERROR_IPE: 1 << 3,
  ERROR_L4E: 1 << 4,
  /** EIPE (bit 5): bad outer IPv4 header checksum of a tunnel. */
  ERROR_EIPE: 1 << 5,
  /** PPRS (bit 7): not checked, for lack of time. */
  ERROR_PPRS: 1 << 7,
  IPV6EXADD: 1n << 15n,
  PTYPE_SHIFT: 30n,
  LENGTH_PBUF_SHIFT: 38n,
  LENGTH_PBUF_MASK: 0x3fffn,
} as const;

/**
 * What Linux 6.12's libie packet-type table (drivers/net/ethernet/intel/libie/rx.c, the i40e/iavf
 * hardware numbering) says of the non-tunnelled types: outer IP version and inner protocol. A type not
 * listed decodes as L2 only (no IP, no checksum).
 */
export const LIBIE_PTYPES: Record<
  number,
  { ip: 4 | 6; l4: 'udp' | 'tcp' | 'sctp' | 'icmp' | 'none'; frag?: true }
> = {
  22: { ip: 4, l4: 'none', frag: true },
  23: { ip: 4, l4: 'none' },
  24: { ip: 4, l4: 'udp' },
  26: { ip: 4, l4: 'tcp' },
  27: { ip: 4, l4: 'sctp' },
  28: { ip: 4, l4: 'icmp' },
  88: { ip: 6, l4: 'none', frag: true },
  89: { ip: 6, l4: 'none' },
  90: { ip: 6, l4: 'udp' },
  92: { ip: 6, l4: 'tcp' },
  93: { ip: 6, l4: 'sctp' },
  94: { ip: 6, l4: 'icmp' },
};
/** PTYPE 1: Ethernet, payload not parsed; 11: ARP. */
export const PTYPE_L2 = 1;
export const PTYPE_ARP = 11;

/** enum virtchnl_vlan_support bits (virtchnl.h). */
export const VLAN_SUPPORT = {
  ETHERTYPE_8100: 0x1,
  TAG_LOCATION_L2TAG1: 0x100,
  TOGGLE: 0x80000000,
} as const;
