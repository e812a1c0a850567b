/**
 * `pnpm bench`: one guest's flood against another device's registers. The device process
 * (scale-host.ts) serves three emu_iavf NICs: two on one switch, flooded by a load generator
 * (forward-peer.ts, 64-byte frames, testpmd-like io forwarding), and a third on a switch of its own.
 * A C client (packages/vfio-user/bench/c/rtt-client.c, built here with `cc`) times 4-byte REGION_READs
 * of the third NIC's config space, one outstanding, first with the others idle, then during the flood.
 * Reported: round trips per second and p50/p99 both times; the goal is a p99 under flood at most 2× the
 * idle one. On a 2-CPU machine the generator, the worker, emu's JS thread and the client share two
 * cores: read the figure with that.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildRttPrograms,
  type RttFigure as Figure,
  forwardPeer,
  lastJson,
  runBench,
  startHost,
  stop,
} from './processes.js';

const MS = Number(process.env.BENCH_MS ?? 3000);

function rtt(client: string, socket: string): Promise<Figure> {
  return lastJson<Figure>(
    spawn(client, [socket, String(MS)], { stdio: ['ignore', 'pipe', 'inherit'] }),
    'rtt-client',
  );
}

const show = (f: Figure) => `${Math.round(f.rate)}/s, p50 ${f.p50.toFixed(1)} µs, p99 ${f.p99.toFixed(1)} µs`;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'emu-isolation-bench-'));
  const client = join(dir, 'rtt-client');
  if (!buildRttPrograms(dir, ['rtt-client'])) {
    console.log('isolation: no C compiler (cc): nothing measured');
    rmSync(dir, { recursive: true, force: true });
    return;
  }
  const host = await startHost(1, 3, 1);
  try {
    const { sockets } = host;
    const idle = await rtt(client, sockets[2]);
    const flood = forwardPeer(sockets[0], sockets[1], 64, MS / 1000 + 3);
    // Bring-up and warm-up first: the flood is on when the client starts.
    await new Promise((r) => setTimeout(r, 2500));
    const loaded = await rtt(client, sockets[2]);
    const mpps = await flood;
    console.log(`register round trips to a third NIC: idle ${show(idle)}`);
    console.log(
      `  while two NICs forward ${mpps.toFixed(2)} Mpps: ${show(loaded)}  p99 ${(loaded.p99 / idle.p99).toFixed(2)}× idle`,
    );
  } finally {
    await stop(host.child);
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench(main);
