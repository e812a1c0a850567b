/**
 * A device whose build fails at any step leaves nothing behind: each step's undo runs (UndoStack),
 * so the process's fds and memfd mappings are what they were before. A driver that takes memory in
 * its probe (as emu_iavf does) is failed at each step of the build in turn.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { closeFd, MappedMemory, memfdCreate } from '@emu/native';
import { PciConfigSpace } from '@emu/vfio-user';
import { expect } from 'chai';
import { z } from 'zod';
import { EmuDevice } from './device.js';
import { defineDriver } from './driver.js';
import { quiet, tempDir } from './test-env.fixture.js';
import { buildStepsSync, UndoStack } from './undo.js';

const STEPS = ['none', 'probe', 'transport', 'listen', 'start'] as const;
const fdCount = () => readdirSync('/proc/self/fd').length;
const memfdMaps = () =>
  readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.includes('memfd:emu-test-rollback')).length;

/** What probe took outside the device (a driver's shared state): released by the driver's remove. */
const outside = new WeakMap<object, number>();

/**
 * A driver that maps a page of its own in probe (released by the device's close) and takes an fd
 * outside it (released by the driver's remove), and fails where told.
 */
const leaky = defineDriver({
  name: 'emu_leaky',
  type: 'test',
  description: 'takes memory in probe, fails where told',
  config: z.object({ fail: z.enum(STEPS).default('none') }),
  probe(_ctx, config) {
    return buildStepsSync((undo) => {
      const fd = undo.push(memfdCreate('emu-test-rollback', 4096), closeFd);
      const page = undo.push(MappedMemory.map(fd, 0, 4096), (m) => m.unmap());
      if (config.fail === 'probe') throw new Error('probe failed after taking memory');
      const shared = undo.push(memfdCreate('emu-test-rollback-shared', 4096), closeFd);
      const impl = {
        config: new PciConfigSpace({
          identity: { vendorId: 0x1b36, deviceId: 0x10fe, classCode: 0xff0000 },
          bars: [{ index: 0, kind: 'mem32', size: 0x1000 }],
        }),
        regions: {
          0: {
            read: (_o: number, n: number) => Buffer.alloc(n),
            write: () => {},
            // An mmap area the transport refuses (not page-aligned): the device's build is invalid.
            ...(config.fail === 'transport' ? { mmap: { fd, areas: [{ offset: 3, size: 5 }] } } : {}),
          },
        },
        start() {
          if (config.fail === 'start') throw new Error('start failed on purpose');
        },
        close() {
          page.unmap();
          closeFd(fd);
        },
      };
      outside.set(impl, shared);
      return impl;
    });
  },
  remove(impl) {
    const fd = outside.get(impl);
    outside.delete(impl);
    if (fd !== undefined) closeFd(fd);
  },
});

describe('a device build that fails at any step', () => {
  let dir: ReturnType<typeof tempDir>;
  // One whole build and close first: what the process creates once, on its first device (the native
  // module's threads and their wake-ups, modules loaded on first use), is not a leak of the first
  // test's. Under a run of every package's tests at once (turbo), the first test once counted 16 fds
  // more after its device than before; every later test compares its own before and after as well.
  before(async () => {
    const warm = tempDir();
    const device = new EmuDevice('warm0', leaky, { path: warm.path('warm.sock'), ...quiet });
    await device.configure({ fail: 'none' });
    await device.start();
    await device.close();
    warm.cleanup();
  });
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => dir.cleanup());

  for (const step of STEPS) {
    it(`releases everything when it fails at ${step === 'none' ? 'no step (and is closed)' : step}`, async () => {
      const fds = fdCount();
      const maps = memfdMaps();
      const path = step === 'listen' ? dir.path('missing/dev.sock') : dir.path('dev.sock');
      const device = new EmuDevice('leaky0', leaky, { path, ...quiet });
      const failure = await (async () => {
        await device.configure({ fail: step });
        await device.start();
      })().then(
        () => undefined,
        (e: Error) => e.message,
      );
      if (step === 'none') expect(failure).to.equal(undefined);
      else expect(failure, 'the build failed').to.be.a('string');
      if (step === 'start')
        expect(existsSync(path), 'the socket is gone with the failed start').to.equal(false);
      await device.close();
      expect(fdCount(), 'fds').to.equal(fds);
      expect(memfdMaps(), 'memfd mappings').to.equal(maps);
    });
  }

  it('runs every undo, last first, even when one fails, and reports the build failure', async () => {
    const done: string[] = [];
    const undo = new UndoStack();
    undo.push('a', (x) => done.push(x));
    undo.push('b', () => {
      throw new Error('undo b failed');
    });
    undo.push('c', (x) => done.push(x));
    await undo.unwind(new Error('the build failed'));
    expect(done).to.deep.equal(['c', 'a']);
  });
});
