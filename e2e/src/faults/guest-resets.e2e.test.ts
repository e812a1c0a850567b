/**
 * The guest resets its NIC in the middle of a transfer, in each of the ways Linux can: the iavf driver
 * unloaded and loaded again (`rmmod iavf`), a Function Level Reset through sysfs
 * (`reset_method` flr, then `reset`), and the whole machine rebooted (`reboot -f`: QEMU resets every
 * device and boots again). emu serves two emu_iavf NICs on one switch; guest B stays up and receives.
 * Guest A's script runs on every boot: after each fault its NIC must come back and carry a whole 1 MiB
 * transfer again. The script runs twice (the reboot is its last fault), so every fault is also tried
 * after a reboot. emu stays up, logs no error, and its footprint is back after A's QEMU is gone.
 * Needs root; `pnpm e2e`, `pnpm e2e:faults`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlClient } from '@emu/cli';
import { type BootGuestResult, bootGuest, ensureGuestEnvironment, up, waitPing } from '@emu/guest';
import { expect } from 'chai';
import { type EmuProcess, emuWithTwoNics } from '../emu-process.js';
import { type Footprint, footprint, footprintOnceGone } from './footprint.js';
import { Neighbour } from './neighbour.js';

const BDF = '0000:00:02.0';
const BOOTS = 2;

/**
 * Guest B: up for good; TCP sinks that say how many bytes each connection brought: 5001–5003 for A's
 * whole transfers (after boot, rmmod, FLR), 6001–6003 for the transfers a fault interrupts. One port
 * per step, so a connection a fault left half open on B's side holds up no later step. busybox nc
 * ends when its stdin does, so the sinks' stdin is a FIFO held open and never written.
 */
const B = `${up('10.0.0.2/24')}
mkfifo /tmp/nc-in; exec 3<>/tmp/nc-in
sink() { while true; do echo "B got $1 $(nc -l -p $1 < /tmp/nc-in | wc -c)"; done; }
for p in 5001 5002 5003 6001 6002 6003; do sink $p & done
echo "B up"
wait
`;

/**
 * Guest A: up, one whole transfer; then each fault while a ping flood and a long transfer run, the
 * flood stopped, and a whole transfer again. `send` retries (the NIC may still be coming back) and
 * says whether 1 MiB got through; `again` first waits for carrier and B's answer.
 */
const A = `${up('10.0.0.1/24')}
${waitPing('10.0.0.2')}
dd if=/dev/urandom of=/tmp/blob bs=64k count=16 2> /dev/null
send() {
  n=0
  until nc 10.0.0.2 $2 < /tmp/blob; do
    n=$((n+1)); if [ $n -ge 30 ]; then echo "A: $1 send failed"; return; fi; sleep 1
  done
  echo "A: $1 sent"
}
again() {
  t=0; while [ "$(cat /sys/class/net/eth0/carrier 2> /dev/null)" != 1 ] && [ $t -lt 300 ]; do sleep 0.1; t=$((t+1)); done
  ${waitPing('10.0.0.2')}
  send $1 $2
}
busy() {
  ping -q -i 0.01 -s 1400 10.0.0.2 > /dev/null 2>&1 &
  dd if=/dev/zero bs=64k count=4000 2> /dev/null | nc 10.0.0.2 $1 > /dev/null 2>&1 &
  sleep 2
}
quiet() { pkill -x ping; pkill -x nc; pkill -x dd; }
echo "A: boot"
send boot 5001

busy 6001; echo "A: rmmod"
rmmod iavf
modprobe iavf
t=0; while [ ! -e /sys/class/net/eth0 ] && [ $t -lt 100 ]; do sleep 0.1; t=$((t+1)); done
ip addr add 10.0.0.1/24 dev eth0; ip link set eth0 up
quiet; again rmmod 5002

busy 6002; echo "A: flr"
echo flr > /sys/bus/pci/devices/${BDF}/reset_method
echo "A: reset_method $(cat /sys/bus/pci/devices/${BDF}/reset_method)"
echo 1 > /sys/bus/pci/devices/${BDF}/reset && echo "A: flr done"
quiet; again flr 5003

busy 6003; echo "A: reboot"
reboot -f
`;

describe('the guest resets its NIC mid-transfer: rmmod iavf, FLR through sysfs, reboot -f', function () {
  this.timeout(1_200_000);
  let dir: string;
  let emu: EmuProcess;
  const aLines: string[] = [];
  let b: Neighbour;
  let a: BootGuestResult;
  let baseline: Footprint;
  let afterA: Footprint;
  /** emu_iavf0's resets by cause, from its stats attribute over the control socket */
  let resets: { vf: number; flr: number; disconnect: number };

  before(async function () {
    this.timeout(1_200_000);
    await ensureGuestEnvironment();
    dir = mkdtempSync(join(tmpdir(), 'emu-resets-e2e-'));
    emu = await emuWithTwoNics(dir);
    b = new Neighbour({ sockets: [join(dir, 'b.sock')], modules: ['iavf'], script: B, timeoutMs: 1_100_000 });
    await b.waitForLine('B up', 'guest B to come up', 300_000);
    baseline = footprint(emu.child.pid!);
    const aStop = new AbortController();
    const boots = () => aLines.filter((l) => l.includes('A: boot sent')).length;
    a = await bootGuest({
      sockets: [join(dir, 'a.sock')],
      modules: ['iavf'],
      reboot: true,
      script: A,
      timeoutMs: 900_000,
      signal: aStop.signal,
      onConsole: (line) => {
        aLines.push(line);
        // The last boot's faults are done once it starts its reboot: that QEMU ends here.
        if (line.includes('A: reboot') && boots() >= BOOTS) aStop.abort();
      },
    });
    afterA = await footprintOnceGone(emu, 'emu_iavf0', 0);
    const client = await ControlClient.connect(join(dir, 'emu.ctl'));
    resets = (
      (await client.call('attributes.get', { device: 'emu_iavf0', attribute: 'stats' })) as {
        resets: typeof resets;
      }
    ).resets;
    client.close();
  });

  after(async () => {
    await b?.stop();
    await emu?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const explain = () =>
    `A:\n${aLines.slice(-80).join('\n')}\nB:\n${b?.lines.slice(-30).join('\n')}\nA qemu: ${a?.qemuStderr}\nemu:\n${emu.stdout.slice(-3000)}${emu.stderr.slice(-3000)}`;
  const count = (text: string) => aLines.filter((l) => l.includes(text)).length;

  it(`boots ${BOOTS} times: reboot -f mid-transfer gives a NIC that works after the machine reset`, () => {
    expect(count('A: boot sent'), explain()).to.equal(BOOTS);
    expect(count('A: reboot'), explain()).to.equal(BOOTS);
  });

  for (const fault of ['rmmod', 'flr']) {
    it(`carries a whole transfer after ${fault} mid-transfer, on every boot`, () => {
      expect(count(`A: ${fault} sent`), explain()).to.equal(BOOTS);
      expect(count(`A: ${fault} send failed`), explain()).to.equal(0);
    });
  }

  it('resets by FLR when sysfs asks for it; the device saw every reset', () => {
    expect(count('A: reset_method flr'), explain()).to.equal(BOOTS);
    expect(count('A: flr done'), explain()).to.equal(BOOTS);
    console.log(`      emu_iavf0 resets: ${JSON.stringify(resets)}`);
    // Each boot: an FLR from sysfs, and the machine reset of the reboot (QEMU's DEVICE_RESET) but the last.
    expect(resets.flr, explain()).to.be.at.least(2 * BOOTS - 1);
    // iavf asks for a VF reset (VIRTCHNL_OP_RESET_VF) when it unloads, and recovers from the FLR by one.
    expect(resets.vf, explain()).to.be.at.least(BOOTS);
    expect(resets.disconnect, explain()).to.equal(1);
  });

  it('delivers every whole transfer to B: after boot, rmmod and FLR, on every boot', () => {
    for (const port of [5001, 5002, 5003]) {
      const whole = b.lines.filter((l) => l === `B got ${port} 1048576`).length;
      expect(whole, `port ${port}\n${explain()}`).to.equal(BOOTS);
    }
  });

  it("is back to its footprint once A's QEMU is gone, stays up and logs no error", async () => {
    expect(afterA, explain()).to.deep.equal(baseline);
    expect(emu.child.exitCode, explain()).to.equal(null);
    const errors = emu.stderr.split('\n').filter((l) => l.startsWith('emu error'));
    expect(errors, explain()).to.deep.equal([]);
    expect(await emu.stop()).to.equal(0);
  });
});
