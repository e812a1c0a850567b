/**
 * The emu command, as a function: `main(argv, io)` parses the arguments, loads the drivers, probes the
 * devices, serves them until the abort signal (SIGINT/SIGTERM in bin/emu.js), removes them, and returns
 * the exit code: 0 after a clean stop or --help, 2 for a usage or devargs error, 1 for anything else.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { defaultRegistry, type EmuDevice, EmudevError, type EmudevRegistry } from '@emu/emudev';
import { DataPlane, notifySystemd, type StallReport, Watchdog } from '@emu/native';
import {
  DevargsError,
  describeDriver,
  formatDriverHelp,
  formatKeys,
  type Logger,
  prepareSocketPath,
  SOCKET_KEYS,
  VdevBus,
} from '@emu/vdev-bus';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ConfigFileError, checkConfigDevices, readConfigFile } from './config-file.js';
import { ControlServer } from './control/server.js';
import { ctlMain } from './ctl.js';
import { DriverModuleError, registerBuiltinDrivers, registerDriverModules } from './drivers.js';
import { LOG_LEVELS, type LogLevel, streamLogger } from './logger.js';
import { Metrics, parseListen } from './metrics.js';
import { guardOutput, type Output } from './output.js';
import { processSignal } from './signals.js';
import { statsMain } from './stats-view.js';

export interface MainOptions {
  stdout?: Output;
  stderr?: Output;
  /** The driver registry; the built-in drivers are added to it. Default: emudev's defaultRegistry. */
  registry?: EmudevRegistry;
  /** Serving stops when it aborts. Default: the first SIGINT or SIGTERM of this process. */
  signal?: AbortSignal;
  /** Where relative --driver paths are taken from (socket paths are the bus's: process.cwd()). Default: process.cwd(). */
  cwd?: string;
  /**
   * How long stopping (the control socket, the devices, metrics) may take after the signal before emu
   * gives up on what is left and returns 1 (bin/emu.js then exits). Default SHUTDOWN_TIMEOUT_MS.
   */
  shutdownTimeoutMs?: number;
}

/** Stopping takes at most this long, whatever clients and drivers do. */
export const SHUTDOWN_TIMEOUT_MS = 10_000;

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

interface Parsed {
  vdev?: string[];
  driver?: string[];
  logLevel: LogLevel;
  status: number;
  workers: number;
  /** A path; false for --no-control; undefined: next to the first device's socket. */
  control?: string | false;
  metrics?: { host: string; port: number };
  help?: boolean;
  version?: boolean;
}

const VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

function program(out: Output, err: Output): Command {
  const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];
  return new Command('emu')
    .description(
      'Serve emulated PCI devices over vfio-user, one UNIX socket per device, until SIGINT or SIGTERM.\n' +
        'QEMU connects with the -device argument printed for each device.',
    )
    .usage(
      '--vdev DEVARGS [--vdev DEVARGS ...] [options]\n       emu ctl <command>   (emu ctl --help)\n       emu stats [--once]  (emu stats --help)',
    )
    .helpOption(false)
    .addOption(
      new Option(
        '--vdev <devargs>',
        'a device to serve: NAME,path=SOCKET[,key=value...] (repeatable)',
      ).argParser(collect),
    )
    .addOption(
      new Option(
        '--driver <module>',
        'load drivers from an ES module exporting `driver` or `drivers` (repeatable)',
      ).argParser(collect),
    )
    .addOption(
      new Option('--log-level <level>', 'log to stderr from this level up')
        .choices(LOG_LEVELS)
        .default('warn'),
    )
    .addOption(
      new Option(
        '--status <seconds>',
        'print a status line this often (by default only when stdout is a terminal); 0: never',
      )
        .default(5)
        .argParser((v) => {
          const n = Number(v);
          if (v.trim() === '' || !(n >= 0 && n <= 86400)) {
            throw new InvalidArgumentError('expected seconds from 0 to 86400');
          }
          return n;
        }),
    )
    .addOption(
      new Option(
        '--workers <count>',
        'data plane threads forwarding between the NICs of a switch (each switch runs on one), 1-64',
      )
        .default(1)
        .argParser((v) => {
          const n = Number(v);
          if (!Number.isInteger(n) || n < 1 || n > 64)
            throw new InvalidArgumentError('expected a count from 1 to 64');
          return n;
        }),
    )
    .addOption(
      new Option(
        '--control <path>',
        'the control socket for `emu ctl` and `emu stats` (default: emu.ctl next to the first device socket)',
      ),
    )
    .addOption(new Option('--no-control', 'serve no control socket'))
    .addOption(
      new Option('--metrics <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics').argParser(
        (v) => {
          try {
            return parseListen(v);
          } catch (err) {
            throw new InvalidArgumentError((err as Error).message);
          }
        },
      ),
    )
    .addOption(new Option('--config <file>', 'read options and devices from a YAML file (see the README)'))
    .option('-V, --version', 'print the version')
    .option('-h, --help', 'show this help, with the drivers and their devargs keys')
    .allowExcessArguments(false)
    .showHelpAfterError('Run "emu --help" for usage, the drivers and their devargs keys.')
    .exitOverride()
    .configureOutput({ writeOut: (s) => out.write(s), writeErr: (s) => err.write(s) });
}

function helpText(cmd: Command, registry: EmudevRegistry): string {
  const drivers = registry.drivers().map((d) => formatDriverHelp(describeDriver(d)));
  return [
    cmd.helpInformation().trimEnd(),
    '',
    'Devargs: a device name (a driver name followed by a number) and comma-separated key=value items,',
    'e.g. emu_gpio0,path=/tmp/emu/gpio0.sock,lines=8. Every device needs path; the other keys are its',
    "driver's:",
    '',
    'Every device also takes these keys, for who may reach its socket and what memory it takes:',
    ...formatKeys(SOCKET_KEYS),
    '',
    'Drivers:',
    drivers.length > 0 ? drivers.join('\n\n') : '  (none registered)',
    '',
    'Examples:',
    '  emu --vdev emu_gpio0,path=/tmp/emu/gpio0.sock',
    '  emu --vdev emu_gpio0,path=/tmp/emu/gpio0.sock,lines=8 --vdev emu_gpio1,path=/tmp/emu/gpio1.sock',
    '  emu --driver ./my-driver.js --vdev my_dev0,path=/tmp/emu/my0.sock',
    '',
  ].join('\n');
}

/** Whether an error is the user's to fix in the arguments (exit 2) rather than a failure (exit 1). */
function isUsageError(err: unknown): boolean {
  if (err instanceof DevargsError || err instanceof DriverModuleError || err instanceof ConfigFileError)
    return true;
  return (
    err instanceof EmudevError && ['EINVAL', 'EEXIST', 'EADDRINUSE', 'EACCES', 'ENOENT'].includes(err.code)
  );
}

function deviceLines(devices: EmuDevice[]): string {
  const nameWidth = Math.max(...devices.map((d) => d.name.length));
  const driverWidth = Math.max(...devices.map((d) => d.driver.name.length));
  return devices
    .map(
      (d) =>
        `${d.name.padEnd(nameWidth)}  ${d.driver.name.padEnd(driverWidth)}  ${d.path}\n` +
        `  qemu: -device '${d.qemuDeviceArg()}'\n`,
    )
    .join('');
}

/**
 * One line per device: whether a client is connected, commands it handled, IRQs it raised, and the
 * driver's own summary (a NIC's link and traffic).
 */
export function statusLines(devices: EmuDevice[], now = new Date(), plane = DataPlane.shared()): string {
  const time = now.toTimeString().slice(0, 8);
  const p = plane.stats();
  const running = p.workers.filter((w) => w.running).length;
  const planeLine = `[${time}] data plane  workers: ${running} running of ${p.workers.length}  nics: ${p.nics}  frames: ${p.frames}\n`;
  return (
    devices
      .map((d) => {
        const stats = d.stats();
        const commands = Object.values(stats.commands).reduce((a, b) => a + b, 0);
        const connected = d.info().socket.connected ? 'yes' : 'no';
        const own = d.status();
        return `[${time}] ${d.name}  connected: ${connected}  commands: ${commands}  irqs: ${stats.irqsTriggered}${own ? `  ${own}` : ''}\n`;
      })
      .join('') + planeLine
  );
}

/** The value of `--config FILE` (or `--config=FILE`) in argv, and argv without it. */
function takeConfigOption(argv: readonly string[]): { file?: string; rest: string[] } {
  const rest = [...argv];
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--') break;
    if (rest[i].startsWith('--config=')) return { file: rest.splice(i, 1)[0].slice(9), rest };
    if (rest[i] === '--config' && i + 1 < rest.length) return { file: rest.splice(i, 2)[1], rest };
  }
  return { rest };
}

export async function main(argv: readonly string[], options: MainOptions = {}): Promise<number> {
  // A closed stdout or stderr (a pipe whose reader exited) must not stop the devices.
  const stderr = guardOutput(options.stderr ?? process.stderr);
  const stdout = guardOutput(options.stdout ?? process.stdout, (err) =>
    stderr.write(
      `emu: stdout is gone (${(err as NodeJS.ErrnoException).code ?? err.message}): still serving\n`,
    ),
  );
  const cwd = options.cwd ?? process.cwd();
  if (argv[0] === 'ctl') return ctlMain(argv.slice(1), { stdout, stderr, cwd });
  if (argv[0] === 'stats') return statsMain(argv.slice(1), { stdout, stderr, cwd, signal: options.signal });
  const registry = options.registry ?? defaultRegistry;
  const fail = (code: number, message: string, hint = true) => {
    stderr.write(
      `emu: ${message}\n${hint ? 'Run "emu --help" for the drivers and their devargs keys.\n' : ''}`,
    );
    return code;
  };

  // A config file is the command line written down: its options come first, so the command line's win.
  const { file: configPath, rest } = takeConfigOption(argv);
  let config: ReturnType<typeof readConfigFile> | undefined;
  if (configPath !== undefined) {
    try {
      config = readConfigFile(configPath, cwd);
    } catch (err) {
      return fail(EXIT_USAGE, (err as Error).message, false);
    }
  }
  const cmd = program(stdout, stderr);
  let opts: Parsed;
  try {
    cmd.parse([...(config?.argv ?? []), ...rest], { from: 'user' });
    opts = cmd.opts<Parsed>();
  } catch (err) {
    // commander has written its message ("error: unknown option '--x'") already.
    return err instanceof CommanderError ? EXIT_USAGE : fail(EXIT_FAILURE, (err as Error).message, false);
  }
  if (opts.version) {
    stdout.write(`${VERSION}\n`);
    return EXIT_OK;
  }

  try {
    registerBuiltinDrivers(registry);
    await registerDriverModules(registry, opts.driver ?? [], cwd);
  } catch (err) {
    return fail(isUsageError(err) ? EXIT_USAGE : EXIT_FAILURE, (err as Error).message, false);
  }
  if (opts.help) {
    stdout.write(helpText(cmd, registry));
    return EXIT_OK;
  }
  const vdevs = opts.vdev ?? [];
  if (vdevs.length === 0 && typeof opts.control !== 'string') {
    return fail(
      EXIT_USAGE,
      'nothing to serve: give at least one --vdev DEVARGS (or --control PATH to add them later)',
    );
  }

  let disposeSignal = () => {};
  let signal = options.signal;
  if (!signal) {
    const s = processSignal();
    signal = s.signal;
    disposeSignal = s.dispose;
  }
  // The process's data plane, with its threads, before any device: the switches are made on it.
  const plane = DataPlane.shared({ workers: opts.workers });
  if (plane.stats().workers.length !== opts.workers) {
    return fail(
      EXIT_FAILURE,
      `the data plane of this process has ${plane.stats().workers.length} workers already`,
      false,
    );
  }
  const startedAt = Date.now();
  const logger = streamLogger(opts.logLevel, stderr);
  const metrics: Metrics | undefined = opts.metrics
    ? new Metrics({ devices: () => bus.devices(), plane, startedAt })
    : undefined;
  const bus: VdevBus = new VdevBus(registry, {
    logger,
    onHandled: metrics && ((device, command, seconds) => metrics.observe(device, command, seconds)),
  });
  let control: ControlServer | undefined;
  // The stall detector: a native thread or the event loop held at one task for over a second is
  // logged, naming it and what it was doing (and counted: the metrics).
  const watchdog = new Watchdog({
    onStalls: (reports) => {
      for (const r of reports) logStall(logger, r);
    },
  });
  try {
    try {
      if (config) checkConfigDevices(config, (text) => bus.validate(text));
    } catch (err) {
      return fail(EXIT_USAGE, (err as Error).message, false);
    }
    let serving = false;
    const count = (n: number) => `${n} device${n === 1 ? '' : 's'}`;
    // Under systemd (Type=notify): ready once every device serves, then what it serves as that changes.
    const tellSystemd = (state: string) => {
      try {
        notifySystemd(state);
      } catch (err) {
        logger.warn(
          { NOTIFY_SOCKET: process.env.NOTIFY_SOCKET },
          `cannot notify systemd: ${(err as Error).message}`,
        );
      }
    };
    const serves = () => `STATUS=serving ${count(bus.devices().length)}`;
    bus.on('add', (d) => {
      if (serving) {
        stdout.write(`${d.name}: added (${d.driver.name}, ${d.path})\n`);
        tellSystemd(serves());
      }
      d.on('ready', () => stdout.write(`${d.name}: client connected\n`));
      d.on('disconnect', ({ reason }) =>
        stdout.write(`${d.name}: client disconnected${reason ? ` (${reason})` : ''}\n`),
      );
    });
    bus.on('remove', (d) => {
      metrics?.forget(d.name);
      if (serving) {
        stdout.write(`${d.name}: removed\n`);
        tellSystemd(serves());
      }
    });
    let devices: EmuDevice[];
    try {
      devices = await bus.scan(vdevs);
    } catch (err) {
      const usage = isUsageError(err);
      const located = config ? config.locate(err) : err;
      return fail(usage ? EXIT_USAGE : EXIT_FAILURE, (located as Error).message, usage && located === err);
    }
    // The control socket next to the devices': if it cannot be served, the devices go again.
    const controlAt = controlSocketPath(opts.control, devices);
    if (controlAt !== undefined) {
      try {
        const path = await prepareSocketPath('--control', controlAt, logger);
        control = await ControlServer.listen(
          path,
          { bus, plane, logger, startedAt, version: VERSION },
          { logger },
        );
      } catch (err) {
        await bus.removeAll().catch(() => {});
        const inUse = (err as { code?: string }).code === 'EADDRINUSE';
        const hint =
          inUse && opts.control === undefined
            ? ' (another emu serves there: give this one --control PATH or --no-control)'
            : '';
        return fail(isUsageError(err) ? EXIT_USAGE : EXIT_FAILURE, `${(err as Error).message}${hint}`, false);
      }
    }
    if (metrics) {
      try {
        const at = await metrics.listen(opts.metrics!.host, opts.metrics!.port);
        const host = at.family === 'IPv6' ? `[${at.address}]` : at.address;
        stdout.write(`metrics: http://${host}:${at.port}/metrics\n`);
      } catch (err) {
        await bus.removeAll().catch(() => {});
        return fail(
          EXIT_USAGE,
          `--metrics ${opts.metrics!.host}:${opts.metrics!.port}: ${(err as Error).message}`,
          false,
        );
      }
    }
    if (devices.length > 0) stdout.write(deviceLines(devices));
    if (control) stdout.write(`control: ${control.path}  (emu ctl --control ${control.path} list)\n`);
    stdout.write(`serving ${count(devices.length)}; Ctrl-C to stop\n`);
    serving = true;
    tellSystemd(`READY=1\n${serves()}`);

    const statusMs = opts.status * 1000;
    // A terminal gets status lines by default; a pipe only when --status was given.
    const asked = cmd.getOptionValueSource('status') === 'cli';
    const timer =
      statusMs > 0 && (stdout.isTTY || asked)
        ? setInterval(() => stdout.write(statusLines(bus.devices())), statusMs)
        : undefined;
    await aborted(signal);
    clearInterval(timer);
    serving = false;
    tellSystemd('STOPPING=1');
    const why = typeof signal.reason === 'string' ? signal.reason : 'stop';
    stdout.write(`${why}: removing ${count(bus.devices().length)}\n`);
    const stopping = (async () => {
      // Nobody may add a device while the others go.
      await control?.close();
      await bus.removeAll();
    })();
    const limitMs = options.shutdownTimeoutMs ?? SHUTDOWN_TIMEOUT_MS;
    let deadline: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      stopping.then(
        () => 'stopped' as const,
        (err: unknown) => err,
      ),
      new Promise<'late'>((resolve) => {
        deadline = setTimeout(() => resolve('late'), limitMs);
      }),
    ]);
    clearTimeout(deadline);
    if (outcome === 'late') {
      const left = bus.devices().map((d) => d.name);
      const what = left.length > 0 ? `removing ${left.join(', ')}` : 'closing the control socket';
      return fail(EXIT_FAILURE, `stopping took longer than ${limitMs} ms (still ${what}): giving up`, false);
    }
    if (outcome !== 'stopped') {
      return fail(EXIT_FAILURE, `while removing devices: ${(outcome as Error).message}`, false);
    }
    return EXIT_OK;
  } finally {
    await control?.close();
    await metrics?.close();
    watchdog.close();
    disposeSignal();
  }
}

/** One stall report of the Watchdog, as a log line. */
export function logStall(logger: Logger, r: StallReport): void {
  const ms = Math.round(r.ms);
  if (r.thread === 'event loop') {
    if (r.ended) logger.warn({ ms }, `the event loop was stalled for about ${ms} ms`);
    // Its start was written to stderr by the stall detector itself while the loop could not.
    return;
  }
  const whom = r.subject ? ` (${r.subject})` : '';
  if (r.ended) logger.info({ thread: r.thread, ms }, `${r.thread} goes on, after about ${ms} ms`);
  else logger.warn({ thread: r.thread, ms }, `${r.thread} stalled: ${ms} ms at ${r.doing}${whom}`);
}

/**
 * Where the control socket goes: --control PATH; nowhere with --no-control; by default emu.ctl in the
 * directory of the first device's socket (so `emu ctl` finds it at /run/emu/emu.ctl for /run/emu/*.sock).
 */
function controlSocketPath(given: string | false | undefined, devices: EmuDevice[]): string | undefined {
  if (given === false) return undefined;
  if (typeof given === 'string') return given;
  return devices.length > 0 ? join(dirname(devices[0].path), 'emu.ctl') : undefined;
}

function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}
