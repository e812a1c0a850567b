import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { type EmuDevice, EmudevError, EmudevRegistry } from '@emu/emudev';
import { VfioUserClient } from '@emu/vfio-user';
import { expect } from 'chai';
import { VdevBus } from './bus.js';
import { DevargsError } from './devargs.js';
import { strictDriver, TEST_ID, testDriver } from './test-driver.fixture.js';
import { captureLogger, exists, tempDir, u32, until } from './test-env.fixture.js';

const quietClient = { logger: { debug() {}, info() {}, warn() {}, error() {} } };

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  return expect.fail('the promise resolved');
}

/** A socket file nobody listens on: what a server killed with SIGKILL leaves behind. */
async function staleSocket(path: string): Promise<void> {
  const child = spawn(process.execPath, [
    '-e',
    "require('net').createServer().listen(process.argv[1], () => process.kill(process.pid, 'SIGKILL'))",
    path,
  ]);
  await new Promise((r) => child.once('exit', r));
  expect(exists(path), 'stale socket made').to.equal(true);
}

describe('VdevBus', () => {
  let registry: EmudevRegistry;
  let bus: VdevBus;
  let log: ReturnType<typeof captureLogger>;
  let tmp: ReturnType<typeof tempDir>;
  const clients: VfioUserClient[] = [];
  const servers: Server[] = [];

  beforeEach(() => {
    registry = new EmudevRegistry();
    registry.registerDriver(testDriver);
    registry.registerDriver(strictDriver);
    log = captureLogger();
    bus = new VdevBus(registry, { logger: log.logger });
    tmp = tempDir();
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
    await bus.removeAll();
    tmp.cleanup();
  });

  async function connect(path: string): Promise<VfioUserClient> {
    const c = await VfioUserClient.connect(path, quietClient);
    clients.push(c);
    return c;
  }

  it('probes a device from devargs and serves it on its socket', async () => {
    const added: EmuDevice[] = [];
    bus.on('add', (d) => added.push(d));
    const dev = await bus.probe(`emu_test0,path=${tmp.path('t0.sock')},unit=7`);
    expect(dev.name).to.equal('emu_test0');
    expect(dev.driver).to.equal(testDriver);
    expect(dev.state).to.equal('started');
    expect(dev.path).to.equal(tmp.path('t0.sock'));
    expect(added).to.deep.equal([dev]);
    expect(bus.devices()).to.deep.equal([dev]);
    expect(bus.get('emu_test0')).to.equal(dev);
    expect(registry.get('emu_test0')).to.equal(dev);
    expect(dev.qemuDeviceArg()).to.equal(
      `{"driver":"vfio-user-pci","socket":{"path":"${tmp.path('t0.sock')}","type":"unix"}}`,
    );

    const client = await connect(tmp.path('t0.sock'));
    expect((await client.regionRead(0, 0, 4)).readUInt32LE(0)).to.equal(TEST_ID);
    expect((await client.regionRead(0, 4, 4)).readUInt32LE(0), 'unit=7 reached the driver').to.equal(7);
    await until(() => dev.info().socket.connected, 'the device to see its client');
  });

  it("hands each device's message timings to onHandled, by device name", async () => {
    const seen: string[] = [];
    const timed = new VdevBus(registry, {
      logger: log.logger,
      onHandled: (device, command, seconds) => {
        if (seconds >= 0) seen.push(`${device} ${command}`);
      },
    });
    try {
      await timed.probe(`emu_test3,path=${tmp.path('t3.sock')}`);
      const client = await connect(tmp.path('t3.sock'));
      await client.regionRead(0, 0, 4);
      expect(seen).to.deep.equal(['emu_test3 VERSION', 'emu_test3 REGION_READ']);
    } finally {
      await timed.removeAll();
    }
  });

  it('applies the schema defaults for keys not given', async () => {
    await bus.probe(`emu_test0,path=${tmp.path('t0.sock')}`);
    const client = await connect(tmp.path('t0.sock'));
    expect((await client.regionRead(0, 4, 4)).readUInt32LE(0)).to.equal(0);
    // regs defaults to 4 scratch registers: 0x8..0x17 hold a value, 0x18 does not.
    await client.regionWrite(0, 0x14, u32(0xabcd));
    await client.regionWrite(0, 0x18, u32(0x1234));
    expect((await client.regionRead(0, 0x14, 4)).readUInt32LE(0)).to.equal(0xabcd);
    expect((await client.regionRead(0, 0x18, 4)).readUInt32LE(0)).to.equal(0);
  });

  it('removes a device: its socket file is gone, the registry forgets it, "remove" fires', async () => {
    const removed: string[] = [];
    bus.on('remove', (d) => removed.push(d.name));
    const dev = await bus.probe(`emu_test0,path=${tmp.path('t0.sock')}`);
    expect(exists(tmp.path('t0.sock'))).to.equal(true);
    await bus.remove('emu_test0');
    expect(exists(tmp.path('t0.sock'))).to.equal(false);
    expect(dev.state).to.equal('closed');
    expect(removed).to.deep.equal(['emu_test0']);
    expect(bus.devices()).to.deep.equal([]);
    expect(registry.get('emu_test0')).to.equal(undefined);
    // The name and the path are free again.
    await bus.probe(`emu_test0,path=${tmp.path('t0.sock')}`);
    expect(exists(tmp.path('t0.sock'))).to.equal(true);
  });

  it('refuses to remove a device it does not have, naming the ones it has', async () => {
    await bus.probe(`emu_test0,path=${tmp.path('t0.sock')}`);
    const err = await rejection(bus.remove('emu_test9'));
    expect(err).to.be.instanceOf(EmudevError);
    expect((err as EmudevError).code).to.equal('ENOENT');
    expect(err.message).to.equal('no device emu_test9 on the bus (devices: emu_test0)');
  });

  it('forgets a device closed behind its back', async () => {
    const dev = await bus.probe(`emu_test0,path=${tmp.path('t0.sock')}`);
    const removed: EmuDevice[] = [];
    bus.on('remove', (d) => removed.push(d));
    await dev.close();
    expect(removed).to.deep.equal([dev]);
    expect(bus.devices()).to.deep.equal([]);
    expect(exists(tmp.path('t0.sock'))).to.equal(false);
  });

  describe('hot-remove with clients connected', () => {
    it('drops the removed device client cleanly; the other device keeps serving its client', async () => {
      const [dev0, dev1] = await bus.scan([
        `emu_test0,path=${tmp.path('t0.sock')},unit=10`,
        `emu_test1,path=${tmp.path('t1.sock')},unit=11`,
      ]);
      const a = await connect(tmp.path('t0.sock'));
      const b = await connect(tmp.path('t1.sock'));
      expect((await a.regionRead(0, 4, 4)).readUInt32LE(0)).to.equal(10);
      expect((await b.regionRead(0, 4, 4)).readUInt32LE(0)).to.equal(11);
      await until(() => dev0.info().socket.connected && dev1.info().socket.connected, 'both clients');

      let aClosed = false;
      let bClosed = false;
      a.on('close', () => {
        aClosed = true;
      });
      b.on('close', () => {
        bClosed = true;
      });
      const dev0Events: string[] = [];
      dev0.on('disconnect', () => dev0Events.push('disconnect'));
      dev0.on('destroyed', () => dev0Events.push('destroyed'));

      await bus.remove('emu_test0');

      await until(() => aClosed, "client A to see the device's end");
      expect(a.closed).to.equal(true);
      expect(dev0.state).to.equal('closed');
      expect(dev0Events).to.deep.equal(['disconnect', 'destroyed']);
      expect(exists(tmp.path('t0.sock')), 'removed socket file').to.equal(false);
      await rejection(a.regionRead(0, 0, 4));
      const err = await rejection(VfioUserClient.connect(tmp.path('t0.sock'), quietClient));
      expect((err as NodeJS.ErrnoException).code).to.equal('ENOENT');

      // The other device and its client are untouched.
      expect(bClosed).to.equal(false);
      expect(dev1.state).to.equal('started');
      expect(dev1.info().socket).to.deep.equal({
        path: tmp.path('t1.sock'),
        listening: true,
        connected: true,
      });
      expect((await b.regionRead(0, 0, 4)).readUInt32LE(0)).to.equal(TEST_ID);
      await b.regionWrite(0, 8, u32(0xfeed));
      expect((await b.regionRead(0, 8, 4)).readUInt32LE(0)).to.equal(0xfeed);
      expect(bus.devices()).to.deep.equal([dev1]);
      expect(log.lines.filter((l) => l.level === 'error')).to.deep.equal([]);
    });

    it('a device added at runtime serves beside the ones already there', async () => {
      await bus.scan([`emu_test0,path=${tmp.path('t0.sock')},unit=1`]);
      const a = await connect(tmp.path('t0.sock'));
      await bus.probe(`emu_test1,path=${tmp.path('t1.sock')},unit=2`);
      const b = await connect(tmp.path('t1.sock'));
      expect((await a.regionRead(0, 4, 4)).readUInt32LE(0)).to.equal(1);
      expect((await b.regionRead(0, 4, 4)).readUInt32LE(0)).to.equal(2);
      expect(bus.devices().map((d) => d.name)).to.deep.equal(['emu_test0', 'emu_test1']);
    });
  });

  describe('probe failures leave nothing behind and say why', () => {
    function expectNothingLeft() {
      expect(bus.devices()).to.deep.equal([]);
      expect(registry.list()).to.deep.equal([]);
      expect(readdirSync(tmp.dir).filter((f) => f.endsWith('.sock'))).to.deep.equal([]);
    }

    it('devargs errors, before anything is built', async () => {
      const added: EmuDevice[] = [];
      bus.on('add', (d) => added.push(d));
      const err = await rejection(bus.probe(`emu_test0,path=${tmp.path('t0.sock')},regs=abc`));
      expect(err).to.be.instanceOf(DevargsError);
      expect(err.message).to.equal('emu_test0: regs=abc: expected a number');
      expect(added).to.deep.equal([]);
      expectNothingLeft();
    });

    it('duplicate device name', async () => {
      await bus.probe(`emu_test0,path=${tmp.path('t0.sock')}`);
      const err = await rejection(bus.probe(`emu_test0,path=${tmp.path('other.sock')}`));
      expect(err).to.be.instanceOf(DevargsError);
      expect((err as DevargsError).code).to.equal('EDUPLICATE');
      expect(err.message).to.equal('duplicate device name emu_test0');
      expect(exists(tmp.path('other.sock'))).to.equal(false);
    });

    it('duplicate device name, probed at the same time', async () => {
      const results = await Promise.allSettled([
        bus.probe(`emu_test0,path=${tmp.path('a.sock')}`),
        bus.probe(`emu_test0,path=${tmp.path('b.sock')}`),
      ]);
      expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'rejected']);
      expect((results[1] as PromiseRejectedResult).reason.message).to.equal(
        'duplicate device name emu_test0',
      );
      expect(exists(tmp.path('b.sock'))).to.equal(false);
    });

    it('a socket path another device of the bus serves on', async () => {
      await bus.probe(`emu_test0,path=${tmp.path('t0.sock')}`);
      const err = await rejection(bus.probe(`emu_test1,path=${tmp.path('t0.sock')}`));
      expect((err as DevargsError).code).to.equal('EADDRINUSE');
      expect(err.message).to.equal(
        `emu_test1: socket path ${tmp.path('t0.sock')} is already used by emu_test0`,
      );
    });

    it('a socket directory that does not exist', async () => {
      const err = await rejection(bus.probe(`emu_test0,path=${tmp.path('nope/t0.sock')}`));
      expect((err as DevargsError).code).to.equal('EPATH');
      expect(err.message).to.equal(
        `emu_test0: socket path ${tmp.path('nope/t0.sock')}: directory ${tmp.path('nope')} does not exist`,
      );
      expectNothingLeft();
    });

    it('a socket "directory" that is a file', async () => {
      writeFileSync(tmp.path('file'), 'x');
      const err = await rejection(bus.probe(`emu_test0,path=${tmp.path('file/t0.sock')}`));
      expect(err.message).to.equal(
        `emu_test0: socket path ${tmp.path('file/t0.sock')}: ${tmp.path('file')} is not a directory`,
      );
    });

    it('a socket directory the user cannot write', async function () {
      if (process.getuid?.() === 0) {
        // root writes anywhere; the check is proven by a child that runs as nobody (below).
        this.skip();
      }
      mkdirSync(tmp.path('ro'), { mode: 0o555 });
      const err = await rejection(bus.probe(`emu_test0,path=${tmp.path('ro/t0.sock')}`));
      expect(err.message).to.equal(
        `emu_test0: socket path ${tmp.path('ro/t0.sock')}: directory ${tmp.path('ro')} is not writable`,
      );
    });

    it('a socket directory the user cannot write (as nobody, when the tests run as root)', async function () {
      if (process.getuid?.() !== 0) this.skip();
      chmodSync(tmp.dir, 0o755);
      mkdirSync(tmp.path('ro'), { mode: 0o555 });
      const script = [
        "import { prepareSocketPath } from './src/socket-path.ts';",
        'const log = { debug() {}, info() {}, warn() {}, error() {} };',
        "prepareSocketPath('emu_test0', process.argv[1], log).then(() => console.log('accepted'), (e) => console.log(e.message));",
      ].join('\n');
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', script, tmp.path('ro/t0.sock')],
        {
          uid: 65534,
          gid: 65534,
          cwd: new URL('..', import.meta.url).pathname,
        },
      );
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
      });
      child.stderr.on('data', (d) => {
        out += d;
      });
      await new Promise((r) => child.once('exit', r));
      expect(out.trim()).to.equal(
        `emu_test0: socket path ${tmp.path('ro/t0.sock')}: directory ${tmp.path('ro')} is not writable`,
      );
    });

    it('a socket path too long for a UNIX socket', async () => {
      const long = tmp.path(`${'x'.repeat(120)}.sock`);
      const err = await rejection(bus.probe(`emu_test0,path=${long}`));
      expect(err.message).to.equal(
        `emu_test0: socket path ${long}: too long (${Buffer.byteLength(long)} bytes; a UNIX socket path holds at most 107)`,
      );
    });

    it('a socket path in use by a running server', async () => {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((r) => server.listen(tmp.path('t0.sock'), r));
      const err = await rejection(bus.probe(`emu_test0,path=${tmp.path('t0.sock')}`));
      expect((err as DevargsError).code).to.equal('EADDRINUSE');
      expect(err.message).to.equal(
        `emu_test0: socket path ${tmp.path('t0.sock')}: already in use by a running server`,
      );
      expect(exists(tmp.path('t0.sock')), "the other server's socket is left alone").to.equal(true);
      expect(bus.devices()).to.deep.equal([]);
      expect(registry.list()).to.deep.equal([]);
    });

    it('a file that is not a socket in the way, which is left alone', async () => {
      writeFileSync(tmp.path('t0.sock'), 'precious');
      const err = await rejection(bus.probe(`emu_test0,path=${tmp.path('t0.sock')}`));
      expect(err.message).to.equal(
        `emu_test0: socket path ${tmp.path('t0.sock')}: a file that is not a socket is in the way`,
      );
      expect(exists(tmp.path('t0.sock'))).to.equal(true);
    });

    it('a driver whose probe throws', async () => {
      const err = await rejection(bus.probe(`emu_test0,path=${tmp.path('t0.sock')},fail=probe`));
      expect(err).to.be.instanceOf(EmudevError);
      expect((err as EmudevError).code).to.equal('EPROBE');
      expect(err.message).to.equal('emu_test0: driver emu_test failed: probe failed on purpose');
      expectNothingLeft();
    });

    it('a driver whose start throws: the socket it listened on is removed', async () => {
      const err = await rejection(bus.probe(`emu_test0,path=${tmp.path('t0.sock')},fail=start`));
      expect(err.message).to.equal('emu_test0: driver emu_test failed: start failed on purpose');
      expectNothingLeft();
      // Nothing half-built stands in the way of the next try.
      await bus.probe(`emu_test0,path=${tmp.path('t0.sock')}`);
    });
  });

  it('replaces a stale socket file nobody listens on, and logs it', async () => {
    await staleSocket(tmp.path('t0.sock'));
    const dev = await bus.probe(`emu_test0,path=${tmp.path('t0.sock')}`);
    expect(dev.state).to.equal('started');
    const client = await connect(tmp.path('t0.sock'));
    expect((await client.regionRead(0, 0, 4)).readUInt32LE(0)).to.equal(TEST_ID);
    const warning = log.lines.find((l) => l.level === 'warn');
    expect(warning?.msg).to.equal('removed a stale socket file nobody was listening on');
    expect(warning?.obj).to.deep.equal({ device: 'emu_test0', path: tmp.path('t0.sock') });
  });

  describe('scan', () => {
    it('probes every device of the list, in order', async () => {
      const devices = await bus.scan([
        `emu_test0,path=${tmp.path('t0.sock')}`,
        `emu_strict0,path=${tmp.path('s0.sock')},serial=abcdef`,
      ]);
      expect(devices.map((d) => d.name)).to.deep.equal(['emu_test0', 'emu_strict0']);
      expect(bus.devices()).to.deep.equal(devices);
      const c = await connect(tmp.path('s0.sock'));
      expect((await c.regionRead(0, 4, 4)).readUInt32LE(0), "strict's unit is its serial's length").to.equal(
        6,
      );
    });

    it('validates the whole list before building anything', async () => {
      const added: string[] = [];
      bus.on('add', (d) => added.push(d.name));
      const err = await rejection(
        bus.scan([
          `emu_test0,path=${tmp.path('t0.sock')}`,
          `emu_test1,path=${tmp.path('t1.sock')},colour=red`,
        ]),
      );
      expect(err.message).to.equal(
        'emu_test1: unknown key "colour" (keys: path, mode, owner, group, allow_users, sealed_memory, regs, unit, ratio, fast, pace, mac, fail)',
      );
      expect(added).to.deep.equal([]);
    });

    it('refuses a list naming a device twice or sharing a socket path', async () => {
      const twice = await rejection(
        bus.scan([`emu_test0,path=${tmp.path('a.sock')}`, `emu_test0,path=${tmp.path('b.sock')}`]),
      );
      expect(twice.message).to.equal('duplicate device name emu_test0');
      const shared = await rejection(
        bus.scan([`emu_test0,path=${tmp.path('a.sock')}`, `emu_test1,path=${tmp.path('a.sock')}`]),
      );
      expect(shared.message).to.equal(
        `emu_test1: socket path ${tmp.path('a.sock')} is already used by emu_test0`,
      );
      expect(bus.devices()).to.deep.equal([]);
    });

    it('is all-or-nothing: when one device fails, the ones already probed are removed', async () => {
      const added: string[] = [];
      const removed: string[] = [];
      bus.on('add', (d) => added.push(d.name));
      bus.on('remove', (d) => removed.push(d.name));
      const err = await rejection(
        bus.scan([
          `emu_test0,path=${tmp.path('t0.sock')}`,
          `emu_test1,path=${tmp.path('t1.sock')}`,
          `emu_test2,path=${tmp.path('nope/t2.sock')}`,
        ]),
      );
      expect(err.message).to.equal(
        `emu_test2: socket path ${tmp.path('nope/t2.sock')}: directory ${tmp.path('nope')} does not exist`,
      );
      expect(added).to.deep.equal(['emu_test0', 'emu_test1']);
      expect(removed).to.deep.equal(['emu_test1', 'emu_test0']);
      expect(bus.devices()).to.deep.equal([]);
      expect(registry.list()).to.deep.equal([]);
      expect(readdirSync(tmp.dir)).to.deep.equal([]);
    });
  });

  it('removeAll removes every device and its socket', async () => {
    await bus.scan([`emu_test0,path=${tmp.path('t0.sock')}`, `emu_test1,path=${tmp.path('t1.sock')}`]);
    const a = await connect(tmp.path('t0.sock'));
    await bus.removeAll();
    await until(() => a.closed, 'the client to be dropped');
    expect(bus.devices()).to.deep.equal([]);
    expect(readdirSync(tmp.dir)).to.deep.equal([]);
  });
});
