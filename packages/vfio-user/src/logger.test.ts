import { expect } from 'chai';
import { type Logger, rateLimitedLogger } from './logger.js';

function recorder() {
  const lines: string[] = [];
  const at = (level: string) => (obj: object | string, msg?: string) =>
    lines.push(`${level} ${typeof obj === 'string' ? obj : `${msg} ${JSON.stringify(obj)}`}`);
  const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  return { lines, log };
}

describe('rateLimitedLogger', () => {
  const limit = { burst: 3, levelBurst: 5, intervalMs: 5000, maxKinds: 4 };

  it('passes a burst of one kind per interval, then says how many it dropped', () => {
    const { lines, log } = recorder();
    let t = 0;
    const limited = rateLimitedLogger(log, limit, () => t);
    for (let i = 0; i < 100; i++) limited.warn({ i }, 'bad tail');
    expect(lines).to.deep.equal(['warn bad tail {"i":0}', 'warn bad tail {"i":1}', 'warn bad tail {"i":2}']);
    t = 5000;
    limited.warn({ i: 100 }, 'bad tail');
    limited.warn({ i: 101 }, 'bad tail');
    expect(lines.slice(3)).to.deep.equal([
      'warn bad tail (97 more suppressed in 5 s) {"i":100}',
      'warn bad tail {"i":101}',
    ]);
  });

  it('keeps kinds and levels apart, and bounds a level across kinds', () => {
    const { lines, log } = recorder();
    const limited = rateLimitedLogger(log, limit, () => 0);
    for (let i = 0; i < 10; i++) {
      limited.warn('a');
      limited.info('a');
      limited.warn(`kind ${i}`);
    }
    expect(lines.filter((l) => l.startsWith('info'))).to.deep.equal(['info a', 'info a', 'info a']);
    // 3 of 'a', then the level's budget of 5 is spent on two other kinds
    expect(lines.filter((l) => l.startsWith('warn'))).to.deep.equal([
      'warn a',
      'warn kind 0',
      'warn a',
      'warn kind 1',
      'warn a',
    ]);
  });

  it('tracks at most maxKinds kinds: messages of more share one budget, expired kinds make room', () => {
    const { lines, log } = recorder();
    let t = 0;
    const limited = rateLimitedLogger(log, { ...limit, levelBurst: 1000 }, () => t);
    for (let i = 0; i < 50; i++) limited.error(`offset ${i}`);
    // four kinds of their own, then every other shares the fifth budget of 3
    expect(lines).to.have.length(4 + 3);
    t = 6000;
    lines.length = 0;
    limited.error('offset 1000');
    expect(lines).to.deep.equal(['error offset 1000']);
  });

  it('takes string-only messages and leaves them as they are', () => {
    const { lines, log } = recorder();
    const limited = rateLimitedLogger(log);
    limited.debug('hello');
    limited.error({ code: 1 }, 'failed');
    expect(lines).to.deep.equal(['debug hello', 'error failed {"code":1}']);
  });
});
