/**
 * Beyond one host, with the kernel's own networking and no tunnel of emu's: two emu processes, each in a
 * network namespace of its own (two "hosts"), each serving one emu_iavf NIC on `net=tap:…`. On each
 * host the TAP joins a Linux bridge with a VXLAN interface (VNI 42, UDP 4789) whose underlay is a veth
 * pair between the two namespaces. A Linux guest on each side pings the other across and moves a file
 * over TCP. Needs root; `pnpm e2e`. docs/deployment.md describes the same with Open vSwitch.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BootGuestResult, bootGuest, ensureGuestEnvironment, up, waitPing } from '@emu/guest';
import { expect } from 'chai';
import { EmuProcess } from './emu-process.js';
import { explainRun } from './explain.js';

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

/** Guest A: answers, receives B's file, says what it got. */
const A = `${up('10.0.42.1/24')}
mkfifo /tmp/in; exec 3<>/tmp/in
nc -l -p 5000 < /tmp/in > /tmp/got
echo "got $(wc -c < /tmp/got) $(md5sum /tmp/got | cut -d' ' -f1)"
`;

/** Guest B: waits for A across the tunnel, pings it, sends 2 MiB. */
const B = `${up('10.0.42.2/24')}
${waitPing('10.0.42.1')}
ping -c 10 -i 0.2 10.0.42.1 | tail -2
dd if=/dev/urandom of=/tmp/f bs=1M count=2 2>/dev/null
echo "sent $(wc -c < /tmp/f) $(md5sum /tmp/f | cut -d' ' -f1)"
sleep 1
nc 10.0.42.1 5000 < /tmp/f
`;

describe('two emu processes in two network namespaces, joined by a Linux bridge and VXLAN', function () {
  this.timeout(600_000);
  const tag = process.pid % 100000;
  const hosts = [
    {
      ns: `emuvxa${tag}`,
      veth: `vxa${tag}`,
      underlay: '192.168.242.1',
      tap: `emuxa${tag}`,
      mac: '02:00:00:00:42:01',
    },
    {
      ns: `emuvxb${tag}`,
      veth: `vxb${tag}`,
      underlay: '192.168.242.2',
      tap: `emuxb${tag}`,
      mac: '02:00:00:00:42:02',
    },
  ];
  let dir: string;
  const emus: EmuProcess[] = [];
  let a: BootGuestResult;
  let b: BootGuestResult;

  before(async function () {
    this.timeout(1_200_000);
    await ensureGuestEnvironment();
    dir = mkdtempSync(join(tmpdir(), 'emu-vxlan-e2e-'));
    for (const h of hosts) {
      ip('netns', 'add', h.ns);
      ip('-n', h.ns, 'link', 'set', 'lo', 'up');
    }
    // The underlay between the two hosts; its MTU leaves room for VXLAN's 50 bytes over 1500-byte frames.
    ip(
      'link',
      'add',
      hosts[0].veth,
      'netns',
      hosts[0].ns,
      'mtu',
      '1600',
      'type',
      'veth',
      'peer',
      'name',
      hosts[1].veth,
      'netns',
      hosts[1].ns,
      'mtu',
      '1600',
    );
    for (const [i, h] of hosts.entries()) {
      const peer = hosts[1 - i];
      ip('-n', h.ns, 'addr', 'add', `${h.underlay}/24`, 'dev', h.veth);
      ip('-n', h.ns, 'link', 'set', h.veth, 'up');
      ip(
        '-n',
        h.ns,
        'link',
        'add',
        'vx42',
        'type',
        'vxlan',
        'id',
        '42',
        'local',
        h.underlay,
        'remote',
        peer.underlay,
        'dstport',
        '4789',
        'dev',
        h.veth,
      );
      ip('-n', h.ns, 'link', 'add', 'br0', 'type', 'bridge');
      ip('-n', h.ns, 'link', 'set', 'vx42', 'master', 'br0');
      ip('-n', h.ns, 'link', 'set', 'vx42', 'up');
      ip('-n', h.ns, 'link', 'set', 'br0', 'up');
    }
    for (const [i, h] of hosts.entries()) {
      const emu = new EmuProcess(
        // Each host's emu names its NIC emu_iavf0: the MACs must be given, or both would derive the same.
        [
          '--vdev',
          `emu_iavf0,path=${join(dir, `${'ab'[i]}.sock`)},net=tap:${h.tap},mac=${h.mac}`,
          '--no-control',
        ],
        { netns: h.ns },
      );
      emus.push(emu);
      await emu.waitFor(/serving 1 device/);
      // emu made the TAP in its namespace; the host puts it on the bridge, as it would a VM's tap.
      ip('-n', h.ns, 'link', 'set', h.tap, 'master', 'br0');
      ip('-n', h.ns, 'link', 'set', h.tap, 'up');
    }
    [a, b] = await Promise.all([
      bootGuest({ sockets: [join(dir, 'a.sock')], modules: ['iavf'], script: A, timeoutMs: 400_000 }),
      bootGuest({ sockets: [join(dir, 'b.sock')], modules: ['iavf'], script: B, timeoutMs: 400_000 }),
    ]);
  });

  after(async () => {
    for (const e of emus.splice(0)) await e.stop();
    for (const h of hosts) {
      try {
        ip('netns', 'del', h.ns);
      } catch {}
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const explain = () =>
    `${explainRun({ A: a, B: b }, emus[0])}\nemu of host B:\n${emus[1]?.stdout.slice(-2000)}${emus[1]?.stderr}`;

  it('the guests ping each other across the tunnel with no loss', () => {
    expect(a.exitCode, explain()).to.equal(0);
    expect(b.exitCode, explain()).to.equal(0);
    expect(b.output, explain()).to.match(/10 packets transmitted, 10 packets received, 0% packet loss/);
  });

  it('a file sent over TCP arrives whole', () => {
    const sent = /^sent (\d+) ([0-9a-f]{32})$/m.exec(b.output);
    const got = /^got (\d+) ([0-9a-f]{32})$/m.exec(a.output);
    expect(sent, explain()).to.not.equal(null);
    expect(got?.slice(1), explain()).to.deep.equal(sent?.slice(1));
  });

  it('the traffic went through VXLAN: each bridge learned the far guest behind vx42, which carried it', () => {
    for (const [i, h] of hosts.entries()) {
      const far = hosts[1 - i];
      const fdb = execFileSync('bridge', ['-n', h.ns, 'fdb', 'show', 'dev', 'vx42']).toString();
      expect(fdb, fdb).to.include(far.mac);
      const stats = ip('-n', h.ns, '-s', 'link', 'show', 'vx42');
      const txPackets = Number(/TX:[^\n]*\n\s+\d+\s+(\d+)/.exec(stats)?.[1]);
      expect(txPackets, stats).to.be.greaterThan(20);
    }
  });

  it('both emu processes exit cleanly, with nothing logged', async () => {
    for (const e of emus) {
      expect(await e.stop()).to.equal(0);
      expect(e.stderr, e.stderr).to.equal('');
    }
  });
});
