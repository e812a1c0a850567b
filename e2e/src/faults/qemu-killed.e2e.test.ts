/**
 * QEMU killed mid-traffic, and a new QEMU on the same socket: what happens when a guest's VMM dies with
 * several vCPUs in the middle of register accesses and DMA. emu serves two emu_iavf NICs on one
 * switch; guest B stays up the whole time and pings guest A. Guest A is booted, moves traffic, and has
 * its QEMU SIGKILLed at a random moment, EMU_FAULT_ROUNDS times (default 5; 50 in `pnpm e2e:faults`).
 * After each kill emu's fds, memory mappings and threads are back where they were before A's first
 * QEMU, the next QEMU gets a working NIC on the same socket, and B's NIC works throughout. Needs root;
 * `pnpm e2e`, `pnpm e2e:faults`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootGuest, ensureGuestEnvironment, pingForever, up, waitPing } from '@emu/guest';
import { expect } from 'chai';
import { type EmuProcess, emuWithTwoNics } from '../emu-process.js';
import { sleep, until } from '../wait.js';
import { type Footprint, footprint, footprintOnceGone } from './footprint.js';
import { Neighbour } from './neighbour.js';

const ROUNDS = Number(process.env.EMU_FAULT_ROUNDS ?? 5);

/** Guest A: up, reach B, say so, then keep pinging B hard until its QEMU is killed. */
const A = `${up('10.0.0.1/24')}
${waitPing('10.0.0.2')}
echo "A reached B"
while true; do ping -c 50 -i 0.01 -s 1400 10.0.0.2 > /dev/null 2>&1; done
`;

/** Guest B: up for good; one line per second: whether A answered. */
const B = `${up('10.0.0.2/24')}
echo "B up"
${pingForever('B', '10.0.0.1', 0.5)}
`;

/** A round: boot ≤ 280 s, traffic, the kill; the suite's time grows with the rounds. */
const SUITE_MS = 300_000 + ROUNDS * 300_000;

describe('QEMU killed mid-traffic, then a new QEMU on the same socket', function () {
  this.timeout(SUITE_MS);
  let dir: string;
  let emu: EmuProcess;
  let b: Neighbour;
  const rounds: Array<{ reached: boolean; killAfterMs: number; after: Footprint; bPongsWhileUp: number }> =
    [];
  let baseline: Footprint;

  before(async function () {
    this.timeout(SUITE_MS);
    await ensureGuestEnvironment();
    dir = mkdtempSync(join(tmpdir(), 'emu-killed-e2e-'));
    emu = await emuWithTwoNics(dir);
    b = new Neighbour({ sockets: [join(dir, 'b.sock')], modules: ['iavf'], script: B, timeoutMs: SUITE_MS });
    await b.waitForLine('B up', 'guest B to come up', 300_000);
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
      const pongsBefore = b.lines.filter((l) => l.includes('B: pong')).length;
      // Traffic both ways, then QEMU dies with it in flight, at a random moment 3–6 s in.
      const killAfterMs = 3000 + Math.floor(Math.random() * 3000);
      await sleep(killAfterMs);
      const bPongsWhileUp = b.lines.filter((l) => l.includes('B: pong')).length - pongsBefore;
      aStop.abort();
      await aDone;
      const after = await footprintOnceGone(emu, 'emu_iavf0', connects);
      rounds.push({ reached, killAfterMs, after, bPongsWhileUp });
    }
  });

  after(async () => {
    await b?.stop();
    await emu?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const explain = () =>
    `rounds: ${JSON.stringify(rounds)}\nbaseline: ${JSON.stringify(baseline)}\nB:\n${b?.lines.slice(-40).join('\n')}\nemu:\n${emu.stdout.slice(-3000)}${emu.stderr}`;

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
