/**
 * Fuzz target `adminq` (pnpm fuzz adminq): the admin-queue engine (AdminQueue) over buffer-backed guest
 * memory a hostile guest controls: register writes (ring bases, lengths with and without ENABLE, heads,
 * tails, doorbells) with plausible and random values, guest bytes written anywhere (descriptors, their
 * buffers), PF replies posted, VF resets, in any order. After each input: nothing thrown, the work
 * chain settles (no pass loops or waits forever), the backlog never passes MAX_PENDING_REPLIES, and every
 * message handed on came from a descriptor the engine completed.
 */

import type { GuestMemory } from '@emu/emudev';
import fc from 'fast-check';
import type { FuzzTarget } from '../../../scripts/fuzz/target.mjs';
import { AdminQueue, MAX_PENDING_REPLIES } from '../src/admin-queue.js';
import { Reg } from '../src/constants.js';
import { BufferGuestMemory } from '../src/testing/buffer-memory.js';

const BASE = 0x100000n;
const SIZE = 64 * 1024;
const RINGS = [
  Reg.VF_ATQBAL1,
  Reg.VF_ATQBAH1,
  Reg.VF_ATQLEN1,
  Reg.VF_ATQH1,
  Reg.VF_ATQT1,
  Reg.VF_ARQBAL1,
  Reg.VF_ARQBAH1,
  Reg.VF_ARQLEN1,
  Reg.VF_ARQH1,
  Reg.VF_ARQT1,
];
const ENABLE = 0x80000000;
/** Where plausible rings and buffers go: the ATQ, the ARQ, then 512-byte buffers. */
const ATQ = BASE;
const ARQ = BASE + 0x1000n;
const BUFFERS = BASE + 0x2000n; // 128 buffers of 512 bytes: 64 for the ATQ, 64 for the ARQ

type Step =
  | { kind: 'reg'; offset: number; value: number }
  | { kind: 'poke'; at: number; bytes: Uint8Array }
  | {
      kind: 'desc';
      arq: boolean;
      slot: number;
      flags: number;
      opcode: number;
      datalen: number;
      vop: number;
      buffer: number;
    }
  | { kind: 'post'; vop: number; status: number; length: number }
  /** What iavf_asq_send_command does: a descriptor at the tail (its buffer filled), then the tail moved. */
  | { kind: 'send'; vop: number; payload: Uint8Array; flags: number }
  | { kind: 'reset' }
  | { kind: 'settle' };

const value = (offset: number): fc.Arbitrary<number> => {
  switch (offset) {
    case Reg.VF_ATQBAL1:
    case Reg.VF_ARQBAL1:
      return fc.oneof(
        fc.integer({ min: 0, max: 0xf000 }).map((o) => Number(BASE) + o),
        fc.nat({ max: 0xffffffff }),
      );
    case Reg.VF_ATQBAH1:
    case Reg.VF_ARQBAH1:
      return fc.oneof(fc.constant(0), fc.nat({ max: 0xffffffff }));
    case Reg.VF_ATQLEN1:
    case Reg.VF_ARQLEN1:
      return fc.oneof(
        fc.integer({ min: 0, max: 64 }).map((n) => (n | ENABLE) >>> 0),
        fc.nat({ max: 0xffffffff }),
      );
    default:
      return fc.oneof(
        fc.integer({ min: 0, max: 4 }),
        fc.integer({ min: 0, max: 70 }),
        fc.nat({ max: 0xffffffff }),
      );
  }
};

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc
      .constantFrom(...RINGS)
      .chain((offset) => value(offset).map((v): Step => ({ kind: 'reg', offset, value: v }))),
  },
  {
    weight: 4,
    arbitrary: fc
      .record({ at: fc.nat({ max: SIZE - 1 }), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) })
      .map((p): Step => ({ kind: 'poke', ...p })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({
        vop: fc.nat({ max: 60 }),
        status: fc.integer({ min: -64, max: 0 }),
        length: fc.nat({ max: 5000 }),
      })
      .map((p): Step => ({ kind: 'post', ...p })),
  },
  {
    weight: 4,
    arbitrary: fc
      .record({
        vop: fc.nat({ max: 60 }),
        payload: fc.uint8Array({ maxLength: 512 }),
        flags: fc.oneof(fc.constant(0x1400), fc.nat({ max: 0xffff })),
      })
      .map((p): Step => ({ kind: 'send', ...p })),
  },
  { weight: 1, arbitrary: fc.constant<Step>({ kind: 'reset' }) },
  { weight: 2, arbitrary: fc.constant<Step>({ kind: 'settle' }) },
);

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

interface Input {
  /** Start as a driver leaves the queues after iavf_init_adminq: both rings set up, ARQ buffers posted. */
  init: boolean;
  steps: Step[];
}

/** The register writes and descriptors of iavf_init_adminq: 64-entry rings, every ARQ slot given a buffer. */
function initSteps(): Step[] {
  const arqBuffers = Array.from(
    { length: 64 },
    (_, slot): Step => ({
      kind: 'desc',
      arq: true,
      slot,
      flags: 0x1000,
      opcode: 0,
      datalen: 512,
      vop: 0,
      buffer: 64 + slot,
    }),
  );
  return [
    { kind: 'reg', offset: Reg.VF_ATQBAL1, value: Number(ATQ) },
    { kind: 'reg', offset: Reg.VF_ATQBAH1, value: 0 },
    { kind: 'reg', offset: Reg.VF_ATQLEN1, value: (64 | ENABLE) >>> 0 },
    { kind: 'reg', offset: Reg.VF_ARQBAL1, value: Number(ARQ) },
    { kind: 'reg', offset: Reg.VF_ARQBAH1, value: 0 },
    { kind: 'reg', offset: Reg.VF_ARQLEN1, value: (64 | ENABLE) >>> 0 },
    ...arqBuffers,
    { kind: 'reg', offset: Reg.VF_ARQT1, value: 63 },
  ];
}

export const target: FuzzTarget<Input> = {
  arbitrary: fc.record({ init: fc.boolean(), steps: fc.array(step, { maxLength: 40 }) }),
  async check(input) {
    const steps = input.init ? [...initSteps(), ...input.steps] : input.steps;
    const bytes = Buffer.alloc(SIZE);
    const memory = new BufferGuestMemory(bytes, BASE, true) as unknown as GuestMemory;
    let messages = 0;
    const aq = new AdminQueue({
      memory,
      log: quiet,
      onMessage: () => {
        messages++;
      },
      onPosted: () => {},
    });
    const settle = async () => {
      const timeout = new Promise((_, reject) =>
        setTimeout(() => reject(new Error('the admin queue never settled')), 2000),
      );
      await Promise.race([aq.idle(), timeout]);
    };
    for (const s of steps) {
      switch (s.kind) {
        case 'reg':
          aq.write(s.offset, s.value);
          break;
        case 'poke':
          bytes.set(s.bytes.subarray(0, SIZE - s.at), s.at);
          break;
        case 'desc': {
          const at = Number((s.arq ? ARQ : ATQ) - BASE) + s.slot * 32;
          bytes.fill(0, at, at + 32);
          bytes.writeUInt16LE(s.flags, at);
          bytes.writeUInt16LE(s.opcode, at + 2);
          bytes.writeUInt16LE(s.datalen, at + 4);
          bytes.writeUInt32LE(s.vop, at + 8);
          const buffer = BUFFERS + BigInt(s.buffer) * 512n;
          bytes.writeUInt32LE(Number(buffer >> 32n), at + 0x18);
          bytes.writeUInt32LE(Number(buffer & 0xffffffffn), at + 0x1c);
          break;
        }
        case 'send': {
          const n = aq.read(Reg.VF_ATQLEN1) & 0x3ff;
          if (n === 0 || n > 64) break;
          const slot = aq.read(Reg.VF_ATQT1) % n;
          const at = Number(ATQ - BASE) + slot * 32;
          const buffer = Number(BUFFERS - BASE) + slot * 512;
          bytes.fill(0, at, at + 32);
          bytes.writeUInt16LE(s.flags, at);
          bytes.writeUInt16LE(0x0801, at + 2);
          bytes.writeUInt16LE(s.payload.length, at + 4);
          bytes.writeUInt32LE(s.vop, at + 8);
          bytes.writeUInt32LE(Number(BUFFERS >> 32n), at + 0x18);
          bytes.writeUInt32LE(Number((BUFFERS & 0xffffffffn) + BigInt(slot * 512)), at + 0x1c);
          bytes.set(s.payload, buffer);
          aq.write(Reg.VF_ATQT1, (slot + 1) % n);
          break;
        }
        case 'post':
          aq.post(s.vop, s.status, Buffer.alloc(s.length, 0xab));
          break;
        case 'reset':
          aq.reset();
          break;
        case 'settle':
          await settle();
          break;
      }
      if (aq.pendingReplies > MAX_PENDING_REPLIES) throw new Error(`${aq.pendingReplies} replies waiting`);
    }
    await settle();
    if (messages > aq.stats.received)
      throw new Error(`${messages} messages from ${aq.stats.received} completed descriptors`);
  },
};
