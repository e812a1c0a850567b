import { expect } from 'chai';
import type { z } from 'zod';
import { counterDriver } from './counter.fixture.js';
import { EmudevError } from './errors.js';
import { EmudevRegistry } from './registry.js';
import { quiet, tempDir } from './test-env.fixture.js';

function expectCode(fn: () => unknown, code: string, text: string) {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(EmudevError);
    expect((err as EmudevError).code).to.equal(code);
    expect((err as Error).message).to.contain(text);
    return;
  }
  expect.fail('no error');
}

describe('EmudevRegistry', () => {
  let registry: EmudevRegistry;
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => {
    registry = new EmudevRegistry();
    registry.registerDriver(counterDriver);
    dir = tempDir();
  });
  afterEach(async () => {
    for (const d of registry.list()) await registry.release(d.name);
    dir.cleanup();
  });

  it('registers drivers once, by valid name', () => {
    expect(registry.drivers().map((d) => d.name)).to.deep.equal(['emu_counter']);
    expect(registry.getDriver('emu_counter')).to.equal(counterDriver);
    expectCode(() => registry.registerDriver(counterDriver), 'EEXIST', 'already registered');
    expectCode(
      () => registry.registerDriver({ ...counterDriver, name: 'Emu-Bad1' }),
      'EINVAL',
      'lower-case letters',
    );
    expectCode(
      () =>
        registry.registerDriver({
          ...counterDriver,
          name: 'emu_x',
          config: undefined as unknown as z.ZodObject,
        }),
      'EINVAL',
      'needs a zod object',
    );
  });

  it('allocates devices by unique name and socket path, and looks them up', () => {
    const a = registry.allocate('emu_counter0', 'emu_counter', { path: dir.path('a.sock'), ...quiet });
    expect(a.state).to.equal('allocated');
    expect(registry.get('emu_counter0')).to.equal(a);
    expectCode(
      () => registry.allocate('emu_counter0', 'emu_counter', { path: dir.path('b.sock') }),
      'EEXIST',
      'emu_counter0',
    );
    expectCode(
      () => registry.allocate('emu_counter1', 'emu_counter', { path: dir.path('a.sock') }),
      'EADDRINUSE',
      'emu_counter0',
    );
    expectCode(
      () => registry.allocate('emu_nope0', 'emu_nope', { path: dir.path('c.sock') }),
      'ENOENT',
      'drivers: emu_counter',
    );
    expect(registry.list().map((d) => d.name)).to.deep.equal(['emu_counter0']);
  });

  it('releases devices and refuses to unregister a driver still in use', async () => {
    const dev = registry.allocate('emu_counter0', 'emu_counter', { path: dir.path('a.sock'), ...quiet });
    await dev.configure({});
    await dev.start();
    expectCode(() => registry.unregisterDriver('emu_counter'), 'EBUSY', 'emu_counter0');
    await registry.release('emu_counter0');
    expect(dev.state).to.equal('closed');
    expect(registry.list()).to.deep.equal([]);
    registry.unregisterDriver('emu_counter');
    expect(registry.drivers()).to.deep.equal([]);
  });

  it('forgets a device that was closed directly', async () => {
    const dev = registry.allocate('emu_counter3', 'emu_counter', { path: dir.path('d.sock'), ...quiet });
    await dev.close();
    expect(registry.get('emu_counter3')).to.equal(undefined);
  });
});
