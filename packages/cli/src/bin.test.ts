import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { GPIO_ID, GpioReg } from '@emu/example-gpio';
import { VfioUserClient } from '@emu/vfio-user';
import { expect } from 'chai';
import { exists, packageRoot, spawnEmu, tempDir, until } from './test-env.fixture.js';

const emu = spawnEmu;

describe('bin/emu.js (a child process)', function () {
  this.timeout(20000);
  let tmp: ReturnType<typeof tempDir>;
  const children: ChildProcess[] = [];

  before(() => {
    expect(
      exists(join(packageRoot, 'dist/index.js')),
      'bin/emu.js runs the build: run `pnpm build` first',
    ).to.equal(true);
  });
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    tmp.cleanup();
  });

  it('tells systemd (Type=notify) it is ready once it serves, what it serves, and that it stops', async () => {
    // systemd's side of $NOTIFY_SOCKET: @emu/native's stand-in prints each datagram as a JSON line.
    const nativeRoot = join(dirname(createRequire(import.meta.url).resolve('@emu/native')), '..');
    const script = join(nativeRoot, 'scripts/notify-receiver.py');
    const notify = tmp.path('notify');
    const receiver = spawn('python3', [script, notify], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(receiver);
    const lines = createInterface({ input: receiver.stdout! })[Symbol.asyncIterator]();
    const next = async () => (await lines.next()).value as string;
    expect(await next()).to.equal('ready');
    const run = emu(['--vdev', `emu_gpio0,path=${tmp.path('g0.sock')}`], {
      ...process.env,
      NOTIFY_SOCKET: notify,
    });
    children.push(run.child);
    expect(JSON.parse(await next())).to.equal('READY=1\nSTATUS=serving 1 device');
    expect(run.io.stdout).to.contain('serving 1 device');
    const ctl = emu([
      'ctl',
      '--control',
      tmp.path('emu.ctl'),
      'add',
      `emu_gpio1,path=${tmp.path('g1.sock')}`,
    ]);
    expect((await ctl.exit).code, ctl.io.stderr).to.equal(0);
    expect(JSON.parse(await next())).to.equal('STATUS=serving 2 devices');
    run.child.kill('SIGTERM');
    expect(JSON.parse(await next())).to.equal('STOPPING=1');
    expect((await run.exit).code).to.equal(0);
    expect(run.io.stderr).to.equal('');
  });

  it('serves two devices, a client reaches one, and SIGINT removes both sockets with exit code 0', async () => {
    const g0 = tmp.path('gpio0.sock');
    const g1 = tmp.path('gpio1.sock');
    const run = emu(['--vdev', `emu_gpio0,path=${g0},lines=4`, '--vdev', `emu_gpio1,path=${g1}`]);
    children.push(run.child);
    await until(
      () => run.io.stdout.includes('serving 2 devices'),
      `emu to serve (stderr: ${run.io.stderr})`,
      10000,
    );
    expect(run.io.stdout).to.contain(
      `emu_gpio0  emu_gpio  ${g0}\n  qemu: -device '{"driver":"vfio-user-pci","socket":{"path":"${g0}","type":"unix"}}'\n`,
    );
    expect(exists(g0) && exists(g1)).to.equal(true);

    const client = await VfioUserClient.connect(g0, {
      logger: { debug() {}, info() {}, warn() {}, error() {} },
    });
    try {
      expect((await client.regionRead(0, GpioReg.ID, 4)).readUInt32LE(0)).to.equal(GPIO_ID);
      expect((await client.regionRead(0, GpioReg.LINES, 4)).readUInt32LE(0)).to.equal(4);
      await until(() => run.io.stdout.includes('emu_gpio0: client connected'), 'the connect line');

      run.child.kill('SIGINT');
      const { code, signal } = await run.exit;
      expect({ code, signal, stderr: run.io.stderr }).to.deep.equal({ code: 0, signal: null, stderr: '' });
      expect(run.io.stdout).to.contain('SIGINT: removing 2 devices\n');
      expect(readdirSync(tmp.dir), 'sockets removed').to.deep.equal([]);
      await until(() => client.closed, 'the client to see the end');
    } finally {
      client.close();
    }
  });

  it('exits promptly on SIGTERM with more control clients than it serves, none of them reading', async () => {
    const run = emu(['--vdev', `emu_gpio0,path=${tmp.path('g0.sock')}`]);
    children.push(run.child);
    await until(() => run.io.stdout.includes('serving 1 device'), `emu to serve (${run.io.stderr})`, 10000);
    const sockets = [];
    for (let i = 0; i < 20; i++) {
      const s = connect(tmp.path('emu.ctl'));
      s.on('error', () => {});
      s.pause();
      sockets.push(s);
    }
    await new Promise((r) => setTimeout(r, 300));
    // The four refused were closed by emu: it holds the 16 it serves.
    const fds = readdirSync(`/proc/${run.child.pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${run.child.pid}/fd/${fd}`);
      } catch {
        return '';
      }
    });
    const before = fds.filter((l) => l.startsWith('socket:')).length;
    for (const s of sockets.splice(16)) s.destroy();
    await new Promise((r) => setTimeout(r, 100));
    const after = readdirSync(`/proc/${run.child.pid}/fd`).length;
    expect(after, 'the refused ones were already closed: none went now').to.equal(fds.length);
    expect(before).to.be.at.least(16);
    const at = Date.now();
    run.child.kill('SIGTERM');
    expect(await run.exit).to.deep.equal({ code: 0, signal: null });
    expect(Date.now() - at, 'ms to exit').to.be.below(3000);
    expect(run.io.stdout).to.contain('SIGTERM: removing 1 device\n');
    expect(readdirSync(tmp.dir)).to.deep.equal([]);
    for (const s of sockets) s.destroy();
  });

  it('--workers sets the data plane threads, which the status line shows', async () => {
    const run = emu([
      '--workers',
      '2',
      '--vdev',
      `emu_iavf0,path=${tmp.path('a.sock')}`,
      '--vdev',
      `emu_iavf1,path=${tmp.path('b.sock')}`,
      '--status',
      '0.1',
    ]);
    children.push(run.child);
    // No guest has started a queue yet: two workers, none running.
    await until(
      () => /\] data plane {2}workers: 0 running of 2 {2}nics: 0 {2}frames: 0\n/.test(run.io.stdout),
      `the data plane's status line (stdout: ${run.io.stdout}, stderr: ${run.io.stderr})`,
      10000,
    );
    run.child.kill('SIGINT');
    expect((await run.exit).code).to.equal(0);
  });

  it('exits 2 with the message on bad devargs, leaving no socket', async () => {
    const run = emu([
      '--vdev',
      `emu_gpio0,path=${tmp.path('gpio0.sock')}`,
      '--vdev',
      `emu_gpio1,path=${tmp.path('gpio1.sock')},lines=abc`,
    ]);
    children.push(run.child);
    const { code } = await run.exit;
    expect(code).to.equal(2);
    expect(run.io.stderr).to.equal(
      'emu: emu_gpio1: lines=abc: expected a number\nRun "emu --help" for the drivers and their devargs keys.\n',
    );
    expect(run.io.stdout).to.equal('');
    expect(readdirSync(tmp.dir)).to.deep.equal([]);
  });

  it('keeps serving when its stdout and stderr pipes close (emu | head, a dead log collector)', async () => {
    const g0 = tmp.path('gpio0.sock');
    const run = emu(['--vdev', `emu_gpio0,path=${g0}`, '--status', '0.2', '--log-level', 'debug']);
    children.push(run.child);
    await until(
      () => run.io.stdout.includes('serving 1 device'),
      `emu to serve (stderr: ${run.io.stderr})`,
      10000,
    );
    // The readers go away: every later write by emu fails with EPIPE.
    run.child.stdout!.destroy();
    run.child.stderr!.destroy();
    await new Promise((r) => setTimeout(r, 1000));
    expect(run.child.exitCode, 'emu is still running').to.equal(null);
    const client = await VfioUserClient.connect(g0, {
      logger: { debug() {}, info() {}, warn() {}, error() {} },
    });
    try {
      // Connect and disconnect lines, debug logs and status lines all go to the closed pipes.
      expect((await client.regionRead(0, GpioReg.ID, 4)).readUInt32LE(0)).to.equal(GPIO_ID);
    } finally {
      client.close();
    }
    await new Promise((r) => setTimeout(r, 500));
    expect(run.child.exitCode, 'emu is still running').to.equal(null);
    run.child.kill('SIGINT');
    expect(await run.exit).to.deep.equal({ code: 0, signal: null });
    expect(readdirSync(tmp.dir), 'socket removed').to.deep.equal([]);
  });
});
