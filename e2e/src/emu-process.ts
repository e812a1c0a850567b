/** Runs the real `emu` command as a child process, as a user would, and watches what it prints. */
import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
/** bin/emu.js of @emu/cli, resolved through the workspace like `pnpm exec emu`. */
export const EMU_BIN = join(dirname(require.resolve('@emu/cli')), '..', 'bin', 'emu.js');

export class EmuProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  private exited?: Promise<number | null>;

  /**
   * `netns`: run emu in that network namespace (`ip netns exec` execs it: the child is emu itself).
   * `nodeOptions`: flags for node itself, before emu's script.
   */
  constructor(args: string[], options: { netns?: string; nodeOptions?: string[] } = {}) {
    const command = [process.execPath, ...(options.nodeOptions ?? []), EMU_BIN, ...args];
    if (options.netns) command.unshift('ip', 'netns', 'exec', options.netns);
    this.child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d: Buffer) => {
      this.stdout += d.toString();
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }

  /** Resolves when stdout matches, rejects if emu exits or the time runs out. */
  async waitFor(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = this.stdout.match(pattern);
      if (m) return m;
      if (this.child.exitCode !== null) throw new Error(`emu exited ${this.child.exitCode}: ${this.stderr}`);
      if (Date.now() > end) throw new Error(`emu never printed ${pattern}:\n${this.stdout}\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** SIGINT, then the exit code. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null) this.child.kill('SIGINT');
    return this.exited!;
  }
}

/**
 * emu serving two emu_iavf NICs on one switch, logging at info: emu_iavf0 on `dir`/a.sock
 * (02:00:00:00:00:01) and emu_iavf1 on `dir`/b.sock (02:00:00:00:00:02); resolves once it serves both.
 */
export async function emuWithTwoNics(dir: string): Promise<EmuProcess> {
  const emu = new EmuProcess([
    '--vdev',
    `emu_iavf0,path=${join(dir, 'a.sock')},mac=02:00:00:00:00:01`,
    '--vdev',
    `emu_iavf1,path=${join(dir, 'b.sock')},mac=02:00:00:00:00:02`,
    '--log-level',
    'info',
  ]);
  await emu.waitFor(/serving 2 devices/);
  return emu;
}
