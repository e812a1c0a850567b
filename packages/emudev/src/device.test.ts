import { existsSync } from 'node:fs';
import { closeFd, EventFd, MappedMemory, memfdCreate } from '@emu/native';
import { PciRegion, VfioUserClient } from '@emu/vfio-user';
import { expect } from 'chai';
import { counterDriver, probed } from './counter.fixture.js';
import { EmuDevice } from './device.js';
import { EmudevError } from './errors.js';
import { quiet, tempDir, u32, until } from './test-env.fixture.js';
import type { MemRegion } from './types.js';

async function rejectsWith(p: Promise<unknown>, code: string, text: string) {
  const err = await p.then(
    () => undefined,
    (e) => e,
  );
  expect(err, 'expected a rejection').to.be.instanceOf(EmudevError);
  expect(err.code).to.equal(code);
  expect(err.message).to.contain(text);
  return err as EmudevError;
}

describe('EmuDevice', () => {
  let dir: ReturnType<typeof tempDir>;
  let dev: EmuDevice;
  let client: VfioUserClient | undefined;

  beforeEach(() => {
    dir = tempDir();
    dev = new EmuDevice('emu_counter0', counterDriver, { path: dir.path('c.sock'), ...quiet });
  });
  afterEach(async () => {
    client?.close();
    client = undefined;
    await dev.close();
    dir.cleanup();
  });

  async function serve(config = {}) {
    await dev.configure(config);
    await dev.start();
    client = await VfioUserClient.connect(dev.path);
    await until(() => dev.info().socket.connected, 'the client to negotiate');
    return client;
  }

  describe('lifecycle', () => {
    it('goes allocated → configured → started → stopped → started → closed, and says so', async () => {
      const seen: string[] = [];
      dev.on('state', ({ from, to }) => seen.push(`${from}>${to}`));
      await dev.configure({ step: 3 });
      await dev.start();
      expect(existsSync(dev.path)).to.equal(true);
      await dev.stop();
      expect(existsSync(dev.path)).to.equal(false);
      await dev.start();
      await dev.close();
      expect(existsSync(dev.path)).to.equal(false);
      expect(seen).to.deep.equal([
        'allocated>configured',
        'configured>started',
        'started>stopped',
        'stopped>started',
        'started>stopped',
        'stopped>closed',
      ]);
    });

    it('refuses operations in the wrong state with ESTATE', async () => {
      await rejectsWith(dev.start(), 'ESTATE', 'cannot start a device that is allocated');
      await rejectsWith(dev.stop(), 'ESTATE', 'cannot stop');
      expect(() => dev.reset()).to.throw(EmudevError, 'cannot reset a device that is allocated');
      await dev.configure();
      await dev.start();
      await rejectsWith(dev.configure(), 'ESTATE', 'cannot configure a device that is started');
      await dev.close();
      await rejectsWith(dev.start(), 'ESTATE', 'closed');
    });

    it('validates the typed configuration and names each bad key', async () => {
      const err = await rejectsWith(
        dev.configure({ step: 0, vectors: 'many' }),
        'EINVAL',
        'bad configuration',
      );
      expect(err.issues!.map((i) => i.path)).to.deep.equal(['step', 'vectors']);
      expect(dev.state).to.equal('allocated');
      await dev.configure({ step: '5' });
      expect(dev.getAttr('step')).to.equal(5);
    });

    it('reports a socket path it cannot serve on', async () => {
      const bad = new EmuDevice('emu_counter1', counterDriver, {
        path: dir.path('missing/dir/c.sock'),
        ...quiet,
      });
      await bad.configure();
      await rejectsWith(bad.start(), 'ENOENT', 'cannot serve on');
      expect(bad.state).to.equal('configured');
      await bad.close();
    });

    it('rate-limits what its driver and transport log: a guest repeating a mistake cannot flood the log', async () => {
      const lines: string[] = [];
      const record = (obj: object | string, msg?: string) => lines.push(typeof obj === 'string' ? obj : msg!);
      const logger = { debug: record, info: record, warn: record, error: record };
      const limited = new EmuDevice('emu_counter1', counterDriver, { path: dir.path('l.sock'), logger });
      for (let i = 0; i < 1000; i++) limited.log.warn({ i }, 'bad doorbell');
      expect(lines).to.deep.equal(Array(10).fill('bad doorbell'));
      const unlimited = new EmuDevice('emu_counter2', counterDriver, {
        path: dir.path('u.sock'),
        logger,
        logRateLimit: false,
      });
      for (let i = 0; i < 1000; i++) unlimited.log.warn({ i }, 'bad doorbell');
      expect(lines).to.have.length(1010);
      await limited.close();
      await unlimited.close();
    });

    it('tells its info, doorbells and the QEMU argument', async () => {
      await dev.configure({ vectors: 4 });
      const info = dev.info();
      expect(info).to.deep.include({
        name: 'emu_counter0',
        driver: 'emu_counter',
        type: 'counter',
        maxQueues: 1,
      });
      expect(info.irqs).to.deep.equal({ intx: 0, msi: 0, msix: 4, err: 1, req: 1 });
      expect(info.socket).to.deep.equal({ path: dev.path, listening: false, connected: false });
      expect(dev.doorbellInfo(0)).to.deep.equal({ id: 0, region: 0, offset: 4, width: 4 });
      expect(dev.doorbellInfo(7)).to.equal(undefined);
      expect(JSON.parse(dev.qemuDeviceArg())).to.deep.equal({
        driver: 'vfio-user-pci',
        socket: { path: dev.path, type: 'unix' },
      });
    });
  });

  describe('serving a client', () => {
    it('answers the client from the driver, as its own region API does', async () => {
      const c = await serve();
      await c.regionWrite(0, 4, u32(1));
      expect((await c.regionRead(0, 0, 4)).readUInt32LE(0)).to.equal(1);
      expect(dev.regionRead(0, 0, 4).readUInt32LE(0)).to.equal(1);
      dev.regionWrite(0, 4, u32(1));
      expect((await c.regionRead(0, 0, 4)).readUInt32LE(0)).to.equal(2);
      expect(dev.regionRead(PciRegion.CONFIG, 0, 2).readUInt16LE(0)).to.equal(0x1b36);
      expect(() => dev.regionRead(0, 0xffe, 4)).to.throw(EmudevError, 'invalid');
      expect(dev.stats().commands.REGION_WRITE).to.equal(1);
    });

    it('raises the MSI-X vectors the client enabled, and says which are', async () => {
      const c = await serve();
      expect(dev.irqInfo(0)).to.deep.equal({ index: 'msix', vector: 0, enabled: false });
      const ev = EventFd.create();
      await c.setIrqEventfds('msix', 0, [ev]);
      expect(dev.irqInfo(0).enabled).to.equal(true);
      expect(() => dev.irqInfo(9)).to.throw(EmudevError, 'no msix vector 9');
      const fired = ev.wait(2000);
      await c.regionWrite(0, 4, u32(1));
      expect(await fired).to.equal(1n);
      ev.close();
    });

    it("hands a native-interrupt driver the client's lines: what they fire reaches the client's eventfd", async () => {
      await dev.configure({});
      const lines = probed.ctx!.irqs.lines()!;
      await dev.start();
      client = await VfioUserClient.connect(dev.path);
      expect(probed.ctx!.irqs.lines(), 'the same lines while serving').to.equal(lines);
      expect(lines.count).to.equal(2);
      expect(probed.ctx!.irqs.lines('intx')?.count ?? 0, 'no INTx pin').to.equal(0);
      const ev = EventFd.create();
      await client.setIrqEventfds('msix', 1, [ev]);
      expect(lines.enabled(1)).to.equal(true);
      expect(lines.trigger(1)).to.equal('fired');
      await lines.settled();
      expect(ev.read()).to.equal(1n);
      expect(dev.stats().irqsTriggered, 'counted by the server as its own').to.equal(1);
      ev.close();
    });

    it('gives the driver guest memory, direct with an fd and by messages without', async () => {
      const c = await serve();
      const fd = memfdCreate('emu-emudev-ram', 0x2000);
      const ram = MappedMemory.map(fd, 0, 0x2000);
      await c.dmaMap({ address: 0x10000n, size: 0x2000n, fd, memory: new Uint8Array(ram.buffer) });
      closeFd(fd);
      const plain = new Uint8Array(0x1000);
      await c.dmaMap({ address: 0x40000n, size: 0x1000n, memory: plain });
      expect(dev.memTable()).to.deep.equal([
        { iova: 0x10000n, size: 0x2000n, readable: true, writable: true, direct: true },
        { iova: 0x40000n, size: 0x1000n, readable: true, writable: true, direct: false },
      ]);
      const memory = probed.ctx!.memory;
      expect(memory.table()).to.have.length(2);
      expect(memory.nativeTable?.lookup(0x10010n, 6n)).to.equal('miss');
      expect(memory.view(0x10010n, 6), 'no DMA before Bus Master Enable').to.equal(undefined);
      await c.setBusMaster();
      expect(memory.dmaEnabled).to.equal(true);
      expect(memory.nativeTable?.lookup(0x10010n, 6n)).to.equal('ok');
      new Uint8Array(ram.buffer).set(Buffer.from('direct'), 0x10);
      plain.set(Buffer.from('message'), 0x20);
      expect((await memory.read(0x10010n, 6)).toString()).to.equal('direct');
      expect((await memory.read(0x40020n, 7)).toString()).to.equal('message');
      await memory.write(0x40000n, Buffer.from('back'));
      expect(Buffer.from(plain.subarray(0, 4)).toString()).to.equal('back');
      expect(memory.view(0x10010n, 6)).to.have.length(6);
      expect(memory.view(0x40000n, 4), 'no direct view of fd-less memory').to.equal(undefined);
      expect(memory.contains(0x41000n, 1)).to.equal(false);
      const err = await memory.read(0x3fff0n, 0x20).catch((e) => e);
      expect(err).to.be.instanceOf(RangeError);
      await c.dmaUnmap(0x10000n, 0x2000n);
      expect(memory.view(0x10010n, 6)).to.equal(undefined);
      ram.unmap();
    });

    it('takes the 65535 maps of a vIOMMU guest, one mem-update each, the table built only when read', async function () {
      // 65535 round trips: seconds alone, more beside the other packages' suites on two cores.
      this.timeout(60_000);
      const c = await serve();
      const seen: Array<'map' | 'unmap'> = [];
      dev.on('mem-update', (e) => seen.push(e.kind));
      const memory = new Uint8Array(4096);
      const at = (i: number) => 0x1_0000_0000n + BigInt(i) * 0x1000n;
      for (let i = 0; i < 65535; i += 512) {
        const batch = [];
        for (let j = i; j < Math.min(65535, i + 512); j++)
          batch.push(c.dmaMap({ address: at(j), size: 0x1000n, memory }));
        await Promise.all(batch);
      }
      expect(seen.length).to.equal(65535);
      expect(dev.memTable()).to.have.length(65535);
      let last: MemRegion[] | undefined;
      dev.once('mem-update', (e) => {
        last = e.table;
      });
      await c.dmaUnmap(at(100), 0x1000n);
      expect(last).to.have.length(65534);
      expect(last!.some((r) => r.iova === at(100))).to.equal(false);
    });
  });
});

describe('EmuDevice queues, attributes, reset and selftest', () => {
  let dir: ReturnType<typeof tempDir>;
  let dev: EmuDevice;
  beforeEach(async () => {
    dir = tempDir();
    dev = new EmuDevice('emu_counter0', counterDriver, { path: dir.path('c.sock'), ...quiet });
    await dev.configure();
  });
  afterEach(async () => {
    await dev.close();
    dir.cleanup();
  });

  it('reports the queues the driver set up, with an event per change', () => {
    const events: unknown[] = [];
    dev.on('queue-state', (q) => events.push({ id: q.id, enabled: q.enabled }));
    dev.regionWrite(0, 8, u32(0x1000));
    dev.regionWrite(0, 0xc, u32(0x1));
    dev.regionWrite(0, 0x10, u32(256));
    dev.regionWrite(0, 0x14, u32(1));
    expect(dev.queueInfo(0)).to.deep.equal({
      id: 0,
      base: 0x1_0000_1000n,
      size: 256,
      doorbell: 0,
      vector: 1,
      enabled: true,
    });
    dev.regionWrite(0, 0x14, u32(1)); // same again: no event
    dev.regionWrite(0, 0x14, u32(0));
    expect(events).to.deep.equal([
      { id: 0, enabled: true },
      { id: 0, enabled: false },
    ]);
    expect(dev.queues()).to.have.length(1);
  });

  it('gets and sets typed attributes with clear errors', () => {
    expect(dev.attributes()).to.deep.equal([
      { name: 'count', description: 'the count', writable: false },
      { name: 'step', description: 'how much INC adds', writable: true },
    ]);
    dev.setAttr('step', 7);
    dev.regionWrite(0, 4, u32(1));
    expect(dev.getAttr('count')).to.equal(7);
    expect(() => dev.setAttr('step', 0)).to.throw(EmudevError, 'attribute step: 0:');
    expect(() => dev.setAttr('step', 'x')).to.throw(EmudevError, 'attribute step: "x"');
    expect(() => dev.setAttr('count', 1)).to.throw(EmudevError, 'attribute count is read-only');
    expect(() => dev.getAttr('colour')).to.throw(
      EmudevError,
      'no attribute colour (attributes: count, step)',
    );
    expect(dev.getAttr('step')).to.equal(7);
  });

  it("takes Object.prototype's names for unknown attributes, not for the prototype's members", () => {
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']) {
      const unknown = `${name} (attributes: count, step)`;
      expect(() => dev.getAttr(name), name).to.throw(EmudevError, `no attribute ${unknown}`);
      expect(() => dev.setAttr(name, 1), name).to.throw(EmudevError, `no attribute ${unknown}`);
    }
    expect(dev.getAttr('step')).to.equal(1);
  });

  it("reports the driver's traffic counters by queue", () => {
    expect(dev.counters()).to.deep.equal({ queues: [] });
    dev.regionWrite(0, 0x14, u32(1));
    dev.regionWrite(0, 4, u32(1));
    dev.regionWrite(0, 4, u32(1));
    expect(dev.counters()).to.deep.equal({
      queues: [{ queue: 0, direction: 'tx', packets: 2, bytes: 8, drops: 0, errors: 0 }],
    });
  });

  it('resets config space, driver state and queues, and says why', () => {
    const causes: string[] = [];
    dev.on('reset', (r) => causes.push(r.cause));
    dev.regionWrite(PciRegion.CONFIG, 4, Buffer.from([0x06, 0]));
    dev.regionWrite(0, 4, u32(1));
    dev.regionWrite(0, 0x14, u32(1));
    dev.reset();
    expect(dev.regionRead(0, 0, 4).readUInt32LE(0)).to.equal(0);
    expect(dev.regionRead(PciRegion.CONFIG, 4, 2).readUInt16LE(0)).to.equal(0);
    expect(dev.queues()).to.deep.equal([]);
    // A function-level reset from the guest, through the PCIe capability.
    dev.regionWrite(0, 4, u32(1));
    // Find the PCI Express capability (id 0x10) by walking the list, as the guest does.
    let cap = dev.regionRead(PciRegion.CONFIG, 0x34, 1)[0];
    while (cap !== 0 && dev.regionRead(PciRegion.CONFIG, cap, 1)[0] !== 0x10) {
      cap = dev.regionRead(PciRegion.CONFIG, cap + 1, 1)[0];
    }
    const devctl = cap + 8;
    dev.regionWrite(PciRegion.CONFIG, devctl, Buffer.from([0, 0x80]));
    expect(dev.regionRead(0, 0, 4).readUInt32LE(0)).to.equal(0);
    expect(causes).to.deep.equal(['api', 'flr']);
  });

  it('selftests config space, regions and the driver', async () => {
    const good = await dev.selftest();
    expect(good.ok).to.equal(true);
    expect(good.checks.map((c) => c.name)).to.deep.equal([
      'config space identity',
      'region 0 reads',
      'region 2 reads',
      'counter starts at 0',
    ]);
    dev.regionWrite(0, 4, u32(1));
    const bad = await dev.selftest();
    expect(bad.ok).to.equal(false);
    expect(bad.checks.find((c) => !c.ok)).to.deep.equal({
      name: 'counter starts at 0',
      ok: false,
      detail: 'count 1',
    });
  });
});

describe('GuestMemory without a client', () => {
  it('rejects reads and writes instead of throwing, so a driver cannot crash on a vanished client', async () => {
    const { GuestMemory } = await import('./memory.js');
    const memory = new GuestMemory();
    const read = memory.read(0n, 4);
    expect(read).to.be.instanceOf(Promise);
    expect(await read.catch((e) => e)).to.be.instanceOf(RangeError);
    expect(await memory.write(0n, Buffer.alloc(1)).catch((e) => e)).to.be.instanceOf(RangeError);
    expect(memory.view(0n, 4)).to.equal(undefined);
    expect(memory.table()).to.deep.equal([]);
  });
});
