import { expect } from 'chai';
import { DoorbellWatcher } from './doorbell-watcher.js';
import { closeFd } from './fd.js';
import { memfdCreate } from './memfd.js';
import { MappedMemory } from './mmap.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A page of doorbells in a memfd: `words` is what a guest writes to, through its own mapping. */
function doorbellPage() {
  const fd = memfdCreate('emu-test-doorbells', 0x3000);
  const mapping = MappedMemory.map(fd, 0, 0x3000);
  const words = new Uint32Array(mapping.buffer);
  return {
    fd,
    words,
    close() {
      mapping.unmap();
      closeFd(fd);
    },
  };
}

async function until(cond: () => boolean, ms = 1000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(1);
  }
}

describe('DoorbellWatcher', () => {
  it('calls back on the JS thread with the words that changed, promptly, and only for later writes', async () => {
    const page = doorbellPage();
    page.words[0x2000 / 4 + 3] = 99; // before start: not news
    const masks: number[] = [];
    const w = DoorbellWatcher.create(page.fd, {
      fileOffset: 0x2000,
      words: 16,
      onRing: (m) => masks.push(m),
    });
    try {
      w.start();
      expect(w.running).to.equal(true);
      await sleep(5);
      expect(masks).to.deep.equal([]);
      const t0 = process.hrtime.bigint();
      page.words[0x2000 / 4 + 5] = 1;
      await until(() => masks.length > 0);
      const us = Number(process.hrtime.bigint() - t0) / 1000;
      expect(masks).to.deep.equal([1 << 5]);
      // Idle before the write: at most the longest sleep (1 ms) plus scheduling.
      expect(us, 'wake-up latency in us').to.be.below(50_000);
      page.words[0x2000 / 4 + 0] = 7;
      page.words[0x2000 / 4 + 15] = 7;
      await until(() => masks.reduce((a, b) => a | b, 0) === ((1 << 5) | 1 | (1 << 15)));
      // Words outside [fileOffset, +16 words) are not watched.
      const seen = masks.length;
      page.words[0] = 5;
      page.words[0x2000 / 4 + 16] = 5;
      await sleep(20);
      expect(masks.length).to.equal(seen);
      expect(w.stats().notifications).to.be.at.least(2);
    } finally {
      w.close();
      page.close();
    }
  });

  it('stops promptly (joins its thread) and can start again; writes while stopped are not reported', async () => {
    const page = doorbellPage();
    const masks: number[] = [];
    const w = DoorbellWatcher.create(page.fd, {
      fileOffset: 0,
      words: 4,
      onRing: (m) => masks.push(m),
      maxSleepUs: 100_000, // an idle sleep of 100 ms: stop() must not wait for it
    });
    try {
      w.start();
      await sleep(50);
      const t0 = process.hrtime.bigint();
      w.stop();
      expect(Number(process.hrtime.bigint() - t0) / 1e6, 'stop() in ms').to.be.below(20);
      expect(w.running).to.equal(false);
      page.words[1] = 1;
      await sleep(10);
      expect(masks).to.deep.equal([]);
      w.start(); // the new value is the baseline
      w.start(); // idempotent
      page.words[2] = 1;
      await until(() => masks.length > 0);
      expect(masks).to.deep.equal([1 << 2]);
      w.stop();
      w.stop();
    } finally {
      w.close();
      w.close();
      page.close();
    }
    expect(() => w.start()).to.throw(/closed/);
  });

  it('backs off when idle: few polls per second, not a busy loop', async () => {
    const page = doorbellPage();
    const w = DoorbellWatcher.create(page.fd, { fileOffset: 0, words: 1, onRing: () => {} });
    try {
      w.start();
      await sleep(150); // past the busy and warm phases (100 ms after the last doorbell)
      const before = w.stats().polls;
      await sleep(200);
      const polls = w.stats().polls - before;
      // 1 ms sleeps: about 200 polls in 200 ms.
      expect(polls).to.be.within(20, 400);
    } finally {
      w.close();
      page.close();
    }
  });

  it('needs no fd after creation (it maps the words itself), and validates its options', () => {
    const page = doorbellPage();
    const w = DoorbellWatcher.create(page.fd, { fileOffset: 4, words: 32, onRing: () => {} });
    page.close();
    w.start();
    w.close();
    expect(() => DoorbellWatcher.create(-1, { fileOffset: 0, words: 1, onRing: () => {} })).to.throw(
      RangeError,
    );
    const fd = memfdCreate('emu-test-doorbells', 4096);
    try {
      expect(() => DoorbellWatcher.create(fd, { fileOffset: 2, words: 1, onRing: () => {} })).to.throw(
        RangeError,
      );
      expect(() => DoorbellWatcher.create(fd, { fileOffset: 0, words: 33, onRing: () => {} })).to.throw(
        RangeError,
      );
      expect(() => DoorbellWatcher.create(fd, { fileOffset: 0, words: 1, onRing: 1 as never })).to.throw(
        TypeError,
      );
      expect(() =>
        DoorbellWatcher.create(fd, {
          fileOffset: 0,
          words: 1,
          onRing: () => {},
          minSleepUs: 10,
          maxSleepUs: 5,
        }),
      ).to.throw(RangeError);
    } finally {
      closeFd(fd);
    }
  });

  it('a watcher left running does not keep the process alive, and a wake-up pending at exit is dropped cleanly', async () => {
    const { spawn } = await import('node:child_process');
    // The last doorbell is seen (and its wake-up queued) once the loop is done: in an 'exit' handler.
    // Node's teardown then runs the loop once more, where JS can no longer be called.
    const script = `
      import { DoorbellWatcher, MappedMemory, memfdCreate } from './lib/index.ts';
      const fd = memfdCreate('x', 4096);
      const words = new Uint32Array(MappedMemory.map(fd, 0, 4096).buffer);
      const w = DoorbellWatcher.create(fd, { fileOffset: 0, words: 1, onRing: () => {} });
      w.start();
      process.on('exit', () => {
        words[0] = 1;
        const end = Date.now() + 20;
        while (Date.now() < end);
      });
      setTimeout(() => console.log('bye'), 20);
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: new URL('..', import.meta.url).pathname,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d;
    });
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect({ code, out: out.trim() }).to.deep.equal({ code: 0, out: 'bye' });
  });
});
