/**
 * scale.bench.ts's idle guests: brings up a VF on every socket given (memfd RAM, Linux 6.12's order,
 * all queues enabled), prints "up", and keeps the connections open until killed.
 *
 *   tsx scale-peer.ts SOCKET...
 */
import { silentLogger, VfioUserClient } from '@emu/vfio-user';
import { GuestRam } from '../src/testing/guest-memory.js';
import { SoftIavf } from '../src/testing/soft-iavf/main.js';

async function main(): Promise<void> {
  const keep: SoftIavf[] = [];
  for (const socket of process.argv.slice(2)) {
    const client = await VfioUserClient.connect(socket, { logger: silentLogger });
    const ram = GuestRam.shared(16);
    await ram.attach(client);
    const vf = new SoftIavf(client, ram, { ringLen: 256 });
    await vf.bringUp();
    keep.push(vf);
  }
  process.stdout.write(`up ${keep.length}\n`);
  setInterval(() => {}, 1 << 30);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
