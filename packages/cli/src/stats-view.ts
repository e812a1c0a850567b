/**
 * `emu stats`: a live view of a running emu, like top: every device and its queues with packet and bit
 * rates, drops, errors, interrupts and link, read over the control socket every --interval seconds.
 * `--once` prints one view (rates over one interval) and exits.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ControlClient } from './control/client.js';
import { type CtlIo, controlPath, DEFAULT_CONTROL_PATH, refusal, unreachable } from './ctl.js';
import { processSignal } from './signals.js';
import { type DeviceSnapshot, linkText, queuePairs, queueTotal, type StatsSnapshot } from './snapshot.js';
import { table } from './table.js';

export interface StatsIo extends CtlIo {
  /** Ends the live view (default: SIGINT/SIGTERM, as for emu). */
  signal?: AbortSignal;
}

/** 1234567 → "1.23M": rates in SI units, three significant digits. */
export function si(value: number): string {
  const units = ['', 'k', 'M', 'G', 'T'];
  let v = value;
  let i = 0;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  const text = i === 0 ? String(Math.round(v)) : v.toPrecision(3);
  return `${text}${units[i]}`;
}

interface Rates {
  rxPps: number;
  rxBps: number;
  txPps: number;
  txBps: number;
  drops: number;
  errors: number;
}

type Queue = DeviceSnapshot['queues'][0];

function queueRates(now: Queue[], before: Queue[] | undefined, seconds: number): Rates {
  const rate = (dir: 'rx' | 'tx', k: 'packets' | 'bytes') =>
    before === undefined || seconds <= 0
      ? 0
      : Math.max(0, queueTotal(now, k, dir) - queueTotal(before, k, dir)) / seconds;
  return {
    rxPps: rate('rx', 'packets'),
    rxBps: rate('rx', 'bytes') * 8,
    txPps: rate('tx', 'packets'),
    txBps: rate('tx', 'bytes') * 8,
    drops: queueTotal(now, 'drops'),
    errors: queueTotal(now, 'errors'),
  };
}

/** One device's rates between two readings (totals of its queues), and the same per queue pair. */
export interface DeviceRates extends Rates {
  name: string;
  link: string;
  connected: boolean;
  irqsPerSecond: number;
  queues: Array<Rates & { queue: number }>;
}

/** Rates of every device of `now` against `before` (an earlier reading; none: rates 0). */
export function deviceRates(now: StatsSnapshot, before?: StatsSnapshot): DeviceRates[] {
  const seconds = before ? (now.time - before.time) / 1000 : 0;
  return now.devices.map((d) => {
    const prev = before?.devices.find((p) => p.name === d.name);
    return {
      name: d.name,
      link: linkText(d.link),
      connected: d.socket.connected,
      ...queueRates(d.queues, prev?.queues, seconds),
      irqsPerSecond: prev && seconds > 0 ? Math.max(0, d.irqs - prev.irqs) / seconds : 0,
      queues: queuePairs(d.queues).map((p) => ({
        queue: p.queue,
        ...queueRates(
          p.queues,
          prev?.queues.filter((x) => x.queue === p.queue),
          seconds,
        ),
      })),
    };
  });
}

/** The view of `now`, with rates against `before`. */
export function renderStats(now: StatsSnapshot, before?: StatsSnapshot, path = ''): string {
  const seconds = before ? (now.time - before.time) / 1000 : 0;
  const rows: Array<Array<string | number>> = [];
  const cells = (r: Rates) => [si(r.rxPps), si(r.rxBps), si(r.txPps), si(r.txBps), r.drops, r.errors];
  for (const d of deviceRates(now, before)) {
    rows.push([d.name, d.link, d.connected ? 'yes' : 'no', ...cells(d), si(d.irqsPerSecond)]);
    for (const q of d.queues) rows.push([`  q${q.queue}`, '', '', ...cells(q), '']);
  }
  const p = now.dataPlane;
  const prevFrames = before?.dataPlane.frames;
  const fps = prevFrames !== undefined && seconds > 0 ? Math.max(0, p.frames - prevFrames) / seconds : 0;
  const stamp = new Date(now.time).toTimeString().slice(0, 8);
  return (
    `emu stats  ${path}  ${stamp}  up ${now.uptimeSeconds}s${seconds > 0 ? `  rates over ${seconds.toFixed(1)}s` : ''}\n` +
    (rows.length > 0
      ? table(
          [
            'DEVICE',
            'LINK',
            'CLIENT',
            'RX pps',
            'RX bit/s',
            'TX pps',
            'TX bit/s',
            'DROPS',
            'ERRORS',
            'IRQ/s',
          ],
          rows,
        )
      : 'no devices\n') +
    `data plane: ${p.running} of ${p.workers} workers running, ${p.nics} NICs, ${si(fps)} frames/s\n`
  );
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });

export async function statsMain(argv: readonly string[], io: StatsIo): Promise<number> {
  const cmd = new Command('emu stats')
    .description('A live view of a running emu: devices, queues, rates, drops, errors, interrupts, link.')
    .usage('[--control PATH] [--once] [--interval SECONDS]')
    .addOption(
      new Option(
        '--control <path>',
        `emu's control socket (default: $EMU_CONTROL, else ${DEFAULT_CONTROL_PATH})`,
      ),
    )
    .option('--once', 'print one view (rates over one interval) and exit')
    .option('--json', 'with --once: print the two readings as JSON')
    .addOption(
      new Option('--interval <seconds>', 'seconds between readings, 0.1-3600').default(1).argParser((v) => {
        const n = Number(v);
        if (v.trim() === '' || !(n >= 0.1 && n <= 3600))
          throw new InvalidArgumentError('expected seconds from 0.1 to 3600');
        return n;
      }),
    )
    .allowExcessArguments(false)
    .showHelpAfterError('Run "emu stats --help" for usage.')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
  try {
    cmd.parse([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError && err.code === 'commander.helpDisplayed') return 0;
    return 2;
  }
  const opts = cmd.opts<{ control?: string; once?: boolean; json?: boolean; interval: number }>();
  const path = controlPath(opts.control, io.env);
  let client: ControlClient;
  try {
    client = await ControlClient.connect(path);
  } catch (err) {
    io.stderr.write(`emu stats: ${unreachable(path, err)}\n`);
    return 1;
  }
  // emu closes a control connection idle for a minute (control/connection.ts): a view with a longer
  // interval connects again for its next reading.
  const read = async () => {
    if (client.closed) client = await ControlClient.connect(path);
    return (await client.call('stats.get')) as StatsSnapshot;
  };
  // The live view ends at SIGINT or SIGTERM (a second one exits at once), unless the caller ends it.
  const stop = opts.once || io.signal ? undefined : processSignal();
  try {
    let before = await read();
    if (opts.once) {
      await sleep(opts.interval * 1000);
      const now = await read();
      io.stdout.write(
        opts.json ? `${JSON.stringify({ before, now }, null, 2)}\n` : renderStats(now, before, path),
      );
      return 0;
    }
    const signal = io.signal ?? stop!.signal;
    // On a terminal each view replaces the last (cursor home, clear); a pipe gets one view after another.
    const clear = io.stdout.isTTY ? '\x1b[H\x1b[2J' : '';
    while (!signal.aborted) {
      await sleep(opts.interval * 1000, signal);
      if (signal.aborted) break;
      const now = await read();
      io.stdout.write(`${clear}${renderStats(now, before, path)}${clear ? '' : '\n'}`);
      before = now;
    }
    return 0;
  } catch (err) {
    io.stderr.write(`emu stats: ${refusal(err)}\n`);
    return 1;
  } finally {
    stop?.dispose();
    client.close();
  }
}
