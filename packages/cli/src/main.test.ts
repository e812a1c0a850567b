import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineDriver, EmudevRegistry } from '@emu/emudev';
import { GPIO_ID, GpioReg } from '@emu/example-gpio';
import { PciConfigSpace, VfioUserClient } from '@emu/vfio-user';
import { expect } from 'chai';
import { z } from 'zod';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main } from './main.js';
import { Capture, exists, fixtures, tempDir, until } from './test-env.fixture.js';

const quietClient = { logger: { debug() {}, info() {}, warn() {}, error() {} } };
const HINT = 'Run "emu --help" for the drivers and their devargs keys.\n';

/** A driver registered by the test itself, to see that help lists whatever the registry has. */
const fanDriver = defineDriver({
  name: 'emu_fan',
  type: 'fan',
  description: 'a fan with a speed',
  config: z.object({
    rpm: z.coerce.number().int().min(0).max(9000).default(1200).describe('speed'),
    quiet: z.coerce.boolean().optional().describe('run quietly'),
  }),
  probe: () => ({
    config: new PciConfigSpace({
      identity: { vendorId: 0x1b36, deviceId: 0x10fc, classCode: 0xff0000 },
      bars: [{ index: 0, kind: 'mem32', size: 0x1000 }],
    }),
    regions: { 0: { read: (_o, n) => Buffer.alloc(n), write: () => {} } },
  }),
});

describe('emu (main, in-process)', () => {
  let registry: EmudevRegistry;
  let tmp: ReturnType<typeof tempDir>;
  let out: Capture;
  let err: Capture;
  const clients: VfioUserClient[] = [];
  const stops: AbortController[] = [];

  beforeEach(() => {
    registry = new EmudevRegistry();
    tmp = tempDir();
    out = new Capture();
    err = new Capture();
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const s of stops.splice(0)) s.abort();
    // Let any main() still running remove its devices before the directory goes.
    await until(() => registry.list().length === 0, 'devices removed');
    tmp.cleanup();
  });

  /** Runs main() with the test's registry and output; `stop` ends it like SIGINT would. */
  function run(argv: string[]) {
    const stop = new AbortController();
    stops.push(stop);
    const done = main(argv, { stdout: out, stderr: err, registry, signal: stop.signal, cwd: fixtures });
    return { stop, done };
  }

  /** main() must end at once with exit code 2, the message on stderr, and no socket left. */
  async function usageError(argv: string[]): Promise<string> {
    const code = await run(argv).done;
    expect(code, err.text).to.equal(EXIT_USAGE);
    expect(out.text).to.equal('');
    expect(readdirSync(tmp.dir), 'files left behind').to.deep.equal([]);
    expect(registry.list()).to.deep.equal([]);
    return err.text;
  }

  describe('--help', () => {
    it('lists the registered drivers and each key with its type, default and description', async () => {
      registry.registerDriver(fanDriver);
      expect(await run(['--help']).done).to.equal(EXIT_OK);
      expect(err.text).to.equal('');
      const help = out.text;
      expect(help).to.match(/^Usage: emu --vdev DEVARGS \[--vdev DEVARGS \.\.\.\] \[options\]\n/);
      for (const option of [
        '--vdev <devargs>',
        '--driver <module>',
        '--log-level <level>',
        '--status <seconds>',
        '--workers <count>',
      ]) {
        expect(help).to.contain(option);
      }
      expect(help).to.contain(
        [
          'Drivers:',
          '  emu_fan (fan): a fan with a speed',
          '    path   path             required      the vfio-user socket to serve on (made absolute); QEMU connects to it',
          '    rpm    integer 0..9000  default 1200  speed',
          '    quiet  boolean          optional      run quietly',
        ].join('\n'),
      );
      // The built-in driver is registered by the command itself.
      expect(help).to.contain('  emu_gpio (gpio): ');
      expect(help).to.match(/\n {4}lines +integer 1\.\.32 +default 16 +number of GPIO lines\n/);
    });

    it('lists drivers loaded with --driver', async () => {
      expect(await run(['--driver', './blink-driver.mjs', '--help']).done).to.equal(EXIT_OK);
      expect(out.text).to.contain('  emu_blink (led): a blinking LED (third-party driver fixture)');
      expect(out.text).to.match(/\n {4}rate +integer 1\.\.1000 +default 2 +blinks per second\n/);
      expect(out.text).to.match(/\n {4}colour +one of red\|green +default "red" +LED colour\n/);
    });
  });

  it('--version prints the package version', async () => {
    expect(await run(['--version']).done).to.equal(EXIT_OK);
    expect(out.text).to.equal('0.1.0\n');
  });

  describe('bad arguments: exit code 2, the message on stderr, no socket left behind', () => {
    it('a value the driver schema refuses', async () => {
      expect(await usageError(['--vdev', `emu_gpio0,path=${tmp.path('g.sock')},lines=abc`])).to.equal(
        `emu: emu_gpio0: lines=abc: expected a number\n${HINT}`,
      );
    });

    it('a value out of range', async () => {
      expect(await usageError(['--vdev', `emu_gpio0,path=${tmp.path('g.sock')},lines=33`])).to.equal(
        `emu: emu_gpio0: lines=33: Too big: expected number to be <=32\n${HINT}`,
      );
    });

    it('an unknown driver', async () => {
      registry.registerDriver(fanDriver);
      expect(await usageError(['--vdev', `emu_foo0,path=${tmp.path('f.sock')}`])).to.equal(
        `emu: unknown driver "emu_foo" for device emu_foo0 (drivers: emu_fan, emu_iavf, emu_gpio)\n${HINT}`,
      );
    });

    it('an unknown key', async () => {
      expect(await usageError(['--vdev', `emu_gpio0,path=${tmp.path('g.sock')},colour=red`])).to.equal(
        `emu: emu_gpio0: unknown key "colour" (keys: path, mode, owner, group, allow_users, sealed_memory, lines)\n${HINT}`,
      );
    });

    it('a device name without a number', async () => {
      expect(await usageError(['--vdev', `emu_gpio,path=${tmp.path('g.sock')}`])).to.equal(
        `emu: device name "emu_gpio" must end in a number\n${HINT}`,
      );
    });

    it('no path', async () => {
      expect(await usageError(['--vdev', 'emu_gpio0,lines=4'])).to.equal(
        `emu: emu_gpio0: path is required\n${HINT}`,
      );
    });

    it('a duplicate device name', async () => {
      const argv = [
        '--vdev',
        `emu_gpio0,path=${tmp.path('a.sock')}`,
        '--vdev',
        `emu_gpio0,path=${tmp.path('b.sock')}`,
      ];
      expect(await usageError(argv)).to.equal(`emu: duplicate device name emu_gpio0\n${HINT}`);
    });

    it('a socket directory that does not exist', async () => {
      expect(await usageError(['--vdev', `emu_gpio0,path=${tmp.path('nope/g.sock')}`])).to.equal(
        `emu: emu_gpio0: socket path ${tmp.path('nope/g.sock')}: directory ${tmp.path('nope')} does not exist\n${HINT}`,
      );
    });

    it('a later device failing removes the earlier ones (their sockets too)', async () => {
      writeFileSync(tmp.path('in-the-way.sock'), '');
      const argv = [
        '--vdev',
        `emu_gpio0,path=${tmp.path('g0.sock')}`,
        '--vdev',
        `emu_gpio1,path=${tmp.path('in-the-way.sock')}`,
      ];
      const code = await run(argv).done;
      expect(code).to.equal(EXIT_USAGE);
      expect(err.text).to.equal(
        `emu: emu_gpio1: socket path ${tmp.path('in-the-way.sock')}: a file that is not a socket is in the way\n${HINT}`,
      );
      expect(readdirSync(tmp.dir)).to.deep.equal(['in-the-way.sock']);
      expect(registry.list()).to.deep.equal([]);
    });

    it('no --vdev at all', async () => {
      expect(await usageError([])).to.equal(
        `emu: nothing to serve: give at least one --vdev DEVARGS (or --control PATH to add them later)\n${HINT}`,
      );
    });

    it('an unknown option or a stray argument (commander says which)', async () => {
      expect(await usageError(['--colour'])).to.equal(
        `error: unknown option '--colour'\nRun "emu --help" for usage, the drivers and their devargs keys.\n`,
      );
      err.text = '';
      expect(await usageError(['emu_gpio0'])).to.match(/^error: too many arguments/);
      err.text = '';
      expect(await usageError(['--log-level', 'loud', '--vdev', 'x'])).to.match(
        /^error: option '--log-level <level>' argument 'loud' is invalid\. Allowed choices are debug, info, warn, error, silent\./,
      );
      err.text = '';
      expect(await usageError(['--status', 'often', '--vdev', 'x'])).to.match(
        /^error: option '--status <seconds>' argument 'often' is invalid\. expected seconds from 0 to 86400/,
      );
      for (const bad of ['0', '65', '1.5', 'two']) {
        err.text = '';
        expect(await usageError(['--workers', bad, '--vdev', 'x'])).to.match(
          /^error: option '--workers <count>' argument '.*' is invalid\. expected a count from 1 to 64/,
        );
      }
    });

    it('a --control, --driver or --metrics value with a control character, or too long', async () => {
      const gpio = ['--vdev', `emu_gpio0,path=${tmp.path('g.sock')}`];
      expect(await usageError([...gpio, '--control', tmp.path('c\x1b.ctl')])).to.equal(
        `emu: --control: socket path ${JSON.stringify(tmp.path('c\x1b.ctl'))}: has a control character (U+001B) at character ${tmp.dir.length + 2}\n`,
      );
      err.text = '';
      expect(await usageError([...gpio, '--control', tmp.path('c'.repeat(100))])).to.match(
        /^emu: --control: socket path \/.*: too long \(\d+ bytes; a UNIX socket path holds at most 107\)\n$/,
      );
      err.text = '';
      expect(await usageError(['--driver', './x\n.mjs', ...gpio])).to.equal(
        'emu: --driver "./x\\n.mjs": has a control character (U+000A) at character 3\n',
      );
      err.text = '';
      expect(await usageError([...gpio, '--metrics', 'local\x7fhost:9464'])).to.match(
        /^error: option '--metrics <host:port>' argument '.*' is invalid\. "local\\u007fhost:9464" has a control character \(U\+007F\) at character 5/,
      );
      expect(readdirSync(tmp.dir)).to.deep.equal([]);
    });

    it('a --driver module that cannot be loaded', async () => {
      const text = await usageError([
        '--driver',
        './missing.mjs',
        '--vdev',
        `emu_gpio0,path=${tmp.path('g.sock')}`,
      ]);
      expect(text).to.match(
        /^emu: --driver \.\/missing\.mjs: cannot load it: Cannot find module .*missing\.mjs/,
      );
    });

    it('a --driver module that exports no driver', async () => {
      expect(await usageError(['--driver', './no-driver.mjs', '--help'])).to.equal(
        'emu: --driver ./no-driver.mjs: the module exports neither "driver" nor "drivers"\n',
      );
    });

    it('a --driver module whose driver clashes with a registered one', async () => {
      registry.registerDriver({ ...fanDriver, name: 'emu_blink' });
      expect(await usageError(['--driver', join(fixtures, 'blink-driver.mjs'), '--help'])).to.equal(
        `emu: --driver ${join(fixtures, 'blink-driver.mjs')}: driver emu_blink is already registered\n`,
      );
    });
  });

  it('a driver failing to build its device is exit code 1, not a usage error', async () => {
    registry.registerDriver(fanDriver);
    registry.registerDriver({
      ...fanDriver,
      name: 'emu_boom',
      probe: () => {
        throw new Error('no fan attached');
      },
    });
    const code = await run([
      '--vdev',
      `emu_fan0,path=${tmp.path('f.sock')}`,
      '--vdev',
      `emu_boom0,path=${tmp.path('b.sock')}`,
    ]).done;
    expect(code, err.text).to.equal(EXIT_FAILURE);
    expect(err.text).to.equal('emu: emu_boom0: driver emu_boom failed: no fan attached\n');
    expect(readdirSync(tmp.dir)).to.deep.equal([]);
  });

  describe('serving', () => {
    it('--config FILE serves what the file says, as the same command line would; errors name the line', async () => {
      writeFileSync(
        tmp.path('emu.yaml'),
        [
          'status: 0',
          'control: false',
          'devices:',
          '  - name: emu_gpio0',
          '    path: g0.sock',
          '    lines: 8',
          '',
        ].join('\n'),
      );
      const { stop, done } = run(['--config', tmp.path('emu.yaml')]);
      await until(() => out.text.includes('serving'), 'the devices to serve');
      expect(out.text).to.equal(
        `emu_gpio0  emu_gpio  ${tmp.path('g0.sock')}\n` +
          `  qemu: -device '{"driver":"vfio-user-pci","socket":{"path":"${tmp.path('g0.sock')}","type":"unix"}}'\n` +
          'serving 1 device; Ctrl-C to stop\n',
      );
      const client = await VfioUserClient.connect(tmp.path('g0.sock'), quietClient);
      clients.push(client);
      expect((await client.regionRead(0, GpioReg.LINES, 4)).readUInt32LE(0), 'lines: 8').to.equal(8);
      stop.abort();
      expect(await done).to.equal(EXIT_OK);

      out.text = '';
      writeFileSync(
        tmp.path('bad.yaml'),
        ['devices:', '  - name: emu_gpio0', '    path: g0.sock', '    lines: 99', ''].join('\n'),
      );
      const code = await run(['--config', tmp.path('bad.yaml')]).done;
      expect(code).to.equal(EXIT_USAGE);
      expect(err.text).to.match(new RegExp(`^emu: ${tmp.path('bad.yaml')}:4:12: emu_gpio0: lines=99: `));
      expect(readdirSync(tmp.dir).sort()).to.deep.equal(['bad.yaml', 'emu.yaml']);
    });

    it('prints each device with its QEMU argument, serves until aborted, then removes the sockets and exits 0', async () => {
      const g0 = tmp.path('gpio0.sock');
      const g1 = tmp.path('gpio1.sock');
      const { stop, done } = run([
        '--vdev',
        `emu_gpio0,path=${g0}`,
        '--vdev',
        `emu_gpio1,path=${g1},lines=8`,
      ]);
      await until(() => out.text.includes('serving'), 'the devices to serve');
      expect(out.text).to.equal(
        `emu_gpio0  emu_gpio  ${g0}\n` +
          `  qemu: -device '{"driver":"vfio-user-pci","socket":{"path":"${g0}","type":"unix"}}'\n` +
          `emu_gpio1  emu_gpio  ${g1}\n` +
          `  qemu: -device '{"driver":"vfio-user-pci","socket":{"path":"${g1}","type":"unix"}}'\n` +
          `control: ${tmp.path('emu.ctl')}  (emu ctl --control ${tmp.path('emu.ctl')} list)\n` +
          'serving 2 devices; Ctrl-C to stop\n',
      );
      expect(err.text).to.equal('');

      const client = await VfioUserClient.connect(g1, quietClient);
      clients.push(client);
      expect((await client.regionRead(0, GpioReg.ID, 4)).readUInt32LE(0)).to.equal(GPIO_ID);
      expect(
        (await client.regionRead(0, GpioReg.LINES, 4)).readUInt32LE(0),
        'lines=8 reached the driver',
      ).to.equal(8);
      await until(() => out.text.includes('emu_gpio1: client connected\n'), 'the connect line');

      let settled = false;
      void done.then(() => {
        settled = true;
      });
      await new Promise((r) => setTimeout(r, 50));
      expect(settled, 'main() serves until aborted').to.equal(false);

      stop.abort();
      expect(await done).to.equal(EXIT_OK);
      expect(exists(g0)).to.equal(false);
      expect(exists(g1)).to.equal(false);
      expect(registry.list()).to.deep.equal([]);
      await until(() => client.closed, 'the client to be dropped');
      expect(out.text).to.contain('emu_gpio1: client disconnected');
      expect(out.text).to.contain('stop: removing 2 devices\n');
    });

    it('stops on SIGTERM when no signal is given, and takes its signal handlers away', async () => {
      const before = { term: process.listenerCount('SIGTERM'), int: process.listenerCount('SIGINT') };
      const path = tmp.path('gpio0.sock');
      const done = main(['--vdev', `emu_gpio0,path=${path}`], { stdout: out, stderr: err, registry });
      await until(() => out.text.includes('serving 1 device;'), 'the device to serve');
      expect(process.listenerCount('SIGTERM')).to.equal(before.term + 1);
      const client = await VfioUserClient.connect(path, quietClient);
      clients.push(client);
      expect((await client.regionRead(0, GpioReg.ID, 4)).readUInt32LE(0)).to.equal(GPIO_ID);

      process.emit('SIGTERM', 'SIGTERM');
      expect(await done).to.equal(EXIT_OK);
      expect(out.text).to.contain('SIGTERM: removing 1 device\n');
      expect(exists(path)).to.equal(false);
      await until(() => client.closed, 'the client to be dropped');
      expect(process.listenerCount('SIGTERM')).to.equal(before.term);
      expect(process.listenerCount('SIGINT')).to.equal(before.int);
    });

    it('gives up stopping after shutdownTimeoutMs when a device will not go, saying which', async () => {
      let release = () => {};
      const held = new Promise<void>((r) => {
        release = r;
      });
      // A driver whose stop never ends (until the test lets it): removal hangs on it.
      registry.registerDriver({
        ...fanDriver,
        name: 'emu_stuck',
        probe: (ctx, config) => ({ ...fanDriver.probe(ctx, config as never), stop: () => held }),
      } as typeof fanDriver);
      const stop = new AbortController();
      const done = main(['--vdev', `emu_stuck0,path=${tmp.path('s.sock')}`, '--no-control'], {
        stdout: out,
        stderr: err,
        registry,
        signal: stop.signal,
        shutdownTimeoutMs: 300,
      });
      try {
        await until(() => out.text.includes('serving 1 device;'), 'the device to serve');
        const at = Date.now();
        stop.abort();
        expect(await done).to.equal(EXIT_FAILURE);
        expect(Date.now() - at).to.be.within(250, 1000);
        expect(err.text).to.equal(
          'emu: stopping took longer than 300 ms (still removing emu_stuck0): giving up\n',
        );
      } finally {
        // The stuck device holds its socket open: left stuck, this process would never exit.
        release();
      }
    });

    it('serves a third-party driver loaded with --driver', async () => {
      const path = tmp.path('blink0.sock');
      const { stop, done } = run([
        '--driver',
        './blink-driver.mjs',
        '--vdev',
        `emu_blink0,path=${path},rate=25`,
      ]);
      await until(() => out.text.includes('serving'), 'the device to serve');
      expect(out.text).to.contain(`emu_blink0  emu_blink  ${path}\n`);
      const client = await VfioUserClient.connect(path, quietClient);
      clients.push(client);
      expect((await client.regionRead(0, 0, 4)).readUInt32LE(0)).to.equal(0x4b4e4c42);
      expect((await client.regionRead(0, 4, 4)).readUInt32LE(0)).to.equal(25);
      stop.abort();
      expect(await done).to.equal(EXIT_OK);
      expect(exists(path)).to.equal(false);
    });

    it('prints a status line per device every --status seconds when stdout is a terminal', async () => {
      out = new Capture(true);
      const path = tmp.path('gpio0.sock');
      const { stop, done } = run(['--vdev', `emu_gpio0,path=${path}`, '--status', '0.05']);
      await until(() => out.text.includes('serving'), 'the device to serve');
      await until(
        () => /connected: no {2}commands: 0 {2}irqs: 0\n/.test(out.text),
        'a status line before the client',
      );
      const client = await VfioUserClient.connect(path, quietClient);
      clients.push(client);
      await client.regionRead(0, GpioReg.ID, 4);
      await client.regionRead(0, GpioReg.LINES, 4);
      const line = /\[\d\d:\d\d:\d\d\] emu_gpio0 {2}connected: yes {2}commands: (\d+) {2}irqs: 0\n/;
      await until(() => line.test(out.text), 'a status line with the client');
      // And one for the data plane (a GPIO has no NIC on it).
      expect(out.text).to.match(/\] data plane {2}workers: 0 running of 1 {2}nics: 0 {2}frames: 0\n/);
      // VERSION, then the GET_INFO/REGION commands the client sent and the two reads, at least.
      expect(Number(line.exec(out.text)![1])).to.be.at.least(3);
      stop.abort();
      expect(await done).to.equal(EXIT_OK);
    });

    it('prints no status line when stdout is not a terminal, unless --status was given', async () => {
      const quiet = run(['--vdev', `emu_gpio0,path=${tmp.path('gpio0.sock')}`]);
      await until(() => out.text.includes('serving'), 'the device to serve');
      await new Promise((r) => setTimeout(r, 150));
      expect(out.text).not.to.contain('connected:');
      quiet.stop.abort();
      expect(await quiet.done).to.equal(EXIT_OK);
      const asked = run(['--vdev', `emu_gpio1,path=${tmp.path('gpio1.sock')}`, '--status', '0.02']);
      await until(() => /emu_gpio1 {2}connected: no/.test(out.text), 'a status line for a pipe when asked');
      asked.stop.abort();
      expect(await asked.done).to.equal(EXIT_OK);
    });

    it('--log-level info logs the devices coming and going to stderr', async () => {
      const { stop, done } = run([
        '--vdev',
        `emu_gpio0,path=${tmp.path('gpio0.sock')}`,
        '--log-level',
        'info',
      ]);
      await until(() => out.text.includes('serving'), 'the device to serve');
      stop.abort();
      expect(await done).to.equal(EXIT_OK);
      expect(err.text).to.contain(
        `emu info: device added {"device":"emu_gpio0","driver":"emu_gpio","path":"${tmp.path('gpio0.sock')}"}\n`,
      );
      expect(err.text).to.contain('emu info: device removed {"device":"emu_gpio0"}\n');
    });
  });
});
