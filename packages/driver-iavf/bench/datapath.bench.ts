/**
 * `pnpm bench`: the iavf data path over fd-less guest memory (every access a read or write call, as
 * DMA messages reach it: the staged walk) with 64-byte frames in a closed loop. A load generator plays
 * the guest driver (fills TX descriptors and bumps the tail; posts RX buffers) against the device
 * side's DataPath, over guest memory held in this process. Speeds are reported as Mpps and as a ratio
 * to a reference measured in the same run on the same machine: copying the same 64-byte frames in and
 * out of the same memory in a plain loop, the floor of any per-frame work in JavaScript.
 */
import { cpus } from 'node:os';
import type { GuestMemory } from '@emu/emudev';
import { silentLogger } from '@emu/vfio-user';
import { DataPath } from '../src/datapath/data-path.js';
import { type VfConfig, VirtualFunction } from '../src/pf.js';
import { BufferGuestMemory } from '../src/testing/buffer-memory.js';

const FRAME = 64;
const RING = 512;
const BATCH = 256;
const SECONDS = Number(process.env.EMU_BENCH_SECONDS ?? 2);
const MIB = 1 << 20;
const TX_DESC_SIZE = 16;

/** Guest memory as a plain buffer, reached as fd-less RAM is (read/write calls). */
const localMemory = () => new BufferGuestMemory(Buffer.alloc(8 * MIB), 0n, false);

function configWith(tx: boolean, rx: boolean): VfConfig {
  const vf = new VirtualFunction({
    mac: '02:00:00:00:00:01',
    trusted: false,
    portVlan: 0,
    maxMtu: 1500,
    queuePairs: () => 1,
    maxQueuePairs: 1,
    link: () => ({ up: true, speedMbps: 10000 }),
    inGuestMemory: () => true,
    post: () => {},
    resetVf: () => {},
    queuesChanged: () => {},
    stats: () => ({}),
    warn: () => {},
  });
  const cfg = vf.config;
  return {
    ...cfg,
    tx: [tx ? { ring: 0x10000n, length: RING } : undefined],
    rx: [
      rx
        ? { ring: 0x20000n, length: RING, bufferSize: 2048, maxFrame: 1522, crcStrip: true, descSize: 32 }
        : undefined,
    ],
    txEnabled: tx ? 1 : 0,
    rxEnabled: rx ? 1 : 0,
    promisc: 1,
  };
}

const frame = Buffer.alloc(FRAME, 0xab);
frame.set([0x02, 0, 0, 0, 0, 0x01], 0);

async function measure(run: () => Promise<number>): Promise<number> {
  const end = Date.now() + SECONDS * 1000;
  let frames = 0;
  const start = process.hrtime.bigint();
  while (Date.now() < end) frames += await run();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return frames / seconds / 1e6;
}

async function benchTx(): Promise<number> {
  const memory = localMemory();
  let sent = 0;
  const cfg = configWith(true, false);
  const dp = new DataPath({
    memory: memory as unknown as GuestMemory,
    log: silentLogger,
    mac: '02:00:00:00:00:01',
    config: () => cfg,
    raise: () => {},
    transmit: () => {
      sent++;
    },
  });
  // Buffers: one 64-byte frame per descriptor slot, written once.
  for (let i = 0; i < RING; i++) memory.bytes.set(frame, 0x100000 + i * 128);
  let head = 0;
  return measure(async () => {
    const before = sent;
    for (let i = 0; i < BATCH; i++) {
      const slot = (head + i) % RING;
      const at = 0x10000 + slot * TX_DESC_SIZE;
      memory.bytes.writeBigUInt64LE(BigInt(0x100000 + slot * 128), at);
      const qw1 = 0n | ((0x001n | 0x002n) << 4n) | (BigInt(FRAME) << 34n); // DATA, EOP|RS, size
      memory.bytes.writeBigUInt64LE(qw1, at + 8);
    }
    head = (head + BATCH) % RING;
    dp.txDoorbell(0, head);
    while (sent - before < BATCH) await new Promise((r) => setImmediate(r));
    return sent - before;
  });
}

async function benchRx(): Promise<number> {
  const memory = localMemory();
  const cfg = configWith(false, true);
  const dp = new DataPath({
    memory: memory as unknown as GuestMemory,
    log: silentLogger,
    mac: '02:00:00:00:00:01',
    config: () => cfg,
    raise: () => {},
    transmit: () => {},
  });
  for (let i = 0; i < RING; i++) memory.bytes.writeBigUInt64LE(BigInt(0x200000 + i * 2048), 0x20000 + i * 32);
  let tail = RING - 1;
  return measure(async () => {
    const before = dp.rx[0].packets;
    // The guest hands back a batch of buffers (re-arming their descriptors), then frames arrive.
    tail = (tail + BATCH) % RING;
    for (let i = 0; i < BATCH; i++) {
      const slot = (tail - BATCH + i + RING) % RING;
      memory.bytes.writeBigUInt64LE(BigInt(0x200000 + slot * 2048), 0x20000 + slot * 32);
      memory.bytes.writeBigUInt64LE(0n, 0x20000 + slot * 32 + 8);
    }
    dp.rxTail[0] = tail;
    for (let i = 0; i < BATCH; i++) dp.receive(frame);
    while (dp.rx[0].packets + dp.rx[0].drops - before < BATCH) await new Promise((r) => setImmediate(r));
    return dp.rx[0].packets - before;
  });
}

/** The reference: the same frames copied out of and into the same memory, nothing else. */
async function benchReference(): Promise<number> {
  const memory = localMemory();
  return measure(async () => {
    for (let i = 0; i < BATCH; i++) {
      const f = Buffer.from(memory.bytes.subarray(0x100000 + i * 128, 0x100000 + i * 128 + FRAME));
      memory.bytes.set(f, 0x200000 + i * 2048);
    }
    return BATCH;
  });
}

const ref = await benchReference();
const tx = await benchTx();
const rx = await benchRx();
const cpu = cpus()[0]?.model ?? 'unknown CPU';
console.log(
  `iavf data path, 64-byte frames, fd-less memory, ${SECONDS} s per figure (${cpus().length} × ${cpu})`,
);
console.log(`  reference (copy frames in a plain loop): ${ref.toFixed(2)} Mpps`);
console.log(
  `  TX (guest → network):                    ${tx.toFixed(3)} Mpps   ratio to reference ${(tx / ref).toFixed(3)}`,
);
console.log(
  `  RX (network → guest):                    ${rx.toFixed(3)} Mpps   ratio to reference ${(rx / ref).toFixed(3)}`,
);
