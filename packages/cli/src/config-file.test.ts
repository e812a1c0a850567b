import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineDriver, EmudevError, EmudevRegistry } from '@emu/emudev';
import { DevargsError, parseDevargs, VdevBus } from '@emu/vdev-bus';
import { expect } from 'chai';
import { z } from 'zod';
import { type ConfigFile, ConfigFileError, checkConfigDevices, readConfigFile } from './config-file.js';
import { tempDir } from './test-env.fixture.js';

/** A driver with a key of each kind a config file writes: integer, string, boolean. Only validated here. */
const nicDriver = defineDriver({
  name: 'emu_nic',
  type: 'net',
  description: 'a NIC, for the config file tests',
  config: z.object({
    queues: z.number().int().min(1).max(16).default(1).describe('queue pairs'),
    net: z.string().optional().describe('backend'),
    spoofchk: z.boolean().default(true).describe('drop spoofed frames'),
  }),
  probe: () => {
    throw new Error('not probed in these tests');
  },
});

describe('emu --config (config-file)', () => {
  let tmp: ReturnType<typeof tempDir>;
  let bus: VdevBus;

  beforeEach(() => {
    tmp = tempDir();
    const registry = new EmudevRegistry();
    registry.registerDriver(nicDriver);
    bus = new VdevBus(registry);
  });
  afterEach(() => tmp.cleanup());

  /** Writes the lines as FILE in the temp dir and returns its path. */
  function write(lines: string[], name = 'emu.yaml'): string {
    const file = tmp.path(name);
    writeFileSync(file, `${lines.join('\n')}\n`);
    return file;
  }

  /** The ConfigFileError readConfigFile throws for these lines. */
  function readError(lines: string[]): ConfigFileError {
    const file = write(lines);
    try {
      readConfigFile(file);
    } catch (err) {
      expect(err).to.be.instanceOf(ConfigFileError);
      return err as ConfigFileError;
    }
    throw new Error('readConfigFile did not throw');
  }

  /** The ConfigFileError checkConfigDevices throws for these lines, validating against the test bus. */
  function checkError(lines: string[]): ConfigFileError {
    const config = readConfigFile(write(lines));
    try {
      checkConfigDevices(config, (t) => bus.validate(t));
    } catch (err) {
      expect(err).to.be.instanceOf(ConfigFileError);
      return err as ConfigFileError;
    }
    throw new Error('checkConfigDevices did not throw');
  }

  describe('a good file', () => {
    it('gives the equivalent command line, paths resolved against the file', () => {
      mkdirSync(tmp.path('etc'));
      const file = write(
        [
          '# emu.yaml',
          'log-level: info',
          'status: 0.5',
          'workers: 2',
          'control: false',
          'metrics: 127.0.0.1:9464',
          'drivers: [./my-driver.mjs, /opt/emu/other.mjs, emu-driver-pkg]',
          'devices:',
          '  - name: emu_nic0',
          '    path: nic0.sock',
          '    queues: 4',
          '    net: tap:tap0',
          '    spoofchk: false',
          '    mode: 0660',
          '  - emu_nic1,path=../nic1.sock,net=tap:tap1',
          '  - "emu_nic2,path=/run/emu/nic2.sock"',
        ],
        'etc/emu.yaml',
      );
      const config = readConfigFile('etc/emu.yaml', tmp.dir);
      const nic0 = `emu_nic0,path=${join(tmp.dir, 'etc/nic0.sock')},queues=4,net=tap:tap0,spoofchk=false,mode=0660`;
      const nic1 = `emu_nic1,path=${join(tmp.dir, 'nic1.sock')},net=tap:tap1`;
      const nic2 = 'emu_nic2,path=/run/emu/nic2.sock';
      expect(config.path).to.equal(file);
      expect(config.devices).to.deep.equal([nic0, nic1, nic2]);
      expect(config.argv).to.deep.equal([
        ...['--log-level', 'info', '--status', '0.5', '--workers', '2', '--no-control'],
        ...['--metrics', '127.0.0.1:9464'],
        ...['--driver', join(tmp.dir, 'etc/my-driver.mjs'), '--driver', '/opt/emu/other.mjs'],
        ...['--driver', 'emu-driver-pkg'],
        ...['--vdev', nic0, '--vdev', nic1, '--vdev', nic2],
      ]);
      // The devargs are what the bus reads: the same keys and values, and valid for the driver.
      expect(parseDevargs(nic0).args).to.deep.equal({
        path: join(tmp.dir, 'etc/nic0.sock'),
        queues: '4',
        net: 'tap:tap0',
        spoofchk: 'false',
        mode: '0660',
      });
      checkConfigDevices(config, (t) => bus.validate(t));
      expect(bus.validate(nic0).config).to.deep.equal({ queues: 4, net: 'tap:tap0', spoofchk: false });
      expect(bus.validate(nic0).server.socket.mode).to.equal(0o660);
    });

    it('makes a control socket path absolute; gives only the options the file has', () => {
      const config = readConfigFile(write(['control: run/emu.ctl']));
      expect(config.argv).to.deep.equal(['--control', tmp.path('run/emu.ctl')]);
      expect(config.devices).to.deep.equal([]);
      // An IPv6 address must be quoted: [ starts a YAML list.
      expect(readConfigFile(write(['metrics: "[::1]:9464"'])).argv).to.deep.equal([
        '--metrics',
        '[::1]:9464',
      ]);
    });

    it('takes an empty file (or only comments) as no settings', () => {
      expect(readConfigFile(write(['# nothing yet'])).argv).to.deep.equal([]);
    });
  });

  describe('errors in the file', () => {
    it('a missing file, with its errno', () => {
      const err = (() => {
        try {
          readConfigFile('nope.yaml', tmp.dir);
        } catch (e) {
          return e as ConfigFileError;
        }
      })();
      expect(err).to.be.instanceOf(ConfigFileError);
      expect(err!.message).to.equal(
        'nope.yaml: cannot read the config file: ENOENT: no such file or directory',
      );
      expect(err!.file).to.equal('nope.yaml');
      expect(err!.line).to.equal(undefined);
    });

    it('a YAML syntax error, at its position', () => {
      const err = readError(['log-level: info', 'devices: [emu_nic0,path=a.sock', 'status: 5']);
      expect(err.message).to.equal(
        `${tmp.path('emu.yaml')}:3:1: Flow sequence in block collection must be sufficiently indented and end with a ]`,
      );
      expect([err.file, err.line, err.col]).to.deep.equal([tmp.path('emu.yaml'), 3, 1]);
    });

    it('a key given twice', () => {
      expect(readError(['status: 5', 'status: 6']).message).to.equal(
        `${tmp.path('emu.yaml')}:2:1: Map keys must be unique`,
      );
    });

    it('an unknown key, with the valid keys', () => {
      expect(readError(['workers: 2', 'loglevel: debug']).message).to.equal(
        `${tmp.path('emu.yaml')}:2:1: unknown key "loglevel" (keys: log-level, status, workers, control, metrics, drivers, devices)`,
      );
    });

    it('a key called like an Object.prototype member is an unknown key, at the top and in a device', () => {
      const keys = 'log-level, status, workers, control, metrics, drivers, devices';
      for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
        expect(readError(['workers: 2', `${name}: 1`]).message, name).to.equal(
          `${tmp.path('emu.yaml')}:2:1: unknown key "${name}" (keys: ${keys})`,
        );
        const err = checkError(['devices:', '  - name: emu_nic0', '    path: a.sock', `    ${name}: x`]);
        expect(err.message, name).to.equal(
          `${tmp.path('emu.yaml')}:4:${7 + name.length}: emu_nic0: unknown key "${name}" (keys: path, mode, owner, group, allow_users, sealed_memory, queues, net, spoofchk)`,
        );
      }
    });

    it('a file that is not a mapping', () => {
      expect(readError(['- emu_nic0,path=a.sock']).message).to.equal(
        `${tmp.path('emu.yaml')}:1:1: expected a mapping of settings (log-level, status, workers, control, metrics, drivers, devices), not a list`,
      );
    });

    it('a value of the wrong type, at the value', () => {
      const file = tmp.path('emu.yaml');
      expect(readError(['workers: 2', 'status: five']).message).to.equal(
        `${file}:2:9: status: expected seconds from 0 to 86400, not "five"`,
      );
      expect(readError(['devices: emu_nic0,path=a.sock']).message).to.equal(
        `${file}:1:10: devices: expected a list of devices, not "emu_nic0,path=a.sock"`,
      );
      expect(readError(['drivers:', '  - ./a.mjs', '  - 5']).message).to.equal(
        `${file}:3:5: drivers[1]: expected a driver module (a path or a package name), not 5`,
      );
      expect(readError(['control: true']).message).to.equal(
        `${file}:1:10: control: expected a socket path, or false for none, not true`,
      );
      expect(readError(['metrics: 9464']).message).to.equal(
        `${file}:1:10: metrics: expected HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464, not 9464`,
      );
      expect(readError(['metrics: "localhost:99999"']).message).to.equal(
        `${file}:1:10: metrics: expected HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464, not "localhost:99999"`,
      );
    });

    it('a value out of range, in the command line’s words', () => {
      const file = tmp.path('emu.yaml');
      expect(readError(['workers: 65']).message).to.equal(
        `${file}:1:10: workers: expected a count from 1 to 64, not 65`,
      );
      expect(readError(['workers: 1.5']).message).to.equal(
        `${file}:1:10: workers: expected a count from 1 to 64, not 1.5`,
      );
      expect(readError(['status: 86401']).message).to.equal(
        `${file}:1:9: status: expected seconds from 0 to 86400, not 86401`,
      );
    });

    it('a bad log-level, with the choices', () => {
      expect(readError(['log-level: loud']).message).to.equal(
        `${tmp.path('emu.yaml')}:1:12: log-level: expected one of debug, info, warn, error, silent, not "loud"`,
      );
    });

    it('a device mapping without a name', () => {
      expect(
        readError(['devices:', '  - emu_nic0,path=a.sock', '  - path: b.sock', '    queues: 2']).message,
      ).to.equal(`${tmp.path('emu.yaml')}:3:5: devices[1]: a device needs a name, e.g. name: emu_gpio0`);
    });

    it('a device entry of the wrong type, and a key value that is not a scalar', () => {
      const file = tmp.path('emu.yaml');
      expect(readError(['devices:', '  - 42']).message).to.equal(
        `${file}:2:5: devices[0]: expected a devargs string or a mapping of name and devargs keys, not 42`,
      );
      expect(readError(['devices:', '  - name: emu_nic0', '    net: [tap0, tap1]']).message).to.equal(
        `${file}:3:10: devices[0].net: expected a string, a number or a boolean, not a list`,
      );
      expect(readError(['devices:', '  - name: emu_nic0', '    net:']).message).to.equal(
        `${file}:3:9: devices[0].net: expected a string, a number or a boolean, not an empty value`,
      );
    });

    it('what devargs cannot express: a comma in a value, a bad key, spaces at the end', () => {
      const file = tmp.path('emu.yaml');
      expect(readError(['devices:', '  - name: emu_nic0', '    net: "tap:tap0,tap1"']).message).to.equal(
        `${file}:3:10: devices[0].net: "tap:tap0,tap1" contains a comma, which devargs cannot express`,
      );
      expect(readError(['devices:', '  - name: emu_nic0', '    "net key": tap0']).message).to.equal(
        `${file}:3:5: devices[0]: bad key "net key" (a key is letters, digits, underscores and dashes)`,
      );
      const proto = readConfigFile(write(['devices:', '  - name: emu_nic0', '    __proto__: x']));
      expect(proto.devices).to.deep.equal(['emu_nic0,__proto__=x']);
      expect(readError(['devices:', '  - name: emu_nic0', '    net: "tap0  "']).message).to.equal(
        `${file}:3:10: devices[0].net: devargs cannot express this value (spaces at its ends)`,
      );
    });

    it('a socket path that becomes a path with a comma', () => {
      mkdirSync(tmp.path('a,b'));
      const file = write(['devices:', '  - name: emu_nic0', '    path: nic0.sock'], 'a,b/emu.yaml');
      expect(() => readConfigFile(file)).to.throw(
        ConfigFileError,
        `${file}:3:11: devices[0]: the socket path ${tmp.path('a,b/nic0.sock')} contains a comma, which devargs cannot express`,
      );
    });

    it('a devargs string that does not parse, at the key in the string', () => {
      const file = tmp.path('emu.yaml');
      expect(readError(['devices:', '  - emu_nic0,path=a.sock,queues']).message).to.equal(
        `${file}:2:26: emu_nic0: "queues" is not key=value`,
      );
      expect(readError(['devices:', '  - "nic,path=a.sock"']).message).to.equal(
        `${file}:2:6: device name "nic" must end in a number`,
      );
      expect(readError(['devices:', '  - name: nic', '    path: a.sock']).message).to.equal(
        `${file}:2:11: device name "nic" must end in a number`,
      );
    });

    it('duplicate device names', () => {
      expect(
        readError(['devices:', '  - emu_nic0,path=a.sock', '  - name: emu_nic0', '    path: b.sock']).message,
      ).to.equal(`${tmp.path('emu.yaml')}:3:11: duplicate device name emu_nic0 (first at line 2)`);
    });
  });

  describe('errors the bus finds (checkConfigDevices, locate)', () => {
    it('an unknown driver key, at that key’s line', () => {
      const err = checkError([
        'devices:',
        '  - emu_nic0,path=a.sock',
        '  - name: emu_nic1',
        '    path: b.sock',
        '    queues: 2',
        '    speed: 10G',
      ]);
      expect(err.message).to.equal(
        `${tmp.path('emu.yaml')}:6:12: emu_nic1: unknown key "speed" (keys: path, mode, owner, group, allow_users, sealed_memory, queues, net, spoofchk)`,
      );
      expect(err.cause).to.be.instanceOf(DevargsError);
    });

    it('a bad value in a devargs string, at the value in the string', () => {
      expect(checkError(['devices:', '  - emu_nic0,path=a.sock,queues=99']).message).to.equal(
        `${tmp.path('emu.yaml')}:2:33: emu_nic0: queues=99: Too big: expected number to be <=16`,
      );
    });

    it('an unknown driver, at the device name', () => {
      expect(
        checkError(['devices:', '  - name: emu_nic0', '    path: a.sock', '  - name: emu_fan0']).message,
      ).to.equal(
        `${tmp.path('emu.yaml')}:4:11: unknown driver "emu_fan" for device emu_fan0 (drivers: emu_nic)`,
      );
    });

    it('a socket path two devices share (VdevBus.scan), at the second one’s path', async () => {
      const config = readConfigFile(
        write(['devices:', '  - emu_nic0,path=a.sock', '  - name: emu_nic1', '    path: ./a.sock']),
      );
      const err = await bus.scan(config.devices).then(
        () => undefined,
        (e) => config.locate(e),
      );
      expect((err as Error).message).to.equal(
        `${tmp.path('emu.yaml')}:4:11: emu_nic1: socket path ${tmp.path('a.sock')} is already used by emu_nic0`,
      );
    });

    it('an EmudevError from probe, at the key its issues name or at the device', () => {
      const config: ConfigFile = readConfigFile(
        write(['devices:', '  - name: emu_nic0', '    path: a.sock', '    queues: 4']),
      );
      const bad = new EmudevError('EINVAL', 'emu_nic0: bad configuration: queues: too many', [
        { path: 'queues', message: 'too many' },
      ]);
      expect((config.locate(bad) as Error).message).to.equal(
        `${tmp.path('emu.yaml')}:4:13: emu_nic0: bad configuration: queues: too many`,
      );
      const failed = new EmudevError('EPROBE', 'emu_nic0: driver emu_nic failed: no tap0');
      expect((config.locate(failed, config.devices[0]) as Error).message).to.equal(
        `${tmp.path('emu.yaml')}:2:5: emu_nic0: driver emu_nic failed: no tap0`,
      );
    });

    it('leaves errors about other devices, or of other kinds, unchanged', () => {
      const config = readConfigFile(write(['devices:', '  - emu_nic0,path=a.sock']));
      const other = new DevargsError('EKEY', 'emu_nic7: unknown key "x"', 'emu_nic7', 'x');
      expect(config.locate(other)).to.equal(other);
      // A command-line --vdev clashing with a device of the file is the command line's to report.
      const clash = new DevargsError(
        'EADDRINUSE',
        'emu_nic7: socket path /x is already used by emu_nic0',
        'emu_nic7',
      );
      expect(config.locate(clash)).to.equal(clash);
      const plain = new Error('emu_nic0: something else');
      expect(config.locate(plain)).to.equal(plain);
    });
  });
});
