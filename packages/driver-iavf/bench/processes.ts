/**
 * The child processes of the benchmarks, in one place: scripts of this folder run with tsx, programs
 * that print one JSON line, the device host of scale-host.ts and the load generator of forward-peer.ts.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';

const here = import.meta.dirname;

/** A script of this folder in its own Node process (stdout piped, stderr shown). */
export function runScript(script: string, args: string[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', join(here, script), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

/** Calls onLine for each line the child prints. */
export function lines(child: ChildProcess, onLine: (line: string) => void): void {
  let buf = '';
  child.stdout!.on('data', (d) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
}

/** The last line the child printed, as JSON, once it exited 0. */
export function lastJson<T>(child: ChildProcess, what: string): Promise<T> {
  let last = '';
  lines(child, (line) => {
    if (line.trim() !== '') last = line;
  });
  return new Promise((resolve, reject) =>
    child.on('exit', (code) =>
      code === 0 ? resolve(JSON.parse(last) as T) : reject(new Error(`${what} exited with ${code}`)),
    ),
  );
}

export interface Host {
  child: ChildProcess;
  pid: number;
  sockets: string[];
}

/** scale-host.ts serving `nics` NICs of `queues` queue pairs, two per switch, on `workers` workers. */
export function startHost(workers: number, nics: number, queues: number): Promise<Host> {
  const child = runScript('scale-host.ts', [String(workers), String(nics), String(queues)]);
  return new Promise((resolve, reject) => {
    child.on('exit', (code) => reject(new Error(`scale-host exited with ${code}`)));
    lines(child, (line) => {
      const { pid, sockets } = JSON.parse(line) as { pid: number; sockets: string[] };
      resolve({ child, pid, sockets });
    });
  });
}

/** Ends a child with SIGTERM and waits for it. */
export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.removeAllListeners('exit');
  const gone = new Promise((r) => child.on('exit', r));
  child.kill('SIGTERM');
  await gone;
}

/**
 * forward-peer.ts between the NICs on two sockets, `size`-byte frames for `seconds`: the Mpps it moved.
 * Asynchronous: the caller's event loop may be serving those sockets meanwhile.
 */
export async function forwardPeer(a: string, b: string, size: number, seconds: number): Promise<number> {
  const r = await lastJson<{ frames: number; seconds: number }>(
    runScript('forward-peer.ts', [a, b, String(size), String(seconds)]),
    'forward-peer',
  );
  return r.frames / r.seconds / 1e6;
}

/** Runs a benchmark's main(): exit 0 when it is done (children and handles left are not waited for), 1 on an error. */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}

/** What rtt-client prints: round trips per second and their p50 / p99 in µs. */
export interface RttFigure {
  rate: number;
  p50: number;
  p99: number;
}

/** @emu/vfio-user's round-trip bench C programs (rtt-client, floor-server), built into `dir` with `cc`; false without one. */
export function buildRttPrograms(dir: string, names: string[]): boolean {
  const sources = join(here, '../../vfio-user/bench/c');
  try {
    for (const name of names) {
      execFileSync('cc', ['-O2', '-o', join(dir, name), join(sources, `${name}.c`)], { stdio: 'pipe' });
    }
    return true;
  } catch {
    return false;
  }
}
