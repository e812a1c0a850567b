/**
 * The real peer: `emu --vdev emu_iavf0,…` serves the NIC, and Linux 6.12's own iavf driver (iavf.ko +
 * libie + libeth from Debian trixie) in a QEMU 11.1 guest binds to it, negotiates and links up.
 * Needs root; `pnpm e2e`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BootGuestResult, bootGuest, ensureGuestEnvironment } from '@emu/guest';
import { expect } from 'chai';
import { EmuProcess } from './emu-process.js';

const BDF = '0000:00:02.0';
const MAC = '02:00:00:00:00:0a';

/** Prints `key=value` lines; waits for carrier up to 10 s after `ip link set up`, as the issue asks. */
const SCRIPT = `
D=/sys/bus/pci/devices/${BDF}
netif() { ls $D/net 2>/dev/null | head -1; }
report() {
  IF=$(netif)
  echo "$1 if=$IF count=$(ls $D/net 2>/dev/null | wc -l) mac=$(cat /sys/class/net/$IF/address) driver=$(basename $(readlink $D/driver))"
  ip link set dev $IF up
  t=0; while [ "$(cat /sys/class/net/$IF/carrier 2>/dev/null)" != 1 ] && [ $t -lt 100 ]; do sleep 0.1; t=$((t+1)); done
  echo "$1 carrier=$(cat /sys/class/net/$IF/carrier) speed=$(cat /sys/class/net/$IF/speed) waited_ds=$t rx=$(ls -d /sys/class/net/$IF/queues/rx-* | wc -l) tx=$(ls -d /sys/class/net/$IF/queues/tx-* | wc -l)"
}
modprobe iavf
t=0; while [ -z "$(netif)" ] && [ $t -lt 100 ]; do sleep 0.1; t=$((t+1)); done
report load
rmmod iavf; echo "rmmod status=$? left=$(ls $D/net 2>/dev/null | wc -l)"
modprobe iavf
t=0; while [ -z "$(netif)" ] && [ $t -lt 100 ]; do sleep 0.1; t=$((t+1)); done
report reload
echo 1 > $D/reset; echo "flr status=$?"
sleep 3
IF=$(netif)
t=0; while [ "$(cat /sys/class/net/$IF/carrier 2>/dev/null)" != 1 ] && [ $t -lt 150 ]; do sleep 0.1; t=$((t+1)); done
echo "reset carrier=$(cat /sys/class/net/$IF/carrier) operstate=$(cat /sys/class/net/$IF/operstate)"
echo "--- dmesg"
dmesg | grep -i iavf
`;

function kv(output: string, prefix: string): Record<string, string> {
  const merged: Record<string, string> = {};
  for (const l of output.split('\n').filter((x) => x.startsWith(`${prefix} `))) {
    for (const part of l.split(' ').slice(1)) {
      const [k, v] = part.split('=');
      merged[k] = v;
    }
  }
  return merged;
}

describe('emu serving emu_iavf to the stock Linux iavf driver in a QEMU guest', function () {
  this.timeout(300_000);
  let dir: string;
  let emu: EmuProcess;
  let sock: string;
  let result: BootGuestResult;
  let explain: string;

  before(async function () {
    this.timeout(1_200_000);
    await ensureGuestEnvironment();
    dir = mkdtempSync(join(tmpdir(), 'emu-iavf-e2e-'));
    sock = join(dir, 'iavf0.sock');
    emu = new EmuProcess(['--vdev', `emu_iavf0,path=${sock},mac=${MAC},queues=4`]);
    await emu.waitFor(/qemu: -device/);
    // Linux gives an iavf no more queue pairs than the guest has CPUs: 4 CPUs for 4 queues.
    result = await bootGuest({
      sockets: [sock],
      modules: ['iavf'],
      cpus: 4,
      script: SCRIPT,
      timeoutMs: 240_000,
    });
    explain = `exit ${result.exitCode}\n--- output ---\n${result.output}\n--- console tail ---\n${result.console.slice(-3000)}`;
  });

  after(async () => {
    await emu?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs the guest script to the end', () => {
    expect(result.exitCode, explain).to.equal(0);
  });

  it('gives one netdev with the configured MAC, bound to iavf', () => {
    expect(kv(result.output, 'load'), explain).to.include({ count: '1', mac: MAC, driver: 'iavf' });
  });

  it('links up at the configured speed within 10 s, with 4 RX and 4 TX queues', () => {
    const load = kv(result.output, 'load');
    expect(load, explain).to.include({ carrier: '1', speed: '10000', rx: '4', tx: '4' });
    expect(Number(load.waited_ds)).to.be.below(100);
  });

  it('comes back up after rmmod iavf and loading it again', () => {
    expect(kv(result.output, 'rmmod'), explain).to.deep.equal({ status: '0', left: '0' });
    expect(kv(result.output, 'reload'), explain).to.include({
      count: '1',
      mac: MAC,
      carrier: '1',
      speed: '10000',
    });
  });

  it('comes back up after a PCI function reset from the guest', () => {
    expect(kv(result.output, 'flr'), explain).to.deep.equal({ status: '0' });
    expect(kv(result.output, 'reset'), explain).to.include({ carrier: '1', operstate: 'up' });
  });

  it('leaves no error or timeout from iavf in dmesg', () => {
    const dmesg = result.output.slice(result.output.indexOf('--- dmesg'));
    expect(dmesg).to.contain('NIC Link is Up Speed is 10 Gbps');
    expect(dmesg, dmesg).to.not.match(/error|fail|timeout|timed out|never|unable|hang/i);
  });

  it('answered every virtchnl message without an error, and exits cleanly', async () => {
    // emu logs each refused virtchnl message, bad register access or protocol error at warn level.
    expect(await emu.stop()).to.equal(0);
    expect(emu.stderr, emu.stderr).to.equal('');
  });
});
