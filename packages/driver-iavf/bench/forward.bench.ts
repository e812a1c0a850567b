/**
 * `pnpm bench`: forwarding between two emu_iavf NICs on one switch, as guests see it. This process
 * serves the two NICs (the emu side: sockets, the switch, the data plane's worker); a load generator in
 * another process (forward-peer.ts) plays both guest drivers over the real vfio-user sockets and bounces
 * frames between them in a closed loop, as testpmd's io forwarding does. Reported: frames the device
 * moved per second (both directions) and Gbit/s, for 64- and 1500-byte frames.
 *
 * Reference in the same run (dpdk-reference.ts): DPDK's vhost-user ↔ virtio-user testpmd pair, the same
 * frame sizes, the same closed loop; without it (no DPDK, or no hugepages) the figures are printed
 * marked as having none. The goal is 1.2× DPDK's Mpps.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmudevRegistry } from '@emu/emudev';
import { DataPlane } from '@emu/native';
import { silentLogger } from '@emu/vfio-user';
import { iavfDriver } from '../src/driver.js';
import { dpdkReference } from './dpdk-reference.js';
import { forwardPeer, runBench } from './processes.js';

const SECONDS = Number(process.env.EMU_BENCH_SECONDS ?? 3);
const SIZES = [64, 1500];

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'emu-forward-bench-'));
  const registry = new EmudevRegistry();
  registry.registerDriver(iavfDriver);
  const sockets: string[] = [];
  try {
    for (const [i, mac] of ['02:00:00:00:be:0a', '02:00:00:00:be:0b'].entries()) {
      const path = join(dir, `nic${i}.sock`);
      const dev = registry.allocate(`emu_iavf${i}`, 'emu_iavf', { path, logger: silentLogger });
      await dev.configure({ mac, queues: 1, net: 'bench' });
      await dev.start();
      sockets.push(path);
    }
    console.log(
      `forwarding between two emu_iavf NICs on one switch, ${SECONDS} s per size, load generator in another process`,
    );
    for (const size of SIZES) {
      const emu = { mpps: await forwardPeer(sockets[0], sockets[1], size, SECONDS) };
      const ref = dpdkReference(size, SECONDS);
      const line = `${String(size).padStart(5)} B  emu ${fmt(emu.mpps)} Mpps ${gbit(emu.mpps, size)}`;
      if (ref.mpps === undefined) {
        console.log(`${line}  (no reference: ${ref.why})`);
      } else {
        console.log(
          `${line}  DPDK vhost/virtio ${fmt(ref.mpps)} Mpps ${gbit(ref.mpps, size)}  ratio ${(emu.mpps / ref.mpps).toFixed(2)}×`,
        );
      }
      console.log(`        plane: ${JSON.stringify(DataPlane.shared().stats())}`);
    }
  } finally {
    await registry.release('emu_iavf0').catch(() => {});
    await registry.release('emu_iavf1').catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

function fmt(mpps: number): string {
  return mpps.toFixed(3).padStart(7);
}

function gbit(mpps: number, size: number): string {
  // On the wire: the frame plus FCS, preamble and inter-frame gap (24 bytes).
  return `(${((mpps * 1e6 * (size + 24) * 8) / 1e9).toFixed(2)} Gbit/s)`;
}

runBench(main);
