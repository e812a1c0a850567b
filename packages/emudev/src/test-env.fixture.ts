import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@emu/vfio-user';

export function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), 'emu-emudev-'));
  return { path: (n: string) => join(dir, n), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export const quiet = { logger: silentLogger };

export async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
