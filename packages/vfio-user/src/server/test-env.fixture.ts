/** Helpers the integration tests share: a temporary socket directory and leak counters. */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function tempDir(): { path: (name: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'emu-vfio-user-'));
  return { path: (name) => join(dir, name), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Mappings of memfds whose name contains `name`. */
export function mappingsOf(name: string): number {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.includes(`memfd:${name}`)).length;
}

export const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

export async function until(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await tick(5);
  }
}

/** A logger that keeps what it was told, so tests can check that bad input is logged. */
export function captureLogger() {
  const lines: Array<{ level: string; msg: string; obj: object }> = [];
  const at = (level: string) => (obj: object | string, msg?: string) =>
    lines.push({
      level,
      msg: typeof obj === 'string' ? obj : (msg ?? ''),
      obj: typeof obj === 'string' ? {} : obj,
    });
  return { lines, logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } };
}

export const silentLoggerFixture = { debug() {}, info() {}, warn() {}, error() {} };
