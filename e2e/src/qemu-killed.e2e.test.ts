/**
 * QEMU killed mid-traffic, and a new QEMU on the same socket: what happens when a guest's VMM dies with
 * several vCPUs in the middle of register accesses and DMA. emu serves two emu_iavf NICs on one
 * switch; guest B stays up the whole time and pings guest A. Guest A is booted, moves traffic, and has
 * its QEMU SIGKILLed, EMU_FAULT_ROUNDS times (default 3). After each kill emu's fds, memory mappings
 * and threads are back where they were before A's first QEMU, the next QEMU gets a working NIC on
 * the same socket, and B's NIC works throughout. Needs root; `pnpm e2e`.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BootGuestResult, bootGuest, ensureGuestEnvironment } from '@emu/guest';
import { expect } from 'chai';
import { EmuProcess } from './emu-process.js';

const ROUNDS = Number(process.env.EMU_FAULT_ROUNDS ?? 3);

const up = (addr: string) => `
modprobe iavf
t=0; while [ -z "$(ls /sys/class/net | grep eth)" ] && [ $t -lt 100 ]; do sleep 0.1; t=$((t+1)); done
ip addr add ${addr} dev eth0; ip link set eth0 up
t=0; while [ "$(cat /sys/class/net/eth0/carrier)" != 1 ] && [ $t -lt 100 ]; do sleep 0.1; t=$((t+1)); done
`;

/** Guest A: up, reach B, say so, then keep pinging B hard until its QEMU is killed. */
const A = `${up('10.0.0.1/24')}
t=0; until ping -c 1 -W 1 10.0.0.2 > /dev/null 2>&1 || [ $t -ge 60 ]; do t=$((t+1)); done
echo "A reached B"
while true; do ping -c 50 -i 0.01 -s 1400 10.0.0.2 > /dev/null 2>&1; done
`;

/** Guest B: up for good; one line per second: whether A answered. */
const B = `${up('10.0.0.2/24')}
echo "B up"
while true; do
  if ping -c 1 -W 1 10.0.0.1 > /dev/null 2>&1; then echo "B: pong"; else echo "B: lost"; fi
  sleep 0.5
done
`;

interface Footprint {
  fds: number;
  mappings: number;
  threads: number;
}

function footprint(pid: number): Footprint {
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n');
  return {
    fds: readdirSync(`/proc/${pid}/fd`).length,
    // Guest RAM and region memory: memfd mappings (QEMU's memory-backend-memfd).
    mappings: maps.filter((l) => l.includes('memfd:')).length,
    threads: Number(/Threads:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]),
  };
}

async function until(cond: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('QEMU killed mid-traffic, then a new QEMU on the same socket', function () {
  this.timeout(1_200_000);
  let dir: string;
  let emu: EmuProcess;
  const bLines: string[] = [];
  const bStop = new AbortController();
  let bDone: Promise<BootGuestResult>;
  const rounds: Array<{ reached: boolean; after: Footprint; bPongsWhileUp: number }> = [];
  let baseline: Footprint;

  before(async function () {
    this.timeout(1_200_000);
    await ensureGuestEnvironment();
    dir = mkdtempSync(join(tmpdir(), 'emu-killed-e2e-'));
    emu = new EmuProcess([
      '--vdev',
      `emu_iavf0,path=${join(dir, 'a.sock')},mac=02:00:00:00:00:01`,
      '--vdev',
      `emu_iavf1,path=${join(dir, 'b.sock')},mac=02:00:00:00:00:02`,
      '--log-level',
      'info',
    ]);
    await emu.waitFor(/serving 2 devices/);
    bDone = bootGuest({
      sockets: [join(dir, 'b.sock')],
      modules: ['iavf'],
      script: B,
      timeoutMs: 1_100_000,
      signal: bStop.signal,
      onConsole: (line) => bLines.push(line),
    });
    await until(() => bLines.some((l) => l.includes('B up')), 'guest B to come up', 300_000);
    baseline = footprint(emu.child.pid!);
    for (let round = 0; round < ROUNDS; round++) {
      const aStop = new AbortController();
      let reached = false;
      const connects = (emu.stdout.match(/emu_iavf0: client connected/g) ?? []).length;
      const aDone = bootGuest({
        sockets: [join(dir, 'a.sock')],
        modules: ['iavf'],
        cpus: 2,
        script: A,
        timeoutMs: 300_000,
        signal: aStop.signal,
        onConsole: (line) => {
          if (line.includes('A reached B')) reached = true;
        },
      });
      await until(() => reached, `guest A (round ${round + 1}) to reach B`, 280_000);
      const pongsBefore = bLines.filter((l) => l.includes('B: pong')).length;
      // Traffic both ways for a few seconds, then QEMU dies with it in flight.
      await new Promise((r) => setTimeout(r, 4000));
      const bPongsWhileUp = bLines.filter((l) => l.includes('B: pong')).length - pongsBefore;
      aStop.abort();
      await aDone;
      await until(
        () => (emu.stdout.match(/emu_iavf0: client disconnected/g) ?? []).length > connects,
        'emu to see A go',
        10_000,
      );
      // Let emu finish releasing what the client had, then compare.
      await new Promise((r) => setTimeout(r, 500));
      rounds.push({ reached, after: footprint(emu.child.pid!), bPongsWhileUp });
    }
  });

  after(async () => {
    bStop.abort();
    await bDone?.catch(() => undefined);
    await emu?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const explain = () =>
    `rounds: ${JSON.stringify(rounds)}\nbaseline: ${JSON.stringify(baseline)}\nB:\n${bLines.slice(-40).join('\n')}\nemu:\n${emu.stdout.slice(-3000)}${emu.stderr}`;

  it(`gives every new QEMU a working NIC on the same socket (${ROUNDS} rounds)`, () => {
    expect(rounds.length, explain()).to.equal(ROUNDS);
    for (const r of rounds) expect(r.reached, explain()).to.equal(true);
  });

  it("keeps the other guest's NIC working: B hears A in every round", () => {
    for (const r of rounds) expect(r.bPongsWhileUp, explain()).to.be.at.least(2);
  });

  it("is back to its footprint after each kill: fds, mappings and threads as before A's first QEMU", () => {
    for (const r of rounds) expect(r.after, explain()).to.deep.equal(baseline);
  });

  it('stays up all along and logs no error', async () => {
    expect(emu.child.exitCode, explain()).to.equal(null);
    const errors = emu.stderr.split('\n').filter((l) => l.startsWith('emu error'));
    expect(errors, explain()).to.deep.equal([]);
    expect(await emu.stop()).to.equal(0);
  });
});
