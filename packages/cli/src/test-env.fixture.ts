/** Helpers the CLI tests share: captured output, a temporary directory, waiting. */
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
