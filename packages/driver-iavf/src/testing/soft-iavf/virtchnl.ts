/**
 * virtchnl as iavf_virtchnl.c speaks it: one method per request over the PF mailbox, the replies parsed,
 * and what the VF learned from them (API version, VF resources, VLAN V2 caps, RSS key and LUT, vector
 * maps), which the rest of the driver reads.
 */
import { randomBytes } from 'node:crypto';
import {
  type EthStats,
  IAVF_RX_DESC_SIZE,
  IAVF_RX_DESC_SIZE_16,
  LIBIE_MAX_RX_FRM_LEN,
  LINUX_6_12_CAPS,
  type PfEvent,
  parseEthStats,
  parsePfEvent,
  parseVfResource,
  VF_CAP,
  type VfResource,
  VIRTCHNL_ETHER_ADDR_PRIMARY,
  VIRTCHNL_OP,
  VIRTCHNL_RXDID,
  VLAN_SUPPORT,
  type VsiResource,
} from '../iavf-defs.js';
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
} from '../virtchnl-msgs.js';
import type { AdminQueue, ArqMessage } from './adminq.js';
import type { PfMailbox } from './mailbox.js';

export interface VirtchnlOptions {
  /**
   * The RXDID CONFIG_VSI_QUEUES asks for when the PF granted RX_FLEX_DESC, as DPDK's iavf does: LEGACY_1
   * (32-byte descriptors, the default) or LEGACY_0 (16-byte, a DPDK built with
   * RTE_LIBRTE_IAVF_16BYTE_RX_DESC). Without the grant the field is sent as 0 and means nothing.
   */
  rxdid?: number;
}

export class Virtchnl {
  /** Answer of VERSION, GET_VF_RESOURCES, and what follows from them. */
  pfVersion?: { major: number; minor: number };
  vfRes?: VfResource;
  /** The GET_OFFLOAD_VLAN_V2_CAPS reply, with VLAN V2. */
  vlanV2Caps?: VlanV2Caps;
  vsiRes?: VsiResource;
  mac = '';
  numActiveQueues = 0;
  numMsixVectors = 0;
  rssKey?: Buffer;
  rssLut?: Buffer;
  /** The GET_SUPPORTED_RXDIDS answer (asked for only when RX_FLEX_DESC was granted). */
  supportedRxdids?: bigint;
  /** The vector maps CONFIG_IRQ_MAP sent (iavf_map_queues), vector 0 last. */
  vectorMaps: VectorMapEntry[] = [];
  private readonly rxdidOption: number;

  constructor(
    private readonly mbx: PfMailbox,
    private readonly aq: AdminQueue,
    options: VirtchnlOptions,
  ) {
    this.rxdidOption = options.rxdid ?? VIRTCHNL_RXDID.LEGACY_1;
  }

  get vsiId(): number {
    return this.vsiRes?.vsiId ?? 0;
  }

  /** Whether the PF granted a VF_CAP bit in GET_VF_RESOURCES. */
  granted(cap: number): boolean {
    return ((this.vfRes?.vfCapFlags ?? 0) & cap) !== 0;
  }

  /** iavf_send_api_ver + iavf_verify_api_ver: 1.1, and a PF newer than that is an error. */
  async sendApiVersion(): Promise<{ major: number; minor: number }> {
    const reply = await this.mbx.requestOk(VIRTCHNL_OP.VERSION, versionMsg(1, 1));
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
    const reply = await this.mbx.requestOk(
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
    const reply = await this.mbx.requestOk(VIRTCHNL_OP.GET_SUPPORTED_RXDIDS, Buffer.alloc(0));
    if (reply.payload.length !== 8)
      throw new Error(`supported RXDIDs of ${reply.payload.length} bytes, not 8`);
    this.supportedRxdids = reply.payload.readBigUInt64LE(0);
    return this.supportedRxdids;
  }

  /** Whether the PF granted RX_FLEX_DESC: then rxq_info.rxdid picks the RX descriptor format. */
  get rxFlexGranted(): boolean {
    return this.granted(VF_CAP.RX_FLEX_DESC);
  }

  /** The rxdid field of rxq_info. */
  get rxdid(): number {
    return this.rxFlexGranted ? this.rxdidOption : 0;
  }

  /** Bytes per RX descriptor: 16 for LEGACY_0 when the PF granted RX_FLEX_DESC, else 32. */
  get rxDescSize(): number {
    // Not `rxdid === LEGACY_0`: without the grant the field is sent as 0, which means nothing.
    return this.rxFlexGranted && this.rxdidOption === VIRTCHNL_RXDID.LEGACY_0
      ? IAVF_RX_DESC_SIZE_16
      : IAVF_RX_DESC_SIZE;
  }

  /** max_pkt_size: min_not_zero(vf_res->max_mtu, LIBIE_MAX_RX_FRM_LEN). */
  get maxFrame(): number {
    const m = this.vfRes?.maxMtu ?? 0;
    return m ? Math.min(m, LIBIE_MAX_RX_FRM_LEN) : LIBIE_MAX_RX_FRM_LEN;
  }

  /** Bitmap of the active queues. */
  get allQueues(): number {
    return (2 ** this.numActiveQueues - 1) >>> 0;
  }

  /** iavf_map_queues: CONFIG_IRQ_MAP, one entry per queue vector, then vector 0. */
  async mapQueues(): Promise<ArqMessage> {
    const maps = linuxVectorMaps(this.numActiveQueues, this.numMsixVectors - 1);
    const reply = await this.mbx.requestOk(VIRTCHNL_OP.CONFIG_IRQ_MAP, irqMapMsg(this.vsiId, maps));
    this.vectorMaps = maps;
    return reply;
  }

  /** iavf_add_ether_addrs: the primary MAC by default. */
  async addEthAddr(addrs: EtherAddr[] = [{ mac: this.mac, type: VIRTCHNL_ETHER_ADDR_PRIMARY }]) {
    return this.mbx.requestOk(VIRTCHNL_OP.ADD_ETH_ADDR, etherAddrListMsg(this.vsiId, addrs));
  }

  /** iavf_del_ether_addrs. */
  async delEthAddr(addrs: EtherAddr[] = [{ mac: this.mac, type: VIRTCHNL_ETHER_ADDR_PRIMARY }]) {
    return this.mbx.requestOk(VIRTCHNL_OP.DEL_ETH_ADDR, etherAddrListMsg(this.vsiId, addrs));
  }

  /** iavf_set_rss_key: a random key of rss_key_size (netdev_rss_key_fill). */
  async setRssKey(key: Buffer = randomBytes(this.vfRes?.rssKeySize ?? 52)): Promise<ArqMessage> {
    this.rssKey = key;
    return this.mbx.requestOk(VIRTCHNL_OP.CONFIG_RSS_KEY, rssKeyLutMsg(this.vsiId, key));
  }

  /** iavf_set_rss_lut: ethtool_rxfh_indir_default, i % active queues. */
  async setRssLut(lut?: Buffer): Promise<ArqMessage> {
    const size = this.vfRes?.rssLutSize ?? 64;
    this.rssLut =
      lut ?? Buffer.from(Array.from({ length: size }, (_, i) => i % Math.max(1, this.numActiveQueues)));
    return this.mbx.requestOk(VIRTCHNL_OP.CONFIG_RSS_LUT, rssKeyLutMsg(this.vsiId, this.rssLut));
  }

  /** iavf_configure_queues: CONFIG_VSI_QUEUES describing the queue pairs' rings. */
  async configVsiQueues(pairs: QueuePairInfo[]): Promise<ArqMessage> {
    return this.mbx.requestOk(VIRTCHNL_OP.CONFIG_VSI_QUEUES, vsiQueueConfigMsg(this.vsiId, pairs));
  }

  /** iavf_enable_queues: ENABLE_QUEUES naming the queues in the bitmaps. */
  async enableQueues(rx = this.allQueues, tx = this.allQueues): Promise<ArqMessage> {
    return this.mbx.requestOk(VIRTCHNL_OP.ENABLE_QUEUES, queueSelectMsg(this.vsiId, rx, tx));
  }

  /** iavf_disable_queues: DISABLE_QUEUES naming the queues in the bitmaps. */
  async disableQueues(rx = this.allQueues, tx = this.allQueues): Promise<ArqMessage> {
    return this.mbx.requestOk(VIRTCHNL_OP.DISABLE_QUEUES, queueSelectMsg(this.vsiId, rx, tx));
  }

  /** Whether the PF granted VLAN V2 (which then takes the place of v1). */
  get vlanV2Granted(): boolean {
    return this.granted(VF_CAP.VLAN_V2);
  }

  /** iavf_send_vf_offload_vlan_v2_msg + iavf_get_vf_vlan_v2_caps. */
  async getOffloadVlanV2Caps(): Promise<VlanV2Caps> {
    const reply = await this.mbx.requestOk(VIRTCHNL_OP.GET_OFFLOAD_VLAN_V2_CAPS);
    this.vlanV2Caps = parseVlanV2Caps(reply.payload);
    return this.vlanV2Caps;
  }

  /** iavf_add_vlans: ADD_VLAN_V2 with VLAN V2 (outer if the caps filter there, else inner), else ADD_VLAN. */
  async addVlans(ids: readonly number[]): Promise<ArqMessage> {
    return this.vlanFilters(VIRTCHNL_OP.ADD_VLAN, VIRTCHNL_OP.ADD_VLAN_V2, ids);
  }

  /** iavf_del_vlans. */
  async delVlans(ids: readonly number[]): Promise<ArqMessage> {
    return this.vlanFilters(VIRTCHNL_OP.DEL_VLAN, VIRTCHNL_OP.DEL_VLAN_V2, ids);
  }

  private vlanFilters(v1: number, v2: number, ids: readonly number[]): Promise<ArqMessage> {
    if (!this.vlanV2Granted) return this.mbx.requestOk(v1, vlanFilterListMsg(this.vsiId, ids));
    const where = this.vlanV2Caps?.filteringOuter ? 'outer' : 'inner';
    return this.mbx.requestOk(v2, vlanFilterListV2Msg(this.vsiId, ids, where));
  }

  /** Stripping on or off: ENABLE/DISABLE_VLAN_STRIPPING_V2 with V2, else the v1 ops. */
  async setVlanStripping(on: boolean): Promise<ArqMessage> {
    if (!this.vlanV2Granted) {
      return this.mbx.requestOk(on ? VIRTCHNL_OP.ENABLE_VLAN_STRIPPING : VIRTCHNL_OP.DISABLE_VLAN_STRIPPING);
    }
    const op = on ? VIRTCHNL_OP.ENABLE_VLAN_STRIPPING_V2 : VIRTCHNL_OP.DISABLE_VLAN_STRIPPING_V2;
    return this.mbx.requestOk(op, this.vlanSetting(this.vlanV2Caps?.strippingOuter ?? 0));
  }

  /** ENABLE/DISABLE_VLAN_INSERTION_V2 (v1 has no message: the driver just sets IL2TAG1). */
  async setVlanInsertion(on: boolean): Promise<ArqMessage> {
    const op = on ? VIRTCHNL_OP.ENABLE_VLAN_INSERTION_V2 : VIRTCHNL_OP.DISABLE_VLAN_INSERTION_V2;
    return this.mbx.requestOk(op, this.vlanSetting(this.vlanV2Caps?.insertionOuter ?? 0));
  }

  /** iavf_set_vc_offload_ethertype for 802.1Q: outer when the outer caps toggle it, else inner. */
  private vlanSetting(outerCaps: number): Buffer {
    const { ETHERTYPE_8100, TOGGLE } = VLAN_SUPPORT;
    const outer = (outerCaps & ETHERTYPE_8100) !== 0 && (outerCaps & TOGGLE) !== 0;
    return vlanSettingMsg(this.vsiId, outer ? { outer: ETHERTYPE_8100 } : { inner: ETHERTYPE_8100 });
  }

  /** iavf_set_promiscuous. */
  async setPromisc(flags: number): Promise<ArqMessage> {
    return this.mbx.requestOk(VIRTCHNL_OP.CONFIG_PROMISCUOUS_MODE, promiscMsg(this.vsiId, flags));
  }

  /** iavf_request_stats: a queue_select with only vsi_id set; the reply is virtchnl_eth_stats. */
  async getStats(): Promise<EthStats> {
    const reply = await this.mbx.requestOk(VIRTCHNL_OP.GET_STATS, queueSelectMsg(this.vsiId));
    return parseEthStats(reply.payload);
  }

  /**
   * iavf_request_queues: the reply says how many the PF can give; a PF that grants them then resets the
   * VF. Waits for the reply or for the reset (ARQLEN.ENABLE 0), whichever comes first, and reports both.
   */
  async requestQueues(
    numQueuePairs: number,
    timeoutMs = this.mbx.replyTimeoutMs,
  ): Promise<{ reply?: ArqMessage; granted?: number; resetFirst: boolean }> {
    const t0 = Date.now();
    await this.aq.sendToPf(VIRTCHNL_OP.REQUEST_QUEUES, vfResRequestMsg(numQueuePairs), { wait: false });
    const deadline = t0 + timeoutMs;
    for (;;) {
      // Only what is on the ARQ before it goes: a reset makes ARQH 0 and the rest is gone.
      if (!(await this.aq.arqEnabled())) return { resetFirst: true };
      for (const m of await this.mbx.receive(Math.min(20, Math.max(0, deadline - Date.now())))) {
        if (m.op !== VIRTCHNL_OP.REQUEST_QUEUES) {
          this.mbx.inbox.push(m);
          continue;
        }
        this.mbx.logStep(m, t0);
        const granted = m.payload.length >= 2 ? m.payload.readUInt16LE(0) : undefined;
        return { reply: m, granted, resetFirst: false };
      }
      if (Date.now() > deadline)
        throw new Error(`no REQUEST_QUEUES reply and no reset within ${timeoutMs} ms`);
    }
  }

  /** Takes (from the inbox, else from the ARQ) the next EVENT of the given kind. */
  async waitForEvent(event: number, timeoutMs = this.mbx.replyTimeoutMs): Promise<PfEvent> {
    const adv = this.granted(VF_CAP.ADV_LINK_SPEED);
    const m = await this.mbx.waitFor(
      (x) => x.op === VIRTCHNL_OP.EVENT && x.payload.length >= 4 && x.payload.readInt32LE(0) === event,
      `EVENT ${event}`,
      { timeoutMs, fromInbox: true },
    );
    return parsePfEvent(m.payload, adv);
  }

  /** Removes and returns the EVENT messages in the inbox, parsed. */
  takeEvents(): PfEvent[] {
    const adv = this.granted(VF_CAP.ADV_LINK_SPEED);
    const events = this.mbx.inbox.filter((m) => m.op === VIRTCHNL_OP.EVENT);
    this.mbx.inbox = this.mbx.inbox.filter((m) => m.op !== VIRTCHNL_OP.EVENT);
    return events.map((m) => parsePfEvent(m.payload, adv));
  }
}
