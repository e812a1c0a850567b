/**
 * The soak (`pnpm soak`, not in CI): emu serves two emu_iavf NICs (2 queue pairs each) on one switch,
 * and two Linux guests move TCP without pause through them, two flows at once, for EMU_SOAK_MINUTES
 * (30). Every minute emu's RSS (its private, file and shared parts, and how much of it is the guests'
 * RAM), JavaScript heap (emu.info), open fds, memfd mappings and threads and every queue's counters (read
 * over the control socket) go into a CSV; at the end gnuplot draws them into a PNG (plot.ts). Both land
 * in EMU_SOAK_OUT (docs/soak). It passes when traffic moved in every minute, emu's own memory (RSS
 * without the guests' RAM) grew less than 2 % from the end of the warm-up (EMU_SOAK_WARMUP minutes, 5)
 * to the end along the least-squares line through every sample in between (trend.ts), the guests'
 * RAM in RSS stayed within their size, fds, mappings and threads stayed flat after the warm-up, emu
 * logged no error, and after a full garbage collection at the end (a heap snapshot, SIGUSR2) the
 * JavaScript heap and the memory outside it held by JS objects are no larger than at the end of the
 * warm-up.
 * Needs root.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ControlClient, type StatsSnapshot } from '@emu/cli';
import { type BootGuestResult, bootGuest, ensureGuestEnvironment, up, waitPing } from '@emu/guest';
import { expect } from 'chai';
import { EmuProcess } from '../emu-process.js';
import { sleep, until } from '../wait.js';
import { plotSoak } from './plot.js';
import { trendGrowth } from './trend.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const MINUTES = Number(process.env.EMU_SOAK_MINUTES ?? 30);
const WARMUP = Number(process.env.EMU_SOAK_WARMUP ?? 5);
const INTERVAL_MS = Number(process.env.EMU_SOAK_INTERVAL_MS ?? 60_000);
const OUT = resolve(process.env.EMU_SOAK_OUT ?? join(ROOT, 'docs/soak'));
const PORTS = [5000, 5001];
const GUEST_RAM_MIB = 512;

/** Guest A: TCP sinks that never end (busybox nc ends with its stdin: a FIFO held open). */
const A = `${up('10.0.0.1/24')}
mkfifo /tmp/in; exec 3<>/tmp/in
for p in ${PORTS.join(' ')}; do (while true; do nc -l -p $p < /tmp/in > /dev/null; done) & done
echo "A up"
wait
`;

/** Guest B: one sender per port, 64 MiB a connection, one connection after another. */
const B = `${up('10.0.0.2/24')}
${waitPing('10.0.0.1')}
for p in ${PORTS.join(' ')}; do
  (while true; do dd if=/dev/zero bs=64k count=1024 2> /dev/null | nc 10.0.0.1 $p; sleep 0.2; done) &
done
echo "B sending"
wait
`;

interface Sample {
  minute: number;
  rssKiB: number;
  rssAnonKiB: number;
  rssFileKiB: number;
  rssShmemKiB: number;
  /** the part of RSS that is the guests' RAM emu has touched (mappings of the clients' memfds) */
  guestRamKiB: number;
  /** memfd mappings: the guests' RAM regions and emu's own pages (BAR0 doorbells) */
  memfdMappings: number;
  /** the JavaScript heap in use and reserved, and memory outside it that JS objects hold (emu.info) */
  heapUsedKiB: number;
  heapTotalKiB: number;
  externalKiB: number;
  fds: number;
  threads: number;
  stats: StatsSnapshot;
}

/**
 * The guests' RAM in emu's RSS: the resident pages of the memfd mappings emu did not create (emu names
 * its own `emu-…`). A page counts once emu has read or written it and stays counted while mapped, so this
 * part grows as the guests' kernels hand out buffers across their RAM, up to the RAM's size.
 */
function clientMemory(pid: number) {
  let mapping = '';
  let guestRamKiB = 0;
  let memfdMappings = 0;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      mapping = head[1]!;
      if (mapping.startsWith('/memfd:')) memfdMappings++;
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && mapping.startsWith('/memfd:') && !mapping.startsWith('/memfd:emu-'))
      guestRamKiB += Number(rss[1]);
  }
  return { guestRamKiB, memfdMappings };
}

function proc(pid: number) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)![1]);
  return {
    ...clientMemory(pid),
    rssKiB: kib('VmRSS'),
    // RSS by kind: private memory, files (code) and shared memory (the guests' memfd RAM emu touched).
    rssAnonKiB: kib('RssAnon'),
    rssFileKiB: kib('RssFile'),
    rssShmemKiB: kib('RssShmem'),
    threads: Number(/Threads:\s+(\d+)/.exec(status)![1]),
    fds: readdirSync(`/proc/${pid}/fd`).length,
  };
}

/** A CSV column: its name and its value in a sample. */
type Column = [string, (s: Sample) => number | undefined];

/** The CSV: one row per sample; every queue's packets, bytes, drops and errors as columns. */
function csv(samples: Sample[]): string {
  const queueColumns = samples[0]!.stats.devices.flatMap((d) =>
    d.queues.flatMap((q) =>
      (['packets', 'bytes', 'drops', 'errors'] as const).map(
        (c): Column => [
          `${d.name}_${q.direction}${q.queue}_${c}`,
          (s) =>
            s.stats.devices
              .find((x) => x.name === d.name)
              ?.queues.find((y) => y.queue === q.queue && y.direction === q.direction)?.[c],
        ],
      ),
    ),
  );
  const columns: Column[] = [
    ['minute', (s) => s.minute],
    ['rss_kib', (s) => s.rssKiB],
    ['rss_anon_kib', (s) => s.rssAnonKiB],
    ['rss_file_kib', (s) => s.rssFileKiB],
    ['rss_shmem_kib', (s) => s.rssShmemKiB],
    ['guest_ram_kib', (s) => s.guestRamKiB],
    ['memfd_mappings', (s) => s.memfdMappings],
    ['heap_used_kib', (s) => s.heapUsedKiB],
    ['heap_total_kib', (s) => s.heapTotalKiB],
    ['external_kib', (s) => s.externalKiB],
    ['fds', (s) => s.fds],
    ['threads', (s) => s.threads],
    ...queueColumns,
  ];
  const header = columns.map(([name]) => name);
  const rows = samples.map((s) => columns.map(([, get]) => get(s) ?? ''));
  return `${[header, ...rows].map((r) => r.join(',')).join('\n')}\n`;
}

/** A column's total over the devices' TX (or RX) queues. */
const total = (s: Sample, direction: 'rx' | 'tx', counter: 'bytes' | 'packets') =>
  s.stats.devices.reduce(
    (n, d) => n + d.queues.filter((q) => q.direction === direction).reduce((m, q) => m + q[counter], 0),
    0,
  );

describe(`soak: two guests moving TCP through emu for ${MINUTES} minutes`, function () {
  const budget = MINUTES * INTERVAL_MS + 900_000;
  this.timeout(budget);
  let dir: string;
  let emu: EmuProcess;
  let client: ControlClient;
  const stop = new AbortController();
  const lines: string[] = [];
  let guests: Promise<BootGuestResult[]>;
  const samples: Sample[] = [];
  let afterGc: Sample;

  before(async function () {
    this.timeout(budget);
    execFileSync('bash', [join(ROOT, 'scripts/ensure-command.sh'), 'gnuplot', 'gnuplot-nox'], {
      stdio: 'inherit',
    });
    await ensureGuestEnvironment();
    dir = mkdtempSync(join(tmpdir(), 'emu-soak-'));
    emu = new EmuProcess(
      [
        '--vdev',
        `emu_iavf0,path=${join(dir, 'a.sock')},mac=02:00:00:00:00:01,queues=2`,
        '--vdev',
        `emu_iavf1,path=${join(dir, 'b.sock')},mac=02:00:00:00:00:02,queues=2`,
        '--control',
        join(dir, 'emu.ctl'),
        '--status',
        '0',
      ],
      { nodeOptions: ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`] },
    );
    await emu.waitFor(/serving 2 devices/);
    client = await ControlClient.connect(join(dir, 'emu.ctl'));
    const boot = (socket: string, script: string) =>
      bootGuest({
        sockets: [join(dir, socket)],
        modules: ['iavf'],
        memoryMiB: GUEST_RAM_MIB,
        script,
        timeoutMs: budget,
        signal: stop.signal,
        onConsole: (l) => lines.push(l),
      });
    guests = Promise.all([boot('a.sock', A), boot('b.sock', B)]);
    await until(() => lines.includes('B sending'), 'guest B to start sending', 300_000);
    const sample = async (minute: number): Promise<Sample> => {
      const stats = (await client.call('stats.get')) as StatsSnapshot;
      const { memory } = (await client.call('emu.info')) as { memory: Record<string, number> };
      const kib = (bytes: number) => Math.round(bytes / 1024);
      return {
        minute,
        ...proc(emu.child.pid!),
        heapUsedKiB: kib(memory.heapUsed!),
        heapTotalKiB: kib(memory.heapTotal!),
        externalKiB: kib(memory.external!),
        stats,
      };
    };
    const started = Date.now();
    for (let minute = 0; minute <= MINUTES; minute++) {
      await sleep(Math.max(0, started + minute * INTERVAL_MS - Date.now()));
      samples.push(await sample(minute));
      mkdirSync(OUT, { recursive: true });
      writeFileSync(join(OUT, 'soak.csv'), csv(samples));
    }
    plotSoak(join(OUT, 'soak.csv'), join(OUT, 'soak.png'), {
      warmup: WARMUP,
      intervalSeconds: INTERVAL_MS / 1000,
    });
    // A heap snapshot starts with a full garbage collection: what memory is left after it is held.
    // The snapshot blocks emu's JS thread until written, so the emu.info after it sees the collection.
    process.kill(emu.child.pid!, 'SIGUSR2');
    await until(() => readdirSync(dir).some((f) => f.endsWith('.heapsnapshot')), 'the heap snapshot', 30_000);
    afterGc = await sample(MINUTES);
    console.log(
      `      after a full GC: RSS ${afterGc.rssKiB} KiB, heap ${afterGc.heapUsedKiB}/${afterGc.heapTotalKiB} KiB, external ${afterGc.externalKiB} KiB`,
    );
  });

  after(async () => {
    stop.abort();
    await guests?.catch(() => undefined);
    client?.close();
    await emu?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const explain = () =>
    `${samples.map((s) => `${s.minute}: rss ${s.rssKiB} KiB (guests' RAM ${s.guestRamKiB} KiB), heap ${s.heapUsedKiB}/${s.heapTotalKiB} KiB, external ${s.externalKiB} KiB, fds ${s.fds}, threads ${s.threads}`).join('\n')}\nafter a full GC: ${JSON.stringify({ ...afterGc, stats: undefined })}\nguests:\n${lines.slice(-20).join('\n')}\nemu:\n${emu.stderr.slice(-3000)}`;

  it('moves traffic in every minute, through both NICs', () => {
    expect(samples.length, explain()).to.equal(MINUTES + 1);
    for (let i = 1; i < samples.length; i++) {
      expect(total(samples[i]!, 'tx', 'bytes'), `minute ${i}\n${explain()}`).to.be.above(
        total(samples[i - 1]!, 'tx', 'bytes'),
      );
      expect(total(samples[i]!, 'rx', 'bytes'), `minute ${i}\n${explain()}`).to.be.above(
        total(samples[i - 1]!, 'rx', 'bytes'),
      );
    }
  });

  // emu's own memory is its RSS without the guests' RAM: those pages are the guests' (QEMU's RSS counts
  // them too), bounded by the RAM's size and given back when the client goes; a leak of emu's would be
  // private memory, code or mappings of its own.
  const own = (s: Sample) => s.rssKiB - s.guestRamKiB;
  /** The samples from the warm-up's end on: what the bars are about. */
  const settled = () => samples.filter((s) => s.minute >= WARMUP);

  it("grows its own memory (RSS without the guests' RAM) by less than 2 % after the warm-up", () => {
    const after = settled();
    const growth = trendGrowth(after.map((s) => ({ x: s.minute, y: own(s) })));
    const at = after[0]!;
    const end = after[after.length - 1]!;
    const pct = (a: number, b: number) => `${((b / a - 1) * 100).toFixed(2)} %`;
    console.log(
      `      own memory along its trend from minute ${WARMUP} to ${end.minute}: ${(growth * 100).toFixed(2)} %` +
        ` (samples ${own(at)} → ${own(end)} KiB, ${pct(own(at), own(end))}; RSS ${at.rssKiB} → ${end.rssKiB} KiB,` +
        ` ${pct(at.rssKiB, end.rssKiB)}; the guests' RAM in it ${at.guestRamKiB} → ${end.guestRamKiB} KiB)`,
    );
    expect(growth, explain()).to.be.below(0.02);
  });

  it("holds no more of the guests' RAM than they have, in as many mappings as after the warm-up", () => {
    const after = settled();
    for (const s of after) expect(s.guestRamKiB, explain()).to.be.at.most(2 * GUEST_RAM_MIB * 1024);
    expect(new Set(after.map((s) => s.memfdMappings)).size, explain()).to.equal(1);
  });

  it('holds no more JavaScript heap or external memory after a full GC than at the end of the warm-up', () => {
    const at = samples.find((s) => s.minute === WARMUP)!;
    // 10 % or 1 MiB, whichever is larger: the heap's own churn at one moment.
    const within = (now: number, then: number) => now <= Math.max(then * 1.1, then + 1024);
    expect(within(afterGc.heapUsedKiB, at.heapUsedKiB), explain()).to.equal(true);
    expect(within(afterGc.externalKiB, at.externalKiB), explain()).to.equal(true);
  });

  it('keeps its fds and threads flat after the warm-up', () => {
    const after = settled();
    expect(new Set(after.map((s) => s.fds)).size, explain()).to.equal(1);
    expect(new Set(after.map((s) => s.threads)).size, explain()).to.equal(1);
  });

  it('logs no error and exits cleanly', async () => {
    expect(
      emu.stderr.split('\n').filter((l) => l.startsWith('emu error')),
      explain(),
    ).to.deep.equal([]);
    client.close();
    stop.abort();
    await guests;
    expect(await emu.stop()).to.equal(0);
  });
});
