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
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MS = Number(process.env.BENCH_MS ?? 3000);
const here = import.meta.dirname;
// The register client of @emu/vfio-user's own round-trip bench: one client, one place.
const CLIENT = fileURLToPath(new URL('../../vfio-user/bench/c/rtt-client.c', import.meta.url));

interface Figure {
  rate: number;
  p50: number;
  p99: number;
}

function lines(child: ReturnType<typeof spawn>, onLine: (line: string) => void): void {
  let buf = '';
  child.stdout!.on('data', (d) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
}

function rtt(client: string, socket: string): Promise<Figure> {
  const child = spawn(client, [socket, String(MS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  return new Promise((resolve, reject) =>
    child.on('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out) as Figure) : reject(new Error(`rtt-client: ${code}`)),
    ),
  );
}

const show = (f: Figure) => `${Math.round(f.rate)}/s, p50 ${f.p50.toFixed(1)} µs, p99 ${f.p99.toFixed(1)} µs`;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'emu-isolation-bench-'));
  const client = join(dir, 'rtt-client');
  try {
    execFileSync('cc', ['-O2', '-o', client, CLIENT], { stdio: 'pipe' });
  } catch {
    console.log('isolation: no C compiler (cc): nothing measured');
    rmSync(dir, { recursive: true, force: true });
    return;
  }
  const host = spawn(process.execPath, ['--import', 'tsx', join(here, 'scale-host.ts'), '1', '3', '1'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const sockets = await new Promise<string[]>((resolve, reject) => {
      host.on('exit', (code) => reject(new Error(`scale-host exited with ${code}`)));
      lines(host, (line) => resolve((JSON.parse(line) as { sockets: string[] }).sockets));
    });
    const idle = await rtt(client, sockets[2]);
    const flood = spawn(
      process.execPath,
      ['--import', 'tsx', join(here, 'forward-peer.ts'), sockets[0], sockets[1], '64', String(MS / 1000 + 3)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    flood.stdout.on('data', (d) => {
      out += d;
    });
    const done = new Promise<number | null>((r) => flood.on('exit', r));
    // Bring-up and warm-up first: the flood is on when the client starts.
    await new Promise((r) => setTimeout(r, 2500));
    const loaded = await rtt(client, sockets[2]);
    await done;
    const moved = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { frames?: number; seconds?: number };
    const mpps = moved.frames && moved.seconds ? moved.frames / moved.seconds / 1e6 : 0;
    console.log(`register round trips to a third NIC: idle ${show(idle)}`);
    console.log(
      `  while two NICs forward ${mpps.toFixed(2)} Mpps: ${show(loaded)}  p99 ${(loaded.p99 / idle.p99).toFixed(2)}× idle`,
    );
  } finally {
    host.removeAllListeners('exit');
    host.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
