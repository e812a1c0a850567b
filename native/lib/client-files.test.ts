import { openSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { closerStats, fileKind, releaseFd } from './client-files.js';
import { EventFd } from './eventfd.js';
import { lingeringSocket } from './fault-injection.js';
import { closeFd } from './fd.js';
import { memfdCreate } from './memfd.js';
import { UnixSocket } from './unix-socket.js';
import { type StallReport, Watchdog } from './watchdog.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the files a client hands emu', () => {
  it('tells what a file is without a call into its filesystem', () => {
    const ev = EventFd.create();
    const memfd = memfdCreate('emu-client-files', 4096);
    const path = join(tmpdir(), `emu-client-files-${process.pid}`);
    writeFileSync(path, 'x');
    const file = openSync(path, 'r');
    const proc = openSync('/proc/self/status', 'r');
    const [a, b] = UnixSocket.pair();
    try {
      expect(fileKind(ev.fd)).to.deep.equal({ kind: 'eventfd', filesystem: '' });
      expect(fileKind(memfd)).to.deep.equal({ kind: 'memory', filesystem: '' });
      const disk = fileKind(file);
      // tmpdir() is on a disk here, or a tmpfs (then memory): either may be mapped.
      expect(disk.kind === 'disk-file' || disk.kind === 'memory', JSON.stringify(disk)).to.equal(true);
      expect(fileKind(proc)).to.deep.equal({ kind: 'other', filesystem: 'proc' });
      expect(fileKind(a.fd).kind).to.equal('other');
    } finally {
      ev.close();
      closeFd(memfd);
      closeFd(file);
      closeFd(proc);
      a.close();
      b.close();
    }
    expect(fileKind(memfd).kind).to.equal('closed');
  });

  it('lets go of a file whose close waits (a lingering socket) on the closer thread, never the caller', async () => {
    const reports: StallReport[] = [];
    const dog = new Watchdog({ thresholdMs: 200, onStalls: (r) => reports.push(...r) });
    const s = lingeringSocket(2);
    try {
      const before = closerStats();
      const at = performance.now();
      expect(releaseFd(s.fd), 'taken by the closer').to.equal(true);
      expect(performance.now() - at, 'ms releaseFd took').to.be.below(100);
      expect(closerStats().pending).to.equal(before.pending + 1);
      // Meanwhile the closer is stuck in close(2): the stall detector names it.
      const deadline = Date.now() + 5000;
      while (!reports.some((r) => r.thread === 'emu-closer' && r.ended) && Date.now() < deadline)
        await sleep(50);
      expect(reports.filter((r) => r.thread === 'emu-closer').map((r) => r.ended)).to.deep.equal([
        false,
        true,
      ]);
      expect(reports[0].doing).to.match(/^closing a file a client handed over/);
      expect(closerStats()).to.deep.equal({ pending: before.pending, closed: before.closed + 1 });
    } finally {
      dog.close();
      closeFd(s.peer);
      closeFd(s.listener);
    }
  });

  it('closes eventfds, memory and closed fds in place', () => {
    const ev = EventFd.create();
    const memfd = memfdCreate('emu-client-files-release', 4096);
    const fd = ev.fd;
    expect(releaseFd(memfd)).to.equal(false);
    expect(fileKind(memfd).kind).to.equal('closed');
    expect(releaseFd(-1)).to.equal(false);
    expect(releaseFd(memfd), 'already closed: nothing').to.equal(false);
    expect(fileKind(fd).kind).to.equal('eventfd');
    ev.close();
  });
});
