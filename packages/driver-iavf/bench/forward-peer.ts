/**
 * The load generator of forward.bench.ts, in its own process: it plays the guest driver of two
 * emu_iavf NICs as a VM would. For each it connects over the vfio-user socket, hands over memfd RAM
 * (DMA_MAP with its fd), brings the VF up the way Linux 6.12 does (SoftIavf: admin queue, virtchnl,
 * one queue pair), maps BAR0's tail page (the sparse mmap areas) and then, like testpmd's io forwarding,
 * bounces frames between the two NICs in a closed loop: every frame a NIC received goes out of it
 * again, towards the other. The frames are IPv4/UDP, as testpmd's txonly ones. The loop itself runs in C++ (@emu/native's iavfGuestForward: descriptors
 * posted and cleaned, tails written straight into the mapped page), as testpmd's does, so the figure is
 * the device's, not this process's. It prints one JSON line: { frames, seconds } — frames the device
 * moved, both directions.
 *
 *   tsx forward-peer.ts SOCKET_A SOCKET_B FRAME_BYTES SECONDS
 */
import { GuestMemoryTable, iavfGuestForward } from '@emu/native';
import { silentLogger, VfioUserClient } from '@emu/vfio-user';
import { ipv4UdpFrame } from '../src/testing/frames.js';
import { GuestRam } from '../src/testing/guest-memory.js';
import { SoftIavf } from '../src/testing/soft-iavf/main.js';

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
  };
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
    // IPv4/UDP, as testpmd's txonly packets are (the reference's frames): the NIC parses them for RSS.
    const f = ipv4UdpFrame({
      dstMac: peer.vf.mac,
      srcMac: s.vf.mac,
      srcIp: '198.18.0.1',
      dstIp: '198.18.0.2',
      sport: 9,
      dport: 9,
      payload: Buffer.alloc(bytes - 14 - 20 - 8, 0x5a),
    });
    s.frame = s.vf.scratch(f);
  }
  const sides = [a, b].map((s) => ({
    table: s.table,
    tx: s.tx.iova,
    rx: s.rx.iova,
    ringLen: RING,
    rxBuffers: s.rxBuffers,
    bufferSize: s.bufferSize,
    frame: s.frame,
    frameLength: bytes,
    txTail: s.txTail,
    rxTail: s.rxTail,
    txNtu: s.txNtu,
    txNtc: s.txNtc,
    inFlight: s.inFlight,
    rxNtu: s.rxNtu,
    rxNtc: s.rxNtc,
    owed: IN_FLIGHT,
  }));
  const r = iavfGuestForward(sides, 300, seconds * 1000);
  process.stdout.write(`${JSON.stringify(r)}\n`);
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
