import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import { EventFd } from './eventfd.js';
import { dupAll, setNonblocking } from './fd.js';
import { IrqLines, IrqWriter } from './irq-lines.js';
import { type StallReport, Watchdog } from './watchdog.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Watchdog: the stall detector', () => {
  it('reports a native thread held at one task past the threshold, naming it, and again when it ends', async () => {
    const reports: StallReport[] = [];
    const dog = new Watchdog({ thresholdMs: 100, onStalls: (r) => reports.push(...r) });
    const writer = new IrqWriter('stuck-dev');
    const lines = new IrqLines(1, writer);
    const ev = EventFd.create();
    try {
      lines.assign(0, dupAll([ev.fd])[0]);
      // The client clears O_NONBLOCK on a full eventfd: the device's writer blocks in write(2).
      setNonblocking(ev.fd, false);
      ev.write(0xffff_ffff_ffff_fffen);
      lines.trigger(0);
      const deadline = Date.now() + 5000;
      while (!reports.some((r) => r.thread === 'emu-irq:stuck-dev') && Date.now() < deadline) await sleep(20);
      const stall = reports.find((r) => r.thread === 'emu-irq:stuck-dev');
      expect(stall, JSON.stringify(reports)).to.not.equal(undefined);
      expect(stall!.doing).to.match(/^writing an interrupt eventfd/);
      expect(stall!.ended).to.equal(false);
      expect(stall!.ms).to.be.at.least(100);
      expect(Watchdog.stats()['emu-irq:stuck-dev']).to.be.at.least(1);
      ev.read(); // the client reads: the write completes
      while (!reports.some((r) => r.thread === 'emu-irq:stuck-dev' && r.ended) && Date.now() < deadline)
        await sleep(20);
      expect(reports.filter((r) => r.thread === 'emu-irq:stuck-dev').map((r) => r.ended)).to.deep.equal([
        false,
        true,
      ]);
    } finally {
      lines.close();
      writer.close();
      ev.close();
      dog.close();
    }
  });

  it('writes a stall of the event loop to stderr at once, with what it was doing, and reports it once the loop turns', () => {
    const script = `
      const { activity, idle, Watchdog } = await import(${JSON.stringify(new URL('./index.ts', import.meta.url).href)});
      const reports = [];
      const dog = new Watchdog({ thresholdMs: 100, onStalls: (r) => reports.push(...r) });
      await new Promise((r) => setTimeout(r, 50));
      activity('a task that never yields');
      const end = Date.now() + 600;
      while (Date.now() < end) {}
      idle();
      await new Promise((r) => setTimeout(r, 600));
      dog.close();
      console.log(JSON.stringify(reports));
    `;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.status, run.stderr).to.equal(0);
    expect(run.stderr).to.match(
      /emu warn: the event loop has not turned for \d+ ms \(in: a task that never yields\)/,
    );
    const reports = JSON.parse(run.stdout.trim().split('\n').pop()!) as StallReport[];
    const loop = reports.filter((r) => r.thread === 'event loop');
    expect(loop.map((r) => r.ended)).to.deep.equal([false, true]);
    expect(loop[0].subject).to.equal('a task that never yields');
    expect(loop[1].ms).to.be.at.least(400);
  });
});
