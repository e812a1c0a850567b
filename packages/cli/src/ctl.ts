/**
 * `emu ctl`: one request to a running emu over its control socket, the answer printed for people (or
 * as JSON with --json, for scripts). Exit 0 when emu did it, 1 when it refused or cannot be reached,
 * 2 for a usage error.
 */
import { resolve } from 'node:path';
import { formatDevargs, parseDevargs } from '@emu/vdev-bus';
import { Command, CommanderError, Option } from 'commander';
import { ControlClient, ControlError } from './control/client.js';
import type { Output } from './output.js';
import { type DeviceSnapshot, linkText, queuePairs, queueTotal, type StatsSnapshot } from './snapshot.js';
import { table } from './table.js';

/** Where `emu ctl` and `emu stats` look without --control: $EMU_CONTROL, else emu's path for /run/emu sockets. */
export const DEFAULT_CONTROL_PATH = '/run/emu/emu.ctl';

export function controlPath(given: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(given ?? env.EMU_CONTROL ?? DEFAULT_CONTROL_PATH);
}

export interface CtlIo {
  stdout: Output;
  stderr: Output;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** A request, and how its result is shown to people. */
interface Request {
  method: string;
  params: Record<string, unknown>;
  show(result: unknown): string;
}

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

function showDevices(list: unknown): string {
  const devices = list as Array<{
    name: string;
    driver: string;
    state: string;
    connected: boolean;
    link?: { up: boolean; speedMbps: number };
    path: string;
  }>;
  if (devices.length === 0) return 'no devices\n';
  return table(
    ['NAME', 'DRIVER', 'STATE', 'CLIENT', 'LINK', 'SOCKET'],
    devices.map((d) => [d.name, d.driver, d.state, d.connected ? 'yes' : 'no', linkText(d.link), d.path]),
  );
}

/** Totals per device and per queue (counters since the device was made; `emu stats` shows rates). */
export function showStats(result: unknown): string {
  const s = result as StatsSnapshot;
  const rows: Array<Array<string | number>> = [];
  // Counters of some queues: RX packets and bytes, TX packets and bytes, drops, errors.
  const cells = (queues: DeviceSnapshot['queues']) => [
    queueTotal(queues, 'packets', 'rx'),
    queueTotal(queues, 'bytes', 'rx'),
    queueTotal(queues, 'packets', 'tx'),
    queueTotal(queues, 'bytes', 'tx'),
    queueTotal(queues, 'drops'),
    queueTotal(queues, 'errors'),
  ];
  for (const d of s.devices) {
    rows.push([d.name, linkText(d.link), ...cells(d.queues), d.irqs, d.commands]);
    for (const p of queuePairs(d.queues)) rows.push([`  q${p.queue}`, '', ...cells(p.queues), '', '']);
  }
  const plane = s.dataPlane;
  // Each device's client budget: held/limit of every resource, and refusals when there were any.
  const budgets = s.devices
    .map((d) => {
      const lines = Object.entries(d.budget ?? {}).map(
        ([r, l]) => `${r} ${l.used}/${l.limit}${l.refused ? ` (${l.refused} refused)` : ''}`,
      );
      return `budget ${d.name}: ${lines.join(', ')}\n`;
    })
    .join('');
  return (
    (rows.length > 0
      ? table(
          ['DEVICE', 'LINK', 'RX PKTS', 'RX BYTES', 'TX PKTS', 'TX BYTES', 'DROPS', 'ERRORS', 'IRQS', 'CMDS'],
          rows,
        )
      : 'no devices\n') +
    `data plane: ${plane.running} of ${plane.workers} workers running, ${plane.nics} NICs, ${plane.frames} frames\n` +
    budgets
  );
}

/** A value from the command line: JSON if it parses (true, 3, {"path":…}), else the text itself. */
function cliValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function commands(cwd: string, pick: (r: Request) => void): Command {
  const cmd = new Command('emu ctl')
    .description('Ask a running emu over its control socket.')
    .usage('[--control PATH] [--json] <command> [arguments]')
    .addOption(
      new Option(
        '--control <path>',
        `emu's control socket (default: $EMU_CONTROL, else ${DEFAULT_CONTROL_PATH})`,
      ),
    )
    .option('--json', 'print the answer as JSON')
    .helpCommand(false)
    .exitOverride();
  const ask = (method: string, params: Record<string, unknown>, show: (r: unknown) => string) =>
    pick({ method, params, show });
  cmd
    .command('list')
    .description('the devices: driver, state, client, link, socket')
    .action(() => ask('devices.list', {}, showDevices));
  cmd
    .command('add <devargs>')
    .description(
      'add a device, e.g. emu_iavf2,path=/run/emu/iavf2.sock (a relative path is made absolute here)',
    )
    .action((devargs: string) => {
      const parsed = parseDevargs(devargs);
      const args =
        parsed.args.path === undefined
          ? parsed.args
          : { ...parsed.args, path: resolve(cwd, parsed.args.path) };
      ask('devices.add', { devargs: formatDevargs({ ...parsed, args }) }, (r) => {
        const d = r as { name: string; driver: string; path: string };
        return `added ${d.name} (${d.driver}, ${d.path})\n`;
      });
    });
  cmd
    .command('remove <device>')
    .description('remove a device (its client is dropped)')
    .action((device: string) => ask('devices.remove', { device }, () => `removed ${device}\n`));
  cmd
    .command('link <device> <state>')
    .description("set a NIC's link up or down")
    .action((device: string, state: string) => {
      if (state !== 'up' && state !== 'down')
        throw new CommanderError(2, 'emu.usage', `link state must be up or down, not ${state}`);
      ask('link.set', { device, up: state === 'up' }, () => `${device}: link ${state}\n`);
    });
  cmd
    .command('stats [device]')
    .description('counters of the devices (or one) and their queues; `emu stats` shows them live')
    .action((device?: string) => ask('stats.get', device ? { device } : {}, showStats));
  const capture = cmd.command('capture').description('pcap capture of a NIC').helpCommand(false);
  capture
    .command('start <device> <file>')
    .option('--overwrite', 'replace the file if it exists')
    .description('capture what the NIC sends and receives to FILE')
    .action((device: string, file: string, o: { overwrite?: boolean }) =>
      ask('capture.start', { device, path: resolve(cwd, file), overwrite: o.overwrite ?? false }, (r) => {
        return `${device}: capturing to ${(r as { capture: string }).capture}\n`;
      }),
    );
  capture
    .command('stop <device>')
    .description('stop the capture')
    .action((device: string) =>
      ask(
        'capture.stop',
        { device },
        (r) => `${device}: stopped capturing to ${(r as { stopped: string }).stopped}\n`,
      ),
    );
  cmd
    .command('attrs <device>')
    .description("a device's attributes and their values")
    .action((device: string) =>
      ask('attributes.list', { device }, (list) =>
        table(
          ['ATTRIBUTE', 'VALUE', 'SETTABLE', 'WHAT'],
          (list as Array<{ name: string; value: unknown; writable: boolean; description: string }>).map(
            (a) => [
              a.name,
              typeof a.value === 'object' && a.value !== null ? '{…} (--json)' : JSON.stringify(a.value),
              a.writable ? 'yes' : 'no',
              a.description,
            ],
          ),
        ),
      ),
    );
  cmd
    .command('get <device> <attribute>')
    .description("one attribute's value")
    .action((device: string, attribute: string) => ask('attributes.get', { device, attribute }, json));
  cmd
    .command('set <device> <attribute> <value>')
    .description('set an attribute; VALUE is JSON (true, 25000, {"a":1}) or else text')
    .action((device: string, attribute: string, value: string) =>
      ask(
        'attributes.set',
        { device, attribute, value: cliValue(value) },
        (v) => `${device}: ${attribute} = ${JSON.stringify(v)}\n`,
      ),
    );
  cmd
    .command('log-level <level>')
    .description("change emu's log level: debug, info, warn, error, silent")
    .action((level: string) =>
      ask(
        'log.setLevel',
        { level },
        (r) => `log level ${(r as { level: string }).level} (was ${(r as { was: string }).was})\n`,
      ),
    );
  cmd
    .command('info')
    .description("emu's version, pid, uptime, memory (bytes: RSS, JavaScript heap, external)")
    .action(() => ask('emu.info', {}, json));
  cmd
    .command('methods')
    .description('the methods of the control socket (for --json scripts and `call`)')
    .action(() =>
      ask('emu.methods', {}, (list) =>
        table(
          ['METHOD', 'WHAT'],
          (list as Array<{ name: string; description: string }>).map((m) => [m.name, m.description]),
        ),
      ),
    );
  cmd
    .command('call <method> [params]')
    .description('send any method with PARAMS as a JSON object')
    .action((method: string, params?: string) => {
      const p = params === undefined ? {} : cliValue(params);
      if (typeof p !== 'object' || p === null || Array.isArray(p)) {
        throw new CommanderError(2, 'emu.usage', `params must be a JSON object, not ${params}`);
      }
      ask(method, p as Record<string, unknown>, json);
    });
  return cmd;
}

export async function ctlMain(argv: readonly string[], io: CtlIo): Promise<number> {
  let request: Request | undefined;
  const cmd = commands(io.cwd ?? process.cwd(), (r) => {
    request = r;
  });
  const route = (c: Command) => {
    c.configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
    c.showHelpAfterError('Run "emu ctl --help" for the commands.');
    for (const sub of c.commands) route(sub.exitOverride());
  };
  route(cmd);
  try {
    await cmd.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help asked for help; a missing command gets it too ('commander.help'), as a usage error.
      if (err.code === 'commander.helpDisplayed') return 0;
      if (err.code === 'emu.usage') io.stderr.write(`emu ctl: ${err.message}\n`);
      return 2;
    }
    io.stderr.write(`emu ctl: ${(err as Error).message}\n`);
    return 2;
  }
  if (!request) {
    io.stderr.write(cmd.helpInformation());
    return 2;
  }
  const opts = cmd.opts<{ control?: string; json?: boolean }>();
  const path = controlPath(opts.control, io.env);
  let client: ControlClient;
  try {
    client = await ControlClient.connect(path);
  } catch (err) {
    io.stderr.write(`emu ctl: ${unreachable(path, err)}\n`);
    return 1;
  }
  try {
    const result = await client.call(request.method, request.params);
    io.stdout.write(opts.json ? json(result) : request.show(result));
    return 0;
  } catch (err) {
    io.stderr.write(`emu ctl: ${refusal(err)}\n`);
    return 1;
  } finally {
    client.close();
  }
}

/** What emu answered to a refused request: its message, and the device's error code when it gave one. */
export function refusal(err: unknown): string {
  const code = err instanceof ControlError && err.data?.code ? ` (${err.data.code})` : '';
  return `${(err as Error).message}${code}`;
}

/** Why the control socket cannot be reached, in words that say what to do. */
export function unreachable(path: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT')
    return `no control socket at ${path}: is emu running? (give its path with --control or $EMU_CONTROL)`;
  if (code === 'ECONNREFUSED') return `nobody listens on ${path}: emu has stopped (the socket file is stale)`;
  if (code === 'EACCES') return `not allowed to reach ${path} (mode 0600: run as the user emu runs as)`;
  return `cannot reach ${path}: ${(err as Error).message}`;
}
