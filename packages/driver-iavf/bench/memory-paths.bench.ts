/**
 * DataPath end to end (counters, interrupts, filters, RSS included) with this process as
 * the guest: 64-byte frames through TX (doorbell → frames to the network) and RX (network → ring), over
 * guest memory mapped directly (a Buffer, as a memfd would be) and over fd-less memory (the same
 * Buffer reached only by read/write calls, as DMA messages would reach it: the staged walk). BENCH_MS
 * sets the time per measurement. Run it with
 * `pnpm --filter @emu/driver-iavf exec node --import tsx bench/memory-paths.bench.ts`.
 */
import type { GuestMemory } from '@emu/emudev';
import { GuestMemoryTable, iavfGuestPostRx, iavfGuestPostTx } from '@emu/native';
import { silentLogger } from '@emu/vfio-user';
import { DataPath } from '../src/datapath/data-path.js';
import type { VfConfig } from '../src/pf.js';
import { BufferGuestMemory } from '../src/testing/buffer-memory.js';

const MS = Number(process.env.BENCH_MS ?? 1000);
const BASE = 0x1_0000_0000n;
const RING = 512;
const TX_RING = BASE;
const RX_RING = BASE + 0x10000n;
const FRAME = BASE + 0x20000n;
const RX_BUFS = BASE + 0x40000n;

function config(): VfConfig {
  return {
    numQueuePairs: 1,
    caps: 0,
    tx: [{ ring: TX_RING, length: RING }],
    rx: [{ ring: RX_RING, length: RING, bufferSize: 2048, maxFrame: 1536, crcStrip: true, descSize: 32 }],
    txEnabled: 1,
    rxEnabled: 1,
    irqMap: new Map([[1, { rx: 1, tx: 1, rxItr: 0, txItr: 1 }]]),
    macs: new Set(),
    promisc: 0,
    vlans: new Set(),
    vlanStrip: false,
    vlanInsert: true,
    rssKey: Buffer.alloc(52),
    rssLut: Buffer.alloc(64),
    rssHena: 0n,
  };
}

type Memory = 'direct' | 'fd-less';

function setup(memoryKind: Memory) {
  const ram = Buffer.alloc(4 << 20);
  const frame = Buffer.alloc(64);
  Buffer.from('020000000099020000000a0a0800', 'hex').copy(frame);
  ram.set(frame, Number(FRAME - BASE));
  const memory = new BufferGuestMemory(ram, BASE, memoryKind === 'direct');
  let sent = 0;
  const dp = new DataPath({
    memory: memory as unknown as GuestMemory,
    log: silentLogger,
    config,
    mac: '02:00:00:00:00:0a',
    raise: () => {},
    transmit: () => {
      sent++;
    },
  });
  // The guest's own view of its RAM, to post descriptors with.
  const guest = new GuestMemoryTable();
  guest.add(BASE, ram);
  return { dp, guest, sent: () => sent };
}

async function benchTx(memory: Memory): Promise<void> {
  const { dp, guest, sent } = setup(memory);
  const ring = { iova: TX_RING, length: RING };
  let next = 0;
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(MS) * 1_000_000n;
  let now = t0;
  while (now < end) {
    next = iavfGuestPostTx(guest, ring, next, 64, FRAME, 64);
    dp.txDoorbell(0, next);
    if (memory === 'fd-less') await dp.settled();
    now = process.hrtime.bigint();
  }
  report(`DataPath TX 64 B, ${memory} memory, 64 per doorbell`, sent(), now - t0);
}

async function benchRx(memory: Memory): Promise<void> {
  const { dp, guest } = setup(memory);
  const ring = { iova: RX_RING, length: RING };
  const frame = Buffer.alloc(64);
  Buffer.from('02000000000a0200000000990800', 'hex').copy(frame);
  let next = iavfGuestPostRx(guest, ring, 0, RING - 1, RX_BUFS, 2048);
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(MS) * 1_000_000n;
  let now = t0;
  while (now < end) {
    dp.rxTail[0] = next;
    for (let i = 0; i < 64; i++) dp.receive(frame);
    if (memory === 'fd-less') await dp.settled();
    next = iavfGuestPostRx(guest, ring, next, 64, RX_BUFS, 2048);
    now = process.hrtime.bigint();
  }
  report(`DataPath RX 64 B, ${memory} memory`, dp.rx[0].packets, now - t0);
}

function report(name: string, packets: number, ns: bigint): void {
  const pps = packets / (Number(ns) / 1e9);
  console.log(
    `${name.padEnd(58)} ${(pps / 1e6).toFixed(3).padStart(7)} Mpps  ${Math.round(Number(ns) / packets)} ns/pkt`,
  );
}

await benchTx('direct');
await benchTx('fd-less');
await benchRx('direct');
await benchRx('fd-less');
