// Shared by the *.test.ts files (not part of the package).
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UnixSocket } from './unix-socket.js';

/** A fresh directory for socket paths (short enough for sun_path), removed by cleanup(). */
export function tempDir(): { dir: string; path(name: string): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'emu-native-'));
  return {
    dir,
    path: (name) => join(dir, name),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** fd -> what it refers to, for this process. */
export function openFds(): Map<number, string> {
  const fds = new Map<number, string>();
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      fds.set(Number(name), readlinkSync(`/proc/self/fd/${name}`));
    } catch {
      // the directory handle readdirSync used, already closed
    }
  }
  return fds;
}

/**
 * The test runner's own fds: tsx opens and closes handles on its compile cache (os.tmpdir()/tsx-UID) when
 * it pleases, e.g. one open when the suite starts and closed during it (seen in a CI run).
 */
const RUNNER_FD = new RegExp(`^${tmpdir().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/tsx-\\d+(/|$)`);

/** Human-readable difference between two openFds() snapshots (the runner's own fds left out). */
export function fdDiff(before: Map<number, string>, after: Map<number, string>): string {
  const lines: string[] = [];
  const ours = (target: string) => !RUNNER_FD.test(target);
  for (const [fd, target] of after)
    if (before.get(fd) !== target && ours(target)) lines.push(`+ ${fd} -> ${target}`);
  for (const [fd, target] of before)
    if (after.get(fd) !== target && ours(target)) lines.push(`- ${fd} -> ${target}`);
  return lines.join('\n');
}

/** Whether fd has FD_CLOEXEC, from /proc/self/fdinfo (flags are octal; O_CLOEXEC is 02000000). */
export function isCloexec(fd: number): boolean {
  return (fdFlags(fd) & 0o2000000) !== 0;
}

export function fdFlags(fd: number): number {
  const info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  return Number.parseInt(/^flags:\s+([0-7]+)/m.exec(info)![1], 8);
}

/** Deterministic pseudo-random bytes. */
export function pattern(length: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A small deterministic PRNG for test shapes. */
export function random(seed: number): (max: number) => number {
  let x = seed >>> 0 || 1;
  return (max) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % max;
  };
}

export interface Received {
  chunks: Buffer[];
  /** Stream offset at which each chunk starts, and the fds it came with. */
  fdsAt: { offset: number; length: number; fds: number[] }[];
  bytes: number;
}

/** Records everything `socket` receives; resolves `done` once `total` bytes have arrived. */
export function receive(socket: UnixSocket, total: number): Received & { done: Promise<void> } {
  const received: Received = { chunks: [], fdsAt: [], bytes: 0 };
  const done = new Promise<void>((resolve, reject) => {
    socket.on('error', reject);
    socket.on('data', (chunk, fds) => {
      if (fds.length > 0) received.fdsAt.push({ offset: received.bytes, length: chunk.length, fds });
      received.chunks.push(chunk);
      received.bytes += chunk.length;
      if (received.bytes >= total) resolve();
    });
  });
  return Object.assign(received, { done });
}

/** Resolves with the next event's arguments, or rejects after ms. Unlike events.once, an 'error'
 * event does not reject (tests observe errors separately). Register before the event can fire. */
export function nextEvent<T extends unknown[]>(
  emitter: NodeJS.EventEmitter,
  event: string,
  ms = 5000,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`no '${event}' event within ${ms} ms`));
    }, ms);
    const listener = (...args: unknown[]) => {
      clearTimeout(timer);
      resolve(args as T);
    };
    emitter.once(event, listener);
  });
}

/** Waits until predicate() holds, polling on timers (for effects that land on a later tick). */
export async function eventually(predicate: () => boolean, what: string, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Runs a Node script in a child process (no stdio pipes, so no extra fds here). */
export function spawnNode(script: string, args: string[] = []): ChildProcess {
  return spawn(process.execPath, ['-e', script, ...args], { stdio: 'ignore' });
}

export async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await once(child, 'exit');
}
