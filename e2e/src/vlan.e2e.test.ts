/**
 * VLANs with the stock Linux 6.12 iavf, three guests on emu's switch: A and B on VLAN 100 (`eth0.100`,
 * the kernel's 8021q), C on VLAN 200 in the same IP subnet; all three also untagged on `eth0`, for the
 * scripts' signals. emu grants VLAN v1, so the guests' VLAN devices become ADD_VLAN filters, tags are
 * inserted by the device from the TX descriptor and stripped by it into the RX descriptor.
 *
 * - B pings A over VLAN 100, and sends 100 broadcasts tagged VLAN 100 (emu-net, an AF_PACKET socket);
 * - A counts, with a kprobe on skb_vlan_untag (the stack's software untagging of a frame that still
 *   has its tag), that no frame came in tagged: the device stripped them all;
 * - C's NIC is offered the broadcasts too (the switch floods them), but its VLAN filter (200) takes
 *   none: C's eth0 counts none of them, and C cannot reach A across VLANs;
 * - D sits behind the host's port VLAN 100 (devargs vlan=100): untagged on its eth0, it is in VLAN 100
 *   all the same, and B pings it over eth0.100.
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
const MAC_C = '02:00:00:00:00:03';
const MAC_D = '02:00:00:00:00:04';
const PINGS = 20;
const BROADCASTS = 100;
const MODULES = ['iavf', '8021q'];

const broadcast = rawFrame('ff:ff:ff:ff:ff:ff', MAC_B, 60, 1);
const tagged100 = Buffer.concat([
  broadcast.subarray(0, 12),
  Buffer.from([0x81, 0x00, 0x00, 100]),
  broadcast.subarray(12),
]);

/** eth0 untagged at `addr`, and eth0.VID at `vlanAddr`. */
const withVlan = (addr: string, vid: number, vlanAddr: string) => `${up(addr)}
ip link add link eth0 name eth0.${vid} type vlan id ${vid}
ip addr add ${vlanAddr} dev eth0.${vid}
ip link set eth0.${vid} up
`;

const rx = (dev: string) => `$(cat /sys/class/net/${dev}/statistics/rx_packets)`;

const A_SCRIPT = `${withVlan('10.0.0.1/24', 100, '10.1.0.1/24')}
T=/sys/kernel/tracing
mount -t tracefs nodev $T
echo 'p:emu/untag skb_vlan_untag' >> $T/kprobe_events
echo 1 > $T/events/emu/enable
V0=${rx('eth0.100')}
${awaitSignal(5000)}
echo "vlan100 rx $(( ${rx('eth0.100')} - V0 ))"
# kprobe_profile: one line per probe, its name, hits and misses.
echo "untag $(awk '$1 ~ /untag$/ {print $2}' $T/kprobe_profile)"
`;

const B_SCRIPT = `${withVlan('10.0.0.2/24', 100, '10.1.0.2/24')}
${waitPing('10.0.0.1')}
${waitPing('10.0.0.3')}
${waitPing('10.1.0.4')}
${signal('10.0.0.3', 5001)}
ping -c ${PINGS} -i 0.2 10.1.0.1 | tail -2
ping -c ${PINGS} -i 0.2 10.1.0.4 | sed 's/^/to D: /' | tail -2
emu-net send eth0 ${BROADCASTS} ${tagged100.toString('hex')}
${signal('10.0.0.3', 5002)}
${awaitSignal(5003)}
${signal('10.0.0.1', 5000)}
${signal('10.1.0.4', 5004)}
`;

/** D: untagged on eth0, in VLAN 100 through the port VLAN; it waits for B's pings and signal. */
const D_SCRIPT = `${up('10.1.0.4/24')}
${awaitSignal(5004)}
echo "d tagged devices: $(ls /sys/class/net | grep -c '\\.')"
`;

const C_SCRIPT = `${withVlan('10.0.0.3/24', 200, '10.1.0.3/24')}
${awaitSignal(5001)}
R0=${rx('eth0')}
${awaitSignal(5002)}
echo "c rx $(( ${rx('eth0')} - R0 ))"
ping -c 3 -W 1 10.1.0.1 | tail -2
${signal('10.0.0.2', 5003)}
`;

describe('VLANs between four Linux guests', function () {
  this.timeout(600_000);
  let dir: string;
  let emu: EmuProcess;
  let a: BootGuestResult;
  let b: BootGuestResult;
  let c: BootGuestResult;
  let d: BootGuestResult;

  before(async function () {
    this.timeout(1_200_000);
    await ensureGuestEnvironment();
    dir = mkdtempSync(join(tmpdir(), 'emu-vlan-e2e-'));
    const vdev = (i: number, mac: string) => [
      '--vdev',
      `emu_iavf${i},path=${join(dir, `${i}.sock`)},mac=${mac},queues=1`,
    ];
    emu = new EmuProcess([
      ...vdev(0, MAC_A),
      ...vdev(1, MAC_B),
      ...vdev(2, MAC_C),
      '--vdev',
      `emu_iavf3,path=${join(dir, '3.sock')},mac=${MAC_D},queues=1,vlan=100`,
      '--status',
      '1',
    ]);
    await emu.waitFor(/serving 4 devices/);
    const boot = (i: number, script: string) =>
      bootGuest({ sockets: [join(dir, `${i}.sock`)], modules: MODULES, script, timeoutMs: 400_000 });
    [a, b, c, d] = await Promise.all([
      boot(0, A_SCRIPT),
      boot(1, B_SCRIPT),
      boot(2, C_SCRIPT),
      boot(3, D_SCRIPT),
    ]);
  });

  after(async () => {
    await emu?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const explain = () => explainRun({ A: a, B: b, C: c, D: d }, emu);
  const count = (g: BootGuestResult, re: RegExp) => Number(re.exec(g.output)?.[1] ?? Number.NaN);

  it('runs the four guest scripts to the end', () => {
    for (const g of [a, b, c, d]) expect(g.exitCode, explain()).to.equal(0);
  });

  it('A and B ping each other over VLAN 100 with no loss: the device inserts the tag', () => {
    expect(b.output, explain()).to.match(
      new RegExp(`${PINGS} packets transmitted, ${PINGS} packets received`),
    );
  });

  it('A gets every VLAN 100 frame with its tag stripped by the device, none left for the stack to untag', () => {
    expect(count(a, /^vlan100 rx (\d+)$/m), explain()).to.be.at.least(PINGS + BROADCASTS);
    expect(count(a, /^untag (\d+)$/m), explain()).to.equal(0);
  });

  it('C, on VLAN 200, is offered the VLAN 100 broadcasts and its filter takes none; it cannot reach A', () => {
    // The signal's TCP connection is a handful of frames; the broadcasts would be BROADCASTS more.
    expect(count(c, /^c rx (\d+)$/m), explain()).to.be.below(BROADCASTS / 4);
    expect(c.output, explain()).to.match(/3 packets transmitted, 0 packets received/);
  });

  it('D, untagged behind port VLAN 100, answers B’s pings over eth0.100: the host tags and untags for it', () => {
    expect(b.output, explain()).to.match(
      new RegExp(`to D: ${PINGS} packets transmitted, ${PINGS} packets received`),
    );
    expect(d.output, explain()).to.contain('d tagged devices: 0');
  });

  it('logs no device error', async () => {
    expect(await emu.stop()).to.equal(0);
    expect(emu.stderr, emu.stderr).to.equal('');
  });
});
