/**
 * The PF's side of virtchnl for one VF: what a real PF driver (i40e_virtchnl_pf.c, ice_virtchnl.c) does
 * with each message — validate it as a PF would, keep the VF's configuration, answer with a status —
 * as a table with one entry per op.
 */
import {
  DEFAULT_HENA,
  GRANTABLE_CAPS,
  LegacyLinkSpeed,
  PfEvent,
  RSS_KEY_SIZE,
  RSS_LUT_SIZE,
  RxDid,
  SUPPORTED_RXDIDS,
  VfCap,
  VirtchnlOp,
  VirtchnlStatus,
  VlanSupport,
  VSI_ID,
  VSI_TYPE_SRIOV,
  virtchnlOpName,
} from './constants.js';
import {
  ETHER_ADDR_SIZE,
  EtherAddrListHeader,
  EthStats,
  expectedLength,
  IrqMapHeader,
  PF_EVENT_SIZE,
  PromiscInfo,
  QUEUE_PAIR_INFO_SIZE,
  QueueSelect,
  RssHena,
  RssHfunc,
  RssKeyLutHeader,
  RxqInfo,
  readMac,
  SupportedRxdids,
  TxqInfo,
  VectorMap,
  VersionInfo,
  VfResourceHeader,
  VfResRequest,
  VlanCaps,
  VlanFilterListHeader,
  VlanFilterListV2Header,
  VlanFilterV2,
  VlanSetting,
  VSI_RESOURCE_SIZE,
  VsiQueueConfigHeader,
  writeMac,
} from './virtchnl.js';

export interface TxQueueConfig {
  ring: bigint;
  length: number;
}
export interface RxQueueConfig extends TxQueueConfig {
  bufferSize: number;
  maxFrame: number;
  crcStrip: boolean;
  /** Bytes per descriptor: 32 (legacy RXDID 1), or 16 (legacy RXDID 0, asked for through RX_FLEX_DESC). */
  descSize: 16 | 32;
}

/** What the VF configured: the data path reads it, tests and users inspect it. */
export interface VfConfig {
  numQueuePairs: number;
  caps: number;
  tx: Array<TxQueueConfig | undefined>;
  rx: Array<RxQueueConfig | undefined>;
  txEnabled: number;
  rxEnabled: number;
  /** MSI-X vector → queue bitmaps. */
  /** MSI-X vector → the queues it serves and the ITR index of their causes. */
  irqMap: Map<number, { rx: number; tx: number; rxItr: number; txItr: number }>;
  macs: Set<string>;
  promisc: number;
  /** ADD_VLAN(_V2): the VF's VLAN filter (ids); empty, every tag passes. */
  vlans: Set<number>;
  /** ENABLE_VLAN_STRIPPING(_V2): 802.1Q tags go into the RX descriptor. */
  vlanStrip: boolean;
  /**
   * ENABLE/DISABLE_VLAN_INSERTION_V2, as the VF set it. The device inserts whenever a TX descriptor asks
   * (IL2TAG1); a VF asks only while insertion is on (Linux ties both to NETIF_F_HW_VLAN_CTAG_TX).
   */
  vlanInsert: boolean;
  rssKey: Buffer;
  rssLut: Buffer;
  rssHena: bigint;
}

export interface PfHost {
  mac: string;
  /**
   * The host's trust in the VF (`ip link set … vf N trust on`): an untrusted VF may not take another
   * unicast address than the MAC the host gave it, and its promiscuous requests are ignored.
   */
  trusted: boolean;
  /** The host's port VLAN (devargs `vlan`; 0: none): the VF may not change VLANs then. */
  portVlan: number;
  maxMtu: number;
  /** Queue pairs the VF gets now (devargs `queues`, or fewer after REQUEST_QUEUES). */
  queuePairs(): number;
  /** The most it can get: devargs `queues`. */
  maxQueuePairs: number;
  link(): { up: boolean; speedMbps: number };
  /** True when [iova, iova+length) is guest memory the device can reach. */
  inGuestMemory(iova: bigint, length: number): boolean;
  /** A PF→VF message on the ARQ. */
  post(vop: number, status: number, payload?: Buffer): void;
  /** RESET_VF, or a PF-initiated reset after REQUEST_QUEUES (with the new queue count). */
  resetVf(queuePairs?: number): void;
  /** The VF's queue setup changed (for emudev's queue table). */
  queuesChanged(config: VfConfig): void;
  stats(): Partial<Record<keyof ReturnType<typeof EthStats.decode>, bigint>>;
  warn(obj: object, msg: string): void;
}

/** A message a PF refuses: the status goes back in cookie_low. */
class Refusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
const bad = (m: string) => new Refusal(VirtchnlStatus.ERR_PARAM, m);

interface OpSpec {
  /** Only once GET_VF_RESOURCES made the VF active (i40e's VF_STATE_ACTIVE). */
  needsActive: boolean;
  /** Returns the reply payload; throws Refusal. `undefined` when no reply is due (RESET_VF, a full REQUEST_QUEUES grant). */
  handle(pf: VirtualFunction, msg: Buffer): Buffer | undefined;
  /** Runs after the reply was posted. */
  after?(pf: VirtualFunction, msg: Buffer): void;
}

const MAX_MAC_FILTERS = 256;
/** i40e's I40E_VC_MAX_VLAN_PER_VF for an untrusted VF; a trusted one may list every VLAN. */
const MAX_VLAN_FILTERS = 16;
const MAX_VLAN_FILTERS_TRUSTED = 4095;
const MAX_RING = 4096;

function freshConfig(numQueuePairs: number): VfConfig {
  return {
    numQueuePairs,
    caps: 0,
    tx: new Array(numQueuePairs).fill(undefined),
    rx: new Array(numQueuePairs).fill(undefined),
    txEnabled: 0,
    rxEnabled: 0,
    irqMap: new Map(),
    macs: new Set(),
    promisc: 0,
    vlans: new Set(),
    vlanStrip: false,
    vlanInsert: true,
    rssKey: Buffer.alloc(RSS_KEY_SIZE),
    rssLut: Buffer.alloc(RSS_LUT_SIZE),
    rssHena: 0n,
  };
}

export class VirtualFunction {
  config: VfConfig;
  /** 'reset' until the first VERSION, 'version' until GET_VF_RESOURCES (again after a VF reset), then 'active'. */
  phase: 'reset' | 'version' | 'active' = 'reset';
  version = { major: 1, minor: 1 };
  /**
   * Messages handled and refused, by op name; `ignored`: requests an untrusted VF made that were
   * answered SUCCESS and not applied, as i40e/ice do (promiscuous mode).
   */
  readonly counters = {
    messages: {} as Record<string, number>,
    errors: {} as Record<string, number>,
    ignored: {} as Record<string, number>,
  };

  /** A request the host's policy answers SUCCESS and does not apply: counted, logged the first time. */
  ignored(op: string, details: object, why: string): void {
    const n = (this.counters.ignored[op] ?? 0) + 1;
    this.counters.ignored[op] = n;
    if (n === 1) this.host.warn({ op, ...details }, `virtchnl: ${why}`);
  }

  constructor(private readonly host: PfHost) {
    this.config = freshConfig(host.queuePairs());
  }

  /**
   * Back to the state after a VF reset: nothing configured. The negotiated version survives, as in
   * i40e: a VF recovering from reset goes straight to GET_VF_RESOURCES (iavf_reset_task).
   */
  reset(): void {
    this.config = freshConfig(this.host.queuePairs());
    if (this.phase !== 'reset') this.phase = 'version';
    this.host.queuesChanged(this.config);
  }

  get maxVectors(): number {
    return this.config.numQueuePairs + 1;
  }

  /** One VF→PF message. Every op gets exactly one reply, but RESET_VF and a REQUEST_QUEUES granted in full, which reset the VF. */
  handle(vop: number, msg: Buffer): void {
    const name = virtchnlOpName(vop);
    this.counters.messages[name] = (this.counters.messages[name] ?? 0) + 1;
    const spec = OPS[vop];
    let reply: Buffer | undefined;
    try {
      const expected = expectedLength(vop, msg);
      if (!spec || expected === undefined) {
        throw new Refusal(VirtchnlStatus.ERR_NOT_SUPPORTED, `${name} is not supported`);
      }
      if (msg.length !== expected) throw bad(`${name}: ${msg.length} bytes, expected ${expected}`);
      if (vop !== VirtchnlOp.VERSION && vop !== VirtchnlOp.RESET_VF && this.phase === 'reset') {
        throw bad(`${name} before VERSION`);
      }
      if (spec.needsActive && this.phase !== 'active') throw bad(`${name} before GET_VF_RESOURCES`);
      reply = spec.handle(this, msg);
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      this.counters.errors[name] = (this.counters.errors[name] ?? 0) + 1;
      this.host.warn({ op: name, status: err.status }, `virtchnl: ${err.message}`);
      if (vop !== VirtchnlOp.RESET_VF) this.host.post(vop, err.status);
      return;
    }
    if (reply === undefined) return;
    this.host.post(vop, VirtchnlStatus.SUCCESS, reply);
    spec.after?.(this, msg);
  }

  /** EVENT LINK_CHANGE, in the form the granted caps call for. */
  sendLinkEvent(): void {
    if (this.phase !== 'active') return;
    const { up, speedMbps } = this.host.link();
    const ev = Buffer.alloc(PF_EVENT_SIZE);
    ev.writeInt32LE(PfEvent.LINK_CHANGE, 0);
    if (this.config.caps & VfCap.ADV_LINK_SPEED) ev.writeUInt32LE(speedMbps, 4);
    else ev.writeUInt32LE(LegacyLinkSpeed[speedMbps] ?? 0, 4);
    ev.writeUInt8(up ? 1 : 0, 8);
    this.host.post(VirtchnlOp.EVENT, VirtchnlStatus.SUCCESS, ev);
  }

  // Shared checks.
  vsi(id: number): void {
    if (id !== VSI_ID) throw bad(`vsi_id ${id}, the VF has only VSI ${VSI_ID}`);
  }
  queueBits(bits: number, what: string): void {
    const all = (1 << this.config.numQueuePairs) - 1;
    if ((bits >>> 0) & ~all)
      throw bad(
        `${what} 0x${bits.toString(16)} names queues beyond the ${this.config.numQueuePairs} granted`,
      );
  }
  ring(addr: bigint, entries: number, entrySize: number, multiple: number, what: string): void {
    if (entries % multiple !== 0 || entries > MAX_RING) {
      throw bad(`${what} ring_len ${entries} must be a multiple of ${multiple} up to ${MAX_RING}`);
    }
    if (addr % 128n !== 0n) throw bad(`${what} ring address 0x${addr.toString(16)} is not 128-byte aligned`);
    if (!this.host.inGuestMemory(addr, entries * entrySize)) {
      throw bad(`${what} ring [0x${addr.toString(16)}, +${entries * entrySize}) is outside guest memory`);
    }
  }
  changed(): void {
    this.host.queuesChanged(this.config);
  }
  get hostRef(): PfHost {
    return this.host;
  }
}

const OPS: Partial<Record<number, OpSpec>> = {
  [VirtchnlOp.VERSION]: {
    needsActive: false,
    handle(vf, msg) {
      const v = VersionInfo.decode(msg);
      if (v.major !== 1) throw bad(`VERSION ${v.major}.${v.minor}: only 1.x exists`);
      // A 1.0 VF gets 1.0 (ice does so); anything newer gets 1.1, the newest we speak.
      vf.version = { major: 1, minor: v.minor === 0 ? 0 : 1 };
      if (vf.phase === 'reset') vf.phase = 'version';
      return VersionInfo.encode(vf.version);
    },
  },
  [VirtchnlOp.RESET_VF]: {
    needsActive: false,
    handle(vf) {
      vf.hostRef.resetVf();
      return undefined;
    },
  },
  [VirtchnlOp.GET_VF_RESOURCES]: {
    needsActive: false,
    handle(vf, msg) {
      const asked =
        vf.version.minor === 0 || msg.length === 0 ? VfCap.L2 | VfCap.RSS_REG : msg.readUInt32LE(0);
      // VLAN V2 to a VF that asks for it, else v1, never both (ice_vc_get_vlan_caps); a VF behind a port
      // VLAN does no VLANs of its own (the host's tag is invisible to it).
      let grantable = GRANTABLE_CAPS;
      if (vf.hostRef.portVlan) grantable &= ~(VfCap.VLAN | VfCap.VLAN_V2);
      else if (asked & VfCap.VLAN_V2) grantable &= ~VfCap.VLAN;
      const caps = (asked & grantable) | VfCap.L2;
      // A v1 VF starts with stripping on (i40e's VF VSI strips by default, ice enables it; Linux's iavf
      // sends nothing and counts on it); a V2 VF asks for it (ice turns it off at GET_VF_RESOURCES).
      vf.config = { ...vf.config, caps, vlanStrip: (caps & VfCap.VLAN) !== 0 };
      vf.phase = 'active';
      const host = vf.hostRef;
      // The legacy sizeof: one VSI plus a trailing zeroed one, as i40e sends.
      const out = Buffer.alloc(VfResourceHeader.size + 2 * VSI_RESOURCE_SIZE);
      VfResourceHeader.encodeInto(
        {
          numVsis: 1,
          numQueuePairs: vf.config.numQueuePairs,
          maxVectors: vf.maxVectors,
          maxMtu: host.maxMtu + 26,
          vfCapFlags: caps >>> 0,
          rssKeySize: RSS_KEY_SIZE,
          rssLutSize: RSS_LUT_SIZE,
        },
        out,
      );
      const vsi = VfResourceHeader.size;
      out.writeUInt16LE(VSI_ID, vsi);
      out.writeUInt16LE(vf.config.numQueuePairs, vsi + 2);
      out.writeInt32LE(VSI_TYPE_SRIOV, vsi + 4);
      out.writeUInt16LE(0, vsi + 8);
      writeMac(host.mac, out, vsi + 10);
      return out;
    },
    after: (vf) => vf.sendLinkEvent(),
  },
  [VirtchnlOp.CONFIG_VSI_QUEUES]: {
    needsActive: true,
    handle(vf, msg) {
      const head = VsiQueueConfigHeader.decode(msg);
      vf.vsi(head.vsiId);
      const n = head.numQueuePairs;
      if (n > vf.config.numQueuePairs) throw bad(`${n} queue pairs, the VF has ${vf.config.numQueuePairs}`);
      const tx = [...vf.config.tx];
      const rx = [...vf.config.rx];
      for (let i = 0; i < n; i++) {
        const at = VsiQueueConfigHeader.size + i * QUEUE_PAIR_INFO_SIZE;
        const t = TxqInfo.decode(msg, at);
        const r = RxqInfo.decode(msg, at + TxqInfo.size);
        vf.vsi(t.vsiId);
        vf.vsi(r.vsiId);
        if (t.queueId !== i || r.queueId !== i) throw bad(`pair ${i} names queues ${t.queueId}/${r.queueId}`);
        // ring_len 0 leaves that queue unconfigured (ice does so; DPDK sends it for uneven counts).
        if (t.ringLen === 0) tx[i] = undefined;
        else {
          vf.ring(t.dmaRingAddr, t.ringLen, 16, 8, `TX queue ${i}`);
          tx[i] = { ring: t.dmaRingAddr, length: t.ringLen };
        }
        if (r.ringLen === 0) rx[i] = undefined;
        else {
          const descSize = rxDescSize(vf, (r.crcAndRxdid >>> 8) & 0xff, i);
          vf.ring(r.dmaRingAddr, r.ringLen, descSize, 32, `RX queue ${i}`);
          if (r.databufferSize < 128 || r.databufferSize > 16 * 1024 - 128 || r.databufferSize % 128 !== 0) {
            throw bad(
              `RX queue ${i} databuffer_size ${r.databufferSize} must be a multiple of 128 up to 16256`,
            );
          }
          if (r.maxPktSize < 64 || r.maxPktSize >= 16 * 1024)
            throw bad(`RX queue ${i} max_pkt_size ${r.maxPktSize}`);
          if (r.splithdrEnabled) throw bad(`RX queue ${i}: header split is not supported`);
          rx[i] = {
            ring: r.dmaRingAddr,
            length: r.ringLen,
            bufferSize: r.databufferSize,
            maxFrame: r.maxPktSize,
            crcStrip: !(vf.config.caps & VfCap.CRC && (r.crcAndRxdid & 0xff) !== 0),
            descSize,
          };
        }
      }
      vf.config = { ...vf.config, tx, rx };
      vf.changed();
      return Buffer.alloc(0);
    },
  },
  [VirtchnlOp.CONFIG_IRQ_MAP]: {
    needsActive: true,
    handle(vf, msg) {
      const { numVectors } = IrqMapHeader.decode(msg);
      if (numVectors > vf.maxVectors)
        throw bad(`${numVectors} vector maps, the VF has ${vf.maxVectors} vectors`);
      const map = new Map(vf.config.irqMap);
      for (let i = 0; i < numVectors; i++) {
        const m = VectorMap.decode(msg, IrqMapHeader.size + i * VectorMap.size);
        vf.vsi(m.vsiId);
        if (m.vectorId >= vf.maxVectors) throw bad(`vector ${m.vectorId}, the VF has ${vf.maxVectors}`);
        vf.queueBits(m.rxqMap, 'rxq_map');
        vf.queueBits(m.txqMap, 'txq_map');
        if (m.rxitrIdx > 3 || m.txitrIdx > 3) throw bad(`vector ${m.vectorId}: ITR index above 3`);
        map.set(m.vectorId, { rx: m.rxqMap, tx: m.txqMap, rxItr: m.rxitrIdx, txItr: m.txitrIdx });
      }
      vf.config = { ...vf.config, irqMap: map };
      return Buffer.alloc(0);
    },
  },
  [VirtchnlOp.ENABLE_QUEUES]: {
    needsActive: true,
    handle(vf, msg) {
      const q = selectQueues(vf, msg);
      for (let i = 0; i < vf.config.numQueuePairs; i++) {
        if (q.rxQueues & (1 << i) && !vf.config.rx[i]) throw bad(`RX queue ${i} is not configured`);
        if (q.txQueues & (1 << i) && !vf.config.tx[i]) throw bad(`TX queue ${i} is not configured`);
      }
      vf.config = {
        ...vf.config,
        rxEnabled: (vf.config.rxEnabled | q.rxQueues) >>> 0,
        txEnabled: (vf.config.txEnabled | q.txQueues) >>> 0,
      };
      vf.changed();
      return Buffer.alloc(0);
    },
    // Linux takes link-up only once queues are enabled: tell it after this reply, as PFs do.
    after: (vf) => vf.sendLinkEvent(),
  },
  [VirtchnlOp.DISABLE_QUEUES]: {
    needsActive: true,
    handle(vf, msg) {
      const q = selectQueues(vf, msg);
      vf.config = {
        ...vf.config,
        rxEnabled: (vf.config.rxEnabled & ~q.rxQueues) >>> 0,
        txEnabled: (vf.config.txEnabled & ~q.txQueues) >>> 0,
      };
      vf.changed();
      return Buffer.alloc(0);
    },
  },
  [VirtchnlOp.ADD_ETH_ADDR]: {
    needsActive: true,
    handle(vf, msg) {
      const macs = new Set(vf.config.macs);
      const host = vf.hostRef;
      for (const mac of etherAddrs(vf, msg)) {
        if (mac === 'ff:ff:ff:ff:ff:ff' || mac === '00:00:00:00:00:00')
          throw bad(`MAC filter ${mac} is not valid`);
        // The host set the VF's MAC: an untrusted VF may not take another unicast address (i40e's
        // i40e_check_vf_permission, ice's ice_can_vf_change_mac; ice answers ADMIN_QUEUE_ERROR, which
        // Linux's iavf reports as "Failed to add MAC filter" and undoes the change).
        if (!host.trusted && !(Number.parseInt(mac.slice(0, 2), 16) & 1) && mac !== host.mac) {
          throw new Refusal(
            VirtchnlStatus.ERR_ADMIN_QUEUE_ERROR,
            `untrusted VF may not add unicast address ${mac} (its MAC is ${host.mac}; devargs trust=on allows it)`,
          );
        }
        macs.add(mac);
      }
      if (macs.size > MAX_MAC_FILTERS) {
        throw new Refusal(VirtchnlStatus.ERR_NO_MEMORY, `more than ${MAX_MAC_FILTERS} MAC filters`);
      }
      vf.config = { ...vf.config, macs };
      return Buffer.alloc(0);
    },
  },
  [VirtchnlOp.DEL_ETH_ADDR]: {
    needsActive: true,
    handle(vf, msg) {
      const macs = new Set(vf.config.macs);
      for (const mac of etherAddrs(vf, msg)) macs.delete(mac);
      vf.config = { ...vf.config, macs };
      return Buffer.alloc(0);
    },
  },
  [VirtchnlOp.ADD_VLAN]: {
    needsActive: true,
    handle(vf, msg) {
      const vlans = new Set(vf.config.vlans);
      const ids = vlanIds(vf, msg);
      // i40e_vc_add_vlan_msg: an untrusted VF gets I40E_VC_MAX_VLAN_PER_VF filters; past them the PF
      // answers SUCCESS and adds nothing more (ice does the same at its own limit).
      const max = vf.hostRef.trusted ? MAX_VLAN_FILTERS_TRUSTED : MAX_VLAN_FILTERS;
      const fresh = ids.filter((vid) => !vlans.has(vid));
      const room = Math.max(0, max - vlans.size);
      for (const vid of fresh.slice(0, room)) vlans.add(vid);
      if (fresh.length > room)
        vf.ignored(
          'ADD_VLAN',
          { max },
          `untrusted VF asked for more than ${max} VLANs; the rest ignored (devargs trust=on allows more)`,
        );
      vf.config = { ...vf.config, vlans };
      return Buffer.alloc(0);
    },
  },
  [VirtchnlOp.DEL_VLAN]: delVlansOp(vlanIds),
  [VirtchnlOp.ENABLE_VLAN_STRIPPING]: vlanStrippingOp(true),
  [VirtchnlOp.DISABLE_VLAN_STRIPPING]: vlanStrippingOp(false),
  [VirtchnlOp.GET_OFFLOAD_VLAN_V2_CAPS]: {
    needsActive: true,
    handle(vf) {
      vlanV2Allowed(vf);
      return VlanCaps.encode(vlanV2Caps(vf.hostRef.trusted));
    },
  },
  [VirtchnlOp.ADD_VLAN_V2]: {
    needsActive: true,
    handle(vf, msg) {
      const vlans = new Set(vf.config.vlans);
      for (const vid of vlanFiltersV2(vf, msg)) vlans.add(vid);
      // ice_vc_add_vlan_v2_msg: more than max_filters is refused whole.
      const max = vlanV2Caps(vf.hostRef.trusted).maxFilters;
      if (vlans.size > max) throw bad(`more than the ${max} VLAN filters GET_OFFLOAD_VLAN_V2_CAPS offered`);
      vf.config = { ...vf.config, vlans };
      return Buffer.alloc(0);
    },
  },
  [VirtchnlOp.DEL_VLAN_V2]: delVlansOp(vlanFiltersV2),
  [VirtchnlOp.ENABLE_VLAN_STRIPPING_V2]: vlanSettingOp('strip', true),
  [VirtchnlOp.DISABLE_VLAN_STRIPPING_V2]: vlanSettingOp('strip', false),
  [VirtchnlOp.ENABLE_VLAN_INSERTION_V2]: vlanSettingOp('insert', true),
  [VirtchnlOp.DISABLE_VLAN_INSERTION_V2]: vlanSettingOp('insert', false),
  [VirtchnlOp.CONFIG_PROMISCUOUS_MODE]: {
    needsActive: true,
    handle(vf, msg) {
      const p = PromiscInfo.decode(msg);
      vf.vsi(p.vsiId);
      if (p.flags & ~3) throw bad(`promiscuous flags 0x${p.flags.toString(16)}`);
      if (p.flags !== 0 && !vf.hostRef.trusted) {
        // i40e and ice "lie to the VF on purpose": SUCCESS, nothing enabled (an untrusted VF asking is
        // not a virtchnl error).
        vf.ignored(
          'CONFIG_PROMISCUOUS_MODE',
          { flags: p.flags },
          'untrusted VF asked for promiscuous mode; ignored (devargs trust=on allows it)',
        );
        vf.config = { ...vf.config, promisc: 0 };
        return Buffer.alloc(0);
      }
      vf.config = { ...vf.config, promisc: p.flags };
      return Buffer.alloc(0);
    },
  },
  [VirtchnlOp.GET_STATS]: {
    needsActive: true,
    handle(vf, msg) {
      vf.vsi(QueueSelect.decode(msg).vsiId);
      return EthStats.encode(vf.hostRef.stats());
    },
  },
  [VirtchnlOp.CONFIG_RSS_KEY]: {
    needsActive: true,
    handle(vf, msg) {
      const h = RssKeyLutHeader.decode(msg);
      vf.vsi(h.vsiId);
      if (h.length !== RSS_KEY_SIZE) throw bad(`RSS key of ${h.length} bytes, the key is ${RSS_KEY_SIZE}`);
      vf.config = { ...vf.config, rssKey: Buffer.from(msg.subarray(4, 4 + h.length)) };
      return Buffer.alloc(0);
    },
  },
  [VirtchnlOp.CONFIG_RSS_LUT]: {
    needsActive: true,
    handle(vf, msg) {
      const h = RssKeyLutHeader.decode(msg);
      vf.vsi(h.vsiId);
      if (h.length !== RSS_LUT_SIZE) throw bad(`RSS LUT of ${h.length} entries, the LUT has ${RSS_LUT_SIZE}`);
      const lut = Buffer.from(msg.subarray(4, 4 + h.length));
      const beyond = lut.findIndex((q) => q >= vf.config.numQueuePairs);
      if (beyond >= 0) throw bad(`RSS LUT entry ${beyond} names queue ${lut[beyond]}`);
      vf.config = { ...vf.config, rssLut: lut };
      return Buffer.alloc(0);
    },
  },
  [VirtchnlOp.GET_RSS_HENA_CAPS]: {
    needsActive: true,
    handle: () => RssHena.encode({ hena: DEFAULT_HENA }),
  },
  [VirtchnlOp.SET_RSS_HENA]: {
    needsActive: true,
    handle(vf, msg) {
      const { hena } = RssHena.decode(msg);
      if (hena & ~DEFAULT_HENA)
        throw bad(`hash types 0x${hena.toString(16)} beyond the supported 0x${DEFAULT_HENA.toString(16)}`);
      vf.config = { ...vf.config, rssHena: hena };
      return Buffer.alloc(0);
    },
  },
  [VirtchnlOp.CONFIG_RSS_HFUNC]: {
    needsActive: true,
    handle(vf, msg) {
      const h = RssHfunc.decode(msg);
      vf.vsi(h.vsiId);
      // Only Toeplitz (0) is implemented.
      if (h.alg !== 0) throw new Refusal(VirtchnlStatus.ERR_NOT_SUPPORTED, `RSS hash function ${h.alg}`);
      return Buffer.alloc(0);
    },
  },
  [VirtchnlOp.GET_SUPPORTED_RXDIDS]: {
    needsActive: true,
    handle(vf) {
      // ice answers only a VF that negotiated RX_FLEX_DESC.
      if (!(vf.config.caps & VfCap.RX_FLEX_DESC)) throw bad('GET_SUPPORTED_RXDIDS without RX_FLEX_DESC');
      return SupportedRxdids.encode({ rxdids: SUPPORTED_RXDIDS });
    },
  },
  [VirtchnlOp.REQUEST_QUEUES]: {
    needsActive: true,
    handle(vf, msg) {
      const { numQueuePairs } = VfResRequest.decode(msg);
      if (numQueuePairs === 0) throw bad('REQUEST_QUEUES of 0 queue pairs');
      const max = vf.hostRef.maxQueuePairs;
      // More than the device has (its MSI-X table is sized for devargs `queues`): answered with what
      // it has, and nothing changes.
      if (numQueuePairs > max) return VfResRequest.encode({ numQueuePairs: max });
      // A grant in full is not answered: the PF resets the VF with its new queue count, which clears
      // the VF's pending request (i40e_vc_request_queues_msg does exactly this).
      vf.hostRef.resetVf(numQueuePairs);
      return undefined;
    },
  },
};

/**
 * The RX descriptor size a queue's rxdid asks for. Without RX_FLEX_DESC the field means nothing (Linux
 * leaves it 0) and the format is legacy 32-byte; with it, the VF picks one of SUPPORTED_RXDIDS, and
 * anything else is refused, as ice_vc_cfg_qs_msg does.
 */
function rxDescSize(vf: VirtualFunction, rxdid: number, queue: number): 16 | 32 {
  if (!(vf.config.caps & VfCap.RX_FLEX_DESC)) return 32;
  if (!((SUPPORTED_RXDIDS >> BigInt(rxdid)) & 1n)) {
    throw bad(`RX queue ${queue}: RXDID ${rxdid} is not supported (only the legacy formats 0 and 1)`);
  }
  return rxdid === RxDid.LEGACY_0 ? 16 : 32;
}

function selectQueues(vf: VirtualFunction, msg: Buffer) {
  const q = QueueSelect.decode(msg);
  vf.vsi(q.vsiId);
  if (q.rxQueues === 0 && q.txQueues === 0) throw bad('no queues selected');
  vf.queueBits(q.rxQueues, 'rx_queues');
  vf.queueBits(q.txQueues, 'tx_queues');
  return q;
}

/** VLAN ops need the VLAN capability granted (never with a port VLAN). */
function vlanAllowed(vf: VirtualFunction): void {
  needCap(vf, VfCap.VLAN, 'VLAN');
}

/** An op of a capability the VF was not granted: ERR_NOT_SUPPORTED (ice's allowlist). */
function needCap(vf: VirtualFunction, cap: number, name: string): void {
  if (!(vf.config.caps & cap)) {
    throw new Refusal(VirtchnlStatus.ERR_NOT_SUPPORTED, `${name} ops without the ${name} capability`);
  }
}

/** DEL_VLAN and DEL_VLAN_V2: the ids `read` takes out of the message leave the VLAN filter. */
function delVlansOp(read: (vf: VirtualFunction, msg: Buffer) => number[]): OpSpec {
  return {
    needsActive: true,
    handle(vf, msg) {
      const vlans = new Set(vf.config.vlans);
      for (const vid of read(vf, msg)) vlans.delete(vid);
      vf.config = { ...vf.config, vlans };
      return Buffer.alloc(0);
    },
  };
}

/** ENABLE/DISABLE_VLAN_STRIPPING (v1, no payload). */
function vlanStrippingOp(on: boolean): OpSpec {
  return {
    needsActive: true,
    handle(vf) {
      vlanAllowed(vf);
      vf.config = { ...vf.config, vlanStrip: on };
      return Buffer.alloc(0);
    },
  };
}

/** The ids of a virtchnl_vlan_filter_list (v1), each 0-4095; VLAN 0 (untagged) is always received. */
function vlanIds(vf: VirtualFunction, msg: Buffer): number[] {
  vlanAllowed(vf);
  const h = VlanFilterListHeader.decode(msg);
  vf.vsi(h.vsiId);
  const ids = Array.from({ length: h.numElements }, (_, i) =>
    msg.readUInt16LE(VlanFilterListHeader.size + i * 2),
  );
  const badId = ids.find((v) => v > 4095);
  if (badId !== undefined) throw bad(`VLAN id ${badId}`);
  return ids.filter((v) => v !== 0);
}

/** VLAN V2 ops need VLAN_V2 granted (ice's allowlist). */
function vlanV2Allowed(vf: VirtualFunction): void {
  needCap(vf, VfCap.VLAN_V2, 'VLAN_V2');
}

/**
 * What emu offers a V2 VF, as ice does in single VLAN mode without a port VLAN: 802.1Q filters, stripping
 * and insertion on the inner (only) tag, in L2TAG1, on by default and toggled by the VF; as many filters
 * as the v1 limit (VLAN_N_VID - 1 for a trusted VF).
 */
function vlanV2Caps(trusted: boolean) {
  const { ETHERTYPE_8100, TOGGLE, TAG_LOCATION_L2TAG1 } = VlanSupport;
  const offload = (ETHERTYPE_8100 | TOGGLE | TAG_LOCATION_L2TAG1) >>> 0;
  return {
    filteringOuter: 0,
    filteringInner: ETHERTYPE_8100,
    filteringEthertypeInit: ETHERTYPE_8100,
    maxFilters: trusted ? MAX_VLAN_FILTERS_TRUSTED : MAX_VLAN_FILTERS,
    strippingOuter: 0,
    strippingInner: offload,
    insertionOuter: 0,
    insertionInner: offload,
    offloadsEthertypeInit: ETHERTYPE_8100,
    ethertypeMatch: 0, // VIRTCHNL_ETHERTYPE_STRIPPING_MATCHES_INSERTION
  };
}

/**
 * The VLAN ids of a virtchnl_vlan_filter_list_v2, checked as ice_vc_validate_vlan_filter_list does
 * against the caps offered: no outer tag, an inner one of TPID 0x8100 without mask or priority; a half
 * with TCI or TPID 0 means nothing (VLAN 0 is always received).
 */
function vlanFiltersV2(vf: VirtualFunction, msg: Buffer): number[] {
  vlanV2Allowed(vf);
  const h = VlanFilterListV2Header.decode(msg);
  vf.vsi(h.vportId);
  const ids: number[] = [];
  for (let i = 0; i < h.numElements; i++) {
    const f = VlanFilterV2.decode(msg, VlanFilterListV2Header.size + i * VlanFilterV2.size);
    if (f.outerTci !== 0 && f.outerTpid !== 0)
      throw bad(`filter ${i}: an outer VLAN (only inner ones are offered)`);
    if (f.innerTci === 0 || f.innerTpid === 0) continue;
    if (f.innerTpid !== 0x8100)
      throw bad(`filter ${i}: TPID 0x${f.innerTpid.toString(16)} (0x8100 is offered)`);
    if (f.innerTciMask !== 0) throw bad(`filter ${i}: a TCI mask (VIRTCHNL_VLAN_FILTER_MASK is not offered)`);
    if (f.innerTci & 0xe000) throw bad(`filter ${i}: a priority (VIRTCHNL_VLAN_PRIO is not offered)`);
    ids.push(f.innerTci & 0xfff);
  }
  return ids;
}

/**
 * ENABLE/DISABLE_VLAN_STRIPPING_V2 and _INSERTION_V2 (ice_vc_valid_vlan_setting_msg): one ethertype, on the
 * inner tag, among what the caps offer.
 */
function vlanSettingOp(what: 'strip' | 'insert', on: boolean): OpSpec {
  return {
    needsActive: true,
    handle(vf, msg) {
      vlanV2Allowed(vf);
      const v = VlanSetting.decode(msg);
      vf.vsi(v.vportId);
      if (v.outerEthertypeSetting !== 0) throw bad('an outer VLAN setting (only the inner tag is offered)');
      if (v.innerEthertypeSetting !== VlanSupport.ETHERTYPE_8100) {
        throw bad(
          `inner ethertype setting 0x${v.innerEthertypeSetting.toString(16)} (0x8100, bit 0, is offered)`,
        );
      }
      vf.config = what === 'strip' ? { ...vf.config, vlanStrip: on } : { ...vf.config, vlanInsert: on };
      return Buffer.alloc(0);
    },
  };
}

function etherAddrs(vf: VirtualFunction, msg: Buffer): string[] {
  const h = EtherAddrListHeader.decode(msg);
  vf.vsi(h.vsiId);
  if (h.numElements > MAX_MAC_FILTERS) throw bad(`${h.numElements} MAC addresses in one message`);
  return Array.from({ length: h.numElements }, (_, i) =>
    readMac(msg, EtherAddrListHeader.size + i * ETHER_ADDR_SIZE),
  );
}
