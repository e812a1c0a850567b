/**
 * The admin queue as iavf_adminq.c drives it: the ATQ and ARQ rings in guest RAM programmed in Linux's
 * register order (iavf_init_adminq, iavf_shutdown_adminq), a descriptor sent and waited for
 * (iavf_asq_send_command, iavf_asq_done), PF messages taken off the ARQ (iavf_clean_arq_element), and the
 * length registers' health as iavf_adminq_task checks it.
 */
import type { GuestRam } from '../guest-memory.js';
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
  IAVF,
  IAVF_AQ_LEN,
  IAVF_MAX_AQ_BUF_SIZE,
} from '../iavf-defs.js';
import { type Bar0, hi32, lo32, pollPause } from './io.js';

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

export interface AdminQueueOptions {
  /** Entries per admin queue ring (IAVF_AQ_LEN). */
  aqEntries?: number;
  /** Bytes per admin queue buffer (IAVF_MAX_AQ_BUF_SIZE). */
  aqBufSize?: number;
  /** How long to wait for ATQH to reach the tail after a doorbell. */
  atqTimeoutMs?: number;
}

/** Ring addresses and buffers of both queues. */
export interface AdminQueueMemory {
  atqRing: bigint;
  arqRing: bigint;
  atqBufs: bigint;
  arqBufs: bigint;
}

/** The admin queue was disabled under a command: the device is resetting the VF. */
export class AdminQueueResetError extends Error {}

/** struct iavf_adminq_info: both rings, their indices, and what was seen on them. */
export class AdminQueue {
  readonly entries: number;
  readonly bufSize: number;
  readonly atqTimeoutMs: number;
  private mem?: AdminQueueMemory;
  private atqNtu = 0;
  private arqNtc = 0;
  /** True between init and shutdown. */
  up = false;
  /** Every message received, in order. */
  readonly history: ArqMessage[] = [];
  /** history.length when the admin queue was last initialised: what came after is on the current rings. */
  historyAtInit = 0;
  /** ARQ descriptors ARQH had passed without DD written back (device ordering bug). */
  arqNotDone = 0;
  /** Times ARQLEN.ENABLE read 0 outside a reset we asked for (Linux: "Hardware reset detected"). */
  arqEnableLost = 0;
  /** VFE/OVFL/CRIT bits seen (and cleared) in ARQLEN/ATQLEN, as iavf_adminq_task logs them. */
  readonly errors: Array<{ queue: 'ARQ' | 'ATQ'; bits: number }> = [];

  constructor(
    private readonly regs: Bar0,
    private readonly ram: GuestRam,
    options: AdminQueueOptions,
  ) {
    this.entries = options.aqEntries ?? IAVF_AQ_LEN;
    this.bufSize = options.aqBufSize ?? IAVF_MAX_AQ_BUF_SIZE;
    this.atqTimeoutMs = options.atqTimeoutMs ?? 1000;
  }

  /** ATQ next_to_use (the tail the driver last wrote). */
  get atqNextToUse(): number {
    return this.atqNtu;
  }
  /** ARQ next_to_clean. */
  get arqNextToClean(): number {
    return this.arqNtc;
  }
  /** Descriptor ring addresses and buffers, once init allocated them. */
  get memory(): AdminQueueMemory | undefined {
    return this.mem;
  }

  /**
   * iavf_init_adminq: the send queue (iavf_init_asq → iavf_config_asq_regs), then the receive queue
   * with its buffers posted (iavf_init_arq → iavf_alloc_arq_bufs, iavf_config_arq_regs), each checked
   * by reading BAL back. The rings are allocated once and kept across resets.
   */
  async init(): Promise<void> {
    const { regs, ram } = this;
    const n = this.entries;
    if (!this.mem) {
      this.mem = {
        atqRing: ram.alloc(n * AQ_DESC.SIZE),
        arqRing: ram.alloc(n * AQ_DESC.SIZE),
        atqBufs: ram.alloc(n * this.bufSize),
        arqBufs: ram.alloc(n * this.bufSize),
      };
    }
    const m = this.mem;
    ram.fill(m.atqRing, n * AQ_DESC.SIZE);
    ram.fill(m.arqRing, n * AQ_DESC.SIZE);
    this.atqNtu = 0;
    this.arqNtc = 0;
    this.historyAtInit = this.history.length;

    await regs.wr32(IAVF.VF_ATQH1, 0);
    await regs.wr32(IAVF.VF_ATQT1, 0);
    await regs.wr32(IAVF.VF_ATQLEN1, n | AQLEN_ENABLE);
    await regs.wr32(IAVF.VF_ATQBAL1, lo32(m.atqRing));
    await regs.wr32(IAVF.VF_ATQBAH1, hi32(m.atqRing));
    if ((await regs.rd32(IAVF.VF_ATQBAL1)) !== lo32(m.atqRing))
      throw new Error('iavf_config_asq_regs: ATQBAL did not read back (IAVF_ERR_ADMIN_QUEUE_ERROR)');

    for (let i = 0; i < n; i++) this.armArqDesc(i);
    await regs.wr32(IAVF.VF_ARQH1, 0);
    await regs.wr32(IAVF.VF_ARQT1, 0);
    await regs.wr32(IAVF.VF_ARQLEN1, n | AQLEN_ENABLE);
    await regs.wr32(IAVF.VF_ARQBAL1, lo32(m.arqRing));
    await regs.wr32(IAVF.VF_ARQBAH1, hi32(m.arqRing));
    await regs.wr32(IAVF.VF_ARQT1, n - 1);
    if ((await regs.rd32(IAVF.VF_ARQBAL1)) !== lo32(m.arqRing))
      throw new Error('iavf_config_arq_regs: ARQBAL did not read back (IAVF_ERR_ADMIN_QUEUE_ERROR)');
    this.up = true;
  }

  /**
   * iavf_shutdown_adminq: queue_shutdown (0x0003, direct, synchronous, driver_unloading) if ATQLEN.ENABLE
   * still reads 1, then zero H, T, LEN, BAL, BAH of both queues. Returns the 0x0003 completion, if sent.
   */
  async shutdown(): Promise<AtqCompletion | undefined> {
    let done: AtqCompletion | undefined;
    if (this.up && (await this.regs.rd32(IAVF.VF_ATQLEN1)) & AQLEN_ENABLE) {
      done = await this.submit({
        flags: AQ_FLAG.SI,
        opcode: AQC_OPC_QUEUE_SHUTDOWN,
        param0: AQ_DRIVER_UNLOADING,
      });
    }
    for (const queue of [
      [IAVF.VF_ATQH1, IAVF.VF_ATQT1, IAVF.VF_ATQLEN1, IAVF.VF_ATQBAL1, IAVF.VF_ATQBAH1],
      [IAVF.VF_ARQH1, IAVF.VF_ARQT1, IAVF.VF_ARQLEN1, IAVF.VF_ARQBAL1, IAVF.VF_ARQBAH1],
    ]) {
      for (const reg of queue) await this.regs.wr32(reg, 0);
    }
    this.up = false;
    return done;
  }

  /** iavf_aq_send_msg_to_pf: a virtchnl message on the ATQ; waits until ATQH passes it unless told not to. */
  sendToPf(
    op: number,
    msg: Uint8Array = Buffer.alloc(0),
    opts: { wait?: boolean } = {},
  ): Promise<AtqCompletion> {
    return this.sendRaw(op, msg, {}, opts);
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
    const m = this.mem;
    if (!this.up || !m) throw new Error('admin queue is not initialised');
    const n = this.entries;
    const head = await this.regs.rd32(IAVF.VF_ATQH1);
    if (head >= n) throw new Error(`ATQ head overrun: ATQH reads ${head}, the ring has ${n}`);
    if ((this.atqNtu + 1) % n === head) throw new Error('ATQ full');
    const data = payload ?? Buffer.alloc(0);
    if (data.length > this.bufSize)
      throw new RangeError(`${data.length} bytes: the ATQ buffers are ${this.bufSize}`);
    const slot = this.atqNtu;
    const buf = m.atqBufs + BigInt(slot * this.bufSize);
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
    this.ram.write(m.atqRing + BigInt(slot * AQ_DESC.SIZE), d);
    this.atqNtu = (slot + 1) % n;
    await this.regs.wr32(IAVF.VF_ATQT1, this.atqNtu);
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
      const head = await this.regs.rd32(IAVF.VF_ATQH1);
      if (head === ntu) return;
      const late = Date.now() > deadline;
      if ((polls % 8 === 7 || late) && !((await this.regs.rd32(IAVF.VF_ATQLEN1)) & AQLEN_ENABLE)) {
        throw new AdminQueueResetError(`the device disabled the ATQ (a reset) before ATQH reached ${ntu}`);
      }
      if (late) {
        throw new Error(
          `admin queue command never completed: ATQH ${head}, next_to_use ${ntu} after ${timeoutMs} ms`,
        );
      }
      await pollPause(polls);
    }
  }

  /** The ATQ descriptor in a slot, as it is in guest memory now. */
  atqDesc(slot: number): AtqCompletion {
    const d = this.ram.read(this.mem!.atqRing + BigInt(slot * AQ_DESC.SIZE), AQ_DESC.SIZE);
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
    const m = this.mem!;
    const d = Buffer.alloc(AQ_DESC.SIZE);
    const buf = m.arqBufs + BigInt(i * this.bufSize);
    d.writeUInt16LE(AQ_FLAG.BUF | (this.bufSize > AQ_LARGE_BUF ? AQ_FLAG.LB : 0), AQ_DESC.FLAGS);
    d.writeUInt16LE(this.bufSize, AQ_DESC.DATALEN);
    d.writeUInt32LE(hi32(buf), AQ_DESC.ADDR_HIGH);
    d.writeUInt32LE(lo32(buf), AQ_DESC.ADDR_LOW);
    this.ram.write(m.arqRing + BigInt(i * AQ_DESC.SIZE), d);
  }

  /**
   * iavf_clean_arq_element, repeated while ARQH is ahead of next_to_clean: copy each message out,
   * re-arm its descriptor, write ARQT = the index just cleaned.
   */
  async cleanArq(): Promise<ArqMessage[]> {
    const m = this.mem;
    if (!this.up || !m) return [];
    const out: ArqMessage[] = [];
    for (;;) {
      const ntu = (await this.regs.rd32(IAVF.VF_ARQH1)) & AQ_HEAD_MASK;
      if (ntu === this.arqNtc || ntu >= this.entries) break;
      const i = this.arqNtc;
      const d = this.ram.read(m.arqRing + BigInt(i * AQ_DESC.SIZE), AQ_DESC.SIZE);
      if (!(d.readUInt16LE(AQ_DESC.FLAGS) & AQ_FLAG.DD)) {
        // ARQH passed a descriptor the device never wrote back: unless the ARQ was just reset (ARQH
        // back to 0), the device advanced the head before the descriptor. Leave it; Linux stops on v_op 0.
        if ((await this.regs.rd32(IAVF.VF_ARQLEN1)) & AQLEN_ENABLE) this.arqNotDone++;
        break;
      }
      const datalen = d.readUInt16LE(AQ_DESC.DATALEN);
      const msg: ArqMessage = {
        index: i,
        flags: d.readUInt16LE(AQ_DESC.FLAGS),
        opcode: d.readUInt16LE(AQ_DESC.OPCODE),
        datalen,
        retval: d.readUInt16LE(AQ_DESC.RETVAL),
        op: d.readUInt32LE(AQ_DESC.COOKIE_HIGH),
        status: d.readInt32LE(AQ_DESC.COOKIE_LOW),
        payload: this.ram.read(m.arqBufs + BigInt(i * this.bufSize), Math.min(datalen, this.bufSize)),
      };
      this.armArqDesc(i);
      await this.regs.wr32(IAVF.VF_ARQT1, i);
      this.arqNtc = (i + 1) % this.entries;
      out.push(msg);
      this.history.push(msg);
    }
    return out;
  }

  /**
   * What the end of iavf_adminq_task and the watchdog check: ARQLEN/ATQLEN error bits (logged and
   * cleared) and ARQLEN.ENABLE (0 means the device was reset under us).
   */
  async checkHealth(): Promise<void> {
    for (const [queue, reg] of [
      ['ARQ', IAVF.VF_ARQLEN1],
      ['ATQ', IAVF.VF_ATQLEN1],
    ] as const) {
      const val = await this.regs.rd32(reg);
      if (val === 0xdeadbeef || val === 0xffffffff) {
        this.arqEnableLost++;
        return;
      }
      if (queue === 'ARQ' && !(val & AQLEN_ENABLE)) this.arqEnableLost++;
      if (val & AQLEN_ERRORS) {
        this.errors.push({ queue, bits: (val & AQLEN_ERRORS) >>> 0 });
        await this.regs.wr32(reg, val & ~AQLEN_ERRORS);
      }
    }
  }

  /** Whether ARQLEN.ENABLE still reads 1: it drops to 0 when the device resets the VF. */
  async arqEnabled(): Promise<boolean> {
    return ((await this.regs.rd32(IAVF.VF_ARQLEN1)) & AQLEN_ENABLE) !== 0;
  }
}
