/**
 * Numbers of the Intel Adaptive Virtual Function, by the names of Linux's iavf_register.h,
 * iavf_adminq_cmd.h and include/linux/avf/virtchnl.h (Linux 6.12).
 */

export const IAVF_PCI = {
  vendorId: 0x8086,
  /** IAVF_DEV_ID_ADAPTIVE_VF */
  deviceId: 0x1889,
  subsystemVendorId: 0x8086,
  subsystemId: 0x0000,
  /** Ethernet controller */
  classCode: 0x020000,
  revision: 0x01,
} as const;

/** BAR0 must reach VFQF_HLUT(15) at 0xd03c: 64 KiB at least. */
export const BAR0_SIZE = 0x20000;
/** The MSI-X BAR (BAR3), as Intel VFs have it: table at 0, PBA at 0x2000. */
export const MSIX_BAR = 3;
export const MSIX_BAR_SIZE = 0x4000;
export const MSIX_PBA_OFFSET = 0x2000;

export const MAX_QUEUE_PAIRS = 16;

/** BAR0 register offsets. */
export const Reg = {
  QTX_TAIL1: (q: number) => 0x0000 + 4 * q,
  QRX_TAIL1: (q: number) => 0x2000 + 4 * q,
  VFINT_ITRN1: (i: number, v: number) => 0x2800 + 64 * i + 4 * v,
  VFINT_DYN_CTLN1: (v: number) => 0x3800 + 4 * v,
  VFINT_ICR01: 0x4800,
  VFINT_ITR01: (i: number) => 0x4c00 + 4 * i,
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
  VFQF_HENA: (i: number) => 0xc400 + 4 * i,
  VFQF_HKEY: (i: number) => 0xcc00 + 4 * i,
  VFQF_HLUT: (i: number) => 0xd000 + 4 * i,
} as const;

/** VFGEN_RSTAT.VFR_STATE */
export const VfrState = { INPROGRESS: 0, COMPLETED: 1, VFACTIVE: 2 } as const;

/** ATQLEN / ARQLEN bits. */
export const QLen = { LEN_MASK: 0x3ff, VFE: 1 << 28, OVFL: 1 << 29, CRIT: 1 << 30, ENABLE: 1 << 31 } as const;

/** VFINT_DYN_CTL01 / DYN_CTLN1 bits. */
export const DynCtl = {
  INTENA: 1 << 0,
  CLEARPBA: 1 << 1,
  SWINT_TRIG: 1 << 2,
  ITR_INDX_SHIFT: 3,
  INTERVAL_SHIFT: 5,
  SW_ITR_INDX_ENA: 1 << 24,
  WB_ON_ITR: 1 << 30,
} as const;

/** VFINT_ICR01 / ICR0_ENA1 causes. */
export const Icr0 = { QUEUE_0: 1 << 1, LINK_STAT_CHANGE: 1 << 25, ADMINQ: 1 << 30 } as const;

/** Admin queue descriptor flags. */
export const AqFlag = {
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

export const AqOpcode = { QUEUE_SHUTDOWN: 0x0003, SEND_MSG_TO_PF: 0x0801, SEND_MSG_TO_VF: 0x0802 } as const;
export const AQ_DESC_SIZE = 32;
/** Largest buffer a descriptor may point at (IAVF_MAX_AQ_BUF_SIZE). */
export const AQ_MAX_BUF = 4096;

export const VirtchnlOp = {
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
  GET_SUPPORTED_RXDIDS: 44,
  GET_OFFLOAD_VLAN_V2_CAPS: 51,
  ADD_VLAN_V2: 52,
  DEL_VLAN_V2: 53,
  ENABLE_VLAN_STRIPPING_V2: 54,
  DISABLE_VLAN_STRIPPING_V2: 55,
  ENABLE_VLAN_INSERTION_V2: 56,
  DISABLE_VLAN_INSERTION_V2: 57,
} as const;

/** enum virtchnl_vlan_support: the bits of every VLAN V2 capability field (virtchnl.h). */
export const VlanSupport = {
  ETHERTYPE_8100: 1 << 0,
  ETHERTYPE_88A8: 1 << 1,
  ETHERTYPE_9100: 1 << 2,
  TAG_LOCATION_L2TAG1: 1 << 8,
  TAG_LOCATION_L2TAG2: 1 << 9,
  TAG_LOCATION_L2TAG2_2: 1 << 10,
  PRIO: 1 << 24,
  FILTER_MASK: 1 << 28,
  ETHERTYPE_AND: 1 << 29,
  ETHERTYPE_XOR: 1 << 30,
  TOGGLE: 2 ** 31,
} as const;

const OP_NAMES = new Map<number, string>(Object.entries(VirtchnlOp).map(([k, v]) => [v, k]));
export function virtchnlOpName(op: number): string {
  return OP_NAMES.get(op) ?? `OP_${op}`;
}

export const VirtchnlStatus = {
  SUCCESS: 0,
  ERR_PARAM: -5,
  ERR_NO_MEMORY: -18,
  ERR_OPCODE_MISMATCH: -38,
  ERR_CQP_COMPL: -39,
  ERR_INVALID_VF_ID: -40,
  ERR_ADMIN_QUEUE_ERROR: -53,
  ERR_NOT_SUPPORTED: -64,
} as const;

/** VIRTCHNL_VF_OFFLOAD_* / VIRTCHNL_VF_CAP_* bits. */
export const VfCap = {
  L2: 1 << 0,
  RSS_AQ: 1 << 3,
  RSS_REG: 1 << 4,
  WB_ON_ITR: 1 << 5,
  REQ_QUEUES: 1 << 6,
  ADV_LINK_SPEED: 1 << 7,
  CRC: 1 << 10,
  VLAN_V2: 1 << 15,
  VLAN: 1 << 16,
  RX_POLLING: 1 << 17,
  RSS_PCTYPE_V2: 1 << 18,
  RSS_PF: 1 << 19,
  RX_FLEX_DESC: 1 << 26,
} as const;

/**
 * What we grant, of what the VF asks: L2, RSS through virtchnl, link speed in Mbps, queue requests,
 * RX descriptor negotiation (RX_FLEX_DESC: the legacy RXDIDs only, see SUPPORTED_RXDIDS) and VLANs
 * (filters, stripping into L2TAG1, insertion from L2TAG1; not with a port VLAN): V2 to a VF that asks
 * for it, else v1, never both (as ice: Linux's iavf would use v1 if both were granted).
 */
export const GRANTABLE_CAPS =
  VfCap.L2 |
  VfCap.RSS_PF |
  VfCap.ADV_LINK_SPEED |
  VfCap.REQ_QUEUES |
  VfCap.WB_ON_ITR |
  VfCap.RX_FLEX_DESC |
  VfCap.VLAN |
  VfCap.VLAN_V2;

/** RX descriptor ids (virtchnl.h VIRTCHNL_RXDID_*): the two legacy formats emu writes. */
export const RxDid = {
  /** Legacy 16-byte write-back: qwords 0 and 1 of the 32-byte one. */
  LEGACY_0: 0,
  /** Legacy 32-byte write-back: every VF's default. */
  LEGACY_1: 1,
} as const;

/** GET_SUPPORTED_RXDIDS: a bitmap of RXDIDs, bit n for RXDID n. */
export const SUPPORTED_RXDIDS = (1n << BigInt(RxDid.LEGACY_0)) | (1n << BigInt(RxDid.LEGACY_1));

export const VSI_TYPE_SRIOV = 6;
export const VSI_ID = 1;
export const RSS_KEY_SIZE = 52;
export const RSS_LUT_SIZE = 64;
/** The hash types (PCTYPEs) we report for GET_RSS_HENA_CAPS, as i40e's default set. */
export const DEFAULT_HENA = 0x0000_7fe0_0000_0000n | 0x0000_0000_0001_8000n;

export const PfEvent = { LINK_CHANGE: 1, RESET_IMPENDING: 2, PF_DRIVER_CLOSE: 3 } as const;

/** Legacy link speed bitmask (when ADV_LINK_SPEED is not granted). */
export const LegacyLinkSpeed: Record<number, number> = {
  100: 0x2,
  1000: 0x4,
  2500: 0x1,
  5000: 0x80,
  10000: 0x8,
  20000: 0x20,
  25000: 0x40,
  40000: 0x10,
};

/** The Ethernet frame check sequence: the 4 bytes a PF's RX byte counters include per frame. */
export const ETH_FCS_LEN = 4n;
