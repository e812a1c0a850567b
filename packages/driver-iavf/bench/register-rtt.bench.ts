/**
 * `pnpm bench`: register round trips to an emu_iavf NIC, as a guest's vCPU makes them: 4-byte
 * REGION_READs, one outstanding, from the C client of @emu/vfio-user's round-trip bench
 * (packages/vfio-user/bench/c/rtt-client.c) to a device process (scale-host.ts, one NIC). Three
 * registers: config space and VFGEN_RSTAT in BAR0 (answered by JavaScript, as every trapped register
 * that is not hot) and VFINT_DYN_CTLN1(0), the interrupt re-arm Linux's iavf writes on every NAPI round
 * (answered by the socket thread: docs/architecture.md "Register traps"). Reference in the same run:
 * that bench's do-nothing C server (floor-server.c), the floor of any vfio-user server here. Measured as
 * the scheduler places the processes and with all of them on one CPU (taskset), where the server's own
 * cost shows. `BENCH_MS` sets the time per figure (default 2000).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Reg } from '../src/constants.js';
import { buildRttPrograms, type RttFigure as Figure, runBench, startHost, stop } from './processes.js';

const MS = Number(process.env.BENCH_MS ?? 2000);

/** REGION_READ targets: [region, offset] for rtt-client (config space is region 7). */
const TARGETS = {
  'config space (JavaScript)': ['7', '0'],
  'VFGEN_RSTAT, BAR0 (JavaScript)': ['0', `0x${Reg.VFGEN_RSTAT.toString(16)}`],
  'VFINT_DYN_CTLN1(0), BAR0 (socket thread)': ['0', `0x${Reg.VFINT_DYN_CTLN1(0).toString(16)}`],
} as const;

const onCpu0 = (pin: boolean, command: string, args: string[]): [string, string[]] =>
  pin ? ['taskset', ['-c', '0', command, ...args]] : [command, args];

function rtt(dir: string, pin: boolean, socket: string, target: readonly string[]): Figure {
  const [command, args] = onCpu0(pin, join(dir, 'rtt-client'), [socket, String(MS), ...target]);
  // stderr into the error (the floor's first tries fail while it starts listening).
  return JSON.parse(execFileSync(command, args, { encoding: 'utf8', stdio: 'pipe' })) as Figure;
}

/** The floor server answers one client: one per figure. */
async function floor(dir: string, pin: boolean): Promise<Figure> {
  const socket = join(dir, `floor${pin ? '-pinned' : ''}.sock`);
  const [command, args] = onCpu0(pin, join(dir, 'floor-server'), [socket]);
  const child: ChildProcess = spawn(command, args, { stdio: 'ignore' });
  try {
    for (let i = 0; i < 100; i++) {
      try {
        return rtt(dir, pin, socket, TARGETS['config space (JavaScript)']);
      } catch (err) {
        if (child.exitCode !== null) throw err;
        await new Promise((r) => setTimeout(r, 20)); // not listening yet
      }
    }
    throw new Error('floor-server did not listen');
  } finally {
    child.kill();
  }
}

const line = (name: string, f: Figure, ref?: Figure) =>
  `  ${name.padEnd(58)} ${Math.round(f.rate).toString().padStart(7)}/s  p50 ${f.p50.toFixed(0).padStart(3)} µs  p99 ${f.p99.toFixed(0).padStart(4)} µs${ref ? `  ratio ${(f.rate / ref.rate).toFixed(2)}` : ''}`;

async function main(): Promise<void> {
  console.log('emu_iavf register round trips: REGION_READ, 4 bytes, one outstanding, from a C client');
  const dir = mkdtempSync(join(tmpdir(), 'emu-register-rtt-'));
  try {
    if (!buildRttPrograms(dir, ['floor-server', 'rtt-client'])) {
      console.log('  not measured: no C compiler (cc) to build the client and the floor');
      return;
    }
    const host = await startHost(1, 1, 1);
    try {
      for (const pin of [false, true]) {
        if (pin) {
          // Every thread of the device process (JS, socket thread, worker) onto CPU 0.
          try {
            execFileSync('taskset', ['-a', '-p', '-c', '0', String(host.pid)], { stdio: 'ignore' });
          } catch {
            console.log('  on one CPU: not measured (no taskset)');
            break;
          }
        }
        const ref = await floor(dir, pin);
        console.log(
          line(
            `reference: C server that only answers, ${pin ? 'on one CPU' : 'placed by the scheduler'}`,
            ref,
          ),
        );
        for (const [name, target] of Object.entries(TARGETS)) {
          console.log(line(`emu_iavf, ${name}`, rtt(dir, pin, host.sockets[0]!, target), ref));
        }
      }
    } finally {
      await stop(host.child);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench(main);
