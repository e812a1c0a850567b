/**
 * Register round trips: 4-byte REGION_READs, one outstanding, to a server in another process, as a
 * vCPU's trapped access waits for its reply. Three registers of emu's: one in config space (answered by
 * JavaScript, as every trapped register that is not hot), one in an mmap-able area of BAR2 (a doorbell
 * page), and one in a native register block on BAR0 (iavf's VFINT_DYN_CTLN1 through @emu/native's
 * IavfVectors); the last two answered by native code (docs/architecture.md "Register traps"). The client is C
 * (bench/c/rtt-client.c), so the figure is the server's. Reference in the same run: bench/c/floor-server.c, a C server that does
 * nothing but answer (the floor of any vfio-user server on this machine). Both are compiled by this
 * script with the system's `cc`; without one, nothing is measured and the script says so.
 *
 * Reported: round trips per second, p50/p99, and the ratio to the floor, twice: as the scheduler
 * places the processes (as QEMU and emu run; on a VM, a wake-up across CPUs can cost more than the
 * server's work), and with client and server on one CPU (taskset), where the server's own cost shows.
 * `BENCH_MS` sets the time per figure (default 2000).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IavfVectors } from '@emu/native';
import { VfioUserServer } from '../src/server/server.js';
import { makeTestDevice } from '../src/server/test-device.fixture.js';

const MS = Number(process.env.BENCH_MS ?? 2000);
const self = fileURLToPath(import.meta.url);
const sources = fileURLToPath(new URL('./c/', import.meta.url));

interface Figure {
  rate: number;
  p50: number;
  p99: number;
}

/** Builds the C programs into dir; false if there is no C compiler. */
function build(dir: string): boolean {
  try {
    for (const name of ['floor-server', 'rtt-client']) {
      execFileSync('cc', ['-O2', '-o', join(dir, name), join(sources, `${name}.c`)], { stdio: 'pipe' });
    }
    return true;
  } catch {
    return false;
  }
}

/** A command line, on CPU 0 when pinned. */
function placed(pin: boolean, command: string, args: string[]): [string, string[]] {
  return pin ? ['taskset', ['-c', '0', command, ...args]] : [command, args];
}

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Where the client reads: config space (region 7, offset 0), the BAR2 doorbell page, or BAR0's register block. */
type Target = 'config' | 'trapped' | 'registers';
const REGISTERS_AT = 0x100;
const TARGET_ARGS: Record<Target, string[]> = {
  config: [],
  trapped: ['2', '0x1000'],
  registers: ['0', `0x${REGISTERS_AT.toString(16)}`],
};

function measure(dir: string, path: string, pin: boolean, target: Target): Figure {
  const [command, args] = placed(pin, join(dir, 'rtt-client'), [path, String(MS), ...TARGET_ARGS[target]]);
  return JSON.parse(execFileSync(command, args, { encoding: 'utf8' })) as Figure;
}

/** Measures one server (the C floor, or emu's VfioUserServer in a child of this script). */
async function serverFigure(
  kind: 'floor' | 'emu',
  dir: string,
  pin: boolean,
  target: Target = 'config',
): Promise<Figure> {
  const path = join(dir, `${kind}-${target}${pin ? '-pinned' : ''}.sock`);
  const [command, args] =
    kind === 'floor'
      ? placed(pin, join(dir, 'floor-server'), [path])
      : placed(pin, process.execPath, ['--import', 'tsx', self, 'serve', path]);
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
  try {
    return measure(dir, path, pin, target);
  } finally {
    child.kill();
  }
}

const line = (name: string, r: Figure) =>
  `  ${name.padEnd(72)} ${Math.round(r.rate).toString().padStart(7)}/s  p50 ${r.p50.toFixed(0)} µs  p99 ${r.p99.toFixed(0)} µs`;

if (process.argv[2] === 'serve') {
  const dev = makeTestDevice();
  const vectors = new IavfVectors({ count: 17 });
  dev.spec.regions![0]!.hot = [{ offset: REGISTERS_AT, size: 4 * 16, registers: vectors }];
  const quiet = { debug() {}, info() {}, warn() {}, error() {} };
  new VfioUserServer(dev.spec, { path: process.argv[3], logger: quiet }).listen();
  process.stdout.write('ready\n');
} else {
  const dir = mkdtempSync(join(tmpdir(), 'emu-rtt-'));
  try {
    console.log('REGION_READ round trips, 4 bytes, one outstanding, from a C client');
    if (!build(dir)) {
      console.log('  not measured: no C compiler (cc) to build the client and the floor');
    } else {
      for (const pin of hasTaskset() ? [false, true] : [false]) {
        const where = pin ? 'on one CPU' : 'placed by the scheduler';
        const floor = await serverFigure('floor', dir, pin);
        const config = await serverFigure('emu', dir, pin, 'config');
        const trapped = await serverFigure('emu', dir, pin, 'trapped');
        const registers = await serverFigure('emu', dir, pin, 'registers');
        const ratio = (f: Figure) => `ratio ${(f.rate / floor.rate).toFixed(2)}`;
        console.log(line(`reference: C server that only answers, ${where}`, floor));
        console.log(
          `${line(`VfioUserServer, config space (JavaScript), ${where}`, config)}  ${ratio(config)}`,
        );
        console.log(
          `${line(`VfioUserServer, doorbell page (socket thread), ${where}`, trapped)}  ${ratio(trapped)}`,
        );
        console.log(
          `${line(`VfioUserServer, DYN_CTLN1 block (socket thread), ${where}`, registers)}  ${ratio(registers)}`,
        );
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
