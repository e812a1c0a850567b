import { expect } from 'chai';
import { DevargsError, formatDevargs, parseDevargs, splitDeviceName } from './devargs.js';

/** The error parseDevargs throws for `text`, which must be a DevargsError with `code`. */
function syntaxError(text: string, code = 'ESYNTAX'): DevargsError {
  try {
    parseDevargs(text);
  } catch (err) {
    expect(err).to.be.instanceOf(DevargsError);
    expect((err as DevargsError).code).to.equal(code);
    return err as DevargsError;
  }
  return expect.fail(`parseDevargs(${JSON.stringify(text)}) did not throw`);
}

describe('parseDevargs', () => {
  it('splits the device name, the driver name and the key=value items', () => {
    expect(parseDevargs('emu_iavf0,path=/run/emu/iavf0.sock,mac=02:00:00:00:00:01,queues=4')).to.deep.equal({
      name: 'emu_iavf0',
      driver: 'emu_iavf',
      args: { path: '/run/emu/iavf0.sock', mac: '02:00:00:00:00:01', queues: '4' },
    });
  });

  it('takes the driver name as the leading letters and underscores, like DPDK', () => {
    expect(parseDevargs('emu_gpio12').driver).to.equal('emu_gpio');
    expect(splitDeviceName('net_ring_3')).to.deep.equal({ driver: 'net_ring_', unit: 3 });
    expect(splitDeviceName('emu_gpio007')).to.deep.equal({ driver: 'emu_gpio', unit: 7 });
  });

  it('accepts a bare device name, surrounding whitespace, empty values and "=" inside values', () => {
    expect(parseDevargs('emu_gpio0')).to.deep.equal({ name: 'emu_gpio0', driver: 'emu_gpio', args: {} });
    expect(parseDevargs('  emu_gpio0,path=/tmp/a.sock\n').args).to.deep.equal({ path: '/tmp/a.sock' });
    expect(parseDevargs('emu_x1,label=,expr=a=b').args).to.deep.equal({ label: '', expr: 'a=b' });
  });

  it('formats parsed devargs back to the same text', () => {
    const text = 'emu_gpio0,path=/tmp/g.sock,lines=8';
    expect(formatDevargs(parseDevargs(text))).to.equal(text);
  });

  describe('syntax errors, with the message a user sees', () => {
    it('empty devargs', () => {
      expect(syntaxError('').message).to.equal(
        'devargs are empty: give a device name and its keys, e.g. emu_gpio0,path=/tmp/emu/gpio0.sock',
      );
      expect(syntaxError('   ').message).to.match(/^devargs are empty/);
    });

    it('no device name in front', () => {
      expect(syntaxError('path=/tmp/a.sock,lines=8').message).to.equal(
        'devargs "path=/tmp/a.sock,lines=8" must start with a device name, e.g. emu_gpio0,path=/tmp/emu/gpio0.sock',
      );
      expect(syntaxError(',path=/tmp/a.sock').message).to.match(
        /^devargs ",path=\/tmp\/a.sock" must start with a device name/,
      );
    });

    it('a device name without a number', () => {
      const err = syntaxError('emu_gpio,path=/tmp/a.sock', 'ENAME');
      expect(err.message).to.equal('device name "emu_gpio" must end in a number');
      expect(err.device).to.equal('emu_gpio');
      expect(syntaxError('emu_gpio0a', 'ENAME').message).to.equal(
        'device name "emu_gpio0a" must end in a number',
      );
    });

    it('a device name that does not start with a driver name', () => {
      expect(syntaxError('0emu', 'ENAME').message).to.equal(
        `device name "0emu" must start with its driver's name (letters and underscores), e.g. emu_gpio0,path=/tmp/emu/gpio0.sock`,
      );
    });

    it('a device name with other characters', () => {
      expect(syntaxError('emu-gpio0', 'ENAME').message).to.equal(
        'device name "emu-gpio0" must be a driver name (letters and underscores) followed by a number, e.g. emu_gpio0,path=/tmp/emu/gpio0.sock',
      );
      expect(syntaxError('emu_gp1o0', 'ENAME').message).to.match(
        /^device name "emu_gp1o0" must be a driver name/,
      );
    });

    it('an item without "="', () => {
      const err = syntaxError('emu_gpio0,path=/tmp/a.sock,lines');
      expect(err.message).to.equal('emu_gpio0: "lines" is not key=value');
      expect(err.device).to.equal('emu_gpio0');
    });

    it('an item without a key', () => {
      expect(syntaxError('emu_gpio0,=8').message).to.equal('emu_gpio0: "=8" has no key before "="');
    });

    it('a key with characters a key cannot have', () => {
      const err = syntaxError('emu_gpio0,li nes=8');
      expect(err.message).to.equal(
        'emu_gpio0: bad key "li nes" (a key is letters, digits, underscores and dashes)',
      );
      expect(err.key).to.equal('li nes');
    });

    it('a key given twice', () => {
      const err = syntaxError('emu_gpio0,lines=8,path=/tmp/a.sock,lines=9');
      expect(err.message).to.equal('emu_gpio0: key "lines" is given twice');
      expect(err.key).to.equal('lines');
    });

    it('an empty item (two commas, or a trailing comma)', () => {
      const message = 'emu_gpio0: empty item in devargs (two commas in a row, or a trailing comma)';
      expect(syntaxError('emu_gpio0,,lines=8').message).to.equal(message);
      expect(syntaxError('emu_gpio0,lines=8,').message).to.equal(message);
    });

    it('a device name, key or value that breaks the operator-text rule: too long, control characters', () => {
      const long = syntaxError(`emu_iavf${'1'.repeat(10_000)},path=/tmp/a.sock`, 'ENAME');
      expect(long.message).to.equal(
        `device name "emu_iavf${'1'.repeat(32)}…" is 10008 bytes long; at most 63`,
      );
      expect(syntaxError(`emu_gpio${'0'.repeat(56)}`, 'ENAME').message).to.match(
        /is 64 bytes long; at most 63$/,
      );
      expect(parseDevargs(`emu_gpio${'0'.repeat(55)}`).name).to.have.length(63);
      const newline = syntaxError('emu_iavf1,path=/tmp/x\ny.sock', 'EVALUE');
      expect(newline.message).to.equal(
        'emu_iavf1: path: "/tmp/x\\ny.sock" has a control character (U+000A) at character 6',
      );
      expect(newline.key).to.equal('path');
      for (const c of ['\0', '\r', '\t', '\x1b', '\x7f', '\x85', '\u2028', '\ud800']) {
        const err = syntaxError(`emu_iavf1,path=/tmp/a.sock,pcap=/tmp/p${c}.pcap`, 'EVALUE');
        expect(err.key, JSON.stringify(c)).to.equal('pcap');
        expect(err.message).to.not.match(/[\p{Cc}\u2028]/u);
      }
      expect(syntaxError(`emu_iavf1,net=${'n'.repeat(4096)}`, 'EVALUE').message).to.match(
        /^emu_iavf1: net: "n{40}…" is 4096 bytes long; at most 4095$/,
      );
      expect(syntaxError(`emu_iavf1,${'k'.repeat(64)}=1`).message).to.match(
        /^emu_iavf1: key "k{40}…" is 64 bytes long; at most 63$/,
      );
      // What the messages quote is escaped: no control character reaches a log line through them.
      expect(syntaxError('emu_iavf1,pa\nth').message).to.equal('emu_iavf1: "pa\\nth" is not key=value');
      expect(syntaxError('path=a\u2028b').message).to.match(/^devargs "path=a\\u2028b" must start/);
    });

    it('a key called like an Object.prototype member is an ordinary key', () => {
      expect(parseDevargs('emu_gpio0,constructor=1').args).to.deep.equal({ constructor: '1' });
      const proto = parseDevargs('emu_gpio0,__proto__=x').args;
      expect(Object.keys(proto)).to.deep.equal(['__proto__']);
      expect(Object.getPrototypeOf(proto)).to.equal(Object.prototype);
      expect(syntaxError('emu_gpio0,toString=1,toString=2').message).to.equal(
        'emu_gpio0: key "toString" is given twice',
      );
    });
  });
});
