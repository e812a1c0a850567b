import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface RunOptions {
  /** append the command line and its output to this file */
  logFile?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string;
}

export class CommandError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly output: string,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

/** Runs a command, collecting stdout+stderr; throws CommandError (with the output's tail) on failure. */
export async function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  if (opts.logFile) await appendFile(opts.logFile, `\n$ ${[cmd, ...args].map(shellQuote).join(' ')}\n`);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const chunks: Buffer[] = [];
    const onData = (d: Buffer) => {
      chunks.push(d);
      if (opts.logFile) appendFile(opts.logFile, d).catch(() => {});
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    child.on('error', (e) => reject(new CommandError(`${cmd}: ${e.message}`, null, '')));
    child.on('close', (code, signal) => {
      const out = Buffer.concat(chunks).toString('utf8');
      if (code === 0) resolve(out);
      else {
        const tail = out.split('\n').slice(-25).join('\n');
        reject(
          new CommandError(
            `command failed (${signal ?? `exit ${code}`}): ${[cmd, ...args].map(shellQuote).join(' ')}\n${tail}`,
            code,
            out,
          ),
        );
      }
    });
  });
}

/** Runs a command and resolves with its stdout bytes; a non-zero exit rejects with its stderr. */
export function captureBuffer(cmd: string, args: readonly string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else
        reject(new CommandError(`${cmd} exited ${code}: ${Buffer.concat(err).toString('utf8')}`, code, ''));
    });
  });
}

/** Like run() but only stdout, as text. */
export async function capture(cmd: string, args: readonly string[]): Promise<string> {
  return (await captureBuffer(cmd, args)).toString('utf8');
}

export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Writes a file atomically (temp file + rename), creating the directory. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode?: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  await writeFile(tmp, data, mode === undefined ? undefined : { mode });
  await rename(tmp, path);
}

/** Is `cmd` on PATH? */
export function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = join(dir || '.', cmd);
    if (existsSync(p)) return p;
  }
  for (const dir of ['/usr/sbin', '/sbin']) {
    const p = join(dir, cmd);
    if (existsSync(p)) return p;
  }
  return null;
}

/** The directory of this package (holding package.json and guest/), from src/ or from dist/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if (JSON.parse(readFileSync(pj, 'utf8')).name === '@emu/guest') return dir;
      } catch {
        // keep looking
      }
    }
    dir = dirname(dir);
  }
  throw new Error('@emu/guest: cannot find the package directory');
}

/**
 * An exclusive flock(2) on `path`, held by a `flock` child process (Node has no flock). The child
 * keeps the lock until we close its stdin, or until we die (then its stdin closes too).
 */
export async function withFileLock<T>(path: string, onWait: () => void, fn: () => Promise<T>): Promise<T> {
  await mkdir(dirname(path), { recursive: true });
  const child: ChildProcess = spawn('flock', ['-x', path, '-c', 'echo locked; exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let waiting = true;
  const timer = setTimeout(() => {
    if (waiting) onWait();
  }, 500);
  try {
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      child.stdout?.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('locked')) resolve();
      });
      child.on('error', reject);
      child.on('exit', (code) => reject(new Error(`flock ${path} exited ${code}`)));
    });
  } finally {
    waiting = false;
    clearTimeout(timer);
  }
  try {
    return await fn();
  } finally {
    child.removeAllListeners('exit');
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    child.stdin?.end();
    await exited;
  }
}
