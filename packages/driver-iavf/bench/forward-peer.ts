/**
 * The load generator of forward.bench.ts, in its own process: it plays the guest driver of two
 * emu_iavf NICs as a VM would. For each it connects over the vfio-user socket, hands over memfd RAM
 * (DMA_MAP with its fd), brings the VF up the way Linux 6.12 does (SoftIavf: admin queue, virtchnl,
 * one queue pair), maps BAR0's tail page (the sparse mmap areas) and then, like testpmd's io forwarding,
 * bounces frames between the two NICs in a closed loop: every frame a NIC received goes out of it
 * again, towards the other. Descriptors are posted and cleaned by native helpers in bursts and tails
 * are written straight into the mapped page, so a burst costs this process a few calls, not one per
 * frame. It prints one JSON line: { frames, seconds } — frames the device moved, both directions.
 *
 *   tsx forward-peer.ts SOCKET_A SOCKET_B FRAME_BYTES SECONDS
 */
import {
  GuestMemoryTable,
  iavfGuestPostRx,
  iavfGuestPostTx,
  iavfGuestReapRx,
  iavfGuestReapTx,
} from '@emu/native';
import { silentLogger, VfioUserClient } from '@emu/vfio-user';
import { ethFrame } from '../src/testing/frames.js';
import { GuestRam } from '../src/testing/guest-memory.js';
import { SoftIavf } from '../src/testing/soft-iavf.js';

const RING = 1024;
/** Frames each NIC has in flight: half its ring, as testpmd's --tx-first burst loop keeps them busy. */
const IN_FLIGHT = 256;

interface Side {
  vf: SoftIavf;
  table: GuestMemoryTable;
  txTail: Uint32Array;
  rxTail: Uint32Array;
  tx: { iova: bigint; length: number };
  rx: { iova: bigint; length: number };
  rxBuffers: bigint;
  bufferSize: number;
  frame: bigint;
  txNtu: number;
  txNtc: number;
  inFlight: number;
  rxNtu: number;
  rxNtc: number;
  /** Frames received and not yet sent on. */
  owed: number;
}

async function open(socket: string): Promise<Side> {
  const client = await VfioUserClient.connect(socket, { logger: silentLogger });
  const ram = GuestRam.shared(64);
  await ram.attach(client);
  const vf = new SoftIavf(client, ram, { ringLen: RING });
  await vf.bringUp();
  const bar0 = client.mapRegion(await client.getRegionInfo(0));
  const area = (offset: bigint) => {
    const a = bar0.find((x) => x.offset === offset);
    if (!a) throw new Error(`BAR0 has no mmap-able area at 0x${offset.toString(16)}`);
    return new Uint32Array(a.memory.buffer, 0, 1);
  };
  const table = new GuestMemoryTable();
  table.add(ram.base, ram.bytes);
  const rings = vf.rings[0];
  const rx = vf.rxRingState(0);
  const tx = vf.txRingState(0);
  return {
    vf,
    table,
    txTail: area(0x0000n),
    rxTail: area(0x2000n),
    tx: { iova: rings.tx, length: RING },
    rx: { iova: rings.rx, length: RING },
    rxBuffers: rings.rxBuffers!,
    bufferSize: rings.bufferSize,
    frame: 0n,
    txNtu: tx.ntu,
    txNtc: tx.ntc,
    inFlight: tx.inFlight,
    rxNtu: rx.ntu,
    rxNtc: rx.ntc,
    owed: 0,
  };
}

function send(s: Side, count: number, length: number): number {
  const room = RING - 1 - s.inFlight;
  const n = Math.min(count, room);
  if (n <= 0) return 0;
  s.txNtu = iavfGuestPostTx(s.table, s.tx, s.txNtu, n, s.frame, length);
  s.inFlight += n;
  Atomics.store(s.txTail, 0, s.txNtu);
  return n;
}

async function main(): Promise<void> {
  const [sockA, sockB, bytesArg, secondsArg] = process.argv.slice(2);
  const bytes = Number(bytesArg);
  const seconds = Number(secondsArg);
  const a = await open(sockA);
  const b = await open(sockB);
  for (const [s, peer] of [
    [a, b],
    [b, a],
  ] as const) {
    const f = ethFrame(peer.vf.mac, s.vf.mac, 0x88b5, Buffer.alloc(bytes - 14, 0x5a));
    s.frame = s.vf.scratch(f);
  }
  const sides = [a, b];
  for (const s of sides) send(s, IN_FLIGHT, bytes);
  let moved = 0;
  let start = 0n;
  let warm = true;
  const warmUntil = Date.now() + 300;
  const end = Date.now() + 300 + seconds * 1000;
  for (let turn = 0; ; turn++) {
    for (const s of sides) {
      const got = iavfGuestReapRx(s.table, s.rx, s.rxNtc, RING - 1);
      if (got > 0) {
        s.rxNtc = (s.rxNtc + got) % RING;
        s.rxNtu = iavfGuestPostRx(s.table, s.rx, s.rxNtu, got, s.rxBuffers, s.bufferSize);
        Atomics.store(s.rxTail, 0, s.rxNtu);
        s.owed += got;
        if (!warm) moved += got;
      }
      const done = iavfGuestReapTx(s.table, s.tx, s.txNtc, s.inFlight);
      s.txNtc = (s.txNtc + done) % RING;
      s.inFlight -= done;
      s.owed -= send(s, s.owed, bytes);
    }
    if ((turn & 255) === 0) {
      const now = Date.now();
      if (warm && now >= warmUntil) {
        warm = false;
        start = process.hrtime.bigint();
      }
      if (now >= end) break;
      // Let the sockets' events run now and then (interrupts arrive as eventfd writes nobody reads).
      await new Promise((r) => setImmediate(r));
    }
  }
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  process.stdout.write(`${JSON.stringify({ frames: moved, seconds: elapsed })}\n`);
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
