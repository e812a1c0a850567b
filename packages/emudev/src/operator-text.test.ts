import { expect } from 'chai';
import { counterDriver } from './counter.fixture.js';
import { EmuDevice } from './device.js';
import { EmudevError } from './errors.js';
import { showText, TEXT_LIMITS, textProblem, valueTextProblem } from './operator-text.js';
import { quiet, tempDir } from './test-env.fixture.js';

describe('operator text: the one rule for names, paths and values', () => {
  it('bounds each kind in UTF-8 bytes', () => {
    for (const [kind, limit] of Object.entries(TEXT_LIMITS) as Array<[keyof typeof TEXT_LIMITS, number]>) {
      expect(textProblem('a'.repeat(limit), kind), kind).to.equal(undefined);
      expect(textProblem('a'.repeat(limit + 1), kind), kind).to.equal(
        `is ${limit + 1} bytes long; at most ${limit}`,
      );
    }
    // Bytes, not characters: 32 two-byte characters are 64 bytes, one more than a name may have.
    expect(textProblem('é'.repeat(32), 'name')).to.equal('is 64 bytes long; at most 63');
    expect(TEXT_LIMITS.socketPath).to.equal(107);
  });

  it('refuses every control character, the line separators and lone surrogates, and says which and where', () => {
    const refused = [
      ['\n', '000A'],
      ['\r', '000D'],
      ['\t', '0009'],
      ['\0', '0000'],
      ['\x1b', '001B'],
      ['\x7f', '007F'],
      ['\x85', '0085'],
      ['\x9b', '009B'],
      ['\u2028', '2028'],
      ['\u2029', '2029'],
    ];
    for (const [c, code] of refused) {
      expect(textProblem(`/tmp/a${c}b`, 'path'), code).to.equal(
        `has a control character (U+${code}) at character 6`,
      );
    }
    expect(textProblem('ab\ud800', 'value')).to.equal(
      'has a lone surrogate (U+D800) at character 2: not well-formed Unicode',
    );
    expect(textProblem('x\udfff', 'value')).to.match(/lone surrogate \(U\+DFFF\)/);
    // What is fine: spaces, non-ASCII letters, pairs of surrogates (an emoji), punctuation.
    for (const ok of ['/tmp/a b/ü.sock', 'emu_iavf0', 'tap:tap0', '😀', 'a=b;c:d', '']) {
      expect(textProblem(ok, 'path'), ok).to.equal(undefined);
    }
  });

  it('shows text quoted and cut short, with no control character left in it', () => {
    expect(showText('emu_gpio0')).to.equal('"emu_gpio0"');
    expect(showText('a\nb\x7fc\x85d\u2028e\ud800')).to.equal('"a\\nb\\u007fc\\u0085d\\u2028e\\ud800"');
    expect(showText('x'.repeat(100))).to.equal(`"${'x'.repeat(40)}…"`);
    for (let c = 0; c < 0xa0; c++) {
      expect(showText(`a${String.fromCharCode(c)}`)).to.not.match(/[\p{Cc}]/u);
    }
  });

  it('finds the first bad string anywhere in a value, and says where it is', () => {
    expect(valueTextProblem({ path: '/tmp/a.pcap', overwrite: true }, 'value')).to.equal(undefined);
    expect(valueTextProblem({ path: '/tmp/a\n.pcap', overwrite: true }, 'value')).to.equal(
      'path: "/tmp/a\\n.pcap" has a control character (U+000A) at character 6',
    );
    expect(valueTextProblem(['ok', { name: 'x\x1b[2J' }], 'value')).to.equal(
      '[1].name: "x\\u001b[2J" has a control character (U+001B) at character 1',
    );
    expect(valueTextProblem('z'.repeat(5000), 'value')).to.match(/^"z+…" is 5000 bytes long; at most 4095$/);
    expect(valueTextProblem({ 'a\nb': 1 }, 'value')).to.equal(
      'the key "a\\nb" has a control character (U+000A) at character 1',
    );
    // Nested deeper than the call stack: walked all the same.
    let deep: unknown = 'bad\n';
    for (let i = 0; i < 200_000; i++) deep = [deep];
    expect(valueTextProblem(deep, 'value')).to.match(/^(\[0\]){200000}: "bad\\n" has a control character/);
    expect(valueTextProblem(7, 'value')).to.equal(undefined);
  });

  describe('where emudev applies it', () => {
    let dir: ReturnType<typeof tempDir>;
    beforeEach(() => {
      dir = tempDir();
    });
    afterEach(() => dir.cleanup());

    it('a device name or socket path that breaks it is refused before anything is built', () => {
      const make = (name: string, path = dir.path('c.sock')) =>
        new EmuDevice(name, counterDriver, { path, ...quiet });
      expect(() => make(`emu_counter${'1'.repeat(10_000)}`)).to.throw(
        EmudevError,
        /^device name "emu_counter1{29}…" is 10011 bytes long; at most 63$/,
      );
      expect(() => make('emu_counter\n0')).to.throw(EmudevError, 'has a control character (U+000A)');
      expect(() => make('emu_counter0', dir.path('a\nb.sock'))).to.throw(
        EmudevError,
        /^emu_counter0: socket path ".*a\\nb\.sock" has a control character \(U\+000A\)/,
      );
      expect(() => make('emu_counter0', dir.path('x'.repeat(120)))).to.throw(
        EmudevError,
        /^emu_counter0: socket path ".*…" is \d+ bytes long; at most 107$/,
      );
    });

    it('attribute names and every string in a value set are checked; the value is not set', async () => {
      const dev = new EmuDevice('emu_counter0', counterDriver, { path: dir.path('c.sock'), ...quiet });
      await dev.configure();
      try {
        expect(() => dev.getAttr('st\nep')).to.throw(
          EmudevError,
          'emu_counter0: attribute name "st\\nep" has a control character (U+000A) at character 2',
        );
        expect(() => dev.setAttr('x'.repeat(100), 1)).to.throw(EmudevError, 'is 100 bytes long; at most 63');
        expect(() => dev.setAttr('step', 'a\u2028')).to.throw(
          EmudevError,
          'emu_counter0: attribute step: "a\\u2028" has a control character (U+2028) at character 1',
        );
        expect(dev.getAttr('step')).to.equal(1);
        const err = (() => {
          try {
            dev.setAttr('step', 'y'.repeat(3000));
          } catch (e) {
            return e as EmudevError;
          }
        })();
        // A long value is cut in the message.
        expect(err?.message).to.match(/^emu_counter0: attribute step: "y{79}…: /);
      } finally {
        await dev.close();
      }
    });
  });
});
