/**
 * The PF mailbox as the VF sees it over the admin queue: the misc interrupt (iavf_msix_aq,
 * iavf_misc_irq_enable/disable), the receive loop of iavf_adminq_task with the watchdog's polling
 * fallback, and virtchnl requests matched to their replies (the rest kept in an inbox).
 */
import type { EventFd } from '@emu/native';
import { DYN_CTL_ENABLE, IAVF, ICR0_ADMINQ, opName, VIRTCHNL_STATUS } from '../iavf-defs.js';
import type { AdminQueue, ArqMessage } from './adminq.js';
import { type Bar0, pollPause, sleep, waitEventFd } from './io.js';

/** How long receive() waits on the misc eventfd before looking at ARQH anyway (the watchdog's poll). */
const IRQ_POLL_MS = 100;

/** One virtchnl request and its answer, in order: the bring-up transcript. */
export interface Step {
  op: number;
  name: string;
  status: number;
  ms: number;
}

/** A virtchnl request the PF answered with an error status. */
export class VirtchnlError extends Error {
  constructor(
    readonly op: number,
    readonly status: number,
  ) {
    super(`virtchnl ${opName(op)} failed: status ${status}`);
  }
}

export interface MailboxOptions {
  /** How long to wait for a virtchnl reply. */
  replyTimeoutMs?: number;
}

export class PfMailbox {
  /** How long to wait for a virtchnl reply. */
  readonly replyTimeoutMs: number;
  /**
   * receive() waits for the misc interrupt (true) or polls ARQH (false). Linux polls during init and
   * takes the interrupt from INIT_CONFIG_ADAPTER on.
   */
  irqMode = false;
  /** Misc interrupts taken. */
  miscIrqs = 0;
  /** Messages found by polling while the misc vector was armed and no interrupt came: missed interrupts. */
  polledMessages = 0;
  /** Messages received but not claimed by a request (events, stray replies), oldest first. */
  inbox: ArqMessage[] = [];
  /** Every request and its status, in order. */
  readonly steps: Step[] = [];
  private miscArmed = false;

  constructor(
    private readonly regs: Bar0,
    private readonly aq: AdminQueue,
    /** The misc vector's eventfd (MSI-X vector 0), once probe handed one over. */
    private readonly miscFd: () => EventFd | undefined,
    options: MailboxOptions,
  ) {
    this.replyTimeoutMs = options.replyTimeoutMs ?? 2000;
  }

  /** iavf_misc_irq_enable: DYN_CTL01 = INTENA | ITR_INDX(3), ICR0_ENA1 = ADMINQ. */
  async miscIrqEnable(): Promise<void> {
    await this.regs.wr32(IAVF.VFINT_DYN_CTL01, DYN_CTL_ENABLE);
    await this.regs.wr32(IAVF.VFINT_ICR0_ENA1, ICR0_ADMINQ);
    await this.regs.flush();
    this.miscArmed = true;
  }

  /** iavf_misc_irq_disable. */
  async miscIrqDisable(): Promise<void> {
    await this.regs.wr32(IAVF.VFINT_DYN_CTL01, 0);
    await this.regs.flush();
    this.miscArmed = false;
  }

  /** iavf_msix_aq: the reads that clear the cause. */
  private async takeMiscIrq(): Promise<void> {
    this.miscIrqs++;
    this.miscArmed = false;
    await this.regs.rd32(IAVF.VFINT_ICR01);
    await this.regs.rd32(IAVF.VFINT_ICR0_ENA1);
  }

  private async waitMiscIrq(ms: number): Promise<boolean> {
    const fd = this.miscFd();
    if (fd) return waitEventFd(fd, ms);
    await sleep(Math.min(ms, 1));
    return false;
  }

  /**
   * Waits up to timeoutMs for PF messages and returns the ones on the ARQ (possibly none). In irqMode it
   * sleeps on the misc eventfd, handles the interrupt as iavf_msix_aq + adminq_task do (read ICR01,
   * clean, re-arm DYN_CTL01), and looks at ARQH anyway every 100 ms as the watchdog does (messages
   * found that way while armed count as polledMessages); otherwise it polls ARQH.
   */
  async receive(timeoutMs = this.replyTimeoutMs): Promise<ArqMessage[]> {
    const deadline = Date.now() + timeoutMs;
    let irq = this.irqMode && this.miscFd()?.read() != null;
    for (let polls = 0; ; polls++) {
      if (irq) await this.takeMiscIrq();
      const msgs = await this.aq.cleanArq();
      // The interrupt follows the write-back, as an MSI follows the DMA before it: it may still be on
      // its way (emu's interrupt writer thread), so an armed vector gets a moment to deliver it.
      if (this.irqMode && !irq && msgs.length) {
        irq = this.miscFd()?.read() != null || (this.miscArmed && (await this.waitMiscIrq(IRQ_POLL_MS)));
        if (irq) await this.takeMiscIrq();
      }
      if (this.irqMode && !irq && msgs.length && this.miscArmed) this.polledMessages += msgs.length;
      if (irq) await this.miscIrqEnable();
      if (msgs.length) {
        await this.aq.checkHealth();
        return msgs;
      }
      const left = deadline - Date.now();
      if (left <= 0) return [];
      if (this.irqMode) irq = await this.waitMiscIrq(Math.min(left, IRQ_POLL_MS));
      else await pollPause(polls);
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
        const [atqh, arqh] = [await this.regs.rd32(IAVF.VF_ATQH1), await this.regs.rd32(IAVF.VF_ARQH1)];
        throw new Error(
          `no ${what} within ${timeoutMs} ms (ATQH ${atqh}, ATQ next_to_use ${this.aq.atqNextToUse}, ARQH ${arqh}, ARQ next_to_clean ${this.aq.arqNextToClean})`,
        );
      }
    }
  }

  /** Records a request's answer in steps; t0 is when it was sent. */
  logStep(reply: ArqMessage, t0: number): void {
    this.steps.push({ op: reply.op, name: opName(reply.op), status: reply.status, ms: Date.now() - t0 });
  }

  /** Sends a message and waits for the reply with the same op (status and payload); others go to the inbox. */
  async request(
    op: number,
    msg: Uint8Array = Buffer.alloc(0),
    timeoutMs = this.replyTimeoutMs,
  ): Promise<ArqMessage> {
    const t0 = Date.now();
    await this.aq.sendToPf(op, msg);
    const reply = await this.waitFor((m) => m.op === op, `reply to ${opName(op)}`, { timeoutMs });
    this.logStep(reply, t0);
    return reply;
  }

  /** request() that throws VirtchnlError unless the status is SUCCESS. */
  async requestOk(op: number, msg?: Uint8Array): Promise<ArqMessage> {
    const reply = await this.request(op, msg);
    if (reply.status !== VIRTCHNL_STATUS.SUCCESS) throw new VirtchnlError(op, reply.status);
    return reply;
  }

  /** Receives for `ms` and returns everything that came (into nothing: not the inbox). */
  async drain(ms: number): Promise<ArqMessage[]> {
    const out: ArqMessage[] = [];
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) out.push(...(await this.receive(Math.max(1, deadline - Date.now()))));
    return out;
  }
}
