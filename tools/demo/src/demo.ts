/**
 * The demo: the real `emu` command serves two emu_iavf NICs on one switch; two Linux guests (the
 * harness's QEMU 11.1 and kernel 6.12, the stock iavf driver) ping each other and move a file over TCP
 * through them, while the stats are read over emu's control socket and shown live; then a summary, and
 * everything is cleaned up.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ControlClient, deviceRates, queueTotal, renderStats, type StatsSnapshot, si } from '@emu/cli';
import { type BootGuestResult, bootGuest, ensureGuestEnvironment, up, waitPing } from '@emu/guest';

export interface DemoOptions {
  /** Where the demo writes (anything with write; isTTY redraws the stats in place). */
  out: { write(text: string): unknown; isTTY?: boolean };
  /** A short run (5 pings, 1 MiB), as CI runs it; default 20 pings and 32 MiB. */
  short?: boolean;
  signal?: AbortSignal;
}

export interface DemoResult {
  ok: boolean;
  /** B's ping summary line, e.g. "20 packets transmitted, 20 packets received, 0% packet loss". */
  ping?: string;
  sent?: { bytes: number; md5: string };
  got?: { bytes: number; md5: string };
  seconds: number;
  /** The last stats reading. */
  stats?: StatsSnapshot;
}

const MAC_A = '02:00:00:00:de:01';
const MAC_B = '02:00:00:00:de:02';

const emuBin = () => join(dirname(createRequire(import.meta.url).resolve('@emu/cli')), '..', 'bin', 'emu.js');

/** Guest A receives the file; guest B pings A, then sends it. */
function scripts(pings: number, mib: number) {
  const a = `${up('10.0.0.1/24')}
mkfifo /tmp/in; exec 3<>/tmp/in
nc -l -p 5000 < /tmp/in > /tmp/got
echo "got $(wc -c < /tmp/got) $(md5sum /tmp/got | cut -d' ' -f1)"
`;
  const b = `${up('10.0.0.2/24')}
${waitPing('10.0.0.1')}
ping -c ${pings} -i 0.2 10.0.0.1 | grep 'packets transmitted'
dd if=/dev/urandom of=/tmp/f bs=1M count=${mib} 2>/dev/null
echo "sent $(wc -c < /tmp/f) $(md5sum /tmp/f | cut -d' ' -f1)"
nc 10.0.0.1 5000 < /tmp/f
`;
  return { a, b };
}

function transfer(output: string, word: 'sent' | 'got') {
  const m = new RegExp(`^${word} (\\d+) ([0-9a-f]{32})$`, 'm').exec(output);
  return m ? { bytes: Number(m[1]), md5: m[2] } : undefined;
}

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const { out } = options;
  const started = Date.now();
  const say = (line: string) => out.write(`${line}\n`);
  say('emu demo: two emu_iavf NICs on one switch, two Linux guests (QEMU 11.1, kernel 6.12, stock iavf)');
  say('preparing the guest environment (the first time this builds a Debian trixie folder: a few minutes)…');
  await ensureGuestEnvironment({ onProgress: (line) => say(`  ${line}`) });

  const dir = mkdtempSync(join(tmpdir(), 'emu-demo-'));
  const control = join(dir, 'emu.ctl');
  let emu: ChildProcess | undefined;
  let client: ControlClient | undefined;
  let timer: NodeJS.Timeout | undefined;
  const guestsStop = new AbortController();
  const onAbort = () => guestsStop.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const argv = [
      emuBin(),
      '--vdev',
      `emu_iavf0,path=${join(dir, 'a.sock')},mac=${MAC_A},queues=2`,
      '--vdev',
      `emu_iavf1,path=${join(dir, 'b.sock')},mac=${MAC_B},queues=2`,
      '--control',
      control,
      '--status',
      '0',
    ];
    say(`starting: emu ${argv.slice(1).join(' ')}`);
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    emu = child;
    let emuOut = '';
    child.stdout!.on('data', (d) => {
      emuOut += d;
    });
    child.stderr!.on('data', (d) => {
      emuOut += d;
    });
    for (let t = 0; !emuOut.includes('serving 2 devices'); t++) {
      if (child.exitCode !== null || t > 200) throw new Error(`emu did not start:\n${emuOut}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    client = await ControlClient.connect(control);
    const { a, b } = scripts(options.short ? 5 : 20, options.short ? 1 : 32);
    say('booting guest A (10.0.0.1 on emu_iavf0) and guest B (10.0.0.2 on emu_iavf1)…');
    const guests = Promise.all([
      bootGuest({
        sockets: [join(dir, 'a.sock')],
        modules: ['iavf'],
        cpus: 2,
        script: a,
        timeoutMs: 300_000,
        signal: guestsStop.signal,
      }),
      bootGuest({
        sockets: [join(dir, 'b.sock')],
        modules: ['iavf'],
        cpus: 2,
        script: b,
        timeoutMs: 300_000,
        signal: guestsStop.signal,
      }),
    ]);
    // The live view, as `emu stats` draws it: redrawn in place on a terminal, a line per second elsewhere.
    let before: StatsSnapshot | undefined;
    let last: StatsSnapshot | undefined;
    const tick = async () => {
      const now = (await client!.call('stats.get')) as StatsSnapshot;
      if (out.isTTY) out.write(`\x1b[H\x1b[2J${renderStats(now, before, control)}`);
      else if (before) {
        const line = deviceRates(now, before).map(
          (d) =>
            `${d.name} rx ${si(d.rxPps)} pps ${si(d.rxBps)} bit/s, tx ${si(d.txPps)} pps ${si(d.txBps)} bit/s, ${si(d.irqsPerSecond)} irq/s`,
        );
        say(`  ${line.join('  |  ')}`);
      }
      before = now;
      last = now;
    };
    timer = setInterval(() => void tick().catch(() => {}), 1000);
    const [ra, rb]: BootGuestResult[] = await guests;
    clearInterval(timer);
    timer = undefined;
    last = (await client.call('stats.get')) as StatsSnapshot;

    const ping = /^.*packets transmitted.*$/m.exec(rb.output)?.[0];
    const sent = transfer(rb.output, 'sent');
    const got = transfer(ra.output, 'got');
    const ok =
      ra.exitCode === 0 &&
      rb.exitCode === 0 &&
      ping !== undefined &&
      / 0% packet loss/.test(ping) &&
      sent !== undefined &&
      got?.bytes === sent.bytes &&
      got.md5 === sent.md5;
    const seconds = (Date.now() - started) / 1000;
    say('');
    say('summary');
    say(`  ping B → A:   ${ping ?? 'no result'}`);
    say(
      `  TCP B → A:    ${sent ? `${sent.bytes} bytes sent, ${got ? `${got.bytes} received` : 'nothing received'}, md5 ${got?.md5 === sent.md5 ? 'matches' : 'DIFFERS'}` : 'not sent'}`,
    );
    for (const d of last.devices) {
      const sum = (k: 'packets' | 'bytes', dir: 'rx' | 'tx') => queueTotal(d.queues, k, dir);
      say(
        `  ${d.name}:    rx ${sum('packets', 'rx')} pkts ${sum('bytes', 'rx')} B, tx ${sum('packets', 'tx')} pkts ${sum('bytes', 'tx')} B, irqs ${d.irqs}; ${d.status.replace(/.*(path .*)$/, '$1')}`,
      );
    }
    say(
      `  data plane:   ${last.dataPlane.frames} frames forwarded by ${last.dataPlane.workers} worker thread(s)`,
    );
    say(`  ${ok ? 'OK' : 'FAILED'} in ${seconds.toFixed(0)} s`);
    if (!ok) {
      say(`--- guest A ---\n${ra.output}\n${ra.console.slice(-1500)}`);
      say(`--- guest B ---\n${rb.output}\n${rb.console.slice(-1500)}`);
      say(`--- emu ---\n${emuOut}`);
    }
    return { ok, ping, sent, got, seconds, stats: last };
  } finally {
    if (timer) clearInterval(timer);
    options.signal?.removeEventListener('abort', onAbort);
    client?.close();
    if (emu && emu.exitCode === null) {
      const exited = new Promise((r) => emu!.once('exit', r));
      emu.kill('SIGINT');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
