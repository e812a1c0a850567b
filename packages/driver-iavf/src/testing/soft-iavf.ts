/**
 * SoftIavf: a guest-side iavf driver in TypeScript, driving an AVF over a VfioUserClient the way the
 * Linux 6.12 iavf driver drives one: probe (PCI, MSI-X), iavf_check_reset_complete, iavf_init_adminq
 * (register order of iavf_config_asq_regs / iavf_config_arq_regs), iavf_aq_send_msg_to_pf /
 * iavf_asq_send_command, iavf_clean_arq_element, the misc interrupt (iavf_msix_aq, adminq_task,
 * iavf_misc_irq_enable), the virtchnl bring-up of iavf_main.c / iavf_virtchnl.c, and the data path of
 * iavf_txrx.c (transmit: iavf_xmit_frame_ring / iavf_tx_map / iavf_tso; cleanTx: iavf_clean_tx_irq;
 * receiveFrames: iavf_clean_rx_irq; refillRx: iavf_alloc_rx_buffers; napiPoll: the queue vector's NAPI
 * round with its DYN_CTLN1 re-arm). Method names follow the Linux functions they stand for. It is a test tool: every step can be observed, repeated, or
 * replaced by a malformed one (sendRaw, submit, the message builders in virtchnl-msgs.ts).
 *
 * Numbers and layouts come from iavf-defs.ts, the guest's own copy of iavf.md, not from the device's
 * constants, so that the two sides check each other.
 */
import { randomBytes } from 'node:crypto';
import { closeFd, EventFd } from '@emu/native';
import {
  PCI_CAP_ID_MSIX,
  PCI_CAPABILITY_LIST,
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PciRegion,
  type VfioUserClient,
} from '@emu/vfio-user';
import type { GuestRam } from './guest-memory.js';
import {
  AQ_DESC,
  AQ_DRIVER_UNLOADING,
  AQ_FLAG,
  AQ_HEAD_MASK,
  AQ_LARGE_BUF,
  AQC_OPC_QUEUE_SHUTDOWN,
  AQC_OPC_SEND_MSG_TO_PF,
  AQLEN_ENABLE,
  AQLEN_ERRORS,
  DYN_CTL_ENABLE,
  DYN_CTL_WB_ON_ITR,
  type EthStats,
  IAVF,
  IAVF_AQ_LEN,
  IAVF_DEFAULT_TXD,
  IAVF_MAX_AQ_BUF_SIZE,
  IAVF_MAX_BUFFER_TXD,
  IAVF_MAX_DATA_PER_TXD_ALIGNED,
  IAVF_RX_DESC_SIZE,
  IAVF_RX_DESC_SIZE_16,
  IAVF_TX_DESC_SIZE,
  ICR0_ADMINQ,
  LIBETH_RX_LL_LEN,
  LIBIE_MAX_RX_FRM_LEN,
  LIBIE_PTYPES,
  LINUX_6_12_CAPS,
  opName,
  type PfEvent,
  parseEthStats,
  parsePfEvent,
  parseVfResource,
  RSTAT_VFR_STATE_MASK,
  RX_WB,
  TX_CMD,
  TX_CTX,
  TX_DESC,
  TX_OFFSET,
  VF_CAP,
  VFR_COMPLETED,
  VFR_VFACTIVE,
  type VfResource,
  VIRTCHNL_ETHER_ADDR_PRIMARY,
  VIRTCHNL_EVENT_LINK_CHANGE,
  VIRTCHNL_OP,
  VIRTCHNL_RXDID,
  VIRTCHNL_STATUS,
  VLAN_SUPPORT,
  type VsiResource,
} from './iavf-defs.js';
import {
  type EtherAddr,
  etherAddrListMsg,
  irqMapMsg,
  linuxVectorMaps,
  parseVlanV2Caps,
  promiscMsg,
  type QueuePairInfo,
  queueSelectMsg,
  rssKeyLutMsg,
  type VectorMapEntry,
  type VlanV2Caps,
  versionMsg,
  vfResourcesRequest,
  vfResRequestMsg,
  vlanFilterListMsg,
  vlanFilterListV2Msg,
  vlanSettingMsg,
  vsiQueueConfigMsg,
} from './virtchnl-msgs.js';

export interface SoftIavfOptions {
  /** Entries per admin queue ring (IAVF_AQ_LEN). */
  aqEntries?: number;
  /** Bytes per admin queue buffer (IAVF_MAX_AQ_BUF_SIZE). */
  aqBufSize?: number;
  /** How long to wait for a virtchnl reply. */
  replyTimeoutMs?: number;
  /** How long to wait for ATQH to reach the tail after a doorbell. */
  atqTimeoutMs?: number;
  /** TX/RX descriptors per ring (IAVF_DEFAULT_TXD / RXD). */
  ringLen?: number;
  /** The netdev MTU: sets databuffer_size as libeth does. */
  mtu?: number;
  /** Post RX buffers and write QRX_TAIL = count - 1, as iavf_alloc_rx_buffers (default true). */
  postRxBuffers?: boolean;
  /** RX databuffer_size (default: libeth's ALIGN(mtu + 26, 128)); a multiple of 128. */
  rxBufLen?: number;
  /** Bytes of guest RAM per TX queue for packet data (default 256 KiB). */
  txBufferBytes?: number;
  /**
   * The RXDID CONFIG_VSI_QUEUES asks for when the PF granted RX_FLEX_DESC, as DPDK's iavf does: LEGACY_1
   * (32-byte descriptors, the default) or LEGACY_0 (16-byte, a DPDK built with
   * RTE_LIBRTE_IAVF_16BYTE_RX_DESC). Without the grant the field is sent as 0 and means nothing.
   */
  rxdid?: number;
}

/** One PF→VF message taken off the ARQ (iavf_arq_event_info). */
export interface ArqMessage {
  /** ARQ slot it was in. */
  index: number;
  flags: number;
  opcode: number;
  datalen: number;
  retval: number;
  /** cookie_high: the virtchnl op. */
  op: number;
  /** cookie_low as a signed 32-bit value: the virtchnl status. */
  status: number;
  payload: Buffer;
}

/** An ATQ descriptor as the device wrote it back. */
export interface AtqCompletion {
  index: number;
  flags: number;
  opcode: number;
  datalen: number;
  retval: number;
  cookieHigh: number;
  cookieLow: number;
}

/** Fields of an ATQ descriptor, for submit(). */
export interface AqDescFields {
  flags: number;
  opcode: number;
  datalen?: number;
  cookieHigh?: number;
  cookieLow?: number;
  param0?: number;
  param1?: number;
  /** Buffer address; default: the slot's own buffer when there is a payload, else 0. */
  addr?: bigint;
}

export interface PciInfo {
  vendorId: number;
  deviceId: number;
  subsystemVendorId: number;
  subsystemId: number;
  classCode: number;
  revision: number;
  command: number;
  bar0Size: bigint;
  bar3Size: bigint;
  msix: {
    capOffset: number;
    tableSize: number;
    tableBar: number;
    tableOffset: number;
    pbaBar: number;
    pbaOffset: number;
  };
  irqCount: number;
}

/** One virtchnl request and its answer, in order: the bring-up transcript. */
export interface Step {
  op: number;
  name: string;
  status: number;
  ms: number;
}

export interface BringUpOptions {
  /** Capabilities to ask for (default Linux 6.12's 0x1ABD8CF9). */
  caps?: number;
  /** Promiscuous flags for CONFIG_PROMISCUOUS_MODE (default 0: leave promiscuous mode). */
  promisc?: number;
}

export interface BringUpResult {
  pfVersion: { major: number; minor: number };
  resources: VfResource;
  /** The LINK_CHANGE that follows the GET_VF_RESOURCES reply. */
  initialLink: PfEvent;
  /** The LINK_CHANGE that follows the ENABLE_QUEUES reply. */
  link: PfEvent;
  stats: EthStats;
  steps: Step[];
}

export interface ResetReport {
  /** ARQLEN.ENABLE was seen to drop to 0 (how Linux notices the reset). */
  detected: boolean;
  /** Distinct VFGEN_RSTAT values seen from detection to VFACTIVE, in order. */
  rstatSeen: number[];
  resources: VfResource;
}

export interface RingSet {
  tx: bigint;
  rx: bigint;
  /** RX data buffers, one per descriptor, `bufferSize` apart. */
  rxBuffers?: bigint;
  bufferSize: number;
}

/** One RX write-back descriptor as the guest read it (the legacy format: qwords 0 and 1 of 32 or 16 bytes). */
export interface RxDescriptor {
  index: number;
  qw0: bigint;
  qw1: bigint;
  dd: boolean;
  eof: boolean;
  /** LENGTH_PBUF: bytes in this buffer. */
  length: number;
  /** FLTSTAT [13:12]; 3 = RSS hash valid. */
  fltstat: number;
  /** The error field [26:19]. */
  errors: number;
  ptype: number;
  /** qword0 [63:32]: the RSS hash when FLTSTAT is 3. */
  hash: number;
  /** qword0 [31:16] when L2TAG1P (qword1 bit 2) is set: the VLAN tag the device stripped. */
  l2tag1?: number;
}

/** A frame the guest took off an RX ring: its buffers joined up to the EOF descriptor. */
export interface RxFrame {
  queue: number;
  data: Buffer;
  descriptors: RxDescriptor[];
  /** The RSS hash, when the write-back says it is valid. */
  hash?: number;
  /** PTYPE of the EOF descriptor. */
  ptype: number;
  /**
   * What Linux's iavf_rx_checksum makes of the EOF descriptor: `unnecessary` (CHECKSUM_UNNECESSARY, the
   * stack trusts the device), `none` (the stack checks the sums itself) or `error` (none, and counted in
   * hw_csum_rx_error).
   */
  checksum: RxChecksum;
  /** The VLAN tag the device stripped into the EOF descriptor (iavf_legacy_rx... L2TAG1P), if any. */
  vlan?: number;
}

export type RxChecksum = 'unnecessary' | 'none' | 'error';

/** iavf_rx_checksum (Linux 6.12 iavf_txrx.c) over a write-back, with libie's packet-type table. */
export function rxChecksumVerdict(d: RxDescriptor): RxChecksum {
  const pt = LIBIE_PTYPES[d.ptype];
  // libeth_rx_pt_has_checksum: an inner protocol (UDP, TCP, SCTP, ICMP) is needed.
  if (!pt || pt.l4 === 'none') return 'none';
  if ((d.qw1 & RX_WB.L3L4P) === 0n) return 'none';
  if (pt.ip === 4 && d.errors & (RX_WB.ERROR_IPE | RX_WB.ERROR_EIPE)) return 'error';
  if (pt.ip === 6 && (d.qw1 & RX_WB.IPV6EXADD) !== 0n) return 'none';
  if (d.errors & RX_WB.ERROR_L4E) return 'error';
  if (d.errors & RX_WB.ERROR_PPRS) return 'none';
  return 'unnecessary';
}

export interface TransmitOptions {
  /** TX queue (default 0). */
  queue?: number;
  /** Checksum offload as iavf_tx_enable_csum asks for it: IIPT, L4T and the header lengths. */
  csum?: boolean;
  /** IIPT_IPV4_CSUM (the device computes the IPv4 header checksum) also without TSO. */
  ipCsum?: boolean;
  /** TSO as iavf_tso: a context descriptor with TSO, TSO_LEN and MSS; headers prepared as Linux does. */
  tso?: { mss: number };
  /** Buffer sizes to cut the frame into, one data descriptor each (default: 12 KiB pieces). */
  buffers?: number[];
  /** Write QTX_TAIL after it (default true; false is netdev_xmit_more). */
  kick?: boolean;
  /** A VLAN tag (TCI) for the device to insert: IL2TAG1 with L2TAG1, as iavf_tx_map sets them. */
  vlan?: number;
}

/** Where a packet went on the TX ring. */
export interface TxPosted {
  queue: number;
  /** First descriptor (the context descriptor for TSO). */
  first: number;
  /** The descriptor carrying EOP|RS. */
  rs: number;
  descriptors: number;
}

/** A TX descriptor as raw qwords, for malformed ones. */
export interface RawTxDesc {
  qw0: bigint;
  qw1: bigint;
}

/** cmd_type_offset_bsz of a data descriptor (build_ctob). */
export function txDataQw1(cmd: number, size: number, offset = 0, l2tag1 = 0): bigint {
  return (
    BigInt(TX_DESC.DTYPE_DATA) |
    (BigInt(cmd & 0x3ff) << TX_DESC.CMD_SHIFT) |
    (BigInt(offset & 0x3ffff) << TX_DESC.OFFSET_SHIFT) |
    (BigInt(size & TX_DESC.MAX_BUF_SZ) << TX_DESC.BUF_SZ_SHIFT) |
    (BigInt(l2tag1 & 0xffff) << TX_DESC.L2TAG1_SHIFT)
  );
}

/** type_cmd_tso_mss of a context descriptor (iavf_create_tx_ctx). */
export function txContextQw1(cmd: number, tsoLen: number, mss: number): bigint {
  return (
    BigInt(TX_DESC.DTYPE_CONTEXT) |
    (BigInt(cmd & 0xffff) << TX_CTX.CMD_SHIFT) |
    (BigInt(tsoLen & 0x3ffff) << TX_CTX.TSO_LEN_SHIFT) |
    (BigInt(mss & 0x3fff) << TX_CTX.MSS_SHIFT)
  );
}

/** The header lengths iavf_tx_enable_csum derives from the skb (Ethernet, optional 802.1Q, IPv4/IPv6, TCP/UDP/SCTP). */
export function txHeaderLengths(frame: Uint8Array): {
  macLen: number;
  ipLen: number;
  l4Len: number;
  ipv4: boolean;
  proto: number;
} {
  let macLen = 14;
  let type = (frame[12] << 8) | frame[13];
  if (type === 0x8100) {
    type = (frame[16] << 8) | frame[17];
    macLen = 18;
  }
  let ipLen: number;
  let proto: number;
  if (type === 0x0800) {
    ipLen = (frame[macLen] & 0xf) * 4;
    proto = frame[macLen + 9];
  } else if (type === 0x86dd) {
    ipLen = 40;
    proto = frame[macLen + 6];
  } else throw new Error(`checksum offload of EtherType 0x${type.toString(16)}`);
  const l4 = macLen + ipLen;
  // struct sctphdr is 12 bytes (iavf_tx_enable_csum: sizeof(struct sctphdr) >> 2).
  const l4Len = proto === 6 ? (frame[l4 + 12] >> 4) * 4 : proto === 17 ? 8 : proto === 132 ? 12 : 0;
  return { macLen, ipLen, l4Len, ipv4: type === 0x0800, proto };
}

interface TxPending {
  /** The RS descriptor. */
  rs: number;
  /** next_to_clean once it is done. */
  next: number;
  /** Packet-buffer bytes given back at completion. */
  release: number;
}

interface TxQueueState {
  ntu: number;
  ntc: number;
  pending: TxPending[];
  /** Packet buffers: a FIFO area of guest RAM, handed out in order and given back at completion. */
  arena?: { base: bigint; size: number; head: number; free: number };
}

interface RxQueueState {
  ntu: number;
  ntc: number;
  /** Descriptors of a frame whose EOF has not come yet (rx_ring->skb across polls). */
  partial: Array<{ desc: RxDescriptor; data: Buffer }>;
}

/** The admin queue was disabled under a command: the device is resetting the VF. */
export class AdminQueueResetError extends Error {}

/** A virtchnl request the PF answered with an error status. */
export class VirtchnlError extends Error {
  constructor(
    readonly op: number,
    readonly status: number,
  ) {
    super(`virtchnl ${opName(op)} failed: status ${status}`);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const ALIGN = (v: number, a: number) => Math.ceil(v / a) * a;
const lo32 = (v: bigint) => Number(v & 0xffffffffn);
const hi32 = (v: bigint) => Number(v >> 32n);
/** How long receive() waits on the misc eventfd before looking at ARQH anyway (the watchdog's poll). */
const IRQ_POLL_MS = 100;

export class SoftIavf {
  readonly aqEntries: number;
  readonly aqBufSize: number;
  readonly replyTimeoutMs: number;
  readonly atqTimeoutMs: number;
  readonly ringLen: number;
  readonly mtu: number;
  readonly postRxBuffers: boolean;
  readonly txBufferBytes: number;
  private readonly rxBufLenOption?: number;
  private readonly rxdidOption: number;

  pci?: PciInfo;
  /** One eventfd per MSI-X vector; [0] is the misc (admin queue) vector. */
  irqFds: EventFd[] = [];

  // Admin queue state (struct iavf_adminq_info).
  private aqMem?: { atqRing: bigint; arqRing: bigint; atqBufs: bigint; arqBufs: bigint };
  private atqNtu = 0;
  private arqNtc = 0;
  /** True between initAdminQueue and shutdownAdminQueue. */
  aqUp = false;

  /** Answer of VERSION, GET_VF_RESOURCES, and what follows from them. */
  pfVersion?: { major: number; minor: number };
  vfRes?: VfResource;
  /** The GET_OFFLOAD_VLAN_V2_CAPS reply, with VLAN V2. */
  vlanV2Caps?: VlanV2Caps;
  vsiRes?: VsiResource;
  mac = '';
  numActiveQueues = 0;
  numMsixVectors = 0;
  rings: RingSet[] = [];
  rssKey?: Buffer;
  rssLut?: Buffer;
  /** The GET_SUPPORTED_RXDIDS answer (asked for only when RX_FLEX_DESC was granted). */
  supportedRxdids?: bigint;

  /**
   * receive() waits for the misc interrupt (true) or polls ARQH (false). Linux polls during init and
   * takes the interrupt from INIT_CONFIG_ADAPTER on; bringUp does the same.
   */
  irqMode = false;
  /** Misc interrupts taken. */
  miscIrqs = 0;
  /** Messages found by polling while the misc vector was armed and no interrupt came: missed interrupts. */
  polledMessages = 0;
  /** Times ARQLEN.ENABLE read 0 outside a reset we asked for (Linux: "Hardware reset detected"). */
  arqEnableLost = 0;
  /** VFE/OVFL/CRIT bits seen (and cleared) in ARQLEN/ATQLEN, as iavf_adminq_task logs them. */
  aqErrors: Array<{ queue: 'ARQ' | 'ATQ'; bits: number }> = [];
  /** ARQ descriptors ARQH had passed without DD written back (device ordering bug). */
  arqNotDone = 0;
  /** Messages received but not claimed by a request (events, stray replies), oldest first. */
  inbox: ArqMessage[] = [];
  /** Every message received, in order. */
  history: ArqMessage[] = [];
  /** Every request and its status, in order. */
  steps: Step[] = [];
  /** history.length when the admin queue was last initialised: what came after is on the current rings. */
  historyAtAqInit = 0;
  private miscArmed = false;

  /** The vector maps CONFIG_IRQ_MAP sent (iavf_map_queues), vector 0 last. */
  vectorMaps: VectorMapEntry[] = [];
  private txState: TxQueueState[] = [];
  private rxState: RxQueueState[] = [];
  /** Frames dropped by the guest because their EOF write-back had an error bit (RXE …), by queue. */
  rxErrorFrames: number[] = [];

  constructor(
    readonly client: VfioUserClient,
    readonly ram: GuestRam,
    options: SoftIavfOptions = {},
  ) {
    this.aqEntries = options.aqEntries ?? IAVF_AQ_LEN;
    this.aqBufSize = options.aqBufSize ?? IAVF_MAX_AQ_BUF_SIZE;
    this.replyTimeoutMs = options.replyTimeoutMs ?? 2000;
    this.atqTimeoutMs = options.atqTimeoutMs ?? 1000;
    this.ringLen = options.ringLen ?? IAVF_DEFAULT_TXD;
    this.mtu = options.mtu ?? 1500;
    this.postRxBuffers = options.postRxBuffers ?? true;
    this.rxBufLenOption = options.rxBufLen;
    this.rxdidOption = options.rxdid ?? VIRTCHNL_RXDID.LEGACY_1;
    this.txBufferBytes = options.txBufferBytes ?? 256 * 1024;
  }

  // ---------------------------------------------------------------------------------------------
  // Registers

  async rd32(reg: number): Promise<number> {
    return (await this.client.regionRead(PciRegion.BAR0, reg, 4)).readUInt32LE(0);
  }

  async wr32(reg: number, value: number): Promise<void> {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value >>> 0, 0);
    await this.client.regionWrite(PciRegion.BAR0, reg, b);
  }

  /** iavf_flush: a read of VFGEN_RSTAT. */
  async flush(): Promise<number> {
    return this.rd32(IAVF.VFGEN_RSTAT);
  }

  // ---------------------------------------------------------------------------------------------
  // PCI (iavf_probe)

  /**
   * pci_enable_device + pci_set_master, BAR sizes, the MSI-X capability, MSI-X enabled and an eventfd
   * handed over for every vector (the VMM's part of pci_enable_msix_range).
   */
  async probe(): Promise<PciInfo> {
    const cfg = await this.client.regionRead(PciRegion.CONFIG, 0, 256);
    let command = cfg.readUInt16LE(PCI_COMMAND) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
    await this.cfgWrite16(PCI_COMMAND, command);
    command = (await this.client.regionRead(PciRegion.CONFIG, PCI_COMMAND, 2)).readUInt16LE(0);
    const bar0 = await this.client.getRegionInfo(PciRegion.BAR0);
    const bar3 = await this.client.getRegionInfo(PciRegion.BAR3);
    for (const info of [bar0, bar3]) if (info.fd !== undefined) closeFd(info.fd);

    let capOffset = 0;
    for (let p = cfg[PCI_CAPABILITY_LIST] & ~3, hops = 0; p !== 0 && hops < 48; p = cfg[p + 1] & ~3, hops++) {
      if (cfg[p] === PCI_CAP_ID_MSIX) {
        capOffset = p;
        break;
      }
    }
    if (!capOffset) throw new Error('probe: no MSI-X capability (Linux iavf has no MSI/INTx fallback)');
    const ctrl = cfg.readUInt16LE(capOffset + 2);
    const table = cfg.readUInt32LE(capOffset + 4);
    const pba = cfg.readUInt32LE(capOffset + 8);
    await this.cfgWrite16(capOffset + 2, (ctrl | PCI_MSIX_FLAGS_ENABLE) & ~PCI_MSIX_FLAGS_MASKALL);

    const irqCount = (await this.client.getIrqInfo('msix')).count;
    for (const fd of this.irqFds) fd.close();
    this.irqFds = Array.from({ length: irqCount }, () => EventFd.create());
    await this.client.setIrqEventfds('msix', 0, this.irqFds);

    this.pci = {
      vendorId: cfg.readUInt16LE(0x00),
      deviceId: cfg.readUInt16LE(0x02),
      subsystemVendorId: cfg.readUInt16LE(0x2c),
      subsystemId: cfg.readUInt16LE(0x2e),
      classCode: cfg.readUInt32LE(0x08) >>> 8,
      revision: cfg[0x08],
      command,
      bar0Size: bar0.size,
      bar3Size: bar3.size,
      msix: {
        capOffset,
        tableSize: (ctrl & 0x7ff) + 1,
        tableBar: table & 7,
        tableOffset: table & ~7,
        pbaBar: pba & 7,
        pbaOffset: pba & ~7,
      },
      irqCount,
    };
    return this.pci;
  }

  private async cfgWrite16(offset: number, value: number): Promise<void> {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(value & 0xffff, 0);
    await this.client.regionWrite(PciRegion.CONFIG, offset, b);
  }

  /** Closes the eventfds. Guest RAM belongs to the caller. */
  close(): void {
    for (const fd of this.irqFds) fd.close();
    this.irqFds = [];
  }

  // ---------------------------------------------------------------------------------------------
  // Reset state

  /** iavf_check_reset_complete: VFGEN_RSTAT reads COMPLETED or VFACTIVE. Returns the state read. */
  async waitResetComplete(timeoutMs = 2000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rstat = (await this.rd32(IAVF.VFGEN_RSTAT)) & RSTAT_VFR_STATE_MASK;
      if (rstat === VFR_COMPLETED || rstat === VFR_VFACTIVE) return rstat;
      if (Date.now() > deadline) throw new Error(`VFGEN_RSTAT stayed ${rstat} for ${timeoutMs} ms`);
      await sleep(1);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Admin queue (iavf_adminq.c)

  /** ATQ next_to_use (the tail the driver last wrote). */
  get atqNextToUse(): number {
    return this.atqNtu;
  }
  /** ARQ next_to_clean. */
  get arqNextToClean(): number {
    return this.arqNtc;
  }
  /** Descriptor ring addresses and buffers, once initAdminQueue allocated them. */
  get adminQueueMemory() {
    return this.aqMem;
  }

  /**
   * iavf_init_adminq: the send queue (iavf_init_asq → iavf_config_asq_regs), then the receive queue
   * with its buffers posted (iavf_init_arq → iavf_alloc_arq_bufs, iavf_config_arq_regs), each checked
   * by reading BAL back.
   */
  async initAdminQueue(): Promise<void> {
    const n = this.aqEntries;
    if (!this.aqMem) {
      this.aqMem = {
        atqRing: this.ram.alloc(n * AQ_DESC.SIZE),
        arqRing: this.ram.alloc(n * AQ_DESC.SIZE),
        atqBufs: this.ram.alloc(n * this.aqBufSize),
        arqBufs: this.ram.alloc(n * this.aqBufSize),
      };
    }
    const m = this.aqMem;
    this.ram.fill(m.atqRing, n * AQ_DESC.SIZE);
    this.ram.fill(m.arqRing, n * AQ_DESC.SIZE);
    this.atqNtu = 0;
    this.arqNtc = 0;
    this.historyAtAqInit = this.history.length;

    await this.wr32(IAVF.VF_ATQH1, 0);
    await this.wr32(IAVF.VF_ATQT1, 0);
    await this.wr32(IAVF.VF_ATQLEN1, n | AQLEN_ENABLE);
    await this.wr32(IAVF.VF_ATQBAL1, lo32(m.atqRing));
    await this.wr32(IAVF.VF_ATQBAH1, hi32(m.atqRing));
    if ((await this.rd32(IAVF.VF_ATQBAL1)) !== lo32(m.atqRing))
      throw new Error('iavf_config_asq_regs: ATQBAL did not read back (IAVF_ERR_ADMIN_QUEUE_ERROR)');

    for (let i = 0; i < n; i++) this.armArqDesc(i);
    await this.wr32(IAVF.VF_ARQH1, 0);
    await this.wr32(IAVF.VF_ARQT1, 0);
    await this.wr32(IAVF.VF_ARQLEN1, n | AQLEN_ENABLE);
    await this.wr32(IAVF.VF_ARQBAL1, lo32(m.arqRing));
    await this.wr32(IAVF.VF_ARQBAH1, hi32(m.arqRing));
    await this.wr32(IAVF.VF_ARQT1, n - 1);
    if ((await this.rd32(IAVF.VF_ARQBAL1)) !== lo32(m.arqRing))
      throw new Error('iavf_config_arq_regs: ARQBAL did not read back (IAVF_ERR_ADMIN_QUEUE_ERROR)');
    this.aqUp = true;
  }

  /**
   * iavf_shutdown_adminq: queue_shutdown (0x0003, direct, synchronous, driver_unloading) if ATQLEN.ENABLE
   * still reads 1, then zero H, T, LEN, BAL, BAH of both queues. Returns the 0x0003 completion, if sent.
   */
  async shutdownAdminQueue(): Promise<AtqCompletion | undefined> {
    let done: AtqCompletion | undefined;
    if (this.aqUp && (await this.rd32(IAVF.VF_ATQLEN1)) & AQLEN_ENABLE) {
      done = await this.submit({
        flags: AQ_FLAG.SI,
        opcode: AQC_OPC_QUEUE_SHUTDOWN,
        param0: AQ_DRIVER_UNLOADING,
      });
    }
    for (const [h, t, len, bal, bah] of [
      [IAVF.VF_ATQH1, IAVF.VF_ATQT1, IAVF.VF_ATQLEN1, IAVF.VF_ATQBAL1, IAVF.VF_ATQBAH1],
      [IAVF.VF_ARQH1, IAVF.VF_ARQT1, IAVF.VF_ARQLEN1, IAVF.VF_ARQBAL1, IAVF.VF_ARQBAH1],
    ]) {
      await this.wr32(h, 0);
      await this.wr32(t, 0);
      await this.wr32(len, 0);
      await this.wr32(bal, 0);
      await this.wr32(bah, 0);
    }
    this.aqUp = false;
    return done;
  }

  /** iavf_aq_send_msg_to_pf: a virtchnl message on the ATQ; waits until ATQH passes it unless told not to. */
  sendToPf(
    op: number,
    msg: Uint8Array = Buffer.alloc(0),
    opts: { wait?: boolean } = {},
  ): Promise<AtqCompletion> {
    let flags: number = AQ_FLAG.SI;
    if (msg.length) {
      flags |= AQ_FLAG.BUF | AQ_FLAG.RD;
      if (msg.length > AQ_LARGE_BUF) flags |= AQ_FLAG.LB;
    }
    return this.submit(
      { flags, opcode: AQC_OPC_SEND_MSG_TO_PF, cookieHigh: op, datalen: msg.length },
      msg,
      opts,
    );
  }

  /**
   * A send_msg_to_pf descriptor with any fields overridden (datalen, addr, flags, opcode): for malformed
   * messages. The bytes still go into the slot's buffer.
   */
  sendRaw(
    op: number,
    bytes: Uint8Array,
    desc: Partial<AqDescFields> = {},
    opts: { wait?: boolean } = {},
  ): Promise<AtqCompletion> {
    let flags: number = AQ_FLAG.SI;
    if (bytes.length) flags |= AQ_FLAG.BUF | AQ_FLAG.RD | (bytes.length > AQ_LARGE_BUF ? AQ_FLAG.LB : 0);
    return this.submit(
      { flags, opcode: AQC_OPC_SEND_MSG_TO_PF, cookieHigh: op, datalen: bytes.length, ...desc },
      bytes,
      opts,
    );
  }

  /**
   * iavf_asq_send_command: check the head, fill the descriptor at next_to_use (payload into the slot's
   * buffer), bump the tail, and (unless wait is false) wait for ATQH to reach it, returning the
   * descriptor as written back.
   */
  async submit(
    fields: AqDescFields,
    payload?: Uint8Array,
    opts: { wait?: boolean } = {},
  ): Promise<AtqCompletion> {
    const m = this.aqMem;
    if (!this.aqUp || !m) throw new Error('admin queue is not initialised');
    const n = this.aqEntries;
    const head = await this.rd32(IAVF.VF_ATQH1);
    if (head >= n) throw new Error(`ATQ head overrun: ATQH reads ${head}, the ring has ${n}`);
    if ((this.atqNtu + 1) % n === head) throw new Error('ATQ full');
    const data = payload ?? Buffer.alloc(0);
    if (data.length > this.aqBufSize)
      throw new RangeError(`${data.length} bytes: the ATQ buffers are ${this.aqBufSize}`);
    const slot = this.atqNtu;
    const buf = m.atqBufs + BigInt(slot * this.aqBufSize);
    if (data.length) this.ram.write(buf, data);
    const d = Buffer.alloc(AQ_DESC.SIZE);
    const addr = fields.addr ?? (data.length ? buf : 0n);
    d.writeUInt16LE(fields.flags & 0xffff, AQ_DESC.FLAGS);
    d.writeUInt16LE(fields.opcode & 0xffff, AQ_DESC.OPCODE);
    d.writeUInt16LE((fields.datalen ?? data.length) & 0xffff, AQ_DESC.DATALEN);
    d.writeUInt32LE((fields.cookieHigh ?? 0) >>> 0, AQ_DESC.COOKIE_HIGH);
    d.writeUInt32LE((fields.cookieLow ?? 0) >>> 0, AQ_DESC.COOKIE_LOW);
    d.writeUInt32LE((fields.param0 ?? 0) >>> 0, AQ_DESC.PARAM0);
    d.writeUInt32LE((fields.param1 ?? 0) >>> 0, AQ_DESC.PARAM1);
    d.writeUInt32LE(hi32(addr), AQ_DESC.ADDR_HIGH);
    d.writeUInt32LE(lo32(addr), AQ_DESC.ADDR_LOW);
    const at = m.atqRing + BigInt(slot * AQ_DESC.SIZE);
    this.ram.write(at, d);
    this.atqNtu = (slot + 1) % n;
    await this.wr32(IAVF.VF_ATQT1, this.atqNtu);
    if (opts.wait !== false) await this.waitAtqDone(this.atqNtu);
    return this.atqDesc(slot);
  }

  /**
   * iavf_asq_done: ATQH == next_to_use. Polls with a timeout; throws AdminQueueResetError if ATQLEN.ENABLE
   * drops meanwhile (the device reset the queue under the command).
   */
  async waitAtqDone(ntu = this.atqNtu, timeoutMs = this.atqTimeoutMs): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let polls = 0; ; polls++) {
      const head = await this.rd32(IAVF.VF_ATQH1);
      if (head === ntu) return;
      const late = Date.now() > deadline;
      if ((polls % 8 === 7 || late) && !((await this.rd32(IAVF.VF_ATQLEN1)) & AQLEN_ENABLE)) {
        throw new AdminQueueResetError(`the device disabled the ATQ (a reset) before ATQH reached ${ntu}`);
      }
      if (late) {
        throw new Error(
          `admin queue command never completed: ATQH ${head}, next_to_use ${ntu} after ${timeoutMs} ms`,
        );
      }
      await (polls < 20 ? new Promise((r) => setImmediate(r)) : sleep(1));
    }
  }

  /** The ATQ descriptor in a slot, as it is in guest memory now. */
  atqDesc(slot: number): AtqCompletion {
    const d = this.ram.read(this.aqMem!.atqRing + BigInt(slot * AQ_DESC.SIZE), AQ_DESC.SIZE);
    return {
      index: slot,
      flags: d.readUInt16LE(AQ_DESC.FLAGS),
      opcode: d.readUInt16LE(AQ_DESC.OPCODE),
      datalen: d.readUInt16LE(AQ_DESC.DATALEN),
      retval: d.readUInt16LE(AQ_DESC.RETVAL),
      cookieHigh: d.readUInt32LE(AQ_DESC.COOKIE_HIGH),
      cookieLow: d.readInt32LE(AQ_DESC.COOKIE_LOW),
    };
  }

  /** Re-posts ARQ descriptor i with its buffer (iavf_alloc_arq_bufs / the re-arm in clean_arq_element). */
  private armArqDesc(i: number): void {
    const m = this.aqMem!;
    const d = Buffer.alloc(AQ_DESC.SIZE);
    const buf = m.arqBufs + BigInt(i * this.aqBufSize);
    d.writeUInt16LE(AQ_FLAG.BUF | (this.aqBufSize > AQ_LARGE_BUF ? AQ_FLAG.LB : 0), AQ_DESC.FLAGS);
    d.writeUInt16LE(this.aqBufSize, AQ_DESC.DATALEN);
    d.writeUInt32LE(hi32(buf), AQ_DESC.ADDR_HIGH);
    d.writeUInt32LE(lo32(buf), AQ_DESC.ADDR_LOW);
    this.ram.write(m.arqRing + BigInt(i * AQ_DESC.SIZE), d);
  }

  /**
   * iavf_clean_arq_element, repeated while ARQH is ahead of next_to_clean: copy each message out,
   * re-arm its descriptor, write ARQT = the index just cleaned.
   */
  async cleanArq(): Promise<ArqMessage[]> {
    const m = this.aqMem;
    if (!this.aqUp || !m) return [];
    const out: ArqMessage[] = [];
    for (;;) {
      const ntu = (await this.rd32(IAVF.VF_ARQH1)) & AQ_HEAD_MASK;
      if (ntu === this.arqNtc || ntu >= this.aqEntries) break;
      const i = this.arqNtc;
      const d = this.ram.read(m.arqRing + BigInt(i * AQ_DESC.SIZE), AQ_DESC.SIZE);
      if (!(d.readUInt16LE(AQ_DESC.FLAGS) & AQ_FLAG.DD)) {
        // ARQH passed a descriptor the device never wrote back: unless the ARQ was just reset (ARQH
        // back to 0), the device advanced the head before the descriptor. Leave it; Linux stops on v_op 0.
        if ((await this.rd32(IAVF.VF_ARQLEN1)) & AQLEN_ENABLE) this.arqNotDone++;
        break;
      }
      const datalen = d.readUInt16LE(AQ_DESC.DATALEN);
      const len = Math.min(datalen, this.aqBufSize);
      const msg: ArqMessage = {
        index: i,
        flags: d.readUInt16LE(AQ_DESC.FLAGS),
        opcode: d.readUInt16LE(AQ_DESC.OPCODE),
        datalen,
        retval: d.readUInt16LE(AQ_DESC.RETVAL),
        op: d.readUInt32LE(AQ_DESC.COOKIE_HIGH),
        status: d.readInt32LE(AQ_DESC.COOKIE_LOW),
        payload: this.ram.read(m.arqBufs + BigInt(i * this.aqBufSize), len),
      };
      this.armArqDesc(i);
      await this.wr32(IAVF.VF_ARQT1, i);
      this.arqNtc = (i + 1) % this.aqEntries;
      out.push(msg);
      this.history.push(msg);
    }
    return out;
  }

  /**
   * What the end of iavf_adminq_task and the watchdog check: ARQLEN/ATQLEN error bits (logged and
   * cleared) and ARQLEN.ENABLE (0 means the device was reset under us).
   */
  async checkAdminQueueHealth(): Promise<void> {
    for (const [queue, reg] of [
      ['ARQ', IAVF.VF_ARQLEN1],
      ['ATQ', IAVF.VF_ATQLEN1],
    ] as const) {
      const val = await this.rd32(reg);
      if (val === 0xdeadbeef || val === 0xffffffff) {
        this.arqEnableLost++;
        return;
      }
      if (queue === 'ARQ' && !(val & AQLEN_ENABLE)) this.arqEnableLost++;
      if (val & AQLEN_ERRORS) {
        this.aqErrors.push({ queue, bits: (val & AQLEN_ERRORS) >>> 0 });
        await this.wr32(reg, val & ~AQLEN_ERRORS);
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Misc interrupt (iavf_msix_aq, iavf_misc_irq_enable/disable)

  /** iavf_misc_irq_enable: DYN_CTL01 = INTENA | ITR_INDX(3), ICR0_ENA1 = ADMINQ. */
  async miscIrqEnable(): Promise<void> {
    await this.wr32(IAVF.VFINT_DYN_CTL01, DYN_CTL_ENABLE);
    await this.wr32(IAVF.VFINT_ICR0_ENA1, ICR0_ADMINQ);
    await this.flush();
    this.miscArmed = true;
  }

  /** iavf_misc_irq_disable. */
  async miscIrqDisable(): Promise<void> {
    await this.wr32(IAVF.VFINT_DYN_CTL01, 0);
    await this.flush();
    this.miscArmed = false;
  }

  /** iavf_irq_enable_queues: DYN_CTLN1(v) = INTENA | ITR_INDX(3) for each queue vector. */
  async irqEnableQueues(): Promise<void> {
    for (let v = 0; v < this.numMsixVectors - 1; v++)
      await this.wr32(IAVF.VFINT_DYN_CTLN1(v), DYN_CTL_ENABLE);
  }

  /** iavf_irq_disable (queue vectors). */
  async irqDisableQueues(): Promise<void> {
    for (let v = 0; v < this.numMsixVectors - 1; v++) await this.wr32(IAVF.VFINT_DYN_CTLN1(v), 0);
  }

  /** iavf_msix_aq: the reads that clear the cause. */
  private async takeMiscIrq(): Promise<void> {
    this.miscIrqs++;
    this.miscArmed = false;
    await this.rd32(IAVF.VFINT_ICR01);
    await this.rd32(IAVF.VFINT_ICR0_ENA1);
  }

  private async waitMiscIrq(ms: number): Promise<boolean> {
    const fd = this.irqFds[0];
    if (!fd) {
      await sleep(Math.min(ms, 1));
      return false;
    }
    try {
      await fd.wait(ms);
      return true;
    } catch (err) {
      if ((err as { code?: string }).code === 'ETIMEDOUT') return false;
      throw err;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Receiving

  /**
   * Waits up to timeoutMs for PF messages and returns the ones on the ARQ (possibly none). In irqMode it
   * sleeps on the misc eventfd, handles the interrupt as iavf_msix_aq + adminq_task do (read ICR01,
   * clean, re-arm DYN_CTL01), and looks at ARQH anyway every 100 ms as the watchdog does (messages
   * found that way while armed count as polledMessages); otherwise it polls ARQH.
   */
  async receive(timeoutMs = this.replyTimeoutMs): Promise<ArqMessage[]> {
    const deadline = Date.now() + timeoutMs;
    let irq = this.irqMode && this.irqFds[0]?.read() != null;
    for (let polls = 0; ; polls++) {
      if (irq) await this.takeMiscIrq();
      const msgs = await this.cleanArq();
      // The interrupt follows the write-back, as an MSI follows the DMA before it: it may still be on
      // its way (emu's interrupt writer thread), so an armed vector gets a moment to deliver it.
      if (this.irqMode && !irq && msgs.length) {
        irq = this.irqFds[0]?.read() != null || (this.miscArmed && (await this.waitMiscIrq(IRQ_POLL_MS)));
        if (irq) await this.takeMiscIrq();
      }
      if (this.irqMode && !irq && msgs.length && this.miscArmed) this.polledMessages += msgs.length;
      if (irq) await this.miscIrqEnable();
      if (msgs.length) {
        await this.checkAdminQueueHealth();
        return msgs;
      }
      const left = deadline - Date.now();
      if (left <= 0) return [];
      if (this.irqMode) irq = await this.waitMiscIrq(Math.min(left, IRQ_POLL_MS));
      else await (polls < 20 ? new Promise((r) => setImmediate(r)) : sleep(1));
    }
  }

  /**
   * Receives until a message matching `match` arrives and returns it; the others go to the inbox.
   * With fromInbox, a matching message already in the inbox is taken first.
   */
  async waitFor(
    match: (m: ArqMessage) => boolean,
    what: string,
    opts: { timeoutMs?: number; fromInbox?: boolean } = {},
  ): Promise<ArqMessage> {
    if (opts.fromInbox) {
      const i = this.inbox.findIndex(match);
      if (i >= 0) return this.inbox.splice(i, 1)[0];
    }
    const timeoutMs = opts.timeoutMs ?? this.replyTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const msgs = await this.receive(Math.max(0, deadline - Date.now()));
      let found: ArqMessage | undefined;
      for (const m of msgs) {
        if (!found && match(m)) found = m;
        else this.inbox.push(m);
      }
      if (found) return found;
      if (Date.now() >= deadline) {
        const [atqh, arqh] = [await this.rd32(IAVF.VF_ATQH1), await this.rd32(IAVF.VF_ARQH1)];
        throw new Error(
          `no ${what} within ${timeoutMs} ms (ATQH ${atqh}, ATQ next_to_use ${this.atqNtu}, ARQH ${arqh}, ARQ next_to_clean ${this.arqNtc})`,
        );
      }
    }
  }

  /** Sends a message and waits for the reply with the same op (status and payload); others go to the inbox. */
  async request(
    op: number,
    msg: Uint8Array = Buffer.alloc(0),
    timeoutMs = this.replyTimeoutMs,
  ): Promise<ArqMessage> {
    const t0 = Date.now();
    await this.sendToPf(op, msg);
    const reply = await this.waitFor((m) => m.op === op, `reply to ${opName(op)}`, { timeoutMs });
    this.steps.push({ op, name: opName(op), status: reply.status, ms: Date.now() - t0 });
    return reply;
  }

  /** request() that throws VirtchnlError unless the status is SUCCESS. */
  async requestOk(op: number, msg?: Uint8Array): Promise<ArqMessage> {
    const reply = await this.request(op, msg);
    if (reply.status !== VIRTCHNL_STATUS.SUCCESS) throw new VirtchnlError(op, reply.status);
    return reply;
  }

  /** Takes (from the inbox, else from the ARQ) the next EVENT of the given kind. */
  async waitForEvent(event: number, timeoutMs = this.replyTimeoutMs): Promise<PfEvent> {
    const adv = ((this.vfRes?.vfCapFlags ?? 0) & VF_CAP.ADV_LINK_SPEED) !== 0;
    const m = await this.waitFor(
      (x) => x.op === VIRTCHNL_OP.EVENT && x.payload.length >= 4 && x.payload.readInt32LE(0) === event,
      `EVENT ${event}`,
      { timeoutMs, fromInbox: true },
    );
    return parsePfEvent(m.payload, adv);
  }

  /** Removes and returns the EVENT messages in the inbox, parsed. */
  takeEvents(): PfEvent[] {
    const adv = ((this.vfRes?.vfCapFlags ?? 0) & VF_CAP.ADV_LINK_SPEED) !== 0;
    const events = this.inbox.filter((m) => m.op === VIRTCHNL_OP.EVENT);
    this.inbox = this.inbox.filter((m) => m.op !== VIRTCHNL_OP.EVENT);
    return events.map((m) => parsePfEvent(m.payload, adv));
  }

  /** Receives for `ms` and returns everything that came (into nothing: not the inbox). */
  async drain(ms: number): Promise<ArqMessage[]> {
    const out: ArqMessage[] = [];
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) out.push(...(await this.receive(Math.max(1, deadline - Date.now()))));
    return out;
  }

  // ---------------------------------------------------------------------------------------------
  // virtchnl (iavf_virtchnl.c)

  get vsiId(): number {
    return this.vsiRes?.vsiId ?? 0;
  }

  /** iavf_send_api_ver + iavf_verify_api_ver: 1.1, and a PF newer than that is an error. */
  async sendApiVersion(): Promise<{ major: number; minor: number }> {
    const reply = await this.requestOk(VIRTCHNL_OP.VERSION, versionMsg(1, 1));
    if (reply.payload.length < 8) throw new Error(`VERSION reply of ${reply.payload.length} bytes`);
    const v = { major: reply.payload.readUInt32LE(0), minor: reply.payload.readUInt32LE(4) };
    if (v.major > 1 || (v.major === 1 && v.minor > 1))
      throw new Error(`PF API ${v.major}.${v.minor} is newer than 1.1`);
    this.pfVersion = v;
    return v;
  }

  /**
   * iavf_send_vf_config_msg + iavf_get_vf_config + iavf_vf_parse_hw_config: the capability bitmap (none
   * for a 1.0 PF), then the VSI of type SRIOV, the MAC, queue and vector counts.
   */
  async getVfResources(caps = LINUX_6_12_CAPS): Promise<VfResource> {
    const v11 = !this.pfVersion || this.pfVersion.minor >= 1;
    const reply = await this.requestOk(
      VIRTCHNL_OP.GET_VF_RESOURCES,
      v11 ? vfResourcesRequest(caps) : Buffer.alloc(0),
    );
    const res = parseVfResource(reply.payload);
    if (!res.lanVsi) throw new Error('No LAN VSI found');
    this.vfRes = res;
    this.vsiRes = res.lanVsi;
    this.mac = res.lanVsi.defaultMac;
    // iavf_alloc_queues / iavf_set_interrupt_capability (CPU count not modelled).
    this.numActiveQueues = Math.min(res.lanVsi.numQueuePairs, 16);
    this.numMsixVectors = Math.min(this.numActiveQueues + 1, res.maxVectors);
    if (this.numMsixVectors < 2) throw new Error(`max_vectors ${res.maxVectors}: iavf needs at least 2`);
    return res;
  }

  /** DPDK's iavf_get_supported_rxdid: a 0-byte request, a u64 bitmap of RXDIDs back. */
  async getSupportedRxdids(): Promise<bigint> {
    const reply = await this.requestOk(VIRTCHNL_OP.GET_SUPPORTED_RXDIDS, Buffer.alloc(0));
    if (reply.payload.length !== 8)
      throw new Error(`supported RXDIDs of ${reply.payload.length} bytes, not 8`);
    this.supportedRxdids = reply.payload.readBigUInt64LE(0);
    return this.supportedRxdids;
  }

  /** Whether the PF granted RX_FLEX_DESC: then rxq_info.rxdid picks the RX descriptor format. */
  get rxFlexGranted(): boolean {
    return ((this.vfRes?.vfCapFlags ?? 0) & VF_CAP.RX_FLEX_DESC) !== 0;
  }

  /** The rxdid field of rxq_info. */
  get rxdid(): number {
    return this.rxFlexGranted ? this.rxdidOption : 0;
  }

  /** Bytes per RX descriptor: 16 for LEGACY_0 when the PF granted RX_FLEX_DESC, else 32. */
  get rxDescSize(): number {
    return this.rxFlexGranted && this.rxdidOption === VIRTCHNL_RXDID.LEGACY_0
      ? IAVF_RX_DESC_SIZE_16
      : IAVF_RX_DESC_SIZE;
  }

  /** iavf_map_queues: CONFIG_IRQ_MAP, one entry per queue vector, then vector 0. */
  async mapQueues(): Promise<ArqMessage> {
    const maps = linuxVectorMaps(this.numActiveQueues, this.numMsixVectors - 1);
    const reply = await this.requestOk(VIRTCHNL_OP.CONFIG_IRQ_MAP, irqMapMsg(this.vsiId, maps));
    this.vectorMaps = maps;
    return reply;
  }

  /** iavf_add_ether_addrs: the primary MAC by default. */
  async addEthAddr(addrs: EtherAddr[] = [{ mac: this.mac, type: VIRTCHNL_ETHER_ADDR_PRIMARY }]) {
    return this.requestOk(VIRTCHNL_OP.ADD_ETH_ADDR, etherAddrListMsg(this.vsiId, addrs));
  }

  /** iavf_del_ether_addrs. */
  async delEthAddr(addrs: EtherAddr[] = [{ mac: this.mac, type: VIRTCHNL_ETHER_ADDR_PRIMARY }]) {
    return this.requestOk(VIRTCHNL_OP.DEL_ETH_ADDR, etherAddrListMsg(this.vsiId, addrs));
  }

  /** iavf_set_rss_key: a random key of rss_key_size (netdev_rss_key_fill). */
  async setRssKey(key: Buffer = randomBytes(this.vfRes?.rssKeySize ?? 52)): Promise<ArqMessage> {
    this.rssKey = key;
    return this.requestOk(VIRTCHNL_OP.CONFIG_RSS_KEY, rssKeyLutMsg(this.vsiId, key));
  }

  /** iavf_set_rss_lut: ethtool_rxfh_indir_default, i % active queues. */
  async setRssLut(lut?: Buffer): Promise<ArqMessage> {
    const size = this.vfRes?.rssLutSize ?? 64;
    this.rssLut =
      lut ?? Buffer.from(Array.from({ length: size }, (_, i) => i % Math.max(1, this.numActiveQueues)));
    return this.requestOk(VIRTCHNL_OP.CONFIG_RSS_LUT, rssKeyLutMsg(this.vsiId, this.rssLut));
  }

  /** rx_buf_len as libeth computes it for the MTU: ALIGN(mtu + 26, 128). */
  get rxBufLen(): number {
    return this.rxBufLenOption ?? ALIGN(this.mtu + LIBETH_RX_LL_LEN, 128);
  }

  /** max_pkt_size: min_not_zero(vf_res->max_mtu, LIBIE_MAX_RX_FRM_LEN). */
  get maxFrame(): number {
    const m = this.vfRes?.maxMtu ?? 0;
    return m ? Math.min(m, LIBIE_MAX_RX_FRM_LEN) : LIBIE_MAX_RX_FRM_LEN;
  }

  /**
   * Rings for the active queues (iavf_setup_all_tx/rx_resources: 4 KiB-aligned, count × 16 / × 32
   * bytes), RX buffers posted and QRX_TAIL = count - 1 written (iavf_alloc_rx_buffers), as
   * iavf_configure does before it queues CONFIGURE_QUEUES. Allocations are kept across resets.
   */
  async setupRings(): Promise<RingSet[]> {
    const bufferSize = this.rxBufLen;
    for (let q = 0; q < this.numActiveQueues; q++) {
      let r = this.rings[q];
      if (!r || r.bufferSize < bufferSize) {
        r = {
          tx: this.ram.alloc(this.ringLen * IAVF_TX_DESC_SIZE),
          rx: this.ram.alloc(this.ringLen * IAVF_RX_DESC_SIZE),
          rxBuffers: this.ram.alloc(this.ringLen * bufferSize),
          bufferSize,
        };
        this.rings[q] = r;
      }
      this.ram.fill(r.tx, this.ringLen * IAVF_TX_DESC_SIZE);
      this.ram.fill(r.rx, this.ringLen * IAVF_RX_DESC_SIZE);
      // The rings start empty: next_to_use = next_to_clean = 0 (iavf_configure_tx/rx_ring).
      this.txState[q] = { ntu: 0, ntc: 0, pending: [], arena: this.txState[q]?.arena };
      const arena = this.txState[q].arena;
      if (arena) Object.assign(arena, { head: 0, free: arena.size });
      this.rxState[q] = { ntu: 0, ntc: 0, partial: [] };
      if (this.postRxBuffers) await this.refillRx(q);
    }
    return this.rings.slice(0, this.numActiveQueues);
  }

  /** The queue pairs iavf_configure_queues describes. */
  queuePairInfo(): QueuePairInfo[] {
    return this.rings.slice(0, this.numActiveQueues).map((r, q) => ({
      txq: { queueId: q, ringLen: this.ringLen, dmaRingAddr: r.tx },
      rxq: {
        queueId: q,
        ringLen: this.ringLen,
        databufferSize: r.bufferSize,
        maxPktSize: this.maxFrame,
        rxdid: this.rxdid,
        dmaRingAddr: r.rx,
      },
    }));
  }

  /** iavf_configure + iavf_configure_queues: rings and tails, then CONFIG_VSI_QUEUES. */
  async configureQueues(): Promise<ArqMessage> {
    await this.setupRings();
    return this.requestOk(VIRTCHNL_OP.CONFIG_VSI_QUEUES, vsiQueueConfigMsg(this.vsiId, this.queuePairInfo()));
  }

  /** Bitmap of the active queues. */
  get allQueues(): number {
    return (2 ** this.numActiveQueues - 1) >>> 0;
  }

  /** iavf_enable_queues, then what its reply does: iavf_irq_enable (queue vectors). */
  async enableQueues(rx = this.allQueues, tx = this.allQueues): Promise<ArqMessage> {
    const reply = await this.requestOk(VIRTCHNL_OP.ENABLE_QUEUES, queueSelectMsg(this.vsiId, rx, tx));
    await this.irqEnableQueues();
    return reply;
  }

  /** iavf_down's irq disable, then iavf_disable_queues. */
  async disableQueues(rx = this.allQueues, tx = this.allQueues): Promise<ArqMessage> {
    await this.irqDisableQueues();
    return this.requestOk(VIRTCHNL_OP.DISABLE_QUEUES, queueSelectMsg(this.vsiId, rx, tx));
  }

  /**
   * One queue stopped and started again under traffic, as DPDK's iavf PMD does for `port 0 rxq 1 stop`
   * / `start` (iavf_dev_rx_queue_stop/start, and the TX twins): DISABLE_QUEUES naming that queue alone,
   * its ring cleared and its software state back to descriptor 0 (RX buffers posted again, QRX_TAIL
   * written), then ENABLE_QUEUES naming it alone. Nothing else is sent: the device must restart that
   * queue from descriptor 0 and leave every other queue where it is.
   */
  async restartQueue(
    q: number,
    which: { rx?: boolean; tx?: boolean } = { rx: true, tx: true },
  ): Promise<void> {
    const bit = (1 << q) >>> 0;
    const rx = which.rx ? bit : 0;
    const tx = which.tx ? bit : 0;
    await this.requestOk(VIRTCHNL_OP.DISABLE_QUEUES, queueSelectMsg(this.vsiId, rx, tx));
    const ring = this.rings[q];
    if (which.tx) {
      this.ram.fill(ring.tx, this.ringLen * IAVF_TX_DESC_SIZE);
      this.txState[q] = { ntu: 0, ntc: 0, pending: [], arena: this.txState[q]?.arena };
      const arena = this.txState[q].arena;
      if (arena) Object.assign(arena, { head: 0, free: arena.size });
    }
    if (which.rx) {
      this.ram.fill(ring.rx, this.ringLen * IAVF_RX_DESC_SIZE);
      this.rxState[q] = { ntu: 0, ntc: 0, partial: [] };
      if (this.postRxBuffers) await this.refillRx(q);
    }
    await this.requestOk(VIRTCHNL_OP.ENABLE_QUEUES, queueSelectMsg(this.vsiId, rx, tx));
  }

  /** Whether the PF granted VLAN V2 (which then takes the place of v1). */
  get vlanV2Granted(): boolean {
    return ((this.vfRes?.vfCapFlags ?? 0) & VF_CAP.VLAN_V2) !== 0;
  }

  /** iavf_send_vf_offload_vlan_v2_msg + iavf_get_vf_vlan_v2_caps. */
  async getOffloadVlanV2Caps(): Promise<VlanV2Caps> {
    const reply = await this.requestOk(VIRTCHNL_OP.GET_OFFLOAD_VLAN_V2_CAPS);
    this.vlanV2Caps = parseVlanV2Caps(reply.payload);
    return this.vlanV2Caps;
  }

  /** iavf_add_vlans: ADD_VLAN_V2 with VLAN V2 (outer if the caps filter there, else inner), else ADD_VLAN. */
  async addVlans(ids: readonly number[]): Promise<ArqMessage> {
    if (!this.vlanV2Granted) return this.requestOk(VIRTCHNL_OP.ADD_VLAN, vlanFilterListMsg(this.vsiId, ids));
    return this.requestOk(
      VIRTCHNL_OP.ADD_VLAN_V2,
      vlanFilterListV2Msg(this.vsiId, ids, this.vlanFilterWhere()),
    );
  }

  /** iavf_del_vlans. */
  async delVlans(ids: readonly number[]): Promise<ArqMessage> {
    if (!this.vlanV2Granted) return this.requestOk(VIRTCHNL_OP.DEL_VLAN, vlanFilterListMsg(this.vsiId, ids));
    return this.requestOk(
      VIRTCHNL_OP.DEL_VLAN_V2,
      vlanFilterListV2Msg(this.vsiId, ids, this.vlanFilterWhere()),
    );
  }

  private vlanFilterWhere(): 'inner' | 'outer' {
    return this.vlanV2Caps?.filteringOuter ? 'outer' : 'inner';
  }

  /** Stripping on or off: ENABLE/DISABLE_VLAN_STRIPPING_V2 with V2, else the v1 ops. */
  async setVlanStripping(on: boolean): Promise<ArqMessage> {
    if (!this.vlanV2Granted) {
      return this.requestOk(on ? VIRTCHNL_OP.ENABLE_VLAN_STRIPPING : VIRTCHNL_OP.DISABLE_VLAN_STRIPPING);
    }
    const op = on ? VIRTCHNL_OP.ENABLE_VLAN_STRIPPING_V2 : VIRTCHNL_OP.DISABLE_VLAN_STRIPPING_V2;
    return this.requestOk(op, this.vlanSetting(this.vlanV2Caps?.strippingOuter ?? 0));
  }

  /** ENABLE/DISABLE_VLAN_INSERTION_V2 (v1 has no message: the driver just sets IL2TAG1). */
  async setVlanInsertion(on: boolean): Promise<ArqMessage> {
    const op = on ? VIRTCHNL_OP.ENABLE_VLAN_INSERTION_V2 : VIRTCHNL_OP.DISABLE_VLAN_INSERTION_V2;
    return this.requestOk(op, this.vlanSetting(this.vlanV2Caps?.insertionOuter ?? 0));
  }

  /** iavf_set_vc_offload_ethertype for 802.1Q: outer when the outer caps toggle it, else inner. */
  private vlanSetting(outerCaps: number): Buffer {
    const { ETHERTYPE_8100, TOGGLE } = VLAN_SUPPORT;
    const outer = (outerCaps & ETHERTYPE_8100) !== 0 && (outerCaps & TOGGLE) !== 0;
    return vlanSettingMsg(this.vsiId, outer ? { outer: ETHERTYPE_8100 } : { inner: ETHERTYPE_8100 });
  }

  /** iavf_set_promiscuous. */
  async setPromisc(flags: number): Promise<ArqMessage> {
    return this.requestOk(VIRTCHNL_OP.CONFIG_PROMISCUOUS_MODE, promiscMsg(this.vsiId, flags));
  }

  /** iavf_request_stats: a queue_select with only vsi_id set; the reply is virtchnl_eth_stats. */
  async getStats(): Promise<EthStats> {
    const reply = await this.requestOk(VIRTCHNL_OP.GET_STATS, queueSelectMsg(this.vsiId));
    return parseEthStats(reply.payload);
  }

  /**
   * iavf_request_queues: the reply says how many the PF can give; a PF that grants them then resets the
   * VF. Waits for the reply or for the reset (ARQLEN.ENABLE 0), whichever comes first, and reports both.
   */
  async requestQueues(
    numQueuePairs: number,
    timeoutMs = this.replyTimeoutMs,
  ): Promise<{ reply?: ArqMessage; granted?: number; resetFirst: boolean }> {
    const t0 = Date.now();
    await this.sendToPf(VIRTCHNL_OP.REQUEST_QUEUES, vfResRequestMsg(numQueuePairs), { wait: false });
    const deadline = t0 + timeoutMs;
    for (;;) {
      // Only what is on the ARQ before it goes: a reset makes ARQH 0 and the rest is gone.
      if (!((await this.rd32(IAVF.VF_ARQLEN1)) & AQLEN_ENABLE)) return { resetFirst: true };
      for (const m of await this.receive(Math.min(20, Math.max(0, deadline - Date.now())))) {
        if (m.op !== VIRTCHNL_OP.REQUEST_QUEUES) {
          this.inbox.push(m);
          continue;
        }
        this.steps.push({ op: m.op, name: opName(m.op), status: m.status, ms: Date.now() - t0 });
        const granted = m.payload.length >= 2 ? m.payload.readUInt16LE(0) : undefined;
        return { reply: m, granted, resetFirst: false };
      }
      if (Date.now() > deadline)
        throw new Error(`no REQUEST_QUEUES reply and no reset within ${timeoutMs} ms`);
    }
  }

  /**
   * A VF reset as iavf_reset_task sees it, after iavf_request_reset (RESET_VF, no reply; or, with
   * send = false, one the PF started): ARQLEN.ENABLE drops to 0, VFGEN_RSTAT reaches VFACTIVE, the admin
   * queue is torn down and re-initialised, and GET_VF_RESOURCES is asked again (Linux does not repeat
   * VERSION after a reset). The misc interrupt is re-enabled afterwards.
   */
  async resetVf(opts: { send?: boolean; caps?: number; timeoutMs?: number } = {}): Promise<ResetReport> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    const irqMode = this.irqMode;
    this.irqMode = false;
    if (opts.send !== false) await this.sendToPf(VIRTCHNL_OP.RESET_VF, Buffer.alloc(0), { wait: false });
    // IAVF_RESET_WAIT_DETECTED_COUNT: 500 × 5-10 ms; "Never saw reset" is not fatal.
    let detected = false;
    const detectDeadline = Date.now() + Math.min(timeoutMs, 2500);
    while (Date.now() < detectDeadline) {
      if (!((await this.rd32(IAVF.VF_ARQLEN1)) & AQLEN_ENABLE)) {
        detected = true;
        break;
      }
      await sleep(1);
    }
    const rstatSeen: number[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rstat = (await this.rd32(IAVF.VFGEN_RSTAT)) & RSTAT_VFR_STATE_MASK;
      if (rstatSeen[rstatSeen.length - 1] !== rstat) rstatSeen.push(rstat);
      if (rstat === VFR_VFACTIVE) break;
      if (Date.now() > deadline)
        throw new Error(`Reset never finished: VFGEN_RSTAT ${rstat} after ${timeoutMs} ms`);
      await sleep(1);
    }
    // pci_set_master + pci_restore_msi_state: config space is not touched by a VF reset, so a no-op here.
    await this.miscIrqDisable();
    await this.irqDisableQueues();
    await this.shutdownAdminQueue();
    await this.initAdminQueue();
    this.inbox = [];
    const resources = await this.getVfResources(opts.caps ?? LINUX_6_12_CAPS);
    // iavf_reset_task asks for the V2 caps again (IAVF_FLAG_AQ_GET_OFFLOAD_VLAN_V2_CAPS), but sends no
    // stripping or insertion message: those go out at init only.
    if (this.vlanV2Granted) await this.getOffloadVlanV2Caps();
    if (irqMode) {
      await this.miscIrqEnable();
      this.irqMode = true;
    }
    return { detected, rstatSeen, resources };
  }

  // ---------------------------------------------------------------------------------------------
  // Data path (iavf_txrx.c)

  private txq(q: number): { ring: RingSet; st: TxQueueState } {
    const ring = this.rings[q];
    const st = this.txState[q];
    if (!ring || !st) throw new Error(`TX queue ${q} has no ring (setupRings first)`);
    return { ring, st };
  }

  private rxq(q: number): { ring: RingSet & { rxBuffers: bigint }; st: RxQueueState } {
    const ring = this.rings[q];
    const st = this.rxState[q];
    if (!ring || !st || ring.rxBuffers === undefined)
      throw new Error(`RX queue ${q} has no ring (setupRings first)`);
    return { ring: ring as RingSet & { rxBuffers: bigint }, st };
  }

  /** IAVF_DESC_UNUSED: free descriptors of a ring, one always kept empty. */
  private unused(ntc: number, ntu: number): number {
    return (ntc - ntu - 1 + this.ringLen) % this.ringLen;
  }

  /** TX next_to_use / next_to_clean and the packets in flight. */
  txRingState(q = 0): { ntu: number; ntc: number; inFlight: number } {
    const { st } = this.txq(q);
    return { ntu: st.ntu, ntc: st.ntc, inFlight: st.pending.length };
  }

  /** RX next_to_use (the tail) / next_to_clean (where the device writes next). */
  rxRingState(q = 0): { ntu: number; ntc: number } {
    const { st } = this.rxq(q);
    return { ntu: st.ntu, ntc: st.ntc };
  }

  /** Bytes from the queue's packet-buffer area, in FIFO order; `release` counts what completion gives back. */
  private txAlloc(q: number, size: number, charge: { release: number }): bigint {
    const { st } = this.txq(q);
    if (!st.arena) {
      const bytes = this.txBufferBytes;
      st.arena = { base: this.ram.alloc(bytes), size: bytes, head: 0, free: bytes };
    }
    const a = st.arena;
    if (a.head + size > a.size) {
      const waste = a.size - a.head;
      if (a.free < waste + size) throw new Error(`TX queue ${q}: packet buffers full (waitTxDone first)`);
      a.free -= waste;
      charge.release += waste;
      a.head = 0;
    }
    if (a.free < size) throw new Error(`TX queue ${q}: packet buffers full (waitTxDone first)`);
    const at = a.base + BigInt(a.head);
    a.head += size;
    a.free -= size;
    charge.release += size;
    return at;
  }

  /** A copy of `data` in guest RAM (never freed): for hand-made descriptors. */
  scratch(data: Uint8Array, align = 64): bigint {
    const at = this.ram.alloc(Math.max(1, data.length), align);
    if (data.length) this.ram.write(at, data);
    return at;
  }

  /**
   * iavf_xmit_frame_ring + iavf_tx_map: the frame into packet buffers, a context descriptor first for
   * TSO (iavf_tso: IPv4 tot_len and check zeroed, the length taken out of the TCP checksum seed),
   * data descriptors with ICRC (plus IIPT/L4T and MACLEN/IPLEN/L4LEN for offloads), EOP|RS on the last,
   * then QTX_TAIL = next_to_use unless kick is false.
   */
  async transmit(frame: Uint8Array, opts: TransmitOptions = {}): Promise<TxPosted> {
    const q = opts.queue ?? 0;
    const data = Buffer.from(frame);
    let cmd: number = TX_CMD.ICRC;
    let offset = 0;
    const descs: RawTxDesc[] = [];
    if (opts.csum || opts.tso) {
      const h = txHeaderLengths(data);
      if (h.ipv4) cmd |= opts.tso || opts.ipCsum ? TX_CMD.IIPT_IPV4_CSUM : TX_CMD.IIPT_IPV4;
      else cmd |= TX_CMD.IIPT_IPV6;
      if (h.proto === 6) cmd |= TX_CMD.L4T_TCP;
      else if (h.proto === 17) cmd |= TX_CMD.L4T_UDP;
      else if (h.proto === 132) cmd |= TX_CMD.L4T_SCTP;
      offset =
        ((h.macLen / 2) << TX_OFFSET.MACLEN_SHIFT) |
        ((h.ipLen / 4) << TX_OFFSET.IPLEN_SHIFT) |
        ((h.l4Len / 4) << TX_OFFSET.L4LEN_SHIFT);
      if (opts.tso) {
        if (h.proto !== 6) throw new Error('TSO of a non-TCP frame');
        const l3 = h.macLen;
        const l4 = l3 + h.ipLen;
        const hdrLen = l4 + h.l4Len;
        const pseudo = Buffer.alloc(h.ipv4 ? 12 : 40);
        if (h.ipv4) {
          data.copy(pseudo, 0, l3 + 12, l3 + 20);
          pseudo[9] = 6;
          data.writeUInt16BE(0, l3 + 2);
          data.writeUInt16BE(0, l3 + 10);
        } else {
          data.copy(pseudo, 0, l3 + 8, l3 + 40);
          pseudo[39] = 6;
          data.writeUInt16BE(0, l3 + 4);
        }
        // What the stack seeded (~csum_tcpudp_magic(..., len, ...)) minus paylen: the pseudo-header
        // sum without the length, not complemented.
        let seed = 0;
        for (let i = 0; i < pseudo.length; i += 2) seed += pseudo.readUInt16BE(i);
        while (seed > 0xffff) seed = (seed & 0xffff) + (seed >>> 16);
        data.writeUInt16BE(seed, l4 + 16);
        descs.push({ qw0: 0n, qw1: txContextQw1(TX_CTX.CMD_TSO, data.length - hdrLen, opts.tso.mss) });
      }
    }
    const sizes = opts.buffers ?? [];
    if (!opts.buffers) {
      for (let off = 0; off < data.length; off += IAVF_MAX_DATA_PER_TXD_ALIGNED)
        sizes.push(Math.min(IAVF_MAX_DATA_PER_TXD_ALIGNED, data.length - off));
    }
    if (sizes.reduce((a, b) => a + b, 0) !== data.length)
      throw new RangeError(`buffers [${sizes}] do not add up to the ${data.length}-byte frame`);
    if (sizes.some((n) => n <= 0 || n > TX_DESC.MAX_BUF_SZ)) throw new RangeError(`buffer sizes [${sizes}]`);
    if (sizes.length > IAVF_MAX_BUFFER_TXD)
      throw new RangeError(`${sizes.length} buffers: Linux uses at most ${IAVF_MAX_BUFFER_TXD} per packet`);
    const charge = { release: 0 };
    let off = 0;
    sizes.forEach((size, i) => {
      const at = this.txAlloc(q, size, charge);
      this.ram.write(at, data.subarray(off, off + size));
      off += size;
      const last = i === sizes.length - 1 ? TX_CMD.EOP | TX_CMD.RS : 0;
      // iavf_tx_map puts IL2TAG1 and the tag on every data descriptor of the packet.
      const tag = opts.vlan === undefined ? 0 : TX_CMD.IL2TAG1;
      descs.push({ qw0: at, qw1: txDataQw1(cmd | last | tag, size, offset, opts.vlan ?? 0) });
    });
    return this.postTx(q, descs, { kick: opts.kick, release: charge.release });
  }

  /**
   * Descriptors onto TX ring q at next_to_use, as given (for malformed ones), then QTX_TAIL unless kick
   * is false. Each data descriptor with RS becomes a completion waitTxDone waits for.
   */
  async postTx(
    q: number,
    descs: RawTxDesc[],
    opts: { kick?: boolean; release?: number } = {},
  ): Promise<TxPosted> {
    const { ring, st } = this.txq(q);
    if (descs.length > this.unused(st.ntc, st.ntu))
      throw new Error(`TX queue ${q}: ${descs.length} descriptors, ${this.unused(st.ntc, st.ntu)} free`);
    const first = st.ntu;
    let rs = -1;
    for (const d of descs) {
      const at = ring.tx + BigInt(st.ntu * IAVF_TX_DESC_SIZE);
      this.ram.setU64(at, d.qw0);
      this.ram.setU64(at + 8n, d.qw1);
      const next = (st.ntu + 1) % this.ringLen;
      const isData = (d.qw1 & TX_DESC.DTYPE_MASK) === BigInt(TX_DESC.DTYPE_DATA);
      if (isData && ((d.qw1 >> TX_DESC.CMD_SHIFT) & BigInt(TX_CMD.RS)) !== 0n) {
        st.pending.push({ rs: st.ntu, next, release: 0 });
        rs = st.ntu;
      }
      st.ntu = next;
    }
    const last = st.pending[st.pending.length - 1];
    if (last && opts.release) last.release += opts.release;
    if (opts.kick !== false) await this.wr32(IAVF.QTX_TAIL1(q), st.ntu);
    return { queue: q, first, rs, descriptors: descs.length };
  }

  /** TX ring q's next_to_use: where QTX_TAIL goes once what was posted is to go out. */
  txNextToUse(q = 0): number {
    return this.txq(q).st.ntu;
  }

  /** A raw QTX_TAIL write (the doorbell), e.g. beyond the ring. */
  async writeTxTail(q: number, value: number): Promise<void> {
    await this.wr32(IAVF.QTX_TAIL1(q), value);
  }

  /** iavf_clean_tx_irq: completed packets (DTYPE 0xF on their RS descriptor) off the ring, in order. */
  cleanTx(q = 0): number {
    const { ring, st } = this.txq(q);
    let n = 0;
    while (st.pending.length) {
      const p = st.pending[0];
      const qw1 = this.ram.u64(ring.tx + BigInt(p.rs * IAVF_TX_DESC_SIZE) + 8n);
      if ((qw1 & TX_DESC.DTYPE_MASK) !== BigInt(TX_DESC.DTYPE_DESC_DONE)) break;
      st.pending.shift();
      st.ntc = p.next;
      if (st.arena) st.arena.free += p.release;
      n++;
    }
    return n;
  }

  /** Waits until every packet posted on TX queue q is done; returns how many were cleaned. */
  async waitTxDone(q = 0, timeoutMs = 2000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let n = 0;
    for (let polls = 0; ; polls++) {
      n += this.cleanTx(q);
      const { st } = this.txq(q);
      if (!st.pending.length) return n;
      if (Date.now() > deadline) {
        throw new Error(
          `TX queue ${q}: descriptor ${st.pending[0].rs} not done after ${timeoutMs} ms (${st.pending.length} packets in flight, next_to_use ${st.ntu})`,
        );
      }
      await (polls < 20 ? new Promise((r) => setImmediate(r)) : sleep(1));
    }
  }

  /** Parses the RX write-back in slot i of queue q. */
  rxDescriptor(q: number, i: number): RxDescriptor {
    const { ring } = this.rxq(q);
    const at = ring.rx + BigInt(i * this.rxDescSize);
    const qw0 = this.ram.u64(at);
    const qw1 = this.ram.u64(at + 8n);
    return {
      index: i,
      qw0,
      qw1,
      dd: (qw1 & RX_WB.DD) !== 0n,
      eof: (qw1 & RX_WB.EOF) !== 0n,
      length: Number((qw1 >> RX_WB.LENGTH_PBUF_SHIFT) & RX_WB.LENGTH_PBUF_MASK),
      fltstat: Number((qw1 >> RX_WB.FLTSTAT_SHIFT) & 3n),
      errors: Number((qw1 >> RX_WB.ERROR_SHIFT) & 0xffn),
      ptype: Number((qw1 >> RX_WB.PTYPE_SHIFT) & 0xffn),
      hash: Number(qw0 >> 32n),
      l2tag1: qw1 & RX_WB.L2TAG1P ? Number((qw0 >> 16n) & 0xffffn) : undefined,
    };
  }

  /**
   * iavf_clean_rx_irq: write-backs with DD from next_to_clean on, buffers joined until EOF (a frame
   * whose EOF has not come yet is kept for the next call), frames with an error bit dropped (counted in
   * rxErrorFrames); then, unless refill is false, the buffers go back (refillRx).
   */
  async receiveFrames(q = 0, opts: { refill?: boolean } = {}): Promise<RxFrame[]> {
    const { ring, st } = this.rxq(q);
    const out: RxFrame[] = [];
    for (let cleaned = 0; cleaned < this.ringLen; cleaned++) {
      if (st.ntc === st.ntu) break; // not posted: the device cannot have written it
      const d = this.rxDescriptor(q, st.ntc);
      if (!d.dd) break;
      const buf = ring.rxBuffers + BigInt(st.ntc * ring.bufferSize);
      st.partial.push({ desc: d, data: this.ram.read(buf, Math.min(d.length, ring.bufferSize)) });
      st.ntc = (st.ntc + 1) % this.ringLen;
      if (!d.eof) continue;
      const parts = st.partial.splice(0);
      if (d.errors & RX_WB.ERROR_RXE) {
        this.rxErrorFrames[q] = (this.rxErrorFrames[q] ?? 0) + 1;
        continue;
      }
      out.push({
        queue: q,
        data: Buffer.concat(parts.map((p) => p.data)),
        descriptors: parts.map((p) => p.desc),
        hash: d.fltstat === RX_WB.FLTSTAT_RSS_HASH ? d.hash : undefined,
        ptype: d.ptype,
        checksum: rxChecksumVerdict(d),
        vlan: d.l2tag1,
      });
    }
    if (opts.refill !== false) await this.refillRx(q);
    return out;
  }

  /**
   * iavf_alloc_rx_buffers: pkt_addr of up to `count` (default: every free) descriptors from
   * next_to_use on, qword1 of the new next_to_use cleared, then QRX_TAIL = next_to_use.
   */
  async refillRx(q = 0, count?: number): Promise<number> {
    const { ring, st } = this.rxq(q);
    const n = Math.min(count ?? Number.POSITIVE_INFINITY, this.unused(st.ntc, st.ntu));
    if (n <= 0) return 0;
    for (let i = 0; i < n; i++) {
      this.ram.setU64(
        ring.rx + BigInt(st.ntu * this.rxDescSize),
        ring.rxBuffers + BigInt(st.ntu * ring.bufferSize),
      );
      st.ntu = (st.ntu + 1) % this.ringLen;
      this.ram.setU64(ring.rx + BigInt(st.ntu * this.rxDescSize) + 8n, 0n);
    }
    await this.wr32(IAVF.QRX_TAIL1(q), st.ntu);
    return n;
  }

  /** Overwrites pkt_addr of RX descriptor i (for malformed ones); the slot's own buffer by default. */
  setRxBuffer(q: number, i: number, addr?: bigint): void {
    const { ring } = this.rxq(q);
    this.ram.setU64(
      ring.rx + BigInt(i * this.rxDescSize),
      addr ?? ring.rxBuffers + BigInt(i * ring.bufferSize),
    );
  }

  /** A raw QRX_TAIL write, e.g. beyond the ring. */
  async writeRxTail(q: number, value: number): Promise<void> {
    await this.wr32(IAVF.QRX_TAIL1(q), value);
  }

  /** Receives on queue q until `count` frames came; throws after timeoutMs. */
  async waitFrames(q: number, count: number, timeoutMs = 2000): Promise<RxFrame[]> {
    return this.waitFramesOn([q], count, timeoutMs);
  }

  /** Receives on every active queue until `count` frames came in all; throws after timeoutMs. */
  async waitAnyFrames(count: number, timeoutMs = 2000): Promise<RxFrame[]> {
    return this.waitFramesOn(
      Array.from({ length: this.numActiveQueues }, (_, q) => q),
      count,
      timeoutMs,
    );
  }

  private async waitFramesOn(queues: number[], count: number, timeoutMs: number): Promise<RxFrame[]> {
    const deadline = Date.now() + timeoutMs;
    const out: RxFrame[] = [];
    for (let polls = 0; ; polls++) {
      for (const q of queues) out.push(...(await this.receiveFrames(q)));
      if (out.length >= count) return out;
      if (Date.now() > deadline) {
        throw new Error(
          `${out.length} frames on queues [${queues}] within ${timeoutMs} ms, ${count} awaited`,
        );
      }
      await (polls < 20 ? new Promise((r) => setImmediate(r)) : sleep(1));
    }
  }

  /** The MSI-X vector CONFIG_IRQ_MAP put queue q's RX (or TX) on. */
  queueVector(q: number, dir: 'rx' | 'tx' = 'rx'): number {
    const m = this.vectorMaps.find((v) => (dir === 'rx' ? v.rxqMap : v.txqMap) & (1 << q));
    if (!m) throw new Error(`no vector maps ${dir.toUpperCase()} queue ${q}`);
    return m.vectorId;
  }

  /** Interrupts of vector v since last asked (the eventfd counter, read and cleared); never waits. */
  takeIrqs(v: number): number {
    return Number(this.irqFds[v]?.read() ?? 0n);
  }

  /** Waits up to timeoutMs for vector v to fire; true if it did (the count is consumed). */
  async waitIrq(v: number, timeoutMs = 1000): Promise<boolean> {
    const fd = this.irqFds[v];
    if (!fd) throw new Error(`no eventfd for vector ${v}`);
    try {
      await fd.wait(timeoutMs);
      return true;
    } catch (err) {
      if ((err as { code?: string }).code === 'ETIMEDOUT') return false;
      throw err;
    }
  }

  /** Re-arms queue vector v as NAPI completion does: DYN_CTLN1(v - 1) = INTENA | ITR_INDX(3). */
  async armVector(v: number): Promise<void> {
    if (v < 1) throw new RangeError(`vector ${v} is not a queue vector`);
    await this.wr32(IAVF.VFINT_DYN_CTLN1(v - 1), DYN_CTL_ENABLE);
  }

  /**
   * iavf_enable_wb_on_itr, as iavf_napi_poll calls it when a poll ran out of budget with WB_ON_ITR
   * granted: DYN_CTLN1(v - 1) = WB_ON_ITR | ITR_INDX(3), the vector left unarmed while NAPI polls on.
   */
  async enableWbOnItr(v: number): Promise<void> {
    if (v < 1) throw new RangeError(`vector ${v} is not a queue vector`);
    await this.wr32(IAVF.VFINT_DYN_CTLN1(v - 1), DYN_CTL_WB_ON_ITR);
  }

  /**
   * One interrupt-driven NAPI round on vector v (iavf_msix_clean_rings → iavf_napi_poll): waits for the
   * interrupt, cleans the TX and RX queues mapped to it, re-arms. Returns what it found.
   */
  async napiPoll(
    v: number,
    timeoutMs = 1000,
  ): Promise<{ fired: boolean; txDone: number; frames: RxFrame[] }> {
    const fired = await this.waitIrq(v, timeoutMs);
    let txDone = 0;
    const frames: RxFrame[] = [];
    if (fired) {
      const map = this.vectorMaps.find((m) => m.vectorId === v);
      for (let q = 0; q < this.numActiveQueues; q++) {
        if (map && map.txqMap & (1 << q)) txDone += this.cleanTx(q);
        if (map && map.rxqMap & (1 << q)) frames.push(...(await this.receiveFrames(q)));
      }
      await this.armVector(v);
    }
    return { fired, txDone, frames };
  }

  // ---------------------------------------------------------------------------------------------
  // The bring-up, as the Linux state machine walks it

  /**
   * __IAVF_STARTUP → INIT_VERSION_CHECK → INIT_GET_RESOURCES → INIT_CONFIG_ADAPTER: reset complete, admin
   * queue, VERSION, GET_VF_RESOURCES (polled), then the misc interrupt is enabled and used from here on.
   */
  async init(caps = LINUX_6_12_CAPS): Promise<VfResource> {
    await this.waitResetComplete();
    await this.initAdminQueue();
    this.irqMode = false;
    await this.sendApiVersion();
    const res = await this.getVfResources(caps);
    // DPDK's iavf_init_vf asks which RX descriptor formats there are once RX_FLEX_DESC is granted.
    if (this.rxFlexGranted) await this.getSupportedRxdids();
    // __IAVF_INIT_EXTENDED_CAPS.
    if (this.vlanV2Granted) await this.getOffloadVlanV2Caps();
    await this.miscIrqEnable();
    this.irqMode = true;
    return res;
  }

  /** __IAVF_DOWN: MAP_VECTORS, ADD_MAC, and SET_RSS_KEY / SET_RSS_LUT when RSS_PF was granted. */
  async configureAdapter(): Promise<void> {
    await this.mapQueues();
    await this.addEthAddr();
    if ((this.vfRes?.vfCapFlags ?? 0) & VF_CAP.RSS_PF) {
      await this.setRssKey();
      await this.setRssLut();
    }
  }

  /**
   * iavf_init_config_adapter with VLAN V2: the initial offload state (iavf_set_vlan_offload_features with
   * CTAG_RX and CTAG_TX on), which the watchdog sends after RSS. Not again after a VF reset.
   */
  async initVlanOffloads(): Promise<void> {
    if (!this.vlanV2Granted) return;
    await this.setVlanStripping(true);
    await this.setVlanInsertion(true);
  }

  /** iavf_open: CONFIG_VSI_QUEUES (after rings and RX tails), ENABLE_QUEUES, then the link-up event. */
  async open(): Promise<PfEvent> {
    this.takeEvents();
    await this.configureQueues();
    await this.enableQueues();
    return this.waitForEvent(VIRTCHNL_EVENT_LINK_CHANGE);
  }

  /** iavf_close: DISABLE_QUEUES, DEL_ETH_ADDR. */
  async stop(): Promise<void> {
    await this.disableQueues();
    await this.delEthAddr();
  }

  /** probe (if not yet), init, configureAdapter, open, then PROMISC and GET_STATS. */
  async bringUp(opts: BringUpOptions = {}): Promise<BringUpResult> {
    if (!this.pci) await this.probe();
    const resources = await this.init(opts.caps);
    // Linux drops this one (it is not RUNNING yet); the PF must send it all the same.
    const initialLink = await this.waitForEvent(VIRTCHNL_EVENT_LINK_CHANGE);
    await this.configureAdapter();
    await this.initVlanOffloads();
    const link = await this.open();
    await this.setPromisc(opts.promisc ?? 0);
    const stats = await this.getStats();
    return { pfVersion: this.pfVersion!, resources, initialLink, link, stats, steps: [...this.steps] };
  }
}
