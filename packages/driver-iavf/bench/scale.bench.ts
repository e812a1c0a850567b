/**
 * `pnpm bench`: emu with many NICs, and with more than one data plane worker.
 * - 64 NICs of 4 queue pairs, two per switch, one worker: the device process's resident memory
 *   before any client and with all 64 VFs up (queues enabled, nothing sent), and its CPU use while
 *   they idle (the worker polling 256 TX queues, backing off to 1 ms).
 * - Forwarding, 64-byte frames, two switches of two NICs each, a load generator per switch
 *   (forward-peer.ts), with one worker and with two: frames moved per second, both switches together.
 *   On a machine with two cores the two generators and two workers share them: read the figure with that.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const SECONDS = Number(process.env.EMU_BENCH_SECONDS ?? 3);
const TSX = ['--import', 'tsx'];
const here = import.meta.dirname;
const TICKS = 100; // USER_HZ

interface Host {
  child: ChildProcess;
  pid: number;
  sockets: string[];
}

function lines(child: ChildProcess, onLine: (line: string) => void): void {
  let buf = '';
  child.stdout!.on('data', (d) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
}

function startHost(workers: number, nics: number, queues: number): Promise<Host> {
  const child = spawn(
    process.execPath,
    [...TSX, join(here, 'scale-host.ts'), String(workers), String(nics), String(queues)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  return new Promise((resolve, reject) => {
    child.on('exit', (code) => reject(new Error(`scale-host exited with ${code}`)));
    lines(child, (line) => {
      const { pid, sockets } = JSON.parse(line) as { pid: number; sockets: string[] };
      resolve({ child, pid, sockets });
    });
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.removeAllListeners('exit');
  const gone = new Promise((r) => child.on('exit', r));
  child.kill('SIGTERM');
  await gone;
}

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
    const peer = spawn(process.execPath, [...TSX, join(here, 'scale-peer.ts'), ...host.sockets], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
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
    const runs = [0, 1].map((s) => {
      const child = spawn(
        process.execPath,
        [
          ...TSX,
          join(here, 'forward-peer.ts'),
          host.sockets[2 * s],
          host.sockets[2 * s + 1],
          '64',
          String(SECONDS),
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
      });
      return new Promise<number>((resolve, reject) =>
        child.on('exit', (code) => {
          if (code !== 0) return reject(new Error(`forward-peer exited with ${code}`));
          const r = JSON.parse(out.trim().split('\n').pop()!) as { frames: number; seconds: number };
          resolve(r.frames / r.seconds / 1e6);
        }),
      );
    });
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

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
