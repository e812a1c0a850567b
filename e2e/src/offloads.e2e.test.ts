/**
 * The offloads as the stock Linux 6.12 iavf uses them, between two QEMU guests on emu's switch, both
 * NICs at MTU 9000.
 *
 * RX checksum: guest B sends raw frames (emu-net, an AF_PACKET socket: sent as they are, no TX offload)
 * to guest A: first UDP datagrams with right checksums, then UDP datagrams and TCP segments with wrong
 * ones. A counts, with kprobes, how often its stack verifies a checksum in software
 * (__skb_checksum_complete, __skb_gro_checksum_complete): never for the good frames, which the device
 * marked verified (L3L4P, CHECKSUM_UNNECESSARY), once each for the bad ones, which it marked L4E and the
 * stack then counts in /proc/net/snmp's InCsumErrors.
 *
 * SCTP: 1 MiB over one association (emu-net, the kernel's sctp module): Linux leaves the CRC32c to the
 * device (NETIF_F_SCTP_CRC), and neither side counts a checksum error.
 *
 * Jumbo frames: pings of 8900 bytes unfragmented, 10 MiB over TCP with matching md5.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ipv4TcpFrame, ipv4UdpFrame } from '@emu/driver-iavf/testing';
import {
  awaitSignal,
  type BootGuestResult,
  bootGuest,
  ensureGuestEnvironment,
  ncReceive,
  signal,
  up,
} from '@emu/guest';
import { expect } from 'chai';
import { EmuProcess } from './emu-process.js';
import { explainRun } from './explain.js';

const MAC_A = '02:00:00:00:00:01';
const MAC_B = '02:00:00:00:00:02';
const GOOD = 200;
const BAD_UDP = 200;
const BAD_TCP = 50;
const SCTP_BYTES = 1 << 20;
const MTU = 9000;
/** sctp's libcrc32c needs a crc32c provider, a soft dependency that modules.dep does not list. */
const MODULES = ['iavf', 'crc32c_generic', 'sctp'];

const flow = { dstMac: MAC_A, srcMac: MAC_B, srcIp: '10.0.0.2', dstIp: '10.0.0.1' };
const goodUdp = ipv4UdpFrame({ ...flow, sport: 40000, dport: 7000, payload: Buffer.alloc(300, 0x5a) });
const badUdp = Buffer.from(goodUdp);
badUdp[badUdp.length - 1] ^= 0xff;
const badTcp = ipv4TcpFrame({ ...flow, sport: 40001, dport: 7001, payload: Buffer.alloc(200, 0x33) });
badTcp[badTcp.length - 1] ^= 0xff;

/**
 * Guest A: kprobes on the stack's software checksum, a snapshot of them and the SNMP counters per
 * phase; then the SCTP and TCP servers.
 */
const RECEIVER = `${up('10.0.0.1/24', { mtu: MTU })}
T=/sys/kernel/tracing
mount -t tracefs nodev $T
echo 'p:emu/sw_csum __skb_checksum_complete' >> $T/kprobe_events
echo 'p:emu/sw_gro_csum __skb_gro_checksum_complete' >> $T/kprobe_events
echo 1 > $T/events/emu/enable
snap() { echo "== $1"; grep -E '^(Udp|Tcp):' /proc/net/snmp; cat $T/kprobe_profile; }
snap start
${signal('10.0.0.2', 5000)}
${awaitSignal(5001)}
snap good
${signal('10.0.0.2', 5002)}
${awaitSignal(5003)}
snap bad
emu-net sctp-server 6000 > /tmp/sctp & SCTP=$!
${ncReceive(5005, '/tmp/got')} FILE=$!
${signal('10.0.0.2', 5004)}
wait $SCTP; cat /tmp/sctp
grep -E 'SctpChecksumErrors|SctpInSCTPPacks' /proc/net/sctp/snmp | sed 's/^/A /'
wait $FILE
echo "got $(wc -c < /tmp/got) $(md5sum /tmp/got | cut -d' ' -f1)"
grep -E '^Ip:' /proc/net/snmp | sed 's/^/A /'
${signal('10.0.0.2', 5006)}
`;

/**
 * Guest B: waits for A's kprobes, then the good frames, a signal; A's snapshot, then the bad ones, a
 * signal; then SCTP, jumbo pings and TCP once A listens.
 */
const SENDER = `${up('10.0.0.2/24', { mtu: MTU })}
${awaitSignal(5000)}
emu-net send eth0 ${GOOD} ${goodUdp.toString('hex')}
${signal('10.0.0.1', 5001)}
${awaitSignal(5002)}
emu-net send eth0 ${BAD_UDP} ${badUdp.toString('hex')}
emu-net send eth0 ${BAD_TCP} ${badTcp.toString('hex')}
${signal('10.0.0.1', 5003)}
${awaitSignal(5004)}
emu-net sctp-client 10.0.0.1 6000 ${SCTP_BYTES}
grep -E 'SctpChecksumErrors|SctpOutSCTPPacks' /proc/net/sctp/snmp | sed 's/^/B /'
ping -c 3 -s 8900 10.0.0.1 | tail -2
dd if=/dev/urandom of=/tmp/f bs=1M count=10 2>/dev/null
echo "sent $(wc -c < /tmp/f) $(md5sum /tmp/f | cut -d' ' -f1)"
nc 10.0.0.1 5005 < /tmp/f
# nc is gone once the data is in its socket; the guest must not power off before A has it all.
${awaitSignal(5006)}
echo "mtu $(cat /sys/class/net/eth0/mtu)"
grep -E '^Ip:' /proc/net/snmp | sed 's/^/B /'
`;

interface Snapshot {
  udp: Record<string, number>;
  tcp: Record<string, number>;
  /** kprobe hits: software checksum verifications */
  swCsum: number;
}

/** The snapshots RECEIVER printed, by phase. */
function snapshots(output: string): Record<string, Snapshot> {
  const out: Record<string, Snapshot> = {};
  for (const part of output.split('== ').slice(1)) {
    const lines = part.split('\n');
    const table = (name: string) => {
      const [head, values] = lines.filter((l) => l.startsWith(`${name}:`));
      const keys = head?.split(/\s+/).slice(1) ?? [];
      const nums = values?.split(/\s+/).slice(1).map(Number) ?? [];
      return Object.fromEntries(keys.map((k, i) => [k, nums[i]]));
    };
    const hits = lines
      .filter((l) => /emu\/sw_/.test(l) || /sw_(gro_)?csum/.test(l))
      .reduce((n, l) => n + Number(l.trim().split(/\s+/)[1] ?? 0), 0);
    out[lines[0].trim()] = { udp: table('Udp'), tcp: table('Tcp'), swCsum: hits };
  }
  return out;
}

describe('iavf offloads between two Linux guests', function () {
  this.timeout(600_000);
  let dir: string;
  let emu: EmuProcess;
  let a: BootGuestResult;
  let b: BootGuestResult;

  before(async function () {
    this.timeout(1_200_000);
    await ensureGuestEnvironment();
    dir = mkdtempSync(join(tmpdir(), 'emu-offloads-e2e-'));
    emu = new EmuProcess([
      '--vdev',
      `emu_iavf0,path=${join(dir, 'a.sock')},mac=${MAC_A},queues=1,mtu=${MTU}`,
      '--vdev',
      `emu_iavf1,path=${join(dir, 'b.sock')},mac=${MAC_B},queues=1,mtu=${MTU}`,
      '--status',
      '1',
    ]);
    await emu.waitFor(/serving 2 devices/);
    [a, b] = await Promise.all([
      bootGuest({
        sockets: [join(dir, 'a.sock')],
        modules: MODULES,
        script: RECEIVER,
        timeoutMs: 400_000,
      }),
      bootGuest({
        sockets: [join(dir, 'b.sock')],
        modules: MODULES,
        script: SENDER,
        timeoutMs: 400_000,
      }),
    ]);
  });

  after(async () => {
    await emu?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const explain = () => explainRun({ A: a, B: b }, emu);

  it('runs both guest scripts to the end', () => {
    expect(a.exitCode, explain()).to.equal(0);
    expect(b.exitCode, explain()).to.equal(0);
    expect(b.output, explain()).to.contain(`sent ${GOOD} frames`);
  });

  it('RX checksum: frames the device verified are not checksummed again by the guest; bad ones are, and counted', () => {
    const s = snapshots(a.output);
    expect(Object.keys(s), explain()).to.deep.equal(['start', 'good', 'bad']);
    // The kprobes work: the bad frames made the stack verify in software.
    const good = s.good.swCsum - s.start.swCsum;
    const bad = s.bad.swCsum - s.good.swCsum;
    // Every good datagram arrived (no listener: NoPorts), and none needed a software checksum.
    expect(s.good.udp.NoPorts - s.start.udp.NoPorts, explain()).to.equal(GOOD);
    expect(s.good.udp.InCsumErrors - s.start.udp.InCsumErrors, explain()).to.equal(0);
    expect(good, `software checksums for ${GOOD} good datagrams\n${explain()}`).to.be.below(GOOD / 20);
    // The bad ones were checked by the stack and counted as checksum errors.
    expect(s.bad.udp.InCsumErrors - s.good.udp.InCsumErrors, explain()).to.equal(BAD_UDP);
    expect(s.bad.tcp.InCsumErrors - s.good.tcp.InCsumErrors, explain()).to.equal(BAD_TCP);
    expect(bad, explain()).to.be.at.least(BAD_UDP + BAD_TCP);
  });

  /** A `NAME value` line of /proc/net/sctp/snmp that `who` printed. */
  const sctpStat = (who: 'A' | 'B', g: BootGuestResult, name: string) =>
    Number(new RegExp(`^${who} ${name}\\s+(\\d+)$`, 'm').exec(g.output)?.[1] ?? Number.NaN);

  it('SCTP: 1 MiB over one association with the CRC32c left to the device, no checksum error on either side', () => {
    const sent = /^sctp sent (\d+) ([0-9a-f]{16})$/m.exec(b.output);
    const got = /^sctp got (\d+) ([0-9a-f]{16})$/m.exec(a.output);
    expect(sent, explain()).to.not.equal(null);
    expect(got, explain()).to.not.equal(null);
    expect(Number(got![1])).to.equal(SCTP_BYTES);
    expect(got![2]).to.equal(sent![2]);
    expect(sctpStat('B', b, 'SctpOutSCTPPacks'), explain()).to.be.above(10);
    expect(sctpStat('A', a, 'SctpInSCTPPacks'), explain()).to.be.above(10);
    expect(sctpStat('A', a, 'SctpChecksumErrors'), explain()).to.equal(0);
    expect(sctpStat('B', b, 'SctpChecksumErrors'), explain()).to.equal(0);
  });

  it('jumbo frames: MTU 9000, 8900-byte pings unfragmented, 10 MiB over TCP with matching md5', () => {
    expect(b.output, explain()).to.contain(`mtu ${MTU}`);
    expect(b.output, explain()).to.match(/3 packets transmitted, 3 packets received, 0% packet loss/);
    const ip = (who: 'A' | 'B', g: BootGuestResult) => {
      const [head, values] = g.output.split('\n').filter((l) => l.startsWith(`${who} Ip:`));
      const keys = head.split(/\s+/).slice(2);
      const nums = values.split(/\s+/).slice(2).map(Number);
      return Object.fromEntries(keys.map((k, i) => [k, nums[i]]));
    };
    expect(ip('B', b).FragCreates, explain()).to.equal(0);
    expect(ip('A', a).ReasmReqds, explain()).to.equal(0);
    const sent = /^sent (\d+) ([0-9a-f]{32})$/m.exec(b.output);
    const got = /^got (\d+) ([0-9a-f]{32})$/m.exec(a.output);
    expect(sent, explain()).to.not.equal(null);
    expect(got, explain()).to.not.equal(null);
    expect(got![1], explain()).to.equal('10485760');
    expect(got![2]).to.equal(sent![2]);
  });

  it('logs no device error on the way', async () => {
    expect(await emu.stop()).to.equal(0);
    expect(emu.stderr, emu.stderr).to.equal('');
  });
});
