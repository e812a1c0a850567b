/**
 * Mocha hooks for tests of a serving emu, in-process: per test, a registry of its own, a temporary
 * directory (the working directory of main()) and captured output; `serve(argv)` runs main() and
 * resolves once it serves (rejects if it exits first). After each test: its clients closed, every emu
 * stopped, the devices gone, the directory removed.
 */
import { EmudevRegistry } from '@emu/emudev';
import { main } from './main.js';
import { Capture, tempDir, until } from './test-env.fixture.js';

export function emuPerTest() {
  const stops: AbortController[] = [];
  const t = {
    registry: undefined as unknown as EmudevRegistry,
    tmp: undefined as unknown as ReturnType<typeof tempDir>,
    out: undefined as unknown as Capture,
    err: undefined as unknown as Capture,
    /** Closed after the test. */
    clients: [] as Array<{ close(): void }>,
    async serve(argv: string[]): Promise<{ stop: AbortController; done: Promise<number> }> {
      const stop = new AbortController();
      stops.push(stop);
      const done = main(argv, {
        stdout: t.out,
        stderr: t.err,
        registry: t.registry,
        signal: stop.signal,
        cwd: t.tmp.dir,
      });
      await Promise.race([
        until(() => t.out.text.includes('serving'), 'emu to serve'),
        done.then((code) => {
          throw new Error(`emu exited ${code}: ${t.err.text}`);
        }),
      ]);
      return { stop, done };
    },
  };
  beforeEach(() => {
    t.registry = new EmudevRegistry();
    t.tmp = tempDir();
    t.out = new Capture();
    t.err = new Capture();
  });
  afterEach(async () => {
    for (const c of t.clients.splice(0)) c.close();
    for (const s of stops.splice(0)) s.abort();
    await until(() => t.registry.list().length === 0, 'devices removed');
    t.tmp.cleanup();
  });
  return t;
}
