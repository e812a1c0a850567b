/**
 * `pnpm bench`: emu with many NICs, and with more than one data plane worker.
 * - 64 NICs of 4 queue pairs, two per switch, one worker: the device process's resident memory
 *   before any client and with all 64 VFs up (queues enabled, nothing sent), and its CPU use while
 *   they idle (the worker polling 256 TX queues, backing off to 1 ms).
 * - Forwarding, 64-byte frames, two switches of two NICs each, a load generator per switch
 *   (forward-peer.ts), with one worker and with two: frames moved per second, both switches together.
 *   On a machine with two cores the two generators and two workers share them: read the figure with that.
 */
import { readFileSync } from 'node:fs';
import { forwardPeer, lines, runBench, runScript, startHost, stop } from './processes.js';

const SECONDS = Number(process.env.EMU_BENCH_SECONDS ?? 3);
const TICKS = 100; // USER_HZ

function rssMiB(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  return kb / 1024;
}

function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function idle(): Promise<void> {
  const host = await startHost(1, 64, 4);
  try {
    await sleep(500);
    const before = rssMiB(host.pid);
    const peer = runScript('scale-peer.ts', host.sockets);
    await new Promise<void>((resolve, reject) => {
      peer.on('exit', (code) => reject(new Error(`scale-peer exited with ${code}`)));
      lines(peer, (line) => line.startsWith('up') && resolve());
    });
    await sleep(1000);
    const t0 = cpuTicks(host.pid);
    const start = Date.now();
    await sleep(SECONDS * 1000);
    const cpu = ((cpuTicks(host.pid) - t0) / TICKS / ((Date.now() - start) / 1000)) * 100;
    const up = rssMiB(host.pid);
    await stop(peer);
    console.log(
      `64 NICs × 4 queue pairs, 1 worker: RSS ${before.toFixed(0)} MiB serving, ${up.toFixed(0)} MiB with 64 VFs up; idle CPU ${cpu.toFixed(1)} % of one core`,
    );
  } finally {
    await stop(host.child);
  }
}

async function forward(workers: number): Promise<number> {
  const host = await startHost(workers, 4, 1);
  try {
    const runs = [0, 1].map((s) => forwardPeer(host.sockets[2 * s], host.sockets[2 * s + 1], 64, SECONDS));
    return (await Promise.all(runs)).reduce((a, b) => a + b, 0);
  } finally {
    await stop(host.child);
  }
}

async function main(): Promise<void> {
  await idle();
  const one = await forward(1);
  const two = await forward(2);
  console.log(
    `forwarding, 2 switches × 2 NICs, 64 B: 1 worker ${one.toFixed(3)} Mpps, 2 workers ${two.toFixed(3)} Mpps (${(two / one).toFixed(2)}×)`,
  );
}

runBench(main);
