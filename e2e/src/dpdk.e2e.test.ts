/**
 * The second real guest driver: DPDK's iavf PMD (Debian trixie's dpdk-testpmd) in a QEMU guest, on two
 * emu_iavf NICs through vfio-pci, forwarding traffic between them through emu's switch. The script
 * (tools/guest/scripts/dpdk-testpmd.sh) does the work and decides PASS/FAIL from testpmd's output; this
 * test runs it and checks its verdict and counts.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';

const SCRIPT = fileURLToPath(new URL('../../tools/guest/scripts/dpdk-testpmd.sh', import.meta.url));

function run(): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

describe('DPDK testpmd (iavf PMD) in a QEMU guest against two emu_iavf NICs', function () {
  this.timeout(1_200_000);

  it('starts both ports (virtchnl, RX descriptor negotiation, admin-queue interrupts) and io-forwards between them without errors', async () => {
    const { code, out } = await run();
    const verdict = out.split('\n').find((l) => /^(PASS|FAIL):/.test(l));
    expect(verdict, `no verdict from the script:\n${out.slice(-3000)}`).to.match(/^PASS:/);
    expect(code, out.slice(-3000)).to.equal(0);
    const rx = [...verdict!.matchAll(/port\d: rx=(\d+)/g)].map((m) => Number(m[1]));
    expect(rx).to.have.length(2);
    for (const n of rx) expect(n).to.be.greaterThan(1000);
    expect(verdict).to.include('rx_errors=0 tx_errors=0; port1');
  });
});
