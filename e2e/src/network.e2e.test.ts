/**
 * The main job, end to end: `emu` serves two emu_iavf NICs on one switch; two QEMU guests with the stock
 * Linux iavf driver ping each other, move 10 MiB over TCP with matching checksums, and spread flows over
 * RX queues. Then a guest reaches the host's kernel through the TAP backend, captured to a pcap file
 * that tshark reads. Needs root; `pnpm e2e`.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { type BootGuestResult, bootGuest, ensureGuestEnvironment, up, waitPing } from '@emu/guest';
import { expect } from 'chai';
import { EMU_BIN, EmuProcess } from './emu-process.js';
import { explainRun } from './explain.js';

/** Guest A (4 queues): receives the 10 MiB file and eight more flows, then waits for B's "done". */
const SERVER = `${up('10.0.0.1/24')}
mkfifo /tmp/in; exec 3<>/tmp/in
nc -l -p 5000 < /tmp/in > /tmp/got & FILE=$!
for p in 6000 6001 6002 6003 6004 6005 6006 6007; do nc -l -p $p < /tmp/in > /dev/null & done
nc -l -p 5001 < /tmp/in > /tmp/done
wait $FILE
echo "got $(wc -c < /tmp/got) $(md5sum /tmp/got | cut -d' ' -f1)"
`;

/** Guest B: waits for A, pings it 20 times, sends the file, opens eight flows, says done. */
const CLIENT = `${up('10.0.0.2/24')}
${waitPing('10.0.0.1')}
ping -c 20 -i 0.2 10.0.0.1 | tail -2
dd if=/dev/urandom of=/tmp/f bs=1M count=10 2>/dev/null
echo "sent $(wc -c < /tmp/f) $(md5sum /tmp/f | cut -d' ' -f1)"
nc 10.0.0.1 5000 < /tmp/f
for p in 6000 6001 6002 6003 6004 6005 6006 6007; do dd if=/dev/zero bs=16k count=8 2>/dev/null | nc 10.0.0.1 $p; done
sleep 1
echo done | nc 10.0.0.1 5001
`;

describe('emu serving two iavf NICs on one switch to two QEMU guests', function () {
  this.timeout(600_000);
  let dir: string;
  let emu: EmuProcess;
  let a: BootGuestResult;
  let b: BootGuestResult;

  before(async function () {
    this.timeout(1_200_000);
    await ensureGuestEnvironment();
    dir = mkdtempSync(join(tmpdir(), 'emu-net-e2e-'));
    emu = new EmuProcess([
      '--vdev',
      `emu_iavf0,path=${join(dir, 'a.sock')},mac=02:00:00:00:00:01,queues=4`,
      '--vdev',
      `emu_iavf1,path=${join(dir, 'b.sock')},mac=02:00:00:00:00:02,queues=1`,
      '--status',
      '1',
    ]);
    await emu.waitFor(/serving 2 devices/);
    [a, b] = await Promise.all([
      bootGuest({
        sockets: [join(dir, 'a.sock')],
        modules: ['iavf'],
        cpus: 4,
        script: SERVER,
        timeoutMs: 400_000,
      }),
      bootGuest({ sockets: [join(dir, 'b.sock')], modules: ['iavf'], script: CLIENT, timeoutMs: 400_000 }),
    ]);
    // One more status line after the traffic.
    const seen = emu.stdout.length;
    await new Promise((r) => setTimeout(r, 1500));
    expect(emu.stdout.length).to.be.above(seen);
  });

  after(async () => {
    await emu?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // A guest that did not finish shows its console's end too (its kernel's messages, where it stopped).
  const explain = () => explainRun({ A: a, B: b }, emu);

  it('brings both links up and runs both guest scripts to the end', () => {
    expect(a.exitCode, explain()).to.equal(0);
    expect(b.exitCode, explain()).to.equal(0);
    expect(a.output).to.contain('carrier=1');
    expect(b.output).to.contain('carrier=1');
  });

  it('passes 20 pings with 0% loss', () => {
    expect(b.output, explain()).to.match(/20 packets transmitted, 20 packets received, 0% packet loss/);
  });

  it('moves 10 MiB over TCP with matching checksums', () => {
    const sent = b.output.match(/^sent (\d+) ([0-9a-f]{32})$/m);
    const got = a.output.match(/^got (\d+) ([0-9a-f]{32})$/m);
    expect(sent, explain()).to.not.equal(null);
    expect(got, explain()).to.not.equal(null);
    expect(got![1]).to.equal('10485760');
    expect(got![2]).to.equal(sent![2]);
  });

  it('spreads the flows over more than one RX queue of the 4-queue NIC, as its per-queue stats show', () => {
    const lines = emu.stdout.split('\n').filter((l) => l.includes('emu_iavf0 '));
    const last = lines[lines.length - 1];
    const queues = last.match(/\(q0 (\d+), q1 (\d+), q2 (\d+), q3 (\d+)\)/);
    expect(queues, last).to.not.equal(null);
    const busy = queues!.slice(1).filter((n) => Number(n) > 0);
    expect(busy.length, last).to.be.at.least(2);
    // While the guest ran, the status line showed the link up at the configured speed.
    expect(
      lines.some((l) => /link up 10000Mb\/s/.test(l)),
      lines.join('\n'),
    ).to.equal(true);
  });

  it("forwarded between the two NICs on the data plane's worker, not in JavaScript", () => {
    for (const dev of ['emu_iavf0', 'emu_iavf1']) {
      const lines = emu.stdout.split('\n').filter((l) => l.includes(`${dev} `));
      expect(lines[lines.length - 1], lines.join('\n')).to.match(/path data plane$/);
    }
    // The worker took the 10 MiB (thousands of frames) from the TX rings itself.
    const plane = emu.stdout.split('\n').filter((l) => l.includes('] data plane '));
    const frames = Number(/frames: (\d+)$/.exec(plane[plane.length - 1] ?? '')?.[1] ?? 0);
    expect(frames, plane.join('\n')).to.be.above(5000);
  });

  it('logs no device error on the way', async () => {
    expect(await emu.stop()).to.equal(0);
    expect(emu.stderr, emu.stderr).to.equal('');
  });
});

/** The host side of a TAP emu made: moved into a namespace of the test's own, with an address. */
function hostSide(tap: string, ns: string, address: string): void {
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['link', 'set', tap, 'netns', ns]);
  execFileSync('ip', ['-n', ns, 'addr', 'add', address, 'dev', tap]);
  execFileSync('ip', ['-n', ns, 'link', 'set', tap, 'up']);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
}

/** emu stopped, the host side's namespace deleted, the test's folder removed. */
async function tearDown(emu: EmuProcess | undefined, ns: string, dir: string | undefined): Promise<void> {
  await emu?.stop();
  try {
    execFileSync('ip', ['netns', 'del', ns]);
  } catch {}
  if (dir) rmSync(dir, { recursive: true, force: true });
}

const require = createRequire(import.meta.url);
const ENSURE_TSHARK = join(dirname(require.resolve('@emu/network')), '..', 'scripts', 'ensure-tshark.sh');

describe('emu serving an iavf NIC on a TAP backend, captured to pcap', function () {
  this.timeout(600_000);
  const ns = `emue2e${process.pid}`;
  const tap = `emut${process.pid % 100000}`;
  let dir: string;
  let emu: EmuProcess;
  let guest: BootGuestResult;
  let pcap: string;

  before(async function () {
    this.timeout(1_200_000);
    await ensureGuestEnvironment();
    execFileSync('bash', [ENSURE_TSHARK], { stdio: 'inherit' });
    dir = mkdtempSync(join(tmpdir(), 'emu-tap-e2e-'));
    pcap = join(dir, 'tap.pcap');
    emu = new EmuProcess(['--vdev', `emu_iavf0,path=${join(dir, 't.sock')},net=tap:${tap},pcap=${pcap}`]);
    await emu.waitFor(/serving 1 device/);
    hostSide(tap, ns, '10.216.0.1/24');
    guest = await bootGuest({
      sockets: [join(dir, 't.sock')],
      modules: ['iavf'],
      script: `${up('10.216.0.2/24')}\nping -c 5 -i 0.3 10.216.0.1 | tail -2\n`,
    });
  });

  after(() => tearDown(emu, ns, dir));

  it("pings the host's kernel through the TAP with 0% loss", () => {
    expect(guest.output, `${guest.output}\n${emu.stderr}`).to.match(
      /5 packets transmitted, 5 packets received, 0% packet loss/,
    );
  });

  it('writes a pcap that tshark opens, holding the ICMP echo requests and replies', async () => {
    expect(await emu.stop()).to.equal(0);
    expect(existsSync(pcap)).to.equal(true);
    const types = execFileSync('tshark', ['-r', pcap, '-Y', 'icmp', '-T', 'fields', '-e', 'icmp.type'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .trim()
      .split('\n');
    expect(types.filter((t) => t === '8').length, types.join(',')).to.be.at.least(5);
    expect(types.filter((t) => t === '0').length, types.join(',')).to.be.at.least(5);
  });
});

describe("emu serving an iavf NIC in a guest with QEMU's default RAM (fd-less: every DMA a message), on a TAP", function () {
  this.timeout(600_000);
  const ns = `emufd${process.pid}`;
  const tap = `emuf${process.pid % 100000}`;
  let dir: string;
  let emu: EmuProcess;
  let guest: BootGuestResult;

  before(async function () {
    this.timeout(1_200_000);
    await ensureGuestEnvironment();
    dir = mkdtempSync(join(tmpdir(), 'emu-fdless-e2e-'));
    emu = new EmuProcess([
      '--vdev',
      `emu_iavf0,path=${join(dir, 'f.sock')},net=tap:${tap},queues=2`,
      '--control',
      join(dir, 'emu.ctl'),
    ]);
    await emu.waitFor(/serving 1 device/);
    hostSide(tap, ns, '10.217.0.1/24');
    // Plain RAM: QEMU maps it without an fd, so the rings and buffers are reached by DMA_READ and
    // DMA_WRITE alone, through the staged ring walk on emu's JS thread.
    guest = await bootGuest({
      sockets: [join(dir, 'f.sock')],
      modules: ['iavf'],
      cpus: 2,
      sharedMemory: false,
      script: `${up('10.217.0.2/24')}\nping -c 10 -i 0.2 10.217.0.1 | tail -2\nping -c 10 -i 0.2 -s 1400 10.217.0.1 | tail -2\n`,
      timeoutMs: 400_000,
    });
  });

  after(() => tearDown(emu, ns, dir));

  it('links up and passes pings of 64 and 1400 bytes with 0% loss', () => {
    const out = `${guest.output}\n${emu.stderr}`;
    const lines = guest.output.split('\n').filter((l) => l.includes('packets transmitted'));
    expect(lines, out).to.have.length(2);
    for (const l of lines)
      expect(l, out).to.match(/10 packets transmitted, 10 packets received, 0% packet loss/);
  });

  it('walked the rings through DMA messages alone (the staged path), with no device error', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [
      EMU_BIN,
      'ctl',
      '--control',
      join(dir, 'emu.ctl'),
      '--json',
      'get',
      'emu_iavf0',
      'stats',
    ]);
    const { dataPath } = JSON.parse(stdout) as { dataPath: Record<string, number> };
    expect(dataPath.stagedTx, stdout).to.be.above(0);
    expect(dataPath.stagedRx, stdout).to.be.above(0);
    expect(dataPath.directTx + dataPath.directRx, stdout).to.equal(0);
    expect(await emu.stop()).to.equal(0);
    expect(emu.stderr, emu.stderr).to.equal('');
  });
});
