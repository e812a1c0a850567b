/**
 * forward.bench.ts's reference: DPDK's vhost-user ↔ virtio-user testpmd pair (dpdk-pair.sh), the same
 * frame size and closed loop. Its figure counts frames the pair moved per second in both directions
 * (the virtio side's Rx-pps plus Tx-pps), as the emu figure does.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export function dpdkReference(frame: number, seconds: number): { mpps?: number; why?: string } {
  const r = spawnSync(join(import.meta.dirname, 'dpdk-pair.sh'), [String(frame), String(seconds)], {
    encoding: 'utf8',
    timeout: (seconds + 60) * 1000,
  });
  if (r.status !== 0) return { why: (r.stderr || r.error?.message || `exit ${r.status}`).trim() };
  const rx = r.stdout.match(/Rx-pps:\s+(\d+)/);
  const tx = r.stdout.match(/Tx-pps:\s+(\d+)/);
  if (!rx || !tx) return { why: `unexpected testpmd output: ${r.stdout.trim()}` };
  return { mpps: (Number(rx[1]) + Number(tx[1])) / 1e6 };
}
