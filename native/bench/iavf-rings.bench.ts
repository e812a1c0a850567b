// `pnpm bench` (or `pnpm --filter @emu/native bench`): the native iavf ring code in a closed loop,
// with this process playing the guest driver (iavfGuestPostTx / iavfGuestPostRx), and the doorbell
// watcher's wake-up latency. Prints one line per measurement; BENCH_MS sets the time per measurement.
import {
  closeFd,
  DoorbellWatcher,
  GuestMemoryTable,
  iavfGuestPostRx,
  iavfGuestPostTx,
  iavfRxRing,
  iavfTxRing,
  MappedMemory,
  memfdCreate,
} from '../lib/index.js';

const MS = Number(process.env.BENCH_MS ?? 1000);
const BASE = 0x1_0000_0000n;
const RING = 512;

function frame64(): Buffer {
  // Ethernet/IPv4/UDP, 64 bytes (the offloads have something to do when asked).
  const f = Buffer.alloc(64);
  Buffer.from('020000000099020000000a0a0800', 'hex').copy(f);
  f[14] = 0x45;
  f.writeUInt16BE(50, 16);
  f[22] = 64;
  f[23] = 17;
  f.writeUInt16BE(30, 38);
  return f;
}

function report(name: string, packets: number, ns: bigint, extra = ''): void {
  const s = Number(ns) / 1e9;
  console.log(
    `${name.padEnd(44)} ${(packets / s / 1e6).toFixed(2).padStart(6)} Mpps  ${((Number(ns) / packets) | 0).toString().padStart(5)} ns/pkt${extra}`,
  );
}

function setup() {
  const ram = Buffer.alloc(8 << 20);
  const table = new GuestMemoryTable();
  table.add(BASE, ram);
  const tx = { iova: BASE, length: RING };
  const rx = { iova: BASE + 0x10000n, length: RING, bufferSize: 2048, maxFrame: 9728 };
  const frame = BASE + 0x100000n;
  ram.set(frame64(), 0x100000);
  return { ram, table, tx, rx, frame, buffers: BASE + 0x200000n };
}

function benchTx(offload: boolean, cmd: number, label: string): void {
  const { table, tx, frame } = setup();
  let next = 0;
  let head = 0;
  let packets = 0;
  let bytes = 0;
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(MS) * 1_000_000n;
  let now = t0;
  while (now < end) {
    // The guest fills the ring (but one), bumps the tail; the device walks it.
    next = iavfGuestPostTx(table, tx, next, RING - 1, frame, 64, cmd);
    const r = iavfTxRing(table, tx, head, next, { offload });
    head = r.head;
    packets += r.frames.length;
    for (const f of r.frames) bytes += f.length;
    now = process.hrtime.bigint();
  }
  report(label, packets, now - t0, `  (${(bytes / 2 ** 20).toFixed(0)} MiB)`);
}

function benchRx(hash: boolean): void {
  const { table, rx, buffers } = setup();
  const f = frame64();
  let next = iavfGuestPostRx(table, rx, 0, RING - 1, buffers, 2048);
  let head = 0;
  let packets = 0;
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(MS) * 1_000_000n;
  let now = t0;
  while (now < end) {
    for (let i = 0; i < RING - 1; i++) {
      const r = iavfRxRing(table, rx, head, next, f, hash ? { hash: 0x12345678 } : {});
      head = r.head;
      packets++;
    }
    // The guest takes the frames and gives the buffers back.
    next = iavfGuestPostRx(table, rx, next, RING - 1, buffers, 2048);
    now = process.hrtime.bigint();
  }
  report(`RX 64 B${hash ? ', RSS hash' : ''} (iavfRxRing, one call per frame)`, packets, now - t0);
}

async function benchDoorbell(gapMs: number, samples: number): Promise<void> {
  // The watcher never keeps the process alive by itself (a device's socket does): this timer does.
  const alive = setInterval(() => {}, 1000);
  const fd = memfdCreate('emu-bench-doorbells', 4096);
  const page = MappedMemory.map(fd, 0, 4096);
  const words = new Uint32Array(page.buffer);
  let resolveRing: (() => void) | undefined;
  const watcher = DoorbellWatcher.create(fd, { fileOffset: 0, words: 16, onRing: () => resolveRing?.() });
  watcher.start();
  const lat: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      await new Promise((r) => setTimeout(r, gapMs));
      const rung = new Promise<void>((r) => {
        resolveRing = r;
      });
      const t0 = process.hrtime.bigint();
      words[i % 16]++;
      await rung;
      lat.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
  } finally {
    clearInterval(alive);
    watcher.close();
    page.unmap();
    closeFd(fd);
  }
  lat.sort((a, b) => a - b);
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(0);
  console.log(
    `${`doorbell -> JS callback, ${gapMs} ms apart`.padEnd(44)} p50 ${q(0.5)} us  p90 ${q(0.9)} us  p99 ${q(0.99)} us  (${samples} samples)`,
  );
}

benchTx(true, 0x7, 'TX 64 B, EOP|RS (iavfTxRing, offload on)');
benchTx(false, 0x7, 'TX 64 B, EOP|RS (iavfTxRing, raw + metadata)');
benchTx(true, 0x7 | 0x60 | 0x300, 'TX 64 B, IPv4 + UDP checksum offload');
benchRx(false);
benchRx(true);
await benchDoorbell(2, 200);
await benchDoorbell(20, 50);
await benchDoorbell(200, 10);
