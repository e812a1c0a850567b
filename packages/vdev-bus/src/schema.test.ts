import { EmudevRegistry } from '@emu/emudev';
import { expect } from 'chai';
import { z } from 'zod';
import { VdevBus } from './bus.js';
import { DevargsError } from './devargs.js';
import { describeDriver, formatDriverHelp } from './schema.js';
import { strictDriver, testDriver } from './test-driver.fixture.js';
import { captureLogger } from './test-env.fixture.js';

describe('driver schemas', () => {
  describe('describeDriver', () => {
    it('lists path first, then every key of the schema with its type, default and description', () => {
      const info = describeDriver(testDriver);
      expect(info.name).to.equal('emu_test');
      expect(info.type).to.equal('test');
      expect(info.description).to.equal('a register file for the bus tests');
      expect(info.keys).to.deep.equal([
        {
          key: 'path',
          type: 'path',
          required: true,
          description: 'the vfio-user socket to serve on (made absolute); QEMU connects to it',
        },
        { key: 'regs', type: 'integer 1..16', required: false, default: 4, description: 'scratch registers' },
        {
          key: 'unit',
          type: 'integer >= 0',
          required: false,
          default: 0,
          description: 'value of the UNIT register',
        },
        { key: 'ratio', type: 'number', required: false, description: 'a fraction, for show' },
        { key: 'fast', type: 'boolean', required: false, default: false, description: 'go fast' },
        { key: 'pace', type: 'one of slow|fast', required: false, default: 'slow', description: 'speed' },
        { key: 'mac', type: 'string', required: false, description: 'MAC address' },
        {
          key: 'fail',
          type: 'one of none|probe|start',
          required: false,
          default: 'none',
          description: 'where to fail, for tests',
        },
      ]);
    });

    it('marks keys without a default as required and finds descriptions inside wrappers', () => {
      expect(describeDriver(strictDriver).keys[1]).to.deep.equal({
        key: 'serial',
        type: 'string',
        required: true,
        description: 'serial number',
      });
      const wrapped = {
        ...testDriver,
        config: z.object({
          speed: z.number().describe('inner').optional(),
          big: z.bigint().default(5n),
          on: z.coerce.boolean().default(true).describe('outer'),
          size: z.union([z.literal('auto'), z.number().int()]).default('auto'),
        }),
      };
      expect(describeDriver(wrapped).keys.slice(1)).to.deep.equal([
        { key: 'speed', type: 'number', required: false, description: 'inner' },
        { key: 'big', type: 'integer', required: false, default: 5n, description: undefined },
        { key: 'on', type: 'boolean', required: false, default: true, description: 'outer' },
        { key: 'size', type: 'auto or integer', required: false, default: 'auto', description: undefined },
      ]);
    });

    it('formats help: a heading, then one aligned line per key', () => {
      const help = formatDriverHelp(describeDriver(strictDriver));
      expect(help).to.equal(
        [
          '  emu_strict (test): needs a serial number',
          '    path    path    required  the vfio-user socket to serve on (made absolute); QEMU connects to it',
          '    serial  string  required  serial number',
        ].join('\n'),
      );
      const lines = formatDriverHelp(describeDriver(testDriver)).split('\n');
      expect(lines[2]).to.equal('    regs   integer 1..16            default 4       scratch registers');
      expect(lines[6]).to.equal('    pace   one of slow|fast         default "slow"  speed');
      expect(lines[4]).to.equal('    ratio  number                   optional        a fraction, for show');
    });
  });

  describe('devargs values become the schema types', () => {
    let bus: VdevBus;
    beforeEach(() => {
      const registry = new EmudevRegistry();
      registry.registerDriver(testDriver);
      registry.registerDriver(strictDriver);
      bus = new VdevBus(registry, { logger: captureLogger().logger });
    });

    /** The DevargsError bus.validate throws for `text`. */
    function invalid(text: string): DevargsError {
      try {
        bus.validate(text);
      } catch (err) {
        expect(err).to.be.instanceOf(DevargsError);
        return err as DevargsError;
      }
      return expect.fail(`${text} was accepted`);
    }

    it('numbers (decimal, hex, fractions), booleans, enums and strings', () => {
      const req = bus.validate(
        'emu_test3,path=/tmp/t.sock,regs=0x10,unit=3,ratio=.5,fast=yes,pace=fast,mac=02:00:00:00:00:01',
      );
      expect(req.name).to.equal('emu_test3');
      expect(req.driver).to.equal(testDriver);
      expect(req.path).to.equal('/tmp/t.sock');
      expect(req.config).to.deep.equal({
        regs: 16,
        unit: 3,
        ratio: 0.5,
        fast: true,
        pace: 'fast',
        mac: '02:00:00:00:00:01',
      });
      for (const [text, value] of [
        ['1', true],
        ['ON', true],
        ['true', true],
        ['0', false],
        ['off', false],
        ['No', false],
        ['FALSE', false],
      ] as const) {
        expect(bus.validate(`emu_test0,path=/tmp/t.sock,fast=${text}`).config.fast, text).to.equal(value);
      }
    });

    it('resolves a relative path against the working directory', () => {
      expect(bus.validate('emu_test0,path=rel/t.sock').path).to.equal(`${process.cwd()}/rel/t.sock`);
    });

    it('leaves out keys not given, so the schema defaults apply', () => {
      expect(bus.validate('emu_test0,path=/tmp/t.sock').config).to.deep.equal({});
    });

    describe('errors, with the message a user sees', () => {
      it('unknown driver', () => {
        const err = invalid('emu_foo0,path=/tmp/f.sock');
        expect(err.code).to.equal('ENODRIVER');
        expect(err.message).to.equal(
          'unknown driver "emu_foo" for device emu_foo0 (drivers: emu_test, emu_strict)',
        );
      });

      it('unknown key', () => {
        const err = invalid('emu_test0,path=/tmp/t.sock,colour=red');
        expect(err.code).to.equal('EKEY');
        expect(err.key).to.equal('colour');
        expect(err.message).to.equal(
          'emu_test0: unknown key "colour" (keys: path, mode, owner, group, allow_users, sealed_memory, regs, unit, ratio, fast, pace, mac, fail)',
        );
      });

      it("keys, device and driver names called like Object.prototype's members are unknown ones", () => {
        const keys =
          'path, mode, owner, group, allow_users, sealed_memory, regs, unit, ratio, fast, pace, mac, fail';
        for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
          const err = invalid(`emu_test0,path=/tmp/t.sock,${name}=1`);
          expect(err.code, name).to.equal('EKEY');
          expect(err.message).to.equal(`emu_test0: unknown key "${name}" (keys: ${keys})`);
          const driver = invalid(`${name}0,path=/tmp/t.sock`);
          expect(driver.code, name).to.equal('ENODRIVER');
          expect(driver.message).to.equal(
            `unknown driver "${name}" for device ${name}0 (drivers: emu_test, emu_strict)`,
          );
        }
      });

      it('a number that is not one', () => {
        const err = invalid('emu_test0,path=/tmp/t.sock,regs=abc');
        expect(err.code).to.equal('EVALUE');
        expect(err.key).to.equal('regs');
        expect(err.message).to.equal('emu_test0: regs=abc: expected a number');
        expect(invalid('emu_test0,path=/tmp/t.sock,regs=').message).to.equal(
          'emu_test0: regs=: expected a number',
        );
        expect(invalid('emu_test0,path=/tmp/t.sock,ratio=1e').message).to.equal(
          'emu_test0: ratio=1e: expected a number',
        );
        expect(invalid('emu_test0,path=/tmp/t.sock,regs= 4').message).to.equal(
          'emu_test0: regs= 4: expected a number',
        );
      });

      it('a fraction where an integer is wanted', () => {
        expect(invalid('emu_test0,path=/tmp/t.sock,regs=1.5').message).to.equal(
          'emu_test0: regs=1.5: expected an integer',
        );
      });

      it('a number out of range (zod says why)', () => {
        expect(invalid('emu_test0,path=/tmp/t.sock,regs=17').message).to.equal(
          'emu_test0: regs=17: Too big: expected number to be <=16',
        );
        expect(invalid('emu_test0,path=/tmp/t.sock,regs=0').message).to.equal(
          'emu_test0: regs=0: Too small: expected number to be >=1',
        );
      });

      it('a boolean that is not one', () => {
        expect(invalid('emu_test0,path=/tmp/t.sock,fast=maybe').message).to.equal(
          'emu_test0: fast=maybe: expected a boolean (true/false, yes/no, on/off, 1/0)',
        );
      });

      it('a value outside an enum', () => {
        expect(invalid('emu_test0,path=/tmp/t.sock,pace=medium').message).to.equal(
          'emu_test0: pace=medium: Invalid option: expected one of "slow"|"fast"',
        );
      });

      it("a string the driver's own check refuses, with the driver's message", () => {
        expect(invalid('emu_test0,path=/tmp/t.sock,mac=02:00').message).to.equal(
          'emu_test0: mac=02:00: expected a MAC address like 02:00:00:00:00:01',
        );
        expect(invalid('emu_strict0,path=/tmp/s.sock,serial=abc').message).to.equal(
          'emu_strict0: serial=abc: Too small: expected string to have >=4 characters',
        );
      });

      it('a required key left out', () => {
        const err = invalid('emu_strict0,path=/tmp/s.sock');
        expect(err.code).to.equal('EREQUIRED');
        expect(err.message).to.equal('emu_strict0: serial is required');
      });

      it('path left out, or empty', () => {
        const err = invalid('emu_test0,regs=4');
        expect(err.code).to.equal('EREQUIRED');
        expect(err.key).to.equal('path');
        expect(err.message).to.equal('emu_test0: path is required');
        expect(invalid('emu_test0,path=').message).to.equal('emu_test0: path is required');
      });

      it('a socket path with a control character, or too long for sun_path, before anything is built', () => {
        const newline = invalid('emu_test0,path=/tmp/a\u2029b.sock');
        expect(newline.code).to.equal('EVALUE');
        expect(newline.message).to.equal(
          'emu_test0: path: "/tmp/a\\u2029b.sock" has a control character (U+2029) at character 6',
        );
        // Relative paths grow when made absolute: the length is checked on the absolute path.
        const rel = 'r'.repeat(107 - process.cwd().length);
        const long = invalid(`emu_test0,path=${rel}`);
        expect(long.code).to.equal('EPATH');
        expect(long.key).to.equal('path');
        expect(long.message).to.equal(
          `emu_test0: socket path ${process.cwd()}/${rel}: too long (108 bytes; a UNIX socket path holds at most 107)`,
        );
        expect(bus.validate(`emu_test0,path=${rel.slice(1)}`).path).to.have.length(107);
      });

      it('a syntax error comes out of validate() as well', () => {
        expect(invalid('emu_test,path=/tmp/t.sock').message).to.equal(
          'device name "emu_test" must end in a number',
        );
      });
    });
  });
});
