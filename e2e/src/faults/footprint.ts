/** What the fault campaigns compare before and after a fault: emu's open fds, guest-memory mappings and threads. */
import { readdirSync, readFileSync } from 'node:fs';
import type { EmuProcess } from '../emu-process.js';
import { sleep, until } from '../wait.js';

export interface Footprint {
  fds: number;
  /** guest RAM and region memory: memfd mappings (QEMU's memory-backend-memfd) */
  mappings: number;
  threads: number;
}

export function footprint(pid: number): Footprint {
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n');
  return {
    fds: readdirSync(`/proc/${pid}/fd`).length,
    mappings: maps.filter((l) => l.includes('memfd:')).length,
    threads: Number(/Threads:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]),
  };
}

/**
 * The footprint once emu has logged `device`'s client gone more than `seen` times: a moment later, so
 * emu has finished releasing what the client had.
 */
export async function footprintOnceGone(emu: EmuProcess, device: string, seen: number): Promise<Footprint> {
  const gone = () => emu.stdout.split(`${device}: client disconnected`).length - 1;
  await until(() => gone() > seen, `emu to see ${device}'s client go`, 10_000);
  await sleep(500);
  return footprint(emu.child.pid!);
}
