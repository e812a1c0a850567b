/**
 * SoftIavf: a guest-side iavf driver in TypeScript, driving an AVF over a VfioUserClient the way Linux
 * 6.12's iavf does, its methods named after the Linux functions. This file is its iavf_main.c (probe,
 * reset, the bring-up state machine) and its one public face over the parts: adminq.ts, mailbox.ts,
 * virtchnl.ts, txrx.ts with descriptors.ts, pci.ts, reset.ts, io.ts. A test tool: every step can be
 * observed, repeated, or replaced by a malformed one (sendRaw, submit, the builders in virtchnl-msgs.ts).
 * Numbers and layouts come from iavf-defs.ts, the guest's own copy of iavf.md, not from the device's
 * constants, so that the two sides check each other.
 */
import { EventFd } from '@emu/native';
import type { VfioUserClient } from '@emu/vfio-user';
import type { GuestRam } from '../guest-memory.js';
import {
  type EthStats,
  LINUX_6_12_CAPS,
  type PfEvent,
  VF_CAP,
  type VfResource,
  VIRTCHNL_EVENT_LINK_CHANGE,
  VIRTCHNL_OP,
} from '../iavf-defs.js';
import { AdminQueue, type AdminQueueOptions } from './adminq.js';
import { Bar0 } from './io.js';
import { type MailboxOptions, PfMailbox, type Step } from './mailbox.js';
import { type PciInfo, probePci } from './pci.js';
import { waitResetComplete, waitVfReset } from './reset.js';
import { DataPath, type RingOptions } from './txrx.js';
import { Virtchnl, type VirtchnlOptions } from './virtchnl.js';

export interface SoftIavfOptions extends AdminQueueOptions, MailboxOptions, VirtchnlOptions, RingOptions {}

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

export class SoftIavf {
  pci?: PciInfo;
  /** One eventfd per MSI-X vector; [0] is the misc (admin queue) vector. */
  irqFds: EventFd[] = [];

  private readonly regs: Bar0;
  private readonly aq: AdminQueue;
  private readonly mbx: PfMailbox;
  private readonly vc: Virtchnl;
  private readonly dp: DataPath;

  constructor(
    readonly client: VfioUserClient,
    readonly ram: GuestRam,
    options: SoftIavfOptions = {},
  ) {
    // The eventfds are looked up at each use: probe replaces them.
    const irqFd = (v: number): EventFd | undefined => this.irqFds[v];
    this.regs = new Bar0(client);
    this.aq = new AdminQueue(this.regs, ram, options);
    this.mbx = new PfMailbox(this.regs, this.aq, () => irqFd(0), options);
    this.vc = new Virtchnl(this.mbx, this.aq, options);
    this.dp = new DataPath(this.regs, ram, this.vc, irqFd, options);
  }

  // ---------------------------------------------------------------------------------------------
  // Probe, reset, bring-up (iavf_main.c)

  /**
   * pci_enable_device + pci_set_master, BAR sizes, the MSI-X capability, MSI-X enabled and an eventfd
   * handed over for every vector (the VMM's part of pci_enable_msix_range).
   */
  async probe(): Promise<PciInfo> {
    const pci = await probePci(this.client);
    for (const fd of this.irqFds) fd.close();
    this.irqFds = Array.from({ length: pci.irqCount }, () => EventFd.create());
    await this.client.setIrqEventfds('msix', 0, this.irqFds);
    this.pci = pci;
    return pci;
  }

  /** Closes the eventfds. Guest RAM belongs to the caller. */
  close(): void {
    for (const fd of this.irqFds) fd.close();
    this.irqFds = [];
  }

  /** iavf_check_reset_complete: VFGEN_RSTAT reads COMPLETED or VFACTIVE. Returns the state read. */
  waitResetComplete(timeoutMs = 2000): Promise<number> {
    return waitResetComplete(this.regs, timeoutMs);
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
    const { detected, rstatSeen } = await waitVfReset(this.regs, this.aq, timeoutMs);
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
    if (this.vc.granted(VF_CAP.RSS_PF)) {
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

  /** iavf_configure + iavf_configure_queues: rings and tails, then CONFIG_VSI_QUEUES. */
  async configureQueues() {
    await this.setupRings();
    return this.vc.configVsiQueues(this.queuePairInfo());
  }

  /** iavf_enable_queues, then what its reply does: iavf_irq_enable (queue vectors). */
  async enableQueues(rx?: number, tx?: number) {
    const reply = await this.vc.enableQueues(rx, tx);
    await this.irqEnableQueues();
    return reply;
  }

  /** iavf_down's irq disable, then iavf_disable_queues. */
  async disableQueues(rx?: number, tx?: number) {
    await this.irqDisableQueues();
    return this.vc.disableQueues(rx, tx);
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
    await this.vc.disableQueues(rx, tx);
    await this.dp.resetQueue(q, which);
    await this.vc.enableQueues(rx, tx);
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

  // ---------------------------------------------------------------------------------------------
  // The parts' members, forwarded so that SoftIavf stays one flat API. Their documentation is at the
  // part: the admin queue (adminq.ts), the mailbox (mailbox.ts), virtchnl (virtchnl.ts), the data path
  // (txrx.ts), the registers (io.ts).

  rd32(...a: Parameters<Bar0['rd32']>) {
    return this.regs.rd32(...a);
  }
  wr32(...a: Parameters<Bar0['wr32']>) {
    return this.regs.wr32(...a);
  }
  flush() {
    return this.regs.flush();
  }

  // Admin queue
  get aqEntries() {
    return this.aq.entries;
  }
  get aqBufSize() {
    return this.aq.bufSize;
  }
  get atqTimeoutMs() {
    return this.aq.atqTimeoutMs;
  }
  get aqUp() {
    return this.aq.up;
  }
  get history() {
    return this.aq.history;
  }
  get historyAtAqInit() {
    return this.aq.historyAtInit;
  }
  get arqNotDone() {
    return this.aq.arqNotDone;
  }
  get arqEnableLost() {
    return this.aq.arqEnableLost;
  }
  get aqErrors() {
    return this.aq.errors;
  }
  get atqNextToUse() {
    return this.aq.atqNextToUse;
  }
  get arqNextToClean() {
    return this.aq.arqNextToClean;
  }
  get adminQueueMemory() {
    return this.aq.memory;
  }
  initAdminQueue() {
    return this.aq.init();
  }
  shutdownAdminQueue() {
    return this.aq.shutdown();
  }
  sendToPf(...a: Parameters<AdminQueue['sendToPf']>) {
    return this.aq.sendToPf(...a);
  }
  sendRaw(...a: Parameters<AdminQueue['sendRaw']>) {
    return this.aq.sendRaw(...a);
  }
  submit(...a: Parameters<AdminQueue['submit']>) {
    return this.aq.submit(...a);
  }
  waitAtqDone(...a: Parameters<AdminQueue['waitAtqDone']>) {
    return this.aq.waitAtqDone(...a);
  }
  atqDesc(...a: Parameters<AdminQueue['atqDesc']>) {
    return this.aq.atqDesc(...a);
  }
  cleanArq() {
    return this.aq.cleanArq();
  }
  checkAdminQueueHealth() {
    return this.aq.checkHealth();
  }

  // Mailbox
  get replyTimeoutMs() {
    return this.mbx.replyTimeoutMs;
  }
  get irqMode() {
    return this.mbx.irqMode;
  }
  set irqMode(on: boolean) {
    this.mbx.irqMode = on;
  }
  get miscIrqs() {
    return this.mbx.miscIrqs;
  }
  get polledMessages() {
    return this.mbx.polledMessages;
  }
  get inbox() {
    return this.mbx.inbox;
  }
  set inbox(messages) {
    this.mbx.inbox = messages;
  }
  get steps() {
    return this.mbx.steps;
  }
  miscIrqEnable() {
    return this.mbx.miscIrqEnable();
  }
  miscIrqDisable() {
    return this.mbx.miscIrqDisable();
  }
  receive(...a: Parameters<PfMailbox['receive']>) {
    return this.mbx.receive(...a);
  }
  waitFor(...a: Parameters<PfMailbox['waitFor']>) {
    return this.mbx.waitFor(...a);
  }
  request(...a: Parameters<PfMailbox['request']>) {
    return this.mbx.request(...a);
  }
  requestOk(...a: Parameters<PfMailbox['requestOk']>) {
    return this.mbx.requestOk(...a);
  }
  drain(...a: Parameters<PfMailbox['drain']>) {
    return this.mbx.drain(...a);
  }

  // virtchnl
  get pfVersion() {
    return this.vc.pfVersion;
  }
  get vfRes() {
    return this.vc.vfRes;
  }
  get vlanV2Caps() {
    return this.vc.vlanV2Caps;
  }
  get vsiRes() {
    return this.vc.vsiRes;
  }
  get vsiId() {
    return this.vc.vsiId;
  }
  get mac() {
    return this.vc.mac;
  }
  get numActiveQueues() {
    return this.vc.numActiveQueues;
  }
  get numMsixVectors() {
    return this.vc.numMsixVectors;
  }
  get rssKey() {
    return this.vc.rssKey;
  }
  get rssLut() {
    return this.vc.rssLut;
  }
  get supportedRxdids() {
    return this.vc.supportedRxdids;
  }
  get vectorMaps() {
    return this.vc.vectorMaps;
  }
  get rxFlexGranted() {
    return this.vc.rxFlexGranted;
  }
  get rxdid() {
    return this.vc.rxdid;
  }
  get rxDescSize() {
    return this.vc.rxDescSize;
  }
  get maxFrame() {
    return this.vc.maxFrame;
  }
  get allQueues() {
    return this.vc.allQueues;
  }
  get vlanV2Granted() {
    return this.vc.vlanV2Granted;
  }
  sendApiVersion() {
    return this.vc.sendApiVersion();
  }
  getVfResources(...a: Parameters<Virtchnl['getVfResources']>) {
    return this.vc.getVfResources(...a);
  }
  getSupportedRxdids() {
    return this.vc.getSupportedRxdids();
  }
  mapQueues() {
    return this.vc.mapQueues();
  }
  addEthAddr(...a: Parameters<Virtchnl['addEthAddr']>) {
    return this.vc.addEthAddr(...a);
  }
  delEthAddr(...a: Parameters<Virtchnl['delEthAddr']>) {
    return this.vc.delEthAddr(...a);
  }
  setRssKey(...a: Parameters<Virtchnl['setRssKey']>) {
    return this.vc.setRssKey(...a);
  }
  setRssLut(...a: Parameters<Virtchnl['setRssLut']>) {
    return this.vc.setRssLut(...a);
  }
  getOffloadVlanV2Caps() {
    return this.vc.getOffloadVlanV2Caps();
  }
  addVlans(...a: Parameters<Virtchnl['addVlans']>) {
    return this.vc.addVlans(...a);
  }
  delVlans(...a: Parameters<Virtchnl['delVlans']>) {
    return this.vc.delVlans(...a);
  }
  setVlanStripping(...a: Parameters<Virtchnl['setVlanStripping']>) {
    return this.vc.setVlanStripping(...a);
  }
  setVlanInsertion(...a: Parameters<Virtchnl['setVlanInsertion']>) {
    return this.vc.setVlanInsertion(...a);
  }
  setPromisc(...a: Parameters<Virtchnl['setPromisc']>) {
    return this.vc.setPromisc(...a);
  }
  getStats() {
    return this.vc.getStats();
  }
  requestQueues(...a: Parameters<Virtchnl['requestQueues']>) {
    return this.vc.requestQueues(...a);
  }
  waitForEvent(...a: Parameters<Virtchnl['waitForEvent']>) {
    return this.vc.waitForEvent(...a);
  }
  takeEvents() {
    return this.vc.takeEvents();
  }

  // Data path
  get ringLen() {
    return this.dp.ringLen;
  }
  get mtu() {
    return this.dp.mtu;
  }
  get postRxBuffers() {
    return this.dp.postRxBuffers;
  }
  get txBufferBytes() {
    return this.dp.txBufferBytes;
  }
  get rxBufLen() {
    return this.dp.rxBufLen;
  }
  get rings() {
    return this.dp.rings;
  }
  get rxErrorFrames() {
    return this.dp.rxErrorFrames;
  }
  setupRings() {
    return this.dp.setupRings();
  }
  queuePairInfo() {
    return this.dp.queuePairInfo();
  }
  txRingState(...a: Parameters<DataPath['txRingState']>) {
    return this.dp.txRingState(...a);
  }
  rxRingState(...a: Parameters<DataPath['rxRingState']>) {
    return this.dp.rxRingState(...a);
  }
  scratch(...a: Parameters<DataPath['scratch']>) {
    return this.dp.scratch(...a);
  }
  transmit(...a: Parameters<DataPath['transmit']>) {
    return this.dp.transmit(...a);
  }
  postTx(...a: Parameters<DataPath['postTx']>) {
    return this.dp.postTx(...a);
  }
  txNextToUse(...a: Parameters<DataPath['txNextToUse']>) {
    return this.dp.txNextToUse(...a);
  }
  writeTxTail(...a: Parameters<DataPath['writeTxTail']>) {
    return this.dp.writeTxTail(...a);
  }
  cleanTx(...a: Parameters<DataPath['cleanTx']>) {
    return this.dp.cleanTx(...a);
  }
  waitTxDone(...a: Parameters<DataPath['waitTxDone']>) {
    return this.dp.waitTxDone(...a);
  }
  rxDescriptor(...a: Parameters<DataPath['rxDescriptor']>) {
    return this.dp.rxDescriptor(...a);
  }
  receiveFrames(...a: Parameters<DataPath['receiveFrames']>) {
    return this.dp.receiveFrames(...a);
  }
  refillRx(...a: Parameters<DataPath['refillRx']>) {
    return this.dp.refillRx(...a);
  }
  setRxBuffer(...a: Parameters<DataPath['setRxBuffer']>) {
    return this.dp.setRxBuffer(...a);
  }
  writeRxTail(...a: Parameters<DataPath['writeRxTail']>) {
    return this.dp.writeRxTail(...a);
  }
  waitFrames(...a: Parameters<DataPath['waitFrames']>) {
    return this.dp.waitFrames(...a);
  }
  waitAnyFrames(...a: Parameters<DataPath['waitAnyFrames']>) {
    return this.dp.waitAnyFrames(...a);
  }
  irqEnableQueues() {
    return this.dp.irqEnableQueues();
  }
  irqDisableQueues() {
    return this.dp.irqDisableQueues();
  }
  queueVector(...a: Parameters<DataPath['queueVector']>) {
    return this.dp.queueVector(...a);
  }
  takeIrqs(...a: Parameters<DataPath['takeIrqs']>) {
    return this.dp.takeIrqs(...a);
  }
  waitIrq(...a: Parameters<DataPath['waitIrq']>) {
    return this.dp.waitIrq(...a);
  }
  armVector(...a: Parameters<DataPath['armVector']>) {
    return this.dp.armVector(...a);
  }
  enableWbOnItr(...a: Parameters<DataPath['enableWbOnItr']>) {
    return this.dp.enableWbOnItr(...a);
  }
  napiPoll(...a: Parameters<DataPath['napiPoll']>) {
    return this.dp.napiPoll(...a);
  }
}
