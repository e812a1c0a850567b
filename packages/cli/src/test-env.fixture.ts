/** Helpers the CLI tests share: captured output, a temporary directory, waiting, the emu process. */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** An output stream that keeps what is written to it. */
export class Capture {
  text = '';
  constructor(public isTTY = false) {}
  write(s: string): boolean {
    this.text += s;
    return true;
  }
}

export function tempDir(): { dir: string; path: (name: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'emu-cli-'));
  return {
    dir,
    path: (name) => join(dir, name),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const exists = (path: string) => existsSync(path);

/** The fixtures directory, for --driver paths. */
export const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));

/** The package root (for bin/emu.js). */
export const packageRoot = fileURLToPath(new URL('../', import.meta.url));

export interface EmuRun {
  child: ChildProcess;
  /** Everything it printed so far. */
  io: { stdout: string; stderr: string };
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs bin/emu.js as a child process (no tsx: the built dist, as `pnpm exec emu` runs it). */
export function spawnEmu(args: string[], env: NodeJS.ProcessEnv = process.env): EmuRun {
  const child = spawn(process.execPath, [join(packageRoot, 'bin/emu.js'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  const io = { stdout: '', stderr: '' };
  child.stdout!.on('data', (d) => {
    io.stdout += d;
  });
  child.stderr!.on('data', (d) => {
    io.stderr += d;
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  return { child, io, exit };
}
