/**
 * The control socket and `emu ctl`, case by case, with what a user sees: main() serves in-process, and
 * `emu ctl` (main(['ctl', …])) or a raw socket talks to it.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { EmudevRegistry } from '@emu/emudev';
import { GPIO_ID, GpioReg } from '@emu/example-gpio';
import { readPcap } from '@emu/network';
import { VfioUserClient } from '@emu/vfio-user';
import { expect } from 'chai';
import { ControlClient, ControlError } from './control/client.js';
import { MAX_LINE_BYTES, RpcErrorCode } from './control/protocol.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main } from './main.js';
import { emuPerTest } from './serving.fixture.js';
import { Capture } from './test-env.fixture.js';

const quietClient = { logger: { debug() {}, info() {}, warn() {}, error() {} } };

describe('the control socket and emu ctl', () => {
  const t = emuPerTest();
  const { serve } = t;

  /** `emu ctl ARGS`: its exit code and what it printed. */
  async function ctl(...args: string[]) {
    const o = new Capture();
    const e = new Capture();
    const code = await main(['ctl', '--control', t.tmp.path('emu.ctl'), ...args], {
      stdout: o,
      stderr: e,
      registry: t.registry,
      cwd: t.tmp.dir,
    });
    return { code, out: o.text, err: e.text };
  }

  async function rpc(): Promise<ControlClient> {
    const c = await ControlClient.connect(t.tmp.path('emu.ctl'));
    t.clients.push(c);
    return c;
  }

  /** Sends raw text and collects the reply lines until `n` came (or the server closed). */
  function raw(text: string, n: number): Promise<{ lines: unknown[]; closed: boolean }> {
    return new Promise((resolve, reject) => {
      const s = connect(t.tmp.path('emu.ctl'));
      let buf = '';
      const lines: unknown[] = [];
      const finish = (closed: boolean) => {
        s.destroy();
        resolve({ lines, closed });
      };
      s.on('error', reject);
      s.on('data', (d) => {
        buf += d;
        let i = buf.indexOf('\n');
        while (i >= 0) {
          lines.push(JSON.parse(buf.slice(0, i)));
          buf = buf.slice(i + 1);
          i = buf.indexOf('\n');
        }
        if (lines.length >= n) finish(false);
      });
      s.on('end', () => finish(true));
      s.write(text);
    });
  }

  it('is on by default next to the first device socket, mode 0600, and says where', async () => {
    await serve(['--vdev', `emu_gpio0,path=${t.tmp.path('g0.sock')}`]);
    const path = t.tmp.path('emu.ctl');
    expect(t.out.text).to.include(`control: ${path}  (emu ctl --control ${path} list)\n`);
    const st = statSync(path);
    expect(st.isSocket()).to.equal(true);
    expect(st.mode & 0o777).to.equal(0o600);
    const list = await ctl('list');
    expect(list).to.deep.equal({
      code: EXIT_OK,
      out: `NAME       DRIVER    STATE    CLIENT  LINK  SOCKET\nemu_gpio0  emu_gpio  started  no      -     ${t.tmp.path('g0.sock')}\n`,
      err: '',
    });
    const json = await ctl('--json', 'list');
    expect(JSON.parse(json.out)).to.deep.equal([
      {
        name: 'emu_gpio0',
        driver: 'emu_gpio',
        type: 'gpio',
        state: 'started',
        path: t.tmp.path('g0.sock'),
        connected: false,
        status: '',
      },
    ]);
  });

  it('--no-control serves none; --control PATH alone serves no device until one is added', async () => {
    const first = await serve(['--vdev', `emu_gpio0,path=${t.tmp.path('g0.sock')}`, '--no-control']);
    expect(existsSync(t.tmp.path('emu.ctl'))).to.equal(false);
    expect(t.out.text).to.not.include('control:');
    first.stop.abort();
    expect(await first.done).to.equal(EXIT_OK);

    t.out.text = '';
    await serve(['--control', t.tmp.path('emu.ctl')]);
    expect(t.out.text).to.equal(
      `control: ${t.tmp.path('emu.ctl')}  (emu ctl --control ${t.tmp.path('emu.ctl')} list)\nserving 0 devices; Ctrl-C to stop\n`,
    );
    expect(await ctl('list')).to.include({ code: EXIT_OK, out: 'no devices\n' });
  });

  it('hot-adds and removes devices: relative paths from where emu ctl runs, errors as emu gives them', async () => {
    await serve(['--vdev', `emu_gpio0,path=${t.tmp.path('g0.sock')}`]);
    const added = await ctl('add', 'emu_gpio1,path=g1.sock,lines=8');
    expect(added).to.deep.equal({
      code: EXIT_OK,
      out: `added emu_gpio1 (emu_gpio, ${t.tmp.path('g1.sock')})\n`,
      err: '',
    });
    expect(t.out.text).to.include(`emu_gpio1: added (emu_gpio, ${t.tmp.path('g1.sock')})\n`);
    // The new device serves: a vfio-user client reaches it.
    const client = await VfioUserClient.connect(t.tmp.path('g1.sock'), quietClient);
    t.clients.push(client);
    expect((await client.regionRead(0, GpioReg.ID, 4)).readUInt32LE(0)).to.equal(GPIO_ID);
    expect((await client.regionRead(0, GpioReg.LINES, 4)).readUInt32LE(0)).to.equal(8);

    expect(await ctl('add', 'emu_gpio1,path=other.sock')).to.deep.equal({
      code: EXIT_FAILURE,
      out: '',
      err: 'emu ctl: duplicate device name emu_gpio1 (EDUPLICATE)\n',
    });
    expect((await ctl('add', 'emu_gpio2,path=g2.sock,lines=99')).err).to.equal(
      'emu ctl: emu_gpio2: lines=99: Too big: expected number to be <=32 (EVALUE)\n',
    );
    expect(await ctl('add', 'emu_gpio2')).to.deep.equal({
      code: EXIT_FAILURE,
      out: '',
      err: 'emu ctl: emu_gpio2: path is required (EREQUIRED)\n',
    });

    expect(await ctl('remove', 'emu_gpio1')).to.deep.equal({
      code: EXIT_OK,
      out: 'removed emu_gpio1\n',
      err: '',
    });
    expect(existsSync(t.tmp.path('g1.sock'))).to.equal(false);
    expect(t.out.text).to.include('emu_gpio1: removed\n');
    expect(await ctl('remove', 'emu_gpio1')).to.deep.equal({
      code: EXIT_FAILURE,
      out: '',
      err: 'emu ctl: no device emu_gpio1 on the bus (devices: emu_gpio0) (ENOENT)\n',
    });
    // The device that was there all along never noticed.
    expect(readdirSync(t.tmp.dir).sort()).to.deep.equal(['emu.ctl', 'g0.sock']);
  });

  it("sets a NIC's link down and up, and refuses it for a device without a link", async () => {
    await serve([
      '--vdev',
      `emu_iavf0,path=${t.tmp.path('n0.sock')},net=ctl-link`,
      '--vdev',
      `emu_gpio0,path=${t.tmp.path('g0.sock')}`,
    ]);
    expect(await ctl('link', 'emu_iavf0', 'down')).to.deep.equal({
      code: EXIT_OK,
      out: 'emu_iavf0: link down\n',
      err: '',
    });
    expect((await ctl('list')).out).to.match(/emu_iavf0 +emu_iavf +started +no +down /);
    expect((await ctl('get', 'emu_iavf0', 'link')).out).to.equal('false\n');
    await ctl('link', 'emu_iavf0', 'up');
    expect((await ctl('get', 'emu_iavf0', 'link')).out).to.equal('true\n');
    expect(await ctl('link', 'emu_gpio0', 'down')).to.deep.equal({
      code: EXIT_FAILURE,
      out: '',
      err: 'emu ctl: emu_gpio0 (driver emu_gpio) has no link to set (ENOTSUP)\n',
    });
    expect(await ctl('link', 'emu_iavf0', 'sideways')).to.deep.equal({
      code: EXIT_USAGE,
      out: '',
      err: 'emu ctl: link state must be up or down, not sideways\n',
    });
    // Any attribute, through set: checked against its schema.
    expect(await ctl('set', 'emu_iavf0', 'speed', '25000')).to.deep.equal({
      code: EXIT_OK,
      out: 'emu_iavf0: speed = 25000\n',
      err: '',
    });
    expect((await ctl('set', 'emu_iavf0', 'speed', 'fast')).err).to.match(
      /^emu ctl: emu_iavf0: attribute speed: "fast": .* \(EINVAL\)\n$/,
    );
    expect((await ctl('set', 'emu_iavf0', 'mac', '"02:00:00:00:00:01"')).err).to.equal(
      'emu ctl: emu_iavf0: attribute mac is read-only (EACCES)\n',
    );
  });

  it('reads statistics per device and per queue', async () => {
    await serve([
      '--vdev',
      `emu_iavf0,path=${t.tmp.path('n0.sock')},net=ctl-stats,queues=2`,
      '--vdev',
      `emu_gpio0,path=${t.tmp.path('g0.sock')}`,
    ]);
    const client = await VfioUserClient.connect(t.tmp.path('g0.sock'), quietClient);
    t.clients.push(client);
    for (let i = 0; i < 5; i++) await client.regionRead(0, GpioReg.ID, 4);
    const stats = await ctl('--json', 'stats', 'emu_gpio0');
    const snap = JSON.parse(stats.out);
    expect(snap.devices).to.have.length(1);
    expect(snap.devices[0]).to.include({ name: 'emu_gpio0', driver: 'emu_gpio', commands: 6, errors: 0 });
    expect(snap.devices[0].socket).to.deep.equal({ path: t.tmp.path('g0.sock'), connected: true });
    expect(snap.dataPlane).to.have.keys(['workers', 'running', 'nics', 'frames']);
    const text = (await ctl('stats')).out.split('\n');
    expect(text[0]).to.match(
      /^DEVICE +LINK +RX PKTS +RX BYTES +TX PKTS +TX BYTES +DROPS +ERRORS +IRQS +CMDS$/,
    );
    expect(text[1]).to.match(/^emu_iavf0 +up 10000Mb\/s +0 +0 +0 +0 +0 +0 +0 +0$/);
    expect(text.slice(2, 4).map((l) => l.trim().split(/ +/)[0])).to.deep.equal(['q0', 'q1']);
    expect(text[4]).to.match(/^emu_gpio0 +- +0 +0 +0 +0 +0 +0 +0 +6$/);
    expect(text[5]).to.match(/^data plane: \d+ of 1 workers running, \d+ NICs, \d+ frames$/);
    // Each device's client budget: held/limit per resource.
    expect(text[7]).to.match(
      /^budget emu_gpio0: dmaMaps 0\/\d+, memoryMaps 0\/\d+, mappedBytes 0\/\d+, fds 0\/\d+, /,
    );
    expect(text[7]).to.match(/dmaRequests 0\/32$/);
    expect(await ctl('stats', 'emu_nope0')).to.include({ code: EXIT_FAILURE });
  });

  it('starts and stops a pcap capture of a NIC, with clear errors', async () => {
    await serve([
      '--vdev',
      `emu_iavf0,path=${t.tmp.path('n0.sock')},net=ctl-pcap`,
      '--vdev',
      `emu_gpio0,path=${t.tmp.path('g0.sock')}`,
    ]);
    const pcap = t.tmp.path('n0.pcap');
    expect(await ctl('capture', 'start', 'emu_iavf0', 'n0.pcap')).to.deep.equal({
      code: EXIT_OK,
      out: `emu_iavf0: capturing to ${pcap}\n`,
      err: '',
    });
    expect(readPcap(readFileSync(pcap)).records).to.deep.equal([]);
    expect(statSync(pcap).mode & 0o777).to.equal(0o600);
    expect((await ctl('capture', 'start', 'emu_iavf0', 'other.pcap')).err).to.equal(
      `emu ctl: emu_iavf0: already capturing to ${pcap}; stop that first (EBUSY)\n`,
    );
    expect(await ctl('capture', 'stop', 'emu_iavf0')).to.deep.equal({
      code: EXIT_OK,
      out: `emu_iavf0: stopped capturing to ${pcap}\n`,
      err: '',
    });
    expect((await ctl('capture', 'stop', 'emu_iavf0')).err).to.equal(
      'emu ctl: emu_iavf0 is not capturing (EINVAL)\n',
    );
    const again = await ctl('capture', 'start', 'emu_iavf0', 'n0.pcap');
    expect(again.code).to.equal(EXIT_FAILURE);
    expect(again.err).to.match(/exists/);
    expect((await ctl('capture', 'start', 'emu_iavf0', 'n0.pcap', '--overwrite')).code).to.equal(EXIT_OK);
    expect((await ctl('capture', 'start', 'emu_gpio0', 'g.pcap')).err).to.equal(
      'emu ctl: emu_gpio0 (driver emu_gpio) has no pcap capture (ENOTSUP)\n',
    );
  });

  it('changes the log level of the running emu', async () => {
    await serve(['--vdev', `emu_gpio0,path=${t.tmp.path('g0.sock')}`]);
    await ctl('add', 'emu_gpio1,path=g1.sock');
    expect(t.err.text).to.equal('');
    expect(await ctl('log-level', 'info')).to.deep.equal({
      code: EXIT_OK,
      out: 'log level info (was warn)\n',
      err: '',
    });
    await ctl('remove', 'emu_gpio1');
    expect(t.err.text).to.include('emu info: device removed {"device":"emu_gpio1"}');
    expect((await ctl('log-level', 'loud')).err).to.match(/^emu ctl: log\.setLevel: level: .*debug.*\(?/);
  });

  it('answers malformed requests with JSON-RPC errors and keeps serving the connection and the devices', async () => {
    await serve(['--vdev', `emu_gpio0,path=${t.tmp.path('g0.sock')}`]);
    const device = await VfioUserClient.connect(t.tmp.path('g0.sock'), quietClient);
    t.clients.push(device);
    const { lines, closed } = await raw(
      [
        'not json',
        '{"jsonrpc":"2.0","id":1}',
        '{"jsonrpc":"1.0","id":2,"method":"devices.list"}',
        '{"jsonrpc":"2.0","id":3,"method":"nope"}',
        '{"jsonrpc":"2.0","id":4,"method":"devices.remove","params":{"device":7}}',
        '{"jsonrpc":"2.0","id":5,"method":"devices.list","params":{"extra":1}}',
        '{"jsonrpc":"2.0","method":"log.setLevel","params":{"level":"warn"}}',
        '{"jsonrpc":"2.0","id":{"x":1},"method":"emu.info"}',
        '[]',
        '[{"jsonrpc":"2.0","id":6,"method":"devices.list"},{"jsonrpc":"2.0","id":7,"method":"nope"}]',
        '{"jsonrpc":"2.0","id":"last","method":"emu.info"}',
        '',
      ].join('\n'),
      10,
    );
    expect(closed).to.equal(false);
    const errorOf = (l: unknown) => (l as { id: unknown; error: { code: number } }).error?.code;
    expect(lines.map((l) => (l as { id: unknown }).id)).to.deep.equal([
      null,
      1,
      2,
      3,
      4,
      5,
      null,
      null,
      undefined, // the batch's reply is an array
      'last',
    ]);
    expect(lines.slice(0, 8).map(errorOf)).to.deep.equal([
      RpcErrorCode.PARSE_ERROR,
      RpcErrorCode.INVALID_REQUEST,
      RpcErrorCode.INVALID_REQUEST,
      RpcErrorCode.METHOD_NOT_FOUND,
      RpcErrorCode.INVALID_PARAMS,
      RpcErrorCode.INVALID_PARAMS,
      RpcErrorCode.INVALID_REQUEST,
      RpcErrorCode.INVALID_REQUEST,
    ]);
    const batch = lines[8] as Array<{ id: number; result?: unknown; error?: { code: number } }>;
    expect(batch.map((r) => [r.id, r.error?.code ?? 'ok'])).to.deep.equal([
      [6, 'ok'],
      [7, RpcErrorCode.METHOD_NOT_FOUND],
    ]);
    expect((lines[4] as { error: { message: string } }).error.message).to.equal(
      'devices.remove: device: Invalid input: expected string, received number',
    );
    expect((lines[9] as { result: { version: string } }).result.version).to.match(/^\d+\.\d+\.\d+/);
    // The device was served throughout.
    expect((await device.regionRead(0, GpioReg.ID, 4)).readUInt32LE(0)).to.equal(GPIO_ID);
  });

  it("takes names called like Object.prototype's members as unknown names, wherever a client gives one", async () => {
    await serve(['--vdev', `emu_iavf0,path=${t.tmp.path('n0.sock')},net=ctl-proto`]);
    const c = await rpc();
    const refusal = (p: Promise<unknown>) =>
      p.then(
        (v) => expect.fail(`accepted: ${JSON.stringify(v)}`),
        (e: ControlError) => ({ code: e.code, message: e.message, data: e.data?.code }),
      );
    const attributes = (
      (await c.call('attributes.list', { device: 'emu_iavf0' })) as Array<{ name: string }>
    ).map((a) => a.name);
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      expect((await refusal(c.call(name))).code, name).to.equal(RpcErrorCode.METHOD_NOT_FOUND);
      for (const call of [
        c.call('attributes.get', { device: 'emu_iavf0', attribute: name }),
        c.call('attributes.set', { device: 'emu_iavf0', attribute: name, value: 1 }),
      ]) {
        expect(await refusal(call)).to.deep.equal({
          code: RpcErrorCode.FAILED,
          message: `emu_iavf0: no attribute ${name} (attributes: ${attributes.join(', ')})`,
          data: 'ENOENT',
        });
      }
      for (const call of [
        c.call('devices.remove', { device: name }),
        c.call('attributes.list', { device: name }),
        c.call('stats.get', { device: name }),
      ]) {
        expect(await refusal(call)).to.deep.equal({
          code: RpcErrorCode.FAILED,
          message: `no device ${name} on the bus (devices: emu_iavf0)`,
          data: 'ENOENT',
        });
      }
      expect((await refusal(c.call('devices.add', { devargs: `${name}0,path=x.sock` }))).data).to.equal(
        'ENODRIVER',
      );
      const key = await refusal(
        c.call('devices.add', { devargs: `emu_iavf1,path=${t.tmp.path('n1.sock')},${name}=1` }),
      );
      expect(key.data, name).to.equal('EKEY');
      expect(key.message).to.match(new RegExp(`^emu_iavf1: unknown key "${name}" `));
    }
    // A params object with such keys is refused for its keys, before any handler runs.
    const params = await raw(
      '{"jsonrpc":"2.0","id":1,"method":"devices.list","params":{"__proto__":{"x":1},"constructor":1}}\n',
      1,
    );
    expect((params.lines[0] as { error: { code: number } }).error.code).to.equal(RpcErrorCode.INVALID_PARAMS);
    expect((await c.call('devices.list')) as unknown[]).to.have.length(1);
  });

  it('holds every name, path and value to one rule: the command line, a config file and the socket alike', async () => {
    const dir = t.tmp.dir;
    const cases = [
      {
        devargs: `emu_gpio1,path=${dir}/x\ny.sock`,
        message: `emu_gpio1: path: ${JSON.stringify(`${dir}/x\ny.sock`)} has a control character (U+000A) at character ${dir.length + 2}`,
      },
      {
        devargs: `emu_gpio${'1'.repeat(10_000)},path=${dir}/g1.sock`,
        message: `device name "emu_gpio${'1'.repeat(32)}…" is 10008 bytes long; at most 63`,
      },
      {
        devargs: `emu_gpio1,path=${dir}/${'p'.repeat(120)}.sock`,
        message: `emu_gpio1: socket path ${dir}/${'p'.repeat(120)}.sock: too long (${dir.length + 126} bytes; a UNIX socket path holds at most 107)`,
      },
    ];
    for (const { devargs, message } of cases) {
      // The command line.
      const e = new Capture();
      const code = await main(['--vdev', devargs, '--no-control'], {
        stdout: new Capture(),
        stderr: e,
        registry: t.registry,
        signal: new AbortController().signal,
      });
      expect(code).to.equal(EXIT_USAGE);
      expect(e.text.split('\n')[0]).to.equal(`emu: ${message}`);
      // A config file (JSON is YAML): the same message, at the device.
      writeFileSync(t.tmp.path('emu.yaml'), `devices:\n  - ${JSON.stringify(devargs)}\n`);
      const fromFile = new Capture();
      expect(
        await main(['--config', t.tmp.path('emu.yaml'), '--no-control'], {
          stdout: new Capture(),
          stderr: fromFile,
          registry: t.registry,
          signal: new AbortController().signal,
        }),
      ).to.equal(EXIT_USAGE);
      const at = `emu: ${t.tmp.path('emu.yaml')}:2:`;
      const line = fromFile.text.split('\n')[0];
      expect(line.startsWith(at), line).to.equal(true);
      expect(line.slice(at.length).replace(/^\d+: /, '')).to.equal(message);
    }
    expect(readdirSync(dir).sort()).to.deep.equal(['emu.yaml']);
    // The control socket, once emu serves: devices.add says the same, and adds nothing.
    await serve(['--vdev', `emu_iavf0,path=${t.tmp.path('n0.sock')},net=ctl-text`]);
    const c = await rpc();
    for (const { devargs, message } of cases) {
      const refused = (await c.call('devices.add', { devargs }).catch((x) => x)) as ControlError;
      expect(refused.message).to.equal(message);
      expect(refused.data?.code).to.be.oneOf(['EVALUE', 'ENAME', 'EPATH']);
    }
    expect((await c.call('devices.list')) as unknown[]).to.have.length(1);
    // Names and values given to methods and attributes.
    const params = async (method: string, p: Record<string, unknown>) =>
      ((await c.call(method, p).catch((x) => x)) as ControlError).message;
    expect(await params('devices.remove', { device: 'emu_iavf0\n' })).to.equal(
      'devices.remove: device: has a control character (U+000A) at character 9',
    );
    expect(await params('attributes.get', { device: 'emu_iavf0', attribute: 'a'.repeat(100) })).to.equal(
      'attributes.get: attribute: is 100 bytes long; at most 63',
    );
    expect(await params('capture.start', { device: 'emu_iavf0', path: '/tmp/a\u001b[2J.pcap' })).to.equal(
      'capture.start: path: has a control character (U+001B) at character 6',
    );
    expect(
      await params('attributes.set', {
        device: 'emu_iavf0',
        attribute: 'capture',
        value: { path: '/tmp/a\rb' },
      }),
    ).to.equal(
      'emu_iavf0: attribute capture: path: "/tmp/a\\rb" has a control character (U+000D) at character 6',
    );
    expect(await c.call('attributes.get', { device: 'emu_iavf0', attribute: 'capture' })).to.equal(null);
    expect(readdirSync(dir).sort()).to.deep.equal(['emu.ctl', 'emu.yaml', 'n0.sock']);
  });

  it('bounds what a client can make it hold: a line too long, too many clients', async () => {
    await serve(['--vdev', `emu_gpio0,path=${t.tmp.path('g0.sock')}`]);
    const long = await raw(`{"jsonrpc":"2.0","id":1,"method":"${'x'.repeat(MAX_LINE_BYTES + 10)}"`, 1);
    expect(long.lines).to.deep.equal([
      {
        jsonrpc: '2.0',
        id: null,
        error: { code: RpcErrorCode.LIMIT, message: `a request line is longer than ${MAX_LINE_BYTES} bytes` },
      },
    ]);
    const held: ControlClient[] = [];
    for (let i = 0; i < 16; i++) held.push(await rpc());
    for (const c of held) await c.call('emu.info');
    const refused = await raw('', 1);
    expect(refused.lines).to.deep.equal([
      {
        jsonrpc: '2.0',
        id: null,
        error: { code: RpcErrorCode.LIMIT, message: 'too many control clients (at most 16)' },
      },
    ]);
    held.pop()!.close();
    await new Promise((r) => setTimeout(r, 20));
    const c = await ControlClient.connect(t.tmp.path('emu.ctl'));
    t.clients.push(c);
    const info = (await c.call('emu.info')) as { pid: number; memory: Record<string, number> };
    expect(info.pid).to.equal(process.pid);
    // The process's memory as Node counts it: the heap inside what it reserved, inside the RSS.
    expect(info.memory.heapUsed).to.be.above(0).and.at.most(info.memory.heapTotal);
    expect(info.memory.heapTotal).to.be.below(info.memory.rss);
    expect(info.memory.external).to.be.a('number');
    // A client rejects what emu refused with a ControlError carrying the device's code.
    const e = (await c.call('devices.remove', { device: 'emu_gpio9' }).catch((x) => x)) as ControlError;
    expect(e).to.be.instanceOf(ControlError);
    expect(e).to.include({ code: RpcErrorCode.FAILED });
    expect(e.data).to.deep.equal({ code: 'ENOENT' });
  });

  it('stops promptly whatever its control clients do: refused ones, silent ones, unread replies', async () => {
    const { stop, done } = await serve([
      '--vdev',
      `emu_iavf0,path=${t.tmp.path('n0.sock')},net=ctl-stop`,
      '--vdev',
      `emu_gpio0,path=${t.tmp.path('g0.sock')}`,
    ]);
    const sockets = [];
    for (let i = 0; i < 24; i++) {
      const s = connect(t.tmp.path('emu.ctl'));
      s.on('error', () => {});
      if (i % 3 === 0 || i >= 16) s.pause(); // never reads (the 8 past the 16 it serves among them)
      if (i % 3 === 1) s.write('{"jsonrpc":"2.0","id":1,'); // a line never ended
      sockets.push(s);
    }
    await new Promise((r) => setTimeout(r, 300));
    // Once all are in, one asks for a reply it never reads, over and over.
    const request = `${JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'stats.get' })}\n`;
    sockets[0].write(request.repeat(20_000));
    await new Promise((r) => setTimeout(r, 300));
    const at = Date.now();
    stop.abort();
    expect(await done).to.equal(EXIT_OK);
    expect(Date.now() - at, 'ms to stop').to.be.below(3000);
    expect(t.out.text).to.include('stop: removing 2 devices\n');
    expect(readdirSync(t.tmp.dir)).to.deep.equal([]);
    for (const s of sockets) s.destroy();
  });

  it('tells emu ctl users why emu cannot be reached', async () => {
    expect(await ctl('list')).to.deep.equal({
      code: EXIT_FAILURE,
      out: '',
      err: `emu ctl: no control socket at ${t.tmp.path('emu.ctl')}: is emu running? (give its path with --control or $EMU_CONTROL)\n`,
    });
    // A file nobody listens on (connect(2) says ECONNREFUSED, as for a killed emu's stale socket).
    writeFileSync(t.tmp.path('not-a-socket'), '');
    const o = new Capture();
    const e = new Capture();
    const code = await main(['ctl', '--control', t.tmp.path('not-a-socket'), 'list'], {
      stdout: o,
      stderr: e,
    });
    expect(code).to.equal(EXIT_FAILURE);
    expect(e.text).to.equal(
      `emu ctl: nobody listens on ${t.tmp.path('not-a-socket')}: emu has stopped (the socket file is stale)\n`,
    );
    expect((await ctl()).code).to.equal(EXIT_USAGE);
    expect((await ctl('frobnicate')).code).to.equal(EXIT_USAGE);
  });

  it('refuses a second emu on the same default control socket, leaving the first alone', async () => {
    await serve(['--vdev', `emu_gpio0,path=${t.tmp.path('g0.sock')}`]);
    const o = new Capture();
    const e = new Capture();
    const second = new EmudevRegistry();
    const code = await main(['--vdev', `emu_gpio1,path=${t.tmp.path('g1.sock')}`], {
      stdout: o,
      stderr: e,
      registry: second,
      signal: new AbortController().signal,
    });
    expect(code).to.equal(EXIT_USAGE);
    expect(e.text).to.equal(
      `emu: --control: socket path ${t.tmp.path('emu.ctl')}: already in use by a running server (another emu serves there: give this one --control PATH or --no-control)\n`,
    );
    expect(existsSync(t.tmp.path('g1.sock')), 'its device socket is gone again').to.equal(false);
    expect(second.list()).to.deep.equal([]);
    expect((await ctl('list')).out).to.include('emu_gpio0');
  });
});
