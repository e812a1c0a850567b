/**
 * The device side of scale.bench.ts, in its own process so that its CPU and memory can be read alone:
 * NICS emu_iavf devices of QUEUES queue pairs, two per switch, on a data plane of WORKERS threads. It
 * prints one JSON line, { pid, sockets }, and serves until SIGTERM.
 *
 *   tsx scale-host.ts WORKERS NICS QUEUES
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmudevRegistry } from '@emu/emudev';
import { DataPlane } from '@emu/native';
import { silentLogger } from '@emu/vfio-user';
import { iavfDriver } from '../src/driver.js';

async function main(): Promise<void> {
  const [workers, nics, queues] = process.argv.slice(2).map(Number);
  DataPlane.shared({ workers });
  const dir = mkdtempSync(join(tmpdir(), 'emu-scale-bench-'));
  const registry = new EmudevRegistry();
  registry.registerDriver(iavfDriver);
  const sockets: string[] = [];
  for (let i = 0; i < nics; i++) {
    const path = join(dir, `nic${i}.sock`);
    const dev = registry.allocate(`emu_iavf${i}`, 'emu_iavf', { path, logger: silentLogger });
    const mac = `02:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
    await dev.configure({ mac, queues, net: `scale${i >> 1}` });
    await dev.start();
    sockets.push(path);
  }
  process.stdout.write(`${JSON.stringify({ pid: process.pid, sockets })}\n`);
  process.on('SIGTERM', () => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
