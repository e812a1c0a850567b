/**
 * A hostile guest: guest H binds its emu_iavf NIC to vfio-pci and runs `emu-vfio-probe garbage` for
 * 60 s, a driver that writes garbage at full speed to the tails, the interrupt and admin-queue
 * registers and anything else in BAR0, to the rings and buffers in its DMA memory, and sends the admin
 * queue random virtchnl messages (tools/guest/guest/emu-vfio-probe.c). Guest B, the neighbour on
 * another emu_iavf NIC of the same emu, pings the host through a TAP all along. emu must survive, B
 * must lose less than 5 % of its pings while H rages, emu's log must stay within its rate limit, and
 * once H's QEMU is gone emu's footprint is back. Needs root; `pnpm e2e`, `pnpm e2e:faults`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BootGuestResult, bootGuest, ensureGuestEnvironment, pingForever, up } from '@emu/guest';
import { expect } from 'chai';
import { EmuProcess } from '../emu-process.js';
import { type Footprint, footprint, footprintOnceGone } from './footprint.js';
import { Neighbour } from './neighbour.js';

const SECONDS = Number(process.env.EMU_HOSTILE_SECONDS ?? 60);
const SEED = Number(process.env.EMU_HOSTILE_SEED ?? 1);

/** Guest B: up for good; one line per ping of the host's end of the TAP. */
const B = `${up('10.217.0.2/24')}
echo "B up"
${pingForever('B', '10.217.0.1', 0.2)}
`;

const H = `echo "H: start"
emu-vfio-probe batch 0000:00:02.0 'garbage ${SECONDS} ${SEED}'
echo "H: end status=$?"
`;

describe(`a hostile guest writing garbage to its NIC for ${SECONDS} s, beside a guest that pings`, function () {
  this.timeout(600_000 + SECONDS * 2000);
  const ns = `emuhost${process.pid}`;
  const tap = `emuh${process.pid % 100000}`;
  let dir: string;
  let emu: EmuProcess;
  let b: Neighbour;
  let h: BootGuestResult;
  /** B's ping lines while H ran */
  let during: string[] = [];
  let baseline: Footprint;
  let afterH: Footprint;

  before(async function () {
    this.timeout(600_000 + SECONDS * 2000);
    await ensureGuestEnvironment();
    dir = mkdtempSync(join(tmpdir(), 'emu-hostile-e2e-'));
    emu = new EmuProcess([
      '--vdev',
      `emu_iavf0,path=${join(dir, 'h.sock')},mac=02:00:00:00:00:0b`,
      '--vdev',
      `emu_iavf1,path=${join(dir, 'b.sock')},mac=02:00:00:00:00:02,net=tap:${tap}`,
      '--log-level',
      'info',
    ]);
    await emu.waitFor(/serving 2 devices/);
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['link', 'set', tap, 'netns', ns]);
    execFileSync('ip', ['-n', ns, 'addr', 'add', '10.217.0.1/24', 'dev', tap]);
    execFileSync('ip', ['-n', ns, 'link', 'set', tap, 'up']);
    b = new Neighbour({
      sockets: [join(dir, 'b.sock')],
      modules: ['iavf'],
      script: B,
      timeoutMs: 600_000 + SECONDS * 2000,
    });
    await b.waitForLine('B: pong', 'guest B to reach the host', 300_000);
    baseline = footprint(emu.child.pid!);
    let from = -1;
    h = await bootGuest({
      sockets: [join(dir, 'h.sock')],
      modules: ['vfio-pci'],
      script: H,
      timeoutMs: 300_000 + SECONDS * 1000,
      onConsole: (line) => {
        if (line.includes('H: start')) from = b.lines.length;
        if (line.includes('H: end') && from >= 0)
          during = b.lines.slice(from).filter((l) => l.startsWith('B: '));
      },
    });
    afterH = await footprintOnceGone(emu, 'emu_iavf0', 0);
  });

  after(async () => {
    await b?.stop();
    await emu?.stop();
    try {
      execFileSync('ip', ['netns', 'del', ns]);
    } catch {}
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const explain = () =>
    `H:\n${h?.output}\n${h?.qemuStderr}\nB:\n${b?.lines.slice(-20).join('\n')}\nemu:\n${emu.stdout.slice(-2000)}${emu.stderr.slice(-4000)}`;

  it(`lets H run its garbage for ${SECONDS} s: thousands of register writes and admin-queue sends`, () => {
    const m =
      /garbage seconds=\d+ seed=\d+ writes=(\d+) reads=(\d+) errors=(\d+) dma_bytes=\d+ aq_sends=(\d+)/.exec(
        h.output,
      );
    expect(m, explain()).to.not.equal(null);
    console.log(`      ${m![0]}`);
    expect(Number(m![1]), explain()).to.be.above(1000);
    expect(Number(m![4]), explain()).to.be.above(100);
    expect(h.output, explain()).to.include('H: end status=0');
  });

  it('keeps the neighbour: B loses less than 5 % of its pings while H runs', () => {
    const lost = during.filter((l) => l === 'B: lost').length;
    console.log(`      B: ${lost} of ${during.length} pings lost while H ran`);
    expect(during.length, explain()).to.be.at.least(SECONDS);
    expect(lost / during.length, `${lost} of ${during.length} lost\n${explain()}`).to.be.below(0.05);
  });

  it("survives, and is back to its footprint once H's QEMU is gone", async () => {
    expect(emu.child.exitCode, explain()).to.equal(null);
    expect(afterH, explain()).to.deep.equal(baseline);
    // What emu made of it: the guest's mistakes are warnings, never errors, and rate-limited (at most
    // 100 a level per 5 s for a device: emudev's logRateLimit), so the log stays small.
    const warnings = emu.stderr.split('\n').filter((l) => l.startsWith('emu warn'));
    console.log(`      emu: ${warnings.length} warnings, ${emu.stderr.length} bytes of log`);
    expect(warnings.length, explain()).to.be.above(0);
    expect(warnings.length, explain()).to.be.at.most((Math.ceil(SECONDS / 5) + 4) * 100);
    expect(
      emu.stderr.split('\n').filter((l) => l.startsWith('emu error')),
      explain(),
    ).to.deep.equal([]);
    expect(await emu.stop()).to.equal(0);
  });
});
