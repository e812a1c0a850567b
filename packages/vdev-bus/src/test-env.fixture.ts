/** Helpers the bus tests share: a temporary socket directory, waiting, a logger that keeps its lines. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function tempDir(): { dir: string; path: (name: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'emu-vdev-'));
  return {
    dir,
    path: (name) => join(dir, name),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export async function until(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const exists = (path: string) => existsSync(path);

export interface LogLine {
  level: string;
  msg: string;
  obj: Record<string, unknown>;
}

/** A logger that keeps what it was told. */
export function captureLogger() {
  const lines: LogLine[] = [];
  const at = (level: string) => (obj: object | string, msg?: string) =>
    lines.push({
      level,
      msg: typeof obj === 'string' ? obj : (msg ?? ''),
      obj: typeof obj === 'string' ? {} : (obj as Record<string, unknown>),
    });
  return { lines, logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } };
}

export const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
