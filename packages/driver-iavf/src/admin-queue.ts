/**
 * The admin queue (mailbox) in the hardware's role: the send queue (ATQ) the VF posts messages to the
 * PF on, and the receive queue (ARQ) the PF answers on, both rings of 32-byte descriptors in guest
 * memory (iavf_adminq.c, iavf_adminq_cmd.h). All guest-memory work runs in order on one chain, after the
 * register write that started it has been answered.
 */
import type { GuestMemory } from '@emu/emudev';
import type { Logger } from '@emu/vfio-user';
import { AQ_DESC_SIZE, AQ_MAX_BUF, AqFlag, AqOpcode, QLen, Reg } from './constants.js';

/** iavf_admin_queue_err values we return in a descriptor's retval. */
export const AqRetval = { OK: 0, EINVAL: 14, ENOSYS: 17 } as const;

interface Ring {
  bal: number;
  bah: number;
  len: number;
  head: number;
  tail: number;
}

const emptyRing = (): Ring => ({ bal: 0, bah: 0, len: 0, head: 0, tail: 0 });

/** Each admin-queue register is one field of one ring. */
const REGISTER_FIELDS = new Map<number, { ring: 'atq' | 'arq'; field: keyof Ring }>([
  [Reg.VF_ATQBAL1, { ring: 'atq', field: 'bal' }],
  [Reg.VF_ATQBAH1, { ring: 'atq', field: 'bah' }],
  [Reg.VF_ATQLEN1, { ring: 'atq', field: 'len' }],
  [Reg.VF_ATQH1, { ring: 'atq', field: 'head' }],
  [Reg.VF_ATQT1, { ring: 'atq', field: 'tail' }],
  [Reg.VF_ARQBAL1, { ring: 'arq', field: 'bal' }],
  [Reg.VF_ARQBAH1, { ring: 'arq', field: 'bah' }],
  [Reg.VF_ARQLEN1, { ring: 'arq', field: 'len' }],
  [Reg.VF_ARQH1, { ring: 'arq', field: 'head' }],
  [Reg.VF_ARQT1, { ring: 'arq', field: 'tail' }],
]);
/**
 * PF→VF messages that may wait for the VF to post ARQ buffers. A driver waits for each reply (Linux
 * has one request in flight, DPDK a few); a VF that keeps sending without ever posting buffers gets
 * its further replies dropped and counted, as a full mailbox would.
 */
export const MAX_PENDING_REPLIES = 256;

/**
 * The ring's address, as the hardware takes it: the base registers' bits 5:0 are not part of it (ice's
 * PF_FW_ATQBAL has ATQBAL in bits 31:6 and a separate ATQBAL_LSB field in 5:0, ice_hw_autogen.h), so a
 * ring is always 64-byte aligned; an unaligned base written by the driver starts at the 64-byte
 * boundary below it. The registers read back what was written.
 */
const BASE_ALIGN_MASK = 0x3f;
const base = (r: Ring) => (BigInt(r.bah) << 32n) | BigInt((r.bal & ~BASE_ALIGN_MASK) >>> 0);
const count = (r: Ring) => r.len & QLen.LEN_MASK;
const enabled = (r: Ring) => (r.len & QLen.ENABLE) !== 0 && count(r) > 0;

export interface AdminQueueHost {
  memory: GuestMemory;
  log: Logger;
  /** A send_msg_to_pf message from the VF (virtchnl op in cookie_high). */
  onMessage(vop: number, data: Buffer): void;
  /** A message landed on the ARQ: raise the admin-queue cause. */
  onPosted(): void;
}

export interface AdminQueueStats {
  /** Descriptors completed on the ATQ. */
  received: number;
  /** Messages posted on the ARQ. */
  sent: number;
  /** Messages that waited for the VF to post ARQ buffers. */
  backlog: number;
  /** Descriptors or rings the device could not use (bad addresses, lengths, tails). */
  errors: number;
  /** Replies dropped because MAX_PENDING_REPLIES already waited for ARQ buffers. */
  dropped: number;
}

export class AdminQueue {
  private atq = emptyRing();
  private arq = emptyRing();
  private outbox: Array<{ vop: number; status: number; payload: Buffer }> = [];
  private chain: Promise<void> = Promise.resolve();
  /** A pass of each kind queued on the chain and not started yet: a new doorbell needs no other. */
  private readonly queued = { atq: false, arq: false };
  /** Bumped by reset so that work in flight from before it stops touching the rings. */
  private generation = 0;
  private warnedAlign = false;
  readonly stats: AdminQueueStats = { received: 0, sent: 0, backlog: 0, errors: 0, dropped: 0 };

  constructor(private readonly host: AdminQueueHost) {}

  /** The registers this module owns, by offset. */
  static readonly REGISTERS = [...REGISTER_FIELDS.keys()];

  read(offset: number): number {
    const f = REGISTER_FIELDS.get(offset);
    return f ? this[f.ring][f.field] : 0;
  }

  write(offset: number, value: number): void {
    const f = REGISTER_FIELDS.get(offset);
    if (!f) return;
    const ring = this[f.ring];
    // Heads and tails are descriptor indexes; base and length registers keep every bit.
    ring[f.field] = f.field === 'head' || f.field === 'tail' ? value & QLen.LEN_MASK : value >>> 0;
    if (f.field === 'bal' && value & BASE_ALIGN_MASK && !this.warnedAlign) {
      this.warnedAlign = true;
      this.host.log.warn(
        { register: f.ring === 'atq' ? 'ATQBAL' : 'ARQBAL', value: `0x${(value >>> 0).toString(16)}` },
        'admin queue base not 64-byte aligned: its low 6 bits are ignored, as by the hardware (logged once)',
      );
    }
    // The doorbells: only a tail write starts work (never the LEN/ENABLE write).
    if (offset === Reg.VF_ATQT1) this.run('atq', () => this.processAtq());
    if (offset === Reg.VF_ARQT1) this.run('arq', () => this.deliver());
  }

  /** Queues a PF→VF message; it is written as soon as the VF has a buffer posted. */
  post(vop: number, status: number, payload: Buffer = Buffer.alloc(0)): void {
    if (this.outbox.length >= MAX_PENDING_REPLIES) {
      if (this.stats.dropped++ === 0) {
        this.host.log.warn(
          { vop, pending: this.outbox.length },
          'ARQ: the VF posts no buffers; replies beyond this are dropped (counted)',
        );
      }
      return;
    }
    this.outbox.push({ vop, status, payload });
    this.run('arq', () => this.deliver());
  }

  /** VF reset: both rings disabled and zeroed (ARQLEN.ENABLE reads 0: how the VF sees the reset). */
  reset(): void {
    this.generation++;
    this.queued.atq = false;
    this.queued.arq = false;
    this.atq = emptyRing();
    this.arq = emptyRing();
    this.outbox = [];
  }

  /** Resolves when all work queued so far is done: for tests and orderly shutdown. */
  idle(): Promise<void> {
    return this.chain;
  }

  get pendingReplies(): number {
    return this.outbox.length;
  }

  /**
   * Queues a pass on the chain, unless one of its kind is queued and not started yet: that one reads
   * the registers when it runs, so doorbells rung meanwhile cost nothing more (a guest ringing in a
   * loop cannot grow the chain).
   */
  private run(kind: 'atq' | 'arq', work: () => Promise<void>): void {
    if (this.queued[kind]) return;
    this.queued[kind] = true;
    const gen = this.generation;
    this.chain = this.chain
      .then(() => {
        if (gen !== this.generation) return undefined; // reset() cleared the flag already
        this.queued[kind] = false;
        return work();
      })
      .catch((err) => {
        this.stats.errors++;
        this.host.log.warn({ err: (err as Error).message }, 'admin queue');
      });
  }

  private async processAtq(): Promise<void> {
    const gen = this.generation;
    const ring = this.atq;
    while (gen === this.generation && enabled(ring) && ring.head !== ring.tail) {
      if (ring.tail >= count(ring) || ring.head >= count(ring)) {
        this.fail(ring, `ATQ tail ${ring.tail} / head ${ring.head} beyond the ${count(ring)} descriptors`);
        return;
      }
      const at = base(ring) + BigInt(ring.head * AQ_DESC_SIZE);
      const desc = await this.host.memory.read(at, AQ_DESC_SIZE).catch(() => undefined);
      if (!desc || gen !== this.generation) {
        if (gen === this.generation)
          this.fail(ring, `ATQ descriptor at 0x${at.toString(16)} is outside guest memory`);
        return;
      }
      const flags = desc.readUInt16LE(0);
      const opcode = desc.readUInt16LE(2);
      const datalen = desc.readUInt16LE(4);
      const vop = desc.readUInt32LE(8);
      const addr = (BigInt(desc.readUInt32LE(24)) << 32n) | BigInt(desc.readUInt32LE(28));
      let retval: number = AqRetval.OK;
      let data: Buffer = Buffer.alloc(0);
      if (opcode === AqOpcode.SEND_MSG_TO_PF) {
        if (datalen > 0) {
          const got =
            flags & AqFlag.BUF && datalen <= AQ_MAX_BUF
              ? await this.host.memory.read(addr, datalen).catch(() => undefined)
              : undefined;
          if (gen !== this.generation) return;
          if (got) data = got;
          else {
            retval = AqRetval.EINVAL;
            this.stats.errors++;
            this.host.log.warn(
              { addr: `0x${addr.toString(16)}`, datalen },
              'ATQ: message buffer is not readable',
            );
          }
        }
      } else if (opcode !== AqOpcode.QUEUE_SHUTDOWN) {
        retval = AqRetval.ENOSYS;
        this.host.log.warn({ opcode: `0x${opcode.toString(16)}` }, 'ATQ: unknown admin queue opcode');
      }
      desc.writeUInt16LE((flags | AqFlag.DD | AqFlag.CMP | (retval ? AqFlag.ERR : 0)) & 0xffff, 0);
      desc.writeUInt16LE(retval, 6);
      const written = await this.host.memory.write(at, desc).then(
        () => true,
        () => false,
      );
      if (gen !== this.generation) return;
      if (!written) {
        this.fail(ring, `ATQ descriptor at 0x${at.toString(16)} is not writable`);
        return;
      }
      ring.head = (ring.head + 1) % count(ring);
      this.stats.received++;
      if (opcode === AqOpcode.SEND_MSG_TO_PF && retval === AqRetval.OK) this.host.onMessage(vop, data);
    }
  }

  private async deliver(): Promise<void> {
    const gen = this.generation;
    const ring = this.arq;
    while (gen === this.generation && this.outbox.length > 0) {
      // One slot stays empty: the VF owns the descriptors from head up to its tail.
      if (!enabled(ring) || ring.head === ring.tail) {
        this.stats.backlog++;
        return;
      }
      if (ring.tail >= count(ring) || ring.head >= count(ring)) {
        this.fail(ring, `ARQ tail ${ring.tail} / head ${ring.head} beyond the ${count(ring)} descriptors`);
        return;
      }
      const at = base(ring) + BigInt(ring.head * AQ_DESC_SIZE);
      const desc = await this.host.memory.read(at, AQ_DESC_SIZE).catch(() => undefined);
      if (gen !== this.generation) return;
      if (!desc) {
        this.fail(ring, `ARQ descriptor at 0x${at.toString(16)} is outside guest memory`);
        return;
      }
      const msg = this.outbox[0];
      const room = desc.readUInt16LE(4);
      const addr = (BigInt(desc.readUInt32LE(24)) << 32n) | BigInt(desc.readUInt32LE(28));
      if (msg.payload.length > room) {
        this.outbox.shift();
        ring.len |= QLen.OVFL;
        this.stats.errors++;
        this.host.log.warn(
          { vop: msg.vop, length: msg.payload.length, room },
          'ARQ: reply larger than the posted buffer',
        );
        continue;
      }
      try {
        if (msg.payload.length > 0) await this.host.memory.write(addr, msg.payload);
        if (gen !== this.generation) return;
        // Never ERR on the ARQ: the VF drops the message. Status goes in cookie_low.
        desc.writeUInt16LE(AqFlag.DD | AqFlag.CMP | (msg.payload.length > 0 ? AqFlag.BUF : 0), 0);
        desc.writeUInt16LE(AqOpcode.SEND_MSG_TO_VF, 2);
        desc.writeUInt16LE(msg.payload.length, 4);
        desc.writeUInt16LE(0, 6);
        desc.writeUInt32LE(msg.vop >>> 0, 8);
        desc.writeInt32LE(msg.status, 12);
        desc.writeUInt32LE(0, 16);
        desc.writeUInt32LE(0, 20);
        await this.host.memory.write(at, desc);
      } catch {
        if (gen === this.generation)
          this.fail(ring, `ARQ buffer at 0x${addr.toString(16)} is outside guest memory`);
        return;
      }
      if (gen !== this.generation) return;
      this.outbox.shift();
      ring.head = (ring.head + 1) % count(ring);
      this.stats.sent++;
      this.host.onPosted();
    }
  }

  /** A ring the device cannot use: flag it critical (the VF logs and clears it) and stop. */
  private fail(ring: Ring, why: string): void {
    ring.len |= QLen.CRIT;
    this.stats.errors++;
    this.host.log.warn({}, `admin queue: ${why}`);
  }
}
