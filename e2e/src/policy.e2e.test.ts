/**
 * The host's per-VF policy against the stock Linux 6.12 iavf: two guests on emu's switch, both NICs with
 * the defaults (spoofchk on, trust off). Guest A plays the VF that wants B's traffic:
 *
 * - it asks for B's MAC (`ip link set address`): the PF refuses the filter, and iavf gives up the change
 *   (iavf_set_mac answers -EACCES when the address did not take);
 * - it turns promiscuous mode on: answered SUCCESS and ignored, so frames B sends to an address nobody
 *   has (flooded to A's port by the switch) still do not reach A's stack;
 * - it sends frames with B's source MAC (emu-net, an AF_PACKET socket) all the while it pings B. Were
 *   they let out, the switch would learn B on A's port, and frames to B (A's echo requests among them)
 *   would go there instead of to B (a run with spoofchk=off loses most of the pings); with the spoof
 *   check emu drops the forgeries, counts them, and every ping is answered.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rawFrame } from '@emu/driver-iavf/testing';
import {
  awaitSignal,
  type BootGuestResult,
  bootGuest,
  ensureGuestEnvironment,
  signal,
  up,
  waitPing,
} from '@emu/guest';
import { expect } from 'chai';
import { EmuProcess } from './emu-process.js';
import { explainRun } from './explain.js';

const MAC_A = '02:00:00:00:00:01';
const MAC_B = '02:00:00:00:00:02';
const NOBODY = '02:00:00:00:00:99';
const PINGS = 20;
const FLOODED = 100;
/** Frames A sends per emu-net run of its forging loop. */
const BURST = 20;

const forged = rawFrame(NOBODY, MAC_B, 60, 1);
const toNobody = rawFrame(NOBODY, MAC_B, 60, 2);

const rxPackets = 'cat /sys/class/net/eth0/statistics/rx_packets';

/** Guest A: the MAC change and promiscuous mode, then forged frames while it pings B. */
const ATTACKER = `${up('10.0.0.1/24')}
ip link set eth0 address ${MAC_B} 2>&1; echo "set-mac rc=$?"
echo "mac $(cat /sys/class/net/eth0/address)"
dmesg | grep -i 'mac filter' | sed 's/^/dmesg: /'
ip link set eth0 promisc on
${signal('10.0.0.2', 5000)}
${awaitSignal(5001)}
R0=$(${rxPackets})
${signal('10.0.0.2', 5002)}
${awaitSignal(5003)}
echo "promisc rx $(( $(${rxPackets}) - R0 ))"
rm -f /tmp/stop /tmp/forged
( while [ ! -e /tmp/stop ]; do emu-net send eth0 ${BURST} ${forged.toString('hex')} >> /tmp/forged; sleep 0.02; done ) &
F=$!
sleep 1
ping -c ${PINGS} -i 0.2 10.0.0.2 | tail -2
touch /tmp/stop; wait $F
echo "forged $(( $(grep -c sent /tmp/forged) * ${BURST} ))"
${signal('10.0.0.2', 5004)}
`;

/**
 * Guest B: waits until A is promiscuous, sends frames to an unknown address between A's two counter
 * reads (the switch floods them to A), then stays up until A is done.
 */
const VICTIM = `${up('10.0.0.2/24')}
${awaitSignal(5000)}
${waitPing('10.0.0.1')}
${signal('10.0.0.1', 5001)}
${awaitSignal(5002)}
emu-net send eth0 ${FLOODED} ${toNobody.toString('hex')}
${signal('10.0.0.1', 5003)}
${awaitSignal(5004)}
`;

describe('per-VF policy against two Linux guests', function () {
  this.timeout(600_000);
  let dir: string;
  let emu: EmuProcess;
  let a: BootGuestResult;
  let b: BootGuestResult;

  before(async function () {
    this.timeout(1_200_000);
    await ensureGuestEnvironment();
    dir = mkdtempSync(join(tmpdir(), 'emu-policy-e2e-'));
    emu = new EmuProcess([
      '--vdev',
      `emu_iavf0,path=${join(dir, 'a.sock')},mac=${MAC_A},queues=1`,
      '--vdev',
      `emu_iavf1,path=${join(dir, 'b.sock')},mac=${MAC_B},queues=1`,
      '--status',
      '1',
    ]);
    await emu.waitFor(/serving 2 devices/);
    [a, b] = await Promise.all([
      bootGuest({ sockets: [join(dir, 'a.sock')], modules: ['iavf'], script: ATTACKER, timeoutMs: 400_000 }),
      bootGuest({ sockets: [join(dir, 'b.sock')], modules: ['iavf'], script: VICTIM, timeoutMs: 400_000 }),
    ]);
    // One more status line, written after the guests' last frames.
    const lines = () => emu.stdout.split('\n').filter((l) => l.includes('emu_iavf0 ')).length;
    const seen = lines();
    for (let t = 0; lines() === seen && t < 50; t++) await new Promise((r) => setTimeout(r, 100));
  });

  after(async () => {
    await emu?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const explain = () => explainRun({ A: a, B: b }, emu);

  it('runs both guest scripts to the end', () => {
    expect(a.exitCode, explain()).to.equal(0);
    expect(b.exitCode, explain()).to.equal(0);
  });

  it('refuses the untrusted VF another MAC: iavf reports the change failed and keeps its own', () => {
    expect(a.output, explain()).to.match(/Permission denied[\s\S]*set-mac rc=[1-9]/);
    expect(a.output, explain()).to.contain(`mac ${MAC_A}`);
    expect(a.output, explain()).to.match(/dmesg: .*Failed to add MAC filter/);
  });

  it('ignores its promiscuous mode: flooded frames for another address never reach its stack', () => {
    const rx = Number(/^promisc rx (\d+)$/m.exec(a.output)?.[1] ?? Number.NaN);
    // The signal's TCP connection is a handful of frames; the flooded ones would be FLOODED more.
    expect(rx, explain()).to.be.below(FLOODED / 4);
  });

  it('drops the frames it forges with B’s source MAC, so frames to B still reach B', () => {
    expect(a.output, explain()).to.match(
      new RegExp(`${PINGS} packets transmitted, ${PINGS} packets received`),
    );
    const sent = Number(/^forged (\d+)$/m.exec(a.output)?.[1] ?? 0);
    expect(sent, explain()).to.be.at.least(BURST * 10);
    const lines = emu.stdout.split('\n').filter((l) => l.includes('emu_iavf0 '));
    const spoofed = Number(/\(spoofed (\d+)\)/.exec(lines[lines.length - 1] ?? '')?.[1] ?? 0);
    expect(spoofed, lines.slice(-3).join('\n')).to.equal(sent);
  });

  it('logs the policy’s refusals as warnings, and nothing else', async () => {
    expect(await emu.stop()).to.equal(0);
    const log = emu.stdout + emu.stderr;
    expect(log).to.match(/emu warn: .*untrusted VF may not add unicast address 02:00:00:00:00:02/);
    expect(log).to.match(/emu warn: .*untrusted VF asked for promiscuous mode; ignored/);
    const expected = /untrusted VF may not add unicast address|untrusted VF asked for promiscuous mode/;
    const others = emu.stderr.split('\n').filter((l) => l && !expected.test(l));
    expect(others, emu.stderr).to.deep.equal([]);
  });
});
