/**
 * For tests that feed the device bad input: registers mocha hooks that collect every exception that
 * escapes to the process (an uncaught exception or an unhandled rejection, which in emu would end every
 * device) and fail the test that let one escape; `until` waits for what the device does meanwhile.
 */
import { expect } from 'chai';
import { sleep } from './soft-iavf/io.js';

/** Installs the hooks in the calling describe(); `settle` runs before each check (e.g. closing). */
export function failOnEscapes(settle: () => Promise<void> = async () => {}): void {
  const escaped: unknown[] = [];
  const onError = (err: unknown) => escaped.push(err);
  before(() => {
    process.on('uncaughtException', onError);
    process.on('unhandledRejection', onError);
  });
  after(() => {
    process.off('uncaughtException', onError);
    process.off('unhandledRejection', onError);
  });
  afterEach(async function () {
    // Let anything the device left running settle, then check nothing escaped.
    await sleep(20);
    const errs = escaped.splice(0);
    await settle();
    if (this.currentTest?.state !== 'failed') {
      expect(
        errs.map((e) => String((e as Error)?.stack ?? e)),
        'exceptions that escaped the device',
      ).to.deep.equal([]);
    }
  });
}

/** Polls `cond` until it holds; throws after timeoutMs. */
export async function until(cond: () => boolean, timeoutMs = 1000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms: ${cond}`);
    await sleep(1);
  }
}
